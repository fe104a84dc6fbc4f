"""SCAN forms: one document listing every parcel a carrier collects from one origin, made from bought shipments.

EasyPost's rules (docs "ScanForm"), checked in this order; the first one broken refuses the whole form with
422 `SCAN_FORM.CREATE.FAILURE`, naming every shipment that breaks it (and only those) in the message and in
`errors`, so a client can drop them and retry: an unknown shipment (another account's is unknown), one not
bought, one refunded, one already on a form, one the carrier refuses (`FormRefusals`, injected), then one from
another origin or carrier account than the first shipment's. A form made from shipments also makes the batch
EasyPost keeps behind it (`batch_id`), and each shipment then shows the form in `scan_form`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipctl.sandbox import batches, files, model, paging
from shipctl.sandbox.model import JSON, ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipctl.sandbox.api import Request, SandboxApi

    Handler = Callable[[Request], tuple[int, JSON]]

ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"/v2/scan_forms", "scan_form.create"),
    ("GET", r"/v2/scan_forms", "scan_form.list"),
    ("GET", r"/v2/scan_forms/([^/]+)", "scan_form.retrieve"),
]
CODE = "SCAN_FORM.CREATE.FAILURE"
_ORIGIN_FIELDS = ("street1", "street2", "city", "state")


def shipment_ids(value: Any, field: str = "shipments") -> list[str]:
    """The ids in `[{"id": ...}, ...]` (or plain id strings), once each, in the order given."""
    if not isinstance(value, list) or not value:
        raise model.required(field)
    ids: list[str] = []
    for item in value:
        oid = item.get("id") if isinstance(item, dict) else item
        if not isinstance(oid, str) or not oid:
            raise model.invalid(field, "each shipment must be an object with an id")
        if oid not in ids:
            ids.append(oid)
    return ids


def origin(addr: JSON | None) -> tuple[str, ...]:
    """Where a parcel is collected: street, city, state, 5-digit ZIP and country, case and spacing ignored
    (names, companies and phones may differ between shipments of one origin)."""
    addr = addr or {}
    parts = [" ".join(str(addr.get(k) or "").upper().split()) for k in _ORIGIN_FIELDS]
    return (*parts, str(addr.get("zip") or "").strip()[:5], str(addr.get("country") or "US").upper())


def _carrier_account(shp: JSON) -> str:
    return str((shp.get("selected_rate") or {}).get("carrier_account_id") or "")


def _refusal(ids: list[str], verb: tuple[str, str], reason: str) -> ApiError:
    count = f"{len(ids)} of the specified shipments {verb[0] if len(ids) == 1 else verb[1]}"
    return ApiError(422, CODE, f"Unable to create manifest. {count} {reason}: {', '.join(ids)}",
                    [{"field": "shipments", "message": f"{oid} {verb[0]} {reason}"} for oid in ids])


def check(found: list[tuple[str, JSON | None]], refused: Callable[[JSON], bool]) -> list[JSON]:
    """The shipments of a form, or the ApiError refusing it (see the module's docstring)."""
    def broken(test: Callable[[JSON], bool]) -> list[str]:
        return [oid for oid, shp in found if shp is not None and test(shp)]

    missing = [oid for oid, shp in found if shp is None]
    if missing:
        raise _refusal(missing, ("was", "were"), "not found")
    rules: list[tuple[Callable[[JSON], bool], tuple[str, str], str]] = [
        (lambda s: not s.get("postage_label"), ("has", "have"), "not been purchased"),
        (lambda s: bool(s.get("refund_status")), ("has", "have"), "been refunded"),
        (lambda s: bool(s.get("scan_form")), ("is", "are"), "already on a scan form"),
        (refused, ("was", "were"), "refused by the carrier for a scan form"),
    ]
    for test, verb, reason in rules:
        offenders = broken(test)
        if offenders:
            raise _refusal(offenders, verb, reason)
    shipments = [shp for _, shp in found if shp is not None]
    first = shipments[0]
    same: list[tuple[Callable[[JSON], object], str]] = [
        (lambda s: origin(s.get("from_address")), "from address"), (_carrier_account, "carrier account")]
    for key, what in same:
        want = key(first)
        offenders = [str(s["id"]) for s in shipments if key(s) != want]
        if offenders:
            raise _refusal(offenders, ("has", "have"), f"another {what} than the first shipment's (one form "
                                                       f"is for one {what})")
    return shipments


def make(api: SandboxApi, shipments: list[JSON], batch: JSON, req: Request) -> JSON:
    """Make the form for checked `shipments` of `batch` (stored by the caller), mark each shipment with it."""
    ts = model.now_z()
    sf_id = model.new_id("sf")
    first = shipments[0]
    scan_form: JSON = {
        "id": sf_id, "object": "ScanForm", "created_at": ts, "updated_at": ts,
        "tracking_codes": [shp["tracking_code"] for shp in shipments], "address": first.get("from_address"),
        "status": "created", "message": None, "form_url": f"/labels/{sf_id}.pdf", "form_file_type": None,
        "batch_id": batch["id"], "confirmation": None,
        "_carrier": (first.get("selected_rate") or {}).get("carrier", ""),
    }
    api.store.put("scan_form", scan_form, req.account)
    shown = {k: v for k, v in scan_form.items() if not k.startswith("_")}
    for shp in shipments:
        marked = {**shp, "scan_form": shown, "updated_at": ts}
        if not marked.get("batch_id"):
            marked.update(batch_id=batch["id"], batch_status="postage_purchased", batch_message=None)
        api.store.put("shipment", marked, req.account)
    batch.update(scan_form=shown, updated_at=ts)
    return scan_form


class ScanForms:
    def __init__(self, api: SandboxApi, refused: Callable[[JSON], bool]) -> None:
        self.api = api
        self.store = api.store
        self.refused = refused

    def handlers(self) -> dict[str, Handler]:
        return {"scan_form.create": self.create, "scan_form.list": self.listing,
                "scan_form.retrieve": self.retrieve}

    def find(self, ids: list[str], account: str) -> list[tuple[str, JSON | None]]:
        found = []
        for oid in ids:
            shp = self.store.get(oid, account) if oid.startswith("shp_") else None
            found.append((oid, shp if shp is not None and shp.get("object") == "Shipment" else None))
        return found

    def create(self, req: Request) -> tuple[int, JSON]:
        # The SDK wraps the parameters ({"scan_form": {...}}); EasyPost also takes them bare, and its own SDK tests
        # send the list as `shipment`.
        params = model.unwrapped(req.body, "scan_form")
        value = params.get("shipments", params.get("shipment"))
        ids = shipment_ids(value)
        with self.store.transaction():
            shipments = check(self.find(ids, req.account), self.refused)
            batch = batches.new_batch(req.mode, state="purchased", shipment_ids=ids)
            scan_form = make(self.api, shipments, batch, req)
            self.store.put("batch", batch, req.account)
        return 200, files.public(scan_form, req.base)

    def retrieve(self, req: Request) -> tuple[int, JSON]:
        oid = req.params[0]
        scan_form = self.store.get(oid, req.account) if oid.startswith("sf_") else None
        if scan_form is None:
            raise model.not_found()
        return 200, files.public(scan_form, req.base)

    def listing(self, req: Request) -> tuple[int, JSON]:
        def fetch(oid: str) -> JSON | None:
            scan_form = self.store.get(oid, req.account)
            return files.public(scan_form, req.base) if scan_form else None
        return 200, paging.newest_first(self.store.listing("scan_form", req.account), fetch, req.query,
                                        "scan_forms")
