"""Pickups: a carrier collecting bought parcels (one shipment's, or a batch's) at an address within a window.

Create answers with `pickup_rates` for each carrier of the parcels (or of `carrier_accounts` when given):
USPS collects free next day (`NextDay`, 0.00, as EasyPost's test account answers), UPS and FedEx offer a
future-day and a dearer same-day pickup. `buy` with a carrier and service of those rates schedules it (status
`scheduled`, a `confirmation` number); `cancel` cancels a scheduled one. A second buy or cancel is refused.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import TYPE_CHECKING, Any

from shipctl.sandbox import files, model, paging
from shipctl.sandbox.model import JSON, ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipctl.sandbox.api import Request, SandboxApi

    Handler = Callable[[Request], tuple[int, JSON]]

_ID = r"/v2/pickups/([^/]+)"
ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"/v2/pickups", "pickup.create"),
    ("GET", r"/v2/pickups", "pickup.list"),
    ("GET", _ID, "pickup.retrieve"),
    ("POST", _ID + "/buy", "pickup.buy"),
    ("POST", _ID + "/cancel", "pickup.cancel"),
]
#: carrier -> (service, price), cheapest first.
PICKUP_SERVICES: dict[str, list[tuple[str, str]]] = {
    "USPS": [("NextDay", "0.00")],
    "UPS": [("Future-day Pickup", "6.95"), ("Same-day Pickup", "9.40")],
    "FedEx": [("FUTURE_DAY", "4.50"), ("SAME_DAY", "7.25")],
}
_CONFIRMATION_PREFIX = {"USPS": "WTC", "UPS": "29", "FedEx": "PRG"}
_CARRIER_OF_ACCOUNT = {account: carrier for carrier, account in model.CARRIER_ACCOUNTS.items()}


def _when(value: Any, field: str) -> datetime.datetime:
    """A date (`2025-03-08`, midnight UTC) or an ISO 8601 time (an offset is converted to UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise model.required(field)
    text = value.strip().replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise model.invalid(field, "must be a date or an ISO 8601 date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)


def _z(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ids(value: Any, field: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(i, str) and i for i in ids):
        raise model.invalid(field, "must name objects by id")
    return [str(i) for i in ids]


class Pickups:
    def __init__(self, api: SandboxApi) -> None:
        self.api = api
        self.store = api.store

    def handlers(self) -> dict[str, Handler]:
        return {"pickup.create": self.create, "pickup.list": self.listing, "pickup.retrieve": self.retrieve,
                "pickup.buy": self.buy, "pickup.cancel": self.cancel}

    # ------------------------------------------------------------------ create

    def create(self, req: Request) -> tuple[int, JSON]:
        params = model.unwrapped(req.body, "pickup")
        earliest = _when(params.get("min_datetime"), "min_datetime")
        latest = _when(params.get("max_datetime"), "max_datetime")
        if latest < earliest:
            raise model.invalid("max_datetime", "must not be before min_datetime")
        shipments, batch = self._parcels(params, req.account)
        carriers = self._carriers(params, shipments)
        address = self.api._address(params.get("address"), "address", req)
        ts = model.now_z()
        pickup_id = model.new_id("pickup")
        pickup: JSON = {
            "id": pickup_id, "object": "Pickup", "created_at": ts, "updated_at": ts, "mode": req.mode,
            "status": "unknown", "reference": None if params.get("reference") is None else str(params["reference"]),
            "min_datetime": _z(earliest), "max_datetime": _z(latest),
            "is_account_address": bool(params.get("is_account_address", False)),
            "instructions": params.get("instructions"), "messages": [], "confirmation": None, "address": address,
            "carrier_accounts": [{"id": model.CARRIER_ACCOUNTS[c], "object": "CarrierAccount"} for c in carriers
                                 ] if params.get("carrier_accounts") else [],
            "pickup_rates": [
                {"mode": req.mode, "service": service, "rate": price, "currency": "USD", "created_at": ts,
                 "updated_at": ts, "carrier": carrier, "pickup_id": pickup_id, "id": model.new_id("pickuprate"),
                 "object": "PickupRate"}
                for carrier in carriers for service, price in PICKUP_SERVICES[carrier]],
            "_shipment_ids": [shp["id"] for shp in shipments],
        }
        with self.store.transaction():
            self.store.put("pickup", pickup, req.account)
            if batch is not None:
                self.store.put("batch", {**batch, "_pickup_id": pickup_id}, req.account)
        return 200, files.public(pickup, req.base)

    def _parcels(self, params: JSON, account: str) -> tuple[list[JSON], JSON | None]:
        """The bought shipments to collect: the one named by `shipment`, or those of `batch`."""
        if params.get("shipment"):
            oid = _ids(params["shipment"], "shipment")[0]
            shp = self.store.get(oid, account) if oid.startswith("shp_") else None
            if shp is None:
                raise model.invalid("shipment", f"shipment {oid} not found")
            if not shp.get("postage_label"):
                raise model.invalid("shipment", f"shipment {oid} must be purchased before a pickup is scheduled")
            return [shp], None
        if params.get("batch"):
            oid = _ids(params["batch"], "batch")[0]
            batch = self.store.get(oid, account) if oid.startswith("batch_") else None
            if batch is None:
                raise model.invalid("batch", f"batch {oid} not found")
            shipments = [s for s in (self.store.get(i, account) for i in batch["_shipment_ids"])
                         if s is not None and s.get("postage_label")]
            if not shipments:
                raise model.invalid("batch", f"batch {oid} has no purchased shipments to pick up")
            return shipments, batch
        raise model.required("shipment")

    @staticmethod
    def _carriers(params: JSON, shipments: list[JSON]) -> list[str]:
        if params.get("carrier_accounts"):
            accounts = _ids(params["carrier_accounts"], "carrier_accounts")
            unknown = [a for a in accounts if a not in _CARRIER_OF_ACCOUNT]
            if unknown:
                raise model.invalid("carrier_accounts", f"unknown carrier account {', '.join(unknown)}")
            names = [_CARRIER_OF_ACCOUNT[a] for a in accounts]
        else:
            names = [str((shp.get("selected_rate") or {}).get("carrier")) for shp in shipments]
        return [c for c in PICKUP_SERVICES if c in names]

    # ------------------------------------------------------------------ buy, cancel, read

    def _pickup(self, req: Request) -> JSON:
        oid = req.params[0]
        pickup = self.store.get(oid, req.account) if oid.startswith("pickup_") else None
        if pickup is None:
            raise model.not_found()
        return dict(pickup)

    def buy(self, req: Request) -> tuple[int, JSON]:
        carrier, service = (str(req.body.get(k) or "").strip() for k in ("carrier", "service"))
        if not carrier:
            raise model.required("carrier")
        if not service:
            raise model.required("service")
        with self.store.transaction():
            pickup = self._pickup(req)
            if pickup["status"] != "unknown":
                raise ApiError(422, "PICKUP.STATUS.INVALID", f"This pickup is already {pickup['status']}: only a "
                               "pickup not yet bought can be bought.")
            rate = next((r for r in pickup["pickup_rates"] if r["carrier"].lower() == carrier.lower()
                         and r["service"].lower() == service.lower()), None)
            if rate is None:
                offered = ", ".join(f"{r['carrier']} {r['service']}" for r in pickup["pickup_rates"])
                raise ApiError(422, "PICKUP.RATE.INVALID",
                               f"No pickup rate for carrier {carrier} and service {service}; offered: {offered}.",
                               [{"field": "service", "message": f"{carrier} {service} is not a rate of this pickup"}])
            number = int(hashlib.blake2b(pickup["id"].encode(), digest_size=4).hexdigest(), 16) % 10**8
            pickup.update(status="scheduled", confirmation=f"{_CONFIRMATION_PREFIX[rate['carrier']]}{number:08d}",
                          updated_at=model.now_z())
            self.store.put("pickup", pickup, req.account)
        return 200, files.public(pickup, req.base)

    def cancel(self, req: Request) -> tuple[int, JSON]:
        with self.store.transaction():
            pickup = self._pickup(req)
            if pickup["status"] != "scheduled":
                reason = "already canceled" if pickup["status"] == "canceled" else "not scheduled (never bought)"
                raise ApiError(422, "PICKUP.STATUS.INVALID", f"This pickup is {reason}: only a scheduled pickup "
                               "can be canceled.")
            pickup.update(status="canceled", updated_at=model.now_z())
            self.store.put("pickup", pickup, req.account)
        return 200, files.public(pickup, req.base)

    def retrieve(self, req: Request) -> tuple[int, JSON]:
        return 200, files.public(self._pickup(req), req.base)

    def listing(self, req: Request) -> tuple[int, JSON]:
        def fetch(oid: str) -> JSON | None:
            pickup = self.store.get(oid, req.account)
            return files.public(pickup, req.base) if pickup and pickup.get("mode") == req.mode else None
        return 200, paging.newest_first(self.store.listing("pickup", req.account), fetch, req.query, "pickups")
