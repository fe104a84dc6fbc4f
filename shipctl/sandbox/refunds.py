"""Refunds: EasyPost's `Refund` objects, asked for one shipment (`POST /shipments/:id/refund`) or in bulk by carrier
and tracking codes (`POST /refunds`, answered with a list of Refunds as EasyPost answers it), then retrieved or
listed (`GET /refunds[/:id]`).

What the carrier would say, decided when asked: a label the carrier has scanned (its tracker past `pre_transit`)
or one older than its carrier's window (USPS 30 days, UPS and FedEx 90, from the label's date on the sandbox
clock) is `rejected`; any other is `submitted`. A shipment holds one refund: asking again answers the Refund it
has. A bulk code that names no label of this account and carrier gets a Refund `not_applicable` with no shipment
(the rest of the request goes on), as one bad code must not sink a bulk request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipctl.sandbox import model, paging, tracking
from shipctl.sandbox.model import JSON

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipctl.sandbox.api import Request, SandboxApi

    Handler = Callable[[Request], tuple[int, JSON]]

ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"/v2/refunds", "refund.create"),
    ("GET", r"/v2/refunds", "refund.list"),
    ("GET", r"/v2/refunds/([^/]+)", "refund.retrieve"),
]
#: Days after a label's date within which its carrier takes it back; other carriers are treated like UPS.
REFUND_WINDOW_DAYS: dict[str, int] = {"USPS": 30, "UPS": 90, "FedEx": 90}
UNSCANNED = frozenset({"unknown", "pre_transit"})


def label_time(shp: JSON) -> float | None:
    """When the label was bought (its postage label's date), on the sandbox clock."""
    label = shp.get("postage_label") or {}
    return tracking.parse_iso(label.get("created_at") or shp.get("created_at"))


def tracking_status(shp: JSON) -> str:
    tracker = shp.get("tracker") or {}
    return str(tracker.get("status") or shp.get("status") or "unknown")


def verdict(shp: JSON) -> str:
    """The status the carrier gives a refund asked for now: `rejected` for a scanned or too old label."""
    if tracking_status(shp) not in UNSCANNED:
        return "rejected"
    carrier = str((shp.get("selected_rate") or {}).get("carrier") or "")
    bought = label_time(shp)
    window = REFUND_WINDOW_DAYS.get(carrier, 90) * 86400
    if bought is not None and model.now() - bought > window:
        return "rejected"
    return "submitted"


class Refunds:
    def __init__(self, api: SandboxApi) -> None:
        self.api = api
        self.store = api.store

    def handlers(self) -> dict[str, Handler]:
        return {"refund.create": self.create, "refund.list": self.listing, "refund.retrieve": self.retrieve}

    def request(self, shp: JSON, account: str) -> JSON:
        """Ask for the refund of a bought shipment (the caller holds the store lock); the Refund made, or the one
        it already has. The shipment's `refund_status` follows."""
        existing = self._refund_of(shp["id"], account)
        if existing is not None:
            return existing
        ts = model.now_z()
        carrier = (shp.get("selected_rate") or {}).get("carrier")
        refund: JSON = {
            "id": model.new_id("rfnd"), "object": "Refund", "created_at": ts, "updated_at": ts,
            "tracking_code": shp.get("tracking_code"), "confirmation_number": None, "status": verdict(shp),
            "carrier": carrier, "shipment_id": shp["id"], "mode": shp.get("mode"),
        }
        self.store.put("refund", refund, account)
        updated = dict(shp)
        updated["refund_status"] = refund["status"]
        updated["updated_at"] = ts
        self.store.put("shipment", updated, account)
        return refund

    def _refund_of(self, shipment_id: str, account: str) -> JSON | None:
        for oid in reversed(self.store.listing("refund", account)):
            refund = self.store.get(oid, account)
            if refund is not None and refund.get("shipment_id") == shipment_id:
                return refund
        return None

    def _shipment_for_code(self, code: str, account: str) -> JSON | None:
        tracker_id = self.store.tracker_for_code(code, account)
        tracker = self.store.get(tracker_id, account) if tracker_id else None
        if tracker is not None and tracker.get("shipment_id"):
            return self.store.get(str(tracker["shipment_id"]), account)
        for oid in self.store.listing("shipment", account):
            shp = self.store.get(oid, account)
            if shp is not None and shp.get("tracking_code") == code:
                return shp
        return None

    def create(self, req: Request) -> tuple[int, JSON]:
        params = model.unwrapped(req.body, "refund")
        carrier = str(params.get("carrier") or "").strip()
        if not carrier:
            raise model.required("carrier")
        codes = _codes(params.get("tracking_codes"))
        if not codes:
            raise model.required("tracking_codes")
        answered: list[JSON] = []
        with self.store.transaction():
            for code in codes:
                shp = self._shipment_for_code(code, req.account)
                bought_by = str(((shp or {}).get("selected_rate") or {}).get("carrier") or "")
                if shp is None or not shp.get("postage_label") or bought_by.lower() != carrier.lower() \
                        or shp.get("mode") != req.mode:
                    answered.append(self._not_applicable(code, carrier, req))
                else:
                    answered.append(self.request(shp, req.account))
        # EasyPost answers a bare JSON list; the HTTP layer sends whatever the handler returns.
        return 200, answered  # type: ignore[return-value]

    def _not_applicable(self, code: str, carrier: str, req: Request) -> JSON:
        ts = model.now_z()
        refund: JSON = {
            "id": model.new_id("rfnd"), "object": "Refund", "created_at": ts, "updated_at": ts,
            "tracking_code": code, "confirmation_number": None, "status": "not_applicable", "carrier": carrier,
            "shipment_id": None, "mode": req.mode,
        }
        return self.store.put("refund", refund, req.account)

    def listing(self, req: Request) -> tuple[int, JSON]:
        def fetch(oid: str) -> JSON | None:
            refund = self.store.get(oid, req.account)
            return refund if refund is not None and refund.get("mode") == req.mode else None

        return 200, paging.newest_first(self.store.listing("refund", req.account), fetch, req.query, "refunds")

    def retrieve(self, req: Request) -> tuple[int, JSON]:
        oid = req.params[0]
        refund = self.store.get(oid, req.account) if oid.startswith("rfnd_") else None
        if refund is None:
            raise model.not_found()
        return 200, refund


def _codes(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise model.invalid("tracking_codes", "must be a list of tracking codes")
    return list(dict.fromkeys(str(c).strip() for c in value if str(c).strip()))

