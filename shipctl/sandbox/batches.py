"""Batches: a group of shipments bought, labelled (one merged file) and put on a SCAN form together.

EasyPost works a batch in the background (`creating`, `created`, `purchasing`, `purchased`, `label_generating`,
`label_generated`); the sandbox does each step within the call and answers with the state it reached, in the
shapes of EasyPost's recorded responses. The shipment list a batch shows is read from the shipments themselves
(`batch_status`, `batch_message`, `tracking_code`), so it is never stale. What only the sandbox needs (the
order of the shipments, the carrier and service each was created for, the last label made) is kept under keys
starting with `_`, never sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipctl.sandbox import files, model, paging, scan_forms
from shipctl.sandbox.model import JSON, ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipctl.sandbox.api import Request, SandboxApi

    Handler = Callable[[Request], tuple[int, JSON]]

_ID = r"/v2/batches/([^/]+)"
ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"/v2/batches", "batch.create"),
    ("GET", r"/v2/batches", "batch.list"),
    ("GET", _ID, "batch.retrieve"),
    ("POST", _ID + "/buy", "batch.buy"),
    ("POST", _ID + "/label", "batch.label"),
    ("POST", _ID + "/add_shipments", "batch.add_shipments"),
    ("POST", _ID + "/remove_shipments", "batch.remove_shipments"),
    ("POST", _ID + "/scan_form", "batch.scan_form"),
]
_COUNTS = ("created", "queued_for_purchase", "creation_failed", "postage_purchased", "postage_purchase_failed")
_FORMATS = {"PDF": "pdf", "ZPL": "zpl"}


def new_batch(mode: str, *, state: str = "created", shipment_ids: list[str] | None = None,
              reference: Any = None) -> JSON:
    ts = model.now_z()
    return {
        "id": model.new_id("batch"), "object": "Batch", "mode": mode, "state": state, "num_shipments": 0,
        "reference": None if reference is None else str(reference), "created_at": ts, "updated_at": ts,
        "scan_form": None, "shipments": [], "status": dict.fromkeys(_COUNTS, 0), "pickup": None,
        "label_url": None, "_shipment_ids": list(shipment_ids or []), "_services": {},
    }


def _summary(shp: JSON) -> JSON:
    return {"batch_status": shp.get("batch_status"), "batch_message": shp.get("batch_message"),
            "reference": shp.get("reference"), "tracking_code": shp.get("tracking_code"), "id": shp["id"]}


class Batches:
    def __init__(self, api: SandboxApi, refused: Callable[[JSON], bool]) -> None:
        self.api = api
        self.store = api.store
        self.refused = refused

    def handlers(self) -> dict[str, Handler]:
        return {"batch.create": self.create, "batch.list": self.listing, "batch.retrieve": self.retrieve,
                "batch.buy": self.buy, "batch.label": self.label, "batch.add_shipments": self.add_shipments,
                "batch.remove_shipments": self.remove_shipments, "batch.scan_form": self.scan_form}

    # ------------------------------------------------------------------ reading

    def present(self, batch: JSON, base: str) -> JSON:
        shipments = [shp for shp in (self.store.get(i) for i in batch["_shipment_ids"]) if shp is not None]
        out = files.public(batch, base)
        out["shipments"] = [_summary(shp) for shp in shipments]
        out["num_shipments"] = len(shipments)
        statuses = [shp.get("batch_status") for shp in shipments]
        out["status"] = {name: statuses.count(name) for name in _COUNTS}
        if batch.get("scan_form"):
            out["scan_form"] = files.public(batch["scan_form"], base)
        pickup = self.store.get(batch["_pickup_id"]) if batch.get("_pickup_id") else None
        out["pickup"] = files.public(pickup, base) if pickup else None
        return out

    def _batch(self, req: Request) -> JSON:
        oid = req.params[0]
        batch = self.store.get(oid, req.account) if oid.startswith("batch_") else None
        if batch is None:
            raise model.not_found()
        return dict(batch)

    def retrieve(self, req: Request) -> tuple[int, JSON]:
        return 200, self.present(self._batch(req), req.base)

    def listing(self, req: Request) -> tuple[int, JSON]:
        def fetch(oid: str) -> JSON | None:
            batch = self.store.get(oid, req.account)
            return self.present(batch, req.base) if batch and batch.get("mode") == req.mode else None
        return 200, paging.newest_first(self.store.listing("batch", req.account), fetch, req.query, "batches")

    # ------------------------------------------------------------------ shipments in and out

    def create(self, req: Request) -> tuple[int, JSON]:
        params = model.unwrapped(req.body, "batch")
        batch = new_batch(req.mode, reference=params.get("reference"))
        items = params.get("shipments") or []
        if not isinstance(items, list):
            raise model.invalid("shipments", "must be a list")
        existing = [item for item in items if _is_reference(item)]
        with self.store.transaction():
            found = {shp["id"]: shp for shp in
                     self._joinable(scan_forms.shipment_ids(existing) if existing else [], batch, req)}
            for item in items:
                shp = found[item["id"]] if _is_reference(item) else self._new_shipment(item, batch, req)
                self._join(batch, shp, req.account)
            self.store.put("batch", batch, req.account)
        return 200, self.present(batch, req.base)

    def _new_shipment(self, params: Any, batch: JSON, req: Request) -> JSON:
        """A shipment made from parameters inside the batch; bought by `buy` at the carrier and service given."""
        if not isinstance(params, dict):
            raise model.invalid("shipments", "each shipment must be an object")
        wanted = {k: params.get(k) for k in ("carrier", "service")}
        params = {k: v for k, v in params.items() if k not in ("carrier", "service", "carrier_accounts")}
        _, shp = self.api.shipment_create(_sub(req, {"shipment": params}))
        batch["_services"][shp["id"]] = wanted
        return shp

    def _joinable(self, ids: list[str], batch: JSON, req: Request) -> list[JSON]:
        """The shipments `ids` if each can join `batch`, else the refusal naming those that cannot."""
        found = [self.store.get(oid, req.account) if oid.startswith("shp_") else None for oid in ids]
        missing = [oid for oid, shp in zip(ids, found, strict=True) if shp is None]
        if missing:
            raise _refused(f"{len(missing)} of the specified shipments not found: {', '.join(missing)}")
        taken = [oid for oid, shp in zip(ids, found, strict=True)
                 if shp and shp.get("batch_id") not in (None, batch["id"])]
        if taken:
            raise _refused(f"{len(taken)} of the specified shipments already in another batch: {', '.join(taken)}")
        return [shp for shp in found if shp is not None]

    def _join(self, batch: JSON, shp: JSON, account: str) -> None:
        if shp["id"] in batch["_shipment_ids"]:
            return
        batch["_shipment_ids"].append(shp["id"])
        status = "postage_purchased" if shp.get("postage_label") else "created"
        self.store.put("shipment", {**shp, "batch_id": batch["id"], "batch_status": status, "batch_message": None},
                       account)

    def add_shipments(self, req: Request) -> tuple[int, JSON]:
        ids = scan_forms.shipment_ids(req.body.get("shipments"))
        with self.store.transaction():
            batch = self._batch(req)
            _unchanged_once_formed(batch)
            for shp in self._joinable(ids, batch, req):
                self._join(batch, shp, req.account)
            self._touched(batch, req)
        return 200, self.present(batch, req.base)

    def remove_shipments(self, req: Request) -> tuple[int, JSON]:
        ids = scan_forms.shipment_ids(req.body.get("shipments"))
        with self.store.transaction():
            batch = self._batch(req)
            _unchanged_once_formed(batch)
            for oid in ids:
                if oid in batch["_shipment_ids"]:
                    batch["_shipment_ids"].remove(oid)
                    shp = self.store.get(oid, req.account)
                    if shp is not None:
                        self.store.put("shipment", {**shp, "batch_id": None, "batch_status": None,
                                                    "batch_message": None}, req.account)
            self._touched(batch, req)
        return 200, self.present(batch, req.base)

    def _touched(self, batch: JSON, req: Request) -> None:
        """After shipments changed: a merged label made before no longer matches the batch."""
        if batch.get("_label"):
            batch.update(_label=None, label_url=None, state="purchased")
        batch["updated_at"] = model.now_z()
        self.store.put("batch", batch, req.account)

    # ------------------------------------------------------------------ buy, label, scan form

    def buy(self, req: Request) -> tuple[int, JSON]:
        batch = self._batch(req)
        for oid in list(batch["_shipment_ids"]):
            shp = self.store.get(oid, req.account)
            if shp is not None and not shp.get("postage_label"):
                self._buy_one(shp, batch["_services"].get(oid) or {}, req)
        with self.store.transaction():
            batch = self._batch(req)
            statuses = [(self.store.get(i) or {}).get("batch_status") for i in batch["_shipment_ids"]]
            batch["state"] = "purchase_failed" if "postage_purchase_failed" in statuses else "purchased"
            batch["updated_at"] = model.now_z()
            self.store.put("batch", batch, req.account)
        return 200, self.present(batch, req.base)

    def _buy_one(self, shp: JSON, wanted: JSON, req: Request) -> None:
        carrier, service = str(wanted.get("carrier") or ""), str(wanted.get("service") or "")
        rate = model.rate_for(shp["rates"], carrier, service) if service else None
        message = None
        if not service:
            message = "No service was given for this shipment: create it in the batch with carrier and service."
        elif rate is None:
            message = f"No rate for carrier {carrier or 'any'} and service {service}."
        else:
            try:
                self.api.shipment_buy(_sub(req, {"rate": {"id": rate["id"]}}, (shp["id"],)))
            except ApiError as exc:
                message = exc.message
        fresh = self.store.get(shp["id"], req.account) or shp
        if fresh.get("postage_label"):  # bought, by us or by a buy that got there first
            message = None
        status = "postage_purchase_failed" if message else "postage_purchased"
        self.store.put("shipment", {**fresh, "batch_status": status, "batch_message": message}, req.account)

    def label(self, req: Request) -> tuple[int, JSON]:
        fmt = str(req.body.get("file_format") or "").upper()
        if not fmt:
            raise model.required("file_format")
        if fmt not in _FORMATS:
            raise model.invalid("file_format", "must be one of PDF, ZPL")
        with self.store.transaction():
            batch = self._batch(req)
            shipments = [self.store.get(i, req.account) or {} for i in batch["_shipment_ids"]]
            unbought = [str(s.get("id")) for s in shipments if not s.get("postage_label")]
            if not shipments:
                raise ApiError(422, "BATCH.LABEL.UNAVAILABLE", "The batch has no shipments to label.")
            if unbought:
                raise ApiError(422, "BATCH.LABEL.UNAVAILABLE", "Every shipment of a batch must be purchased before "
                               f"its label is generated; not purchased: {', '.join(unbought)}.")
            ext = _FORMATS[fmt]
            batch.update(_label={"format": ext, "shipment_ids": list(batch["_shipment_ids"])},
                         label_url=f"/labels/{batch['id']}.{ext}", state="label_generated",
                         updated_at=model.now_z())
            self.store.put("batch", batch, req.account)
        return 200, self.present(batch, req.base)

    def scan_form(self, req: Request) -> tuple[int, JSON]:
        with self.store.transaction():
            batch = self._batch(req)
            _unchanged_once_formed(batch)
            ids = batch["_shipment_ids"]
            if not ids:
                raise model.invalid("shipments", "the batch has no shipments")
            found = [(oid, self.store.get(oid, req.account)) for oid in ids]
            shipments = scan_forms.check(found, self.refused)
            scan_forms.make(self.api, shipments, batch, req)
            self.store.put("batch", batch, req.account)
        return 200, self.present(batch, req.base)


def _is_reference(item: Any) -> bool:
    """`{"id": ...}`: an existing shipment, where anything else is the parameters of a new one."""
    return isinstance(item, dict) and bool(item.get("id"))


def _unchanged_once_formed(batch: JSON) -> None:
    if batch.get("scan_form"):
        raise ApiError(422, "BATCH.SCAN_FORM.EXISTS",
                       f"Batch {batch['id']} already has a scan form: its shipments can no longer change.")


def _refused(detail: str) -> ApiError:
    return ApiError(422, "BATCH.SHIPMENTS.INVALID", f"Unable to add shipments to the batch. {detail}.",
                    [{"field": "shipments", "message": detail}])


def _sub(req: Request, body: JSON, params: tuple[str, ...] = ()) -> Request:
    """The same caller's request for another endpoint (a batch creates and buys its shipments through them)."""
    sub = type(req)(req.method, req.path, req.query, body, req.mode, req.base, req.account)
    sub.params = params
    return sub
