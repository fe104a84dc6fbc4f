"""Refunds (voiding bought labels) over the SDK, as plain frozen types.

Blocking functions, run in worker threads by the engine. The idempotency rules live here too, since they read
EasyPost's answers: a shipment whose `refund_status` is already set is never asked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from shipctl.carrier.shipments import Shipment, _field, shipment_from, shipments_page
from shipctl.engine.failures import CallFailure

REFUND_DONE = frozenset({"submitted", "refunded"})
"""Refund statuses meaning the label is (being) voided: asking again is neither needed nor possible."""

Outcome = Literal["submitted", "refunded", "already_submitted", "already_refunded", "rejected", "not_applicable",
                  "not_bought", "failed"]


@dataclass(frozen=True)
class Refund:
    shipment_id: str
    outcome: Outcome
    refund_status: str | None
    tracking_code: str | None = None
    carrier: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    cost: str | None = None
    """What the label cost, as the API writes it: what a refund gives back once the carrier accepts it."""
    currency: str | None = None

    @property
    def ok(self) -> bool:
        """Voided, being voided, or was already: everything that is not a failure."""
        return self.outcome in ("submitted", "refunded", "already_submitted", "already_refunded")


def refund_shipment(client: Any, shipment_id: str) -> Shipment:
    """`POST /shipments/:id/refund`: ask the carrier to void the label."""
    return shipment_from(client.shipment.refund(shipment_id))


def before_refund(shipment: Shipment) -> Refund | None:
    """What a shipment's current state already answers (no refund call needed), or None when it must be asked."""
    status = shipment.refund_status
    if status in REFUND_DONE:
        return _settled(shipment, "already_refunded" if status == "refunded" else "already_submitted")
    if status == "rejected":
        return _settled(shipment, "rejected", "REFUND.REJECTED", "the carrier rejected the refund of this label")
    if status == "not_applicable":
        return _settled(shipment, "not_applicable", "REFUND.NOT_APPLICABLE", "this label cannot be refunded")
    if not shipment.bought:
        return _settled(shipment, "not_bought", "SHIPMENT.NOT_BOUGHT",
                        "this shipment was never bought; there is no label to refund")
    return None


def _settled(shipment: Shipment, outcome: Outcome, code: str | None = None, message: str | None = None) -> Refund:
    rate = shipment.selected_rate
    return Refund(shipment_id=shipment.id, outcome=outcome, refund_status=shipment.refund_status,
                  tracking_code=shipment.tracking_code, carrier=rate.carrier if rate else None,
                  error_code=code, error_message=message, cost=rate.rate if rate else None,
                  currency=rate.currency if rate else None)


def after_refund(shipment: Shipment) -> Refund:
    """The result of a refund call that succeeded."""
    rate = shipment.selected_rate
    status = shipment.refund_status or "submitted"
    outcome: Outcome = "refunded" if status == "refunded" else "submitted"
    if status in ("rejected", "not_applicable"):
        outcome = status  # type: ignore[assignment]
    return Refund(shipment_id=shipment.id, outcome=outcome, refund_status=status,
                  tracking_code=shipment.tracking_code, carrier=rate.carrier if rate else None,
                  error_code=None if outcome in ("refunded", "submitted") else f"REFUND.{status.upper()}",
                  error_message=None if outcome in ("refunded", "submitted") else f"refund {status}",
                  cost=rate.rate if rate else None, currency=rate.currency if rate else None)


def failed(shipment_id: str, failure: CallFailure) -> Refund:
    return Refund(shipment_id=shipment_id, outcome="failed", refund_status=None,
                  error_code=failure.code, error_message=failure.message)


# -- labels as reconcile and `refund --unused` read them ---------------------------------------------------

REFUND_WINDOW_DAYS: dict[str, int] = {"USPS": 30, "UPS": 90, "FedEx": 90}
"""Days after a label's date within which its carrier takes it back (EasyPost's refund documentation)."""
DEFAULT_REFUND_WINDOW_DAYS = 30
"""For a carrier EasyPost documents no window for: the shortest known one, so a label is never called refundable
when it may not be."""
UNSCANNED = frozenset({"unknown", "pre_transit"})
"""Tracking statuses of a label the carrier has not scanned yet."""


def refund_window_days(carrier: str | None) -> int:
    for name, days in REFUND_WINDOW_DAYS.items():
        if carrier and carrier.lower() == name.lower():
            return days
    return DEFAULT_REFUND_WINDOW_DAYS


@dataclass(frozen=True)
class Label:
    """A shipment as the account holds it, in the fields reconcile and the unused-label sweep compare."""

    shipment_id: str
    reference: str | None
    mode: str | None
    bought: bool
    carrier: str | None
    service: str | None
    rate: str | None
    currency: str | None
    tracking_code: str | None
    created_at: str | None
    label_date: str | None
    """When the label was bought (its postage label's `created_at`), the start of its refund window."""
    tracking_status: str | None
    refund_status: str | None

    @property
    def scanned(self) -> bool:
        return (self.tracking_status or "unknown") not in UNSCANNED


def label_from(obj: Any) -> Label:
    label = _field(obj, "postage_label")
    rate = _field(obj, "selected_rate")
    tracker = _field(obj, "tracker")
    mode = _field(obj, "mode")
    return Label(
        shipment_id=str(_field(obj, "id")), reference=_field(obj, "reference"), mode=str(mode) if mode else None,
        bought=bool(label and _field(label, "label_url")),
        carrier=_field(rate, "carrier"), service=_field(rate, "service"),
        rate=None if _field(rate, "rate") is None else str(_field(rate, "rate")),
        currency=_field(rate, "currency"), tracking_code=_field(obj, "tracking_code"),
        created_at=_field(obj, "created_at"), label_date=_field(label, "created_at") or _field(obj, "created_at"),
        # A tracker's status is the carrier's latest word; the shipment's own `status` mirrors it.
        tracking_status=_field(tracker, "status") or _field(obj, "status"),
        refund_status=_field(obj, "refund_status"),
    )


def retrieve_label(client: Any, shipment_id: str) -> Label:
    return label_from(client.shipment.retrieve(quote(shipment_id, safe="")))


def purchased_page(client: Any, *, start: str | None, end: str | None, before_id: str | None,
                   page_size: int) -> tuple[list[Label], bool]:
    """One page (newest first) of the account's purchased shipments created in [start, end]: (labels, has_more)."""
    items, more = shipments_page(client, start=start, end=end, purchased=True, before_id=before_id,
                                 page_size=page_size)
    return [label_from(s) for s in items], more


@dataclass(frozen=True)
class BulkRefund:
    """One Refund of a bulk request: what the carrier said for a tracking code."""

    tracking_code: str | None
    shipment_id: str | None
    status: str | None


def refund_by_codes(client: Any, carrier: str, tracking_codes: list[str]) -> list[BulkRefund]:
    """`POST /refunds` (carrier and tracking codes): one Refund per code, in EasyPost's answer."""
    answer = client.refund.create(carrier=carrier, tracking_codes=tracking_codes)
    return [BulkRefund(_field(r, "tracking_code"), _field(r, "shipment_id"), _field(r, "status"))
            for r in (answer if isinstance(answer, list) else [answer])]
