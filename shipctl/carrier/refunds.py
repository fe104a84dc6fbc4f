"""Refunds (voiding bought labels) over the SDK, as plain frozen types.

Blocking functions, run in worker threads by the engine. The idempotency rules live here too, since they read
EasyPost's answers: a shipment whose `refund_status` is already set is never asked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shipctl.carrier.shipments import Shipment, shipment_from
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
    return Refund(shipment_id=shipment.id, outcome=outcome, refund_status=shipment.refund_status,
                  tracking_code=shipment.tracking_code,
                  carrier=shipment.selected_rate.carrier if shipment.selected_rate else None,
                  error_code=code, error_message=message)


def after_refund(shipment: Shipment) -> Refund:
    """The result of a refund call that succeeded."""
    carrier = shipment.selected_rate.carrier if shipment.selected_rate else None
    status = shipment.refund_status or "submitted"
    outcome: Outcome = "refunded" if status == "refunded" else "submitted"
    if status in ("rejected", "not_applicable"):
        outcome = status  # type: ignore[assignment]
    return Refund(shipment_id=shipment.id, outcome=outcome, refund_status=status,
                  tracking_code=shipment.tracking_code, carrier=carrier,
                  error_code=None if outcome in ("refunded", "submitted") else f"REFUND.{status.upper()}",
                  error_message=None if outcome in ("refunded", "submitted") else f"refund {status}")


def failed(shipment_id: str, failure: CallFailure) -> Refund:
    return Refund(shipment_id=shipment_id, outcome="failed", refund_status=None,
                  error_code=failure.code, error_message=failure.message)
