"""The EasyPost-compatible endpoints, independent of HTTP: (method, path, query, body, mode, account) -> (status, JSON).

Routes are the paths the official SDK sends (`/v2/...`, and `/beta/rates`), with its wrapped bodies
(`{"shipment": {...}}`, `{"address": {...}, "verify": true}`, `{"rate": {"id": ...}}`, ...).

Every request acts for one account (the server derives it from the key): an object another account made is
answered 404 as if it did not exist, and a reference names a shipment only within its account and its mode (a
test key never sees a production shipment, nor the other way round).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from shipctl.sandbox import batches, files, forms, model, paging, pickups, refunds, scan_forms, smartrate, tracking
from shipctl.sandbox import options as shipment_options
from shipctl.sandbox.faults import FormRefusals
from shipctl.sandbox.model import JSON, ApiError, not_found, required
from shipctl.sandbox.store import Store

Handler = Callable[["Request"], tuple[int, JSON]]


class Request:
    __slots__ = ("account", "base", "body", "method", "mode", "params", "path", "query")

    def __init__(self, method: str, path: str, query: dict[str, str], body: JSON, mode: str, base: str,
                 account: str = model.DEFAULT_ACCOUNT) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.mode = mode
        self.base = base  # "http://host:port", for label URLs
        self.account = account
        self.params: tuple[str, ...] = ()


_ID = r"([^/]+)"
# (method, pattern, endpoint name). The name keys latency profiles and fault rules.
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"\Z"), name) for m, p, name in [
        ("GET", r"/v2/users", "user.me"),
        ("GET", rf"/v2/users/{_ID}", "user.retrieve"),
        ("POST", r"/v2/shipments", "shipment.create"),
        ("GET", r"/v2/shipments", "shipment.list"),
        ("GET", rf"/v2/shipments/{_ID}", "shipment.retrieve"),
        ("POST", rf"/v2/shipments/{_ID}/buy", "shipment.buy"),
        ("POST", rf"/v2/shipments/{_ID}/rerate", "shipment.rerate"),
        ("POST", rf"/v2/shipments/{_ID}/refund", "shipment.refund"),
        ("POST", rf"/v2/shipments/{_ID}/insure", "shipment.insure"),
        ("GET", rf"/v2/shipments/{_ID}/label", "shipment.label"),
        ("POST", r"/v2/addresses", "address.create"),
        ("GET", r"/v2/addresses", "address.list"),
        ("POST", r"/v2/addresses/create_and_verify", "address.create_and_verify"),
        ("GET", rf"/v2/addresses/{_ID}", "address.retrieve"),
        ("GET", rf"/v2/addresses/{_ID}/verify", "address.verify"),
        ("POST", r"/v2/trackers", "tracker.create"),
        ("GET", r"/v2/trackers", "tracker.list"),
        ("GET", rf"/v2/trackers/{_ID}", "tracker.retrieve"),
        ("POST", r"/v2/trackers/batch", "tracker.retrieve_batch"),
        ("GET", rf"/v2/rates/{_ID}", "rate.retrieve"),
        ("POST", r"/beta/rates", "beta.rates"),
        ("POST", r"/v2/parcels", "parcel.create"),
        ("GET", rf"/v2/parcels/{_ID}", "parcel.retrieve"),
        ("POST", r"/v2/customs_infos", "customs_info.create"),
        ("GET", rf"/v2/customs_infos/{_ID}", "customs_info.retrieve"),
        ("POST", r"/v2/customs_items", "customs_item.create"),
        ("GET", rf"/v2/customs_items/{_ID}", "customs_item.retrieve"),
        *scan_forms.ROUTES, *batches.ROUTES, *pickups.ROUTES, *smartrate.ROUTES, *refunds.ROUTES,
    ]
]
_EXACT: dict[tuple[str, str], str] = {}
_PATTERNS: list[tuple[str, re.Pattern[str], str]] = []
for _m, _p, _n in ROUTES:
    if "(" in _p.pattern:
        _PATTERNS.append((_m, _p, _n))
    else:
        _EXACT[(_m, _p.pattern[:-2])] = _n


def match(method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
    """The endpoint name and path parameters for a request, or None."""
    name = _EXACT.get((method, path))
    if name is not None:
        return name, ()
    for m, pattern, name in _PATTERNS:
        if m == method:
            found = pattern.match(path)
            if found:
                return name, tuple(unquote(g) for g in found.groups())
    return None


def _iso_now_precise() -> str:
    when = datetime.datetime.fromtimestamp(model.now(), datetime.timezone.utc)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _wrapped(body: JSON, key: str) -> JSON:
    inner = body.get(key)
    if not isinstance(inner, dict) or not inner:
        raise required(key)
    return inner


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, list):
        return bool(value)
    return bool(value)


_page_size = paging.page_size


def _when(value: str | None, field: str) -> float | None:
    """A list filter's time (`2025-03-08`, midnight UTC, or ISO 8601 with an offset) in epoch seconds."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise model.invalid(field, "must be a date or an ISO 8601 date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _one_call_rate(params: JSON, rates: list[JSON]) -> JSON | None:
    """The rate a shipment created with `service` (and `carrier` or `carrier_accounts`) is bought at; None
    without a service. A service none of its rates offers is refused before anything is made."""
    service = params.get("service")
    if not service:
        return None
    carrier = params.get("carrier")
    accounts = [a.get("id") if isinstance(a, dict) else a for a in params.get("carrier_accounts") or []]
    carriers: list[str | None] = [str(carrier)] if carrier else [
        c for c, ca in model.CARRIER_ACCOUNTS.items() if ca in accounts] or [None]
    for name in carriers:
        rate = model.rate_for(rates, name, str(service))
        if rate is not None:
            return rate
    raise model.invalid("service", f"no rate for service {service}{f' of {carrier}' if carrier else ''}")


class SandboxApi:
    def __init__(self, store: Store, form_refusals: FormRefusals | None = None) -> None:
        self.store = store
        self.form_refusals = form_refusals or FormRefusals()
        self.handlers: dict[str, Handler] = {
            "user.me": self.user_me, "user.retrieve": self.user_retrieve,
            "shipment.create": self.shipment_create, "shipment.list": self.shipment_list,
            "shipment.retrieve": self.shipment_retrieve, "shipment.buy": self.shipment_buy,
            "shipment.rerate": self.shipment_rerate, "shipment.refund": self.shipment_refund,
            "shipment.insure": self.shipment_insure, "shipment.label": self.shipment_label,
            "address.create": self.address_create, "address.list": self.address_list,
            "address.create_and_verify": self.address_create_and_verify,
            "address.retrieve": self._retrieve_kind("adr_"), "address.verify": self.address_verify,
            "tracker.create": self.tracker_create, "tracker.list": self.tracker_list,
            "tracker.retrieve": self._retrieve_kind("trk_"), "rate.retrieve": self._retrieve_kind("rate_"),
            "tracker.retrieve_batch": self.tracker_retrieve_batch,
            "beta.rates": self.beta_rates, "parcel.create": self.parcel_create,
            "parcel.retrieve": self._retrieve_kind("prcl_"), "customs_info.create": self.customs_info_create,
            "customs_info.retrieve": self._retrieve_kind("cstinfo_"),
            "customs_item.create": self.customs_item_create,
            "customs_item.retrieve": self._retrieve_kind("cstitem_"),
        }
        # The day's close: SCAN forms, batches and pickups (their own modules, one job each).
        refused = self.form_refusals.refused
        for part in (scan_forms.ScanForms(self, refused), batches.Batches(self, refused), pickups.Pickups(self)):
            self.handlers.update(part.handlers())
        # SmartRate's time in transit, with the per-account call count a test reads (`smartrates.calls`).
        self.smartrates = smartrate.SmartRates(self)
        self.handlers.update(self.smartrates.handlers())
        self.refunds = refunds.Refunds(self)
        self.handlers.update(self.refunds.handlers())
        self.clock_offset = 0.0
        """Seconds the sandbox's clock runs ahead of the real one (negative: behind); every request sees it."""

    def handle(self, endpoint: str, req: Request) -> tuple[int, JSON]:
        with model.clock(self.clock_offset):
            return self.handlers[endpoint](req)

    # ------------------------------------------------------------------ helpers

    def _retrieve_kind(self, prefix: str) -> Handler:
        def retrieve(req: Request) -> tuple[int, JSON]:
            oid = req.params[0]
            obj = self.store.get(oid, req.account) if oid.startswith(prefix) else None
            if obj is None:
                raise not_found()
            return 200, obj
        return retrieve

    def _address(self, value: Any, field: str, req: Request) -> JSON:
        mode = req.mode
        if isinstance(value, dict) and set(value) == {"id"}:
            found = self.store.get(str(value["id"]), req.account)
            if found is None or found.get("object") != "Address":
                raise model.invalid(field, f"address {value['id']} not found")
            return found
        if not isinstance(value, dict) or not value:
            raise required(field)
        addr = model.build_address(value, mode)
        # EasyPost's rule: the parameter being there turns verification on, whatever its value (`false` too).
        verify_strict = "verify_strict" in value
        if verify_strict or "verify" in value:
            addr = model.verify_address(addr)
            if verify_strict and not addr["verifications"]["delivery"]["success"]:
                raise model.verify_failure(addr)
        return self.store.put("address", addr, req.account)

    def _parcel(self, value: Any, req: Request) -> JSON:
        if isinstance(value, dict) and set(value) == {"id"}:
            found = self.store.get(str(value["id"]), req.account)
            if found is None or found.get("object") != "Parcel":
                raise model.invalid("parcel", f"parcel {value['id']} not found")
            return found
        return self.store.put("parcel", model.build_parcel(value, req.mode), req.account)

    def _customs_info(self, value: Any, req: Request) -> JSON | None:
        mode = req.mode
        if value is None or value == {}:
            return None
        if isinstance(value, dict) and set(value) == {"id"}:
            found = self.store.get(str(value["id"]), req.account)
            if found is None or found.get("object") != "CustomsInfo":
                raise model.invalid("customs_info", f"customs info {value['id']} not found")
            return found
        if not isinstance(value, dict):
            raise model.invalid("customs_info", "must be an object")
        items = []
        for item in value.get("customs_items") or []:
            if isinstance(item, dict) and set(item) == {"id"}:
                found = self.store.get(str(item["id"]), req.account)
                if found is None:
                    raise model.invalid("customs_items", f"customs item {item['id']} not found")
                items.append(found)
            elif isinstance(item, dict):
                items.append(self.store.put("customs_item", model.build_customs_item(item, mode), req.account))
        return self.store.put("customs_info", model.build_customs_info(value, mode, items), req.account)

    def _shipment(self, key: str, req: Request) -> JSON:
        """The shipment an id or a reference names, for this request's account; a reference within its mode."""
        shp = self.store.get(key, req.account) if key.startswith("shp_") else None
        if shp is None:
            shp = self.store.shipment_by_reference(key, req.account, req.mode)
        if shp is None:
            raise not_found()
        return shp

    @staticmethod
    def present(shp: JSON, base: str) -> JSON:
        """A shipment as sent: label, form and scan form URLs are stored relative and made absolute here."""
        return files.present_shipment(shp, base)

    def _store_rates(self, rates: list[JSON], account: str) -> None:
        for rate in rates:
            self.store.put("rate", rate, account)

    # ------------------------------------------------------------------ users

    def user_me(self, req: Request) -> tuple[int, JSON]:
        return 200, model.build_user(req.account)

    def user_retrieve(self, req: Request) -> tuple[int, JSON]:
        # A sandbox account has no children: the only user it can see is itself.
        if req.params[0] != req.account:
            raise not_found()
        return 200, model.build_user(req.account)

    # ------------------------------------------------------------------ shipments

    def shipment_create(self, req: Request) -> tuple[int, JSON]:
        params = _wrapped(req.body, "shipment")
        mode = req.mode
        to_addr = self._address(params.get("to_address"), "to_address", req)
        from_addr = self._address(params.get("from_address"), "from_address", req)
        parcel = self._parcel(params.get("parcel"), req)
        customs = self._customs_info(params.get("customs_info"), req)
        return_addr = (self._address(params["return_address"], "return_address", req)
                       if params.get("return_address") else from_addr)
        buyer_addr = (self._address(params["buyer_address"], "buyer_address", req)
                      if params.get("buyer_address") else to_addr)
        options = shipment_options.shipment_options(params.get("options"))
        is_return = _truthy(params.get("is_return", False))
        ts = model.now_z()
        shp_id = model.new_id("shp")
        rates, messages = shipment_options.quote(
            shp_id, {"from_address": from_addr, "to_address": to_addr, "parcel": parcel, "is_return": is_return,
                     "options": options}, mode)
        one_call = _one_call_rate(params, rates)
        self._store_rates(rates, req.account)
        reference = params.get("reference")
        shipment: JSON = {
            "id": shp_id, "created_at": ts, "is_return": is_return,
            "messages": messages, "mode": mode, "options": options,
            # EasyPost answers an empty reference as none at all.
            "reference": None if reference is None or reference == "" else str(reference),
            "status": "unknown", "tracking_code": None, "updated_at": ts,
            "batch_id": None, "batch_status": None, "batch_message": None, "customs_info": customs,
            "from_address": from_addr, "insurance": None, "order_id": None, "parcel": parcel,
            "postage_label": None, "rates": rates, "refund_status": None, "scan_form": None,
            "selected_rate": None, "tracker": None, "to_address": to_addr,
            "usps_zone": model.usps_zone(from_addr.get("zip"), to_addr.get("zip")),
            "return_address": return_addr, "buyer_address": buyer_addr, "forms": [], "fees": [],
            "object": "Shipment",
        }
        self.store.put("shipment", shipment, req.account)
        if one_call is None:
            return 201, shipment
        # A one-call buy (a service given, as EasyPost's SDK tests create shipments): created and bought at once.
        buy = Request(req.method, req.path, req.query, {"rate": {"id": one_call["id"]}}, mode, req.base, req.account)
        buy.params = (shp_id,)
        return 201, self.shipment_buy(buy)[1]

    def shipment_list(self, req: Request) -> tuple[int, JSON]:
        q = req.query
        size = _page_size(q)
        ids = self.store.listing("shipment", req.account)
        ids.reverse()  # newest first
        if q.get("before_id") in ids:
            ids = ids[ids.index(q["before_id"]) + 1:]
        elif q.get("after_id") in ids:
            ids = ids[: ids.index(q["after_id"])]
        purchased = q.get("purchased")
        reference = q.get("reference")
        start, end = _when(q.get("start_datetime"), "start_datetime"), _when(q.get("end_datetime"), "end_datetime")
        page: list[JSON] = []
        has_more = False
        for oid in ids:
            shp = self.store.get(oid, req.account)
            if shp is None or shp.get("mode") != req.mode:
                continue
            created = tracking.parse_iso(shp.get("created_at"))
            if created is not None and ((start is not None and created < start)
                                        or (end is not None and created > end)):
                continue
            if purchased is not None and purchased != "" and _truthy(purchased) != bool(shp.get("postage_label")):
                continue
            if reference and shp.get("reference") != reference:
                continue
            if len(page) == size:
                has_more = True
                break
            page.append(self.present(shp, req.base))
        return 200, {"shipments": page, "has_more": has_more}

    def shipment_retrieve(self, req: Request) -> tuple[int, JSON]:
        return 200, self.present(self._shipment(req.params[0], req), req.base)

    def shipment_buy(self, req: Request) -> tuple[int, JSON]:
        key = req.params[0]
        shp_id = self._shipment(key, req)["id"]
        rate_param = req.body.get("rate")
        rate_id = rate_param.get("id") if isinstance(rate_param, dict) else rate_param
        if not rate_id:
            raise required("rate")
        with self.store.purchase(shp_id) as shp:
            if shp is None:
                raise not_found()
            if shp.get("postage_label"):
                raise ApiError(422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment.")
            rate = next((r for r in shp["rates"] if r.get("id") == rate_id), None)
            if rate is None:
                raise ApiError(422, "SHIPMENT.RATE.INVALID", "The rate provided does not belong to this shipment.",
                               [{"field": "rate", "message": f"{rate_id} is not a rate of {shp_id}"}])
            insurance = req.body.get("insurance")
            bought = dict(shp)
            ts = model.now_z()
            serial = self.store.next_serial()
            code = model.tracking_code_for(rate["carrier"], serial, self.store.salt)
            pl_id = model.new_id("pl")
            fmt = str((shp.get("options") or {}).get("label_format") or "PNG").upper()
            # A label_date in the past was refused at create; one that has since passed prints as it was asked.
            label_date = shipment_options.label_date(shp.get("options") or {}, datetime.date.min) or ts
            label: JSON = {
                "object": "PostageLabel", "id": pl_id, "created_at": ts, "updated_at": ts, "date_advance": 0,
                "integrated_form": "none", "label_date": label_date, "label_resolution": 300, "label_size": "4x6",
                "label_type": "default", "label_file_type": "image/png", "label_url": f"/labels/{pl_id}.png",
                "label_pdf_url": f"/labels/{pl_id}.pdf" if fmt == "PDF" else None,
                "label_zpl_url": f"/labels/{pl_id}.zpl" if fmt == "ZPL" else None,
                "label_epl2_url": None, "label_file": None,
            }
            fees: list[JSON] = [
                {"object": "Fee", "type": "LabelFee", "amount": "0.00000", "charged": True, "refunded": False},
                {"object": "Fee", "type": "PostageFee", "amount": f"{float(rate['rate']):.5f}", "charged": True,
                 "refunded": False},
            ]
            if insurance not in (None, "", 0):
                amount = self._insurance_amount(insurance)
                bought["insurance"] = f"{amount:.2f}"
                fees.append(self._insurance_fee(amount, req.account))
            bought.update({"tracking_code": code, "postage_label": label, "selected_rate": rate,
                           "fees": fees, "updated_at": ts, "status": "unknown"})
            if bought.get("batch_id"):  # bought on its own or by its batch: the batch shows it bought either way
                bought.update(batch_status="postage_purchased", batch_message=None)
            tracker = tracking.build_tracker(code, rate["carrier"], req.mode, status="unknown", shipment_id=shp_id)
            tracker["tracking_details"] = []
            tracker["carrier_detail"] = None
            bought["tracker"] = tracker
            if forms.is_international(bought):
                invoice = forms.build_form("commercial_invoice", req.mode)
                bought["forms"] = [invoice]
                self.store.put("form", {"id": invoice["id"], "object": "Form", "shipment_id": shp_id}, req.account)
            self.store.put("tracker", tracker, req.account)
            self.store.put("postage_label", {"id": pl_id, "object": "PostageLabel", "shipment_id": shp_id},
                           req.account)
            self.store.put("shipment", bought, req.account)
            self.store.record_purchase({
                "shipment_id": shp_id, "reference": shp.get("reference"), "rate_id": rate["id"],
                "carrier": rate["carrier"], "service": rate["service"], "amount": rate["rate"],
                "time": _iso_now_precise(), "account": req.account,
            })
        return 200, self.present(bought, req.base)

    @staticmethod
    def _insurance_amount(value: Any) -> Decimal:
        try:
            amount = Decimal(str(value).strip())
        except (TypeError, ValueError, ArithmeticError):
            raise model.invalid("insurance", "must be a number") from None
        if not amount.is_finite() or not 0 < amount <= 5000:
            raise model.invalid("insurance", "must be between 0 and 5000")
        return amount

    @staticmethod
    def _insurance_fee(amount: Decimal, account: str) -> JSON:
        # The account's own rate and minimum (`GET /v2/users`), so a client can estimate the fee from them.
        fee = shipment_options.insurance_fee(amount, model.build_user(account))
        return {"object": "Fee", "type": "InsuranceFee", "amount": f"{fee:.5f}", "charged": True, "refunded": False}

    def shipment_rerate(self, req: Request) -> tuple[int, JSON]:
        with self.store.lock:
            shp = dict(self._shipment(req.params[0], req))
            rates, shp["messages"] = shipment_options.quote(shp["id"], shp, shp["mode"])
            self._store_rates(rates, req.account)
            shp["rates"] = rates
            shp["updated_at"] = model.now_z()
            self.store.put("shipment", shp, req.account)
        return 200, {"rates": rates}

    def shipment_refund(self, req: Request) -> tuple[int, JSON]:
        with self.store.lock:
            shp = dict(self._shipment(req.params[0], req))
            if not shp.get("postage_label"):
                raise ApiError(422, "SHIPMENT.REFUND.UNAVAILABLE",
                               "Unable to refund a shipment that has not been purchased.")
            if shp.get("refund_status"):
                raise ApiError(422, "SHIPMENT.REFUND.EXISTS",
                               "A refund has already been requested for this shipment.")
            self.refunds.request(shp, req.account)
            shp = dict(self._shipment(shp["id"], req))
        return 200, self.present(shp, req.base)

    def scan(self, key: str, status: str = "in_transit") -> JSON:
        """The carrier scans a bought label (a shipment id or a tracking code, any account): its tracker and the
        shipment move on to `status`, with the history from its purchase. A test hook: EasyPost's labels are
        scanned by the carrier, not by a call."""
        if status not in tracking.TEST_CODES.values():
            raise ValueError(f"unknown tracking status {status!r}")
        # The scan happens now on the sandbox's clock: a parcel scanned delivered with the clock moved 10 days on
        # was delivered 10 days after its purchase.
        with model.clock(self.clock_offset), self.store.transaction():
            shp = self.store.get(key) if key.startswith("shp_") else None
            if shp is None:
                shp = next((s for s in (self.store.get(i) for i in self.store.listing("shipment"))
                            if s is not None and s.get("tracking_code") == key), None)
            if shp is None or not shp.get("tracker"):
                raise KeyError(f"no bought label {key}")
            account = self.store.owner[shp["id"]]
            placeholder = shp["tracker"]
            rate = shp.get("selected_rate") or {}
            fresh = tracking.build_tracker(
                placeholder["tracking_code"], placeholder["carrier"], placeholder["mode"], status=status,
                shipment_id=shp["id"], start=tracking.parse_iso(placeholder.get("created_at")),
                route=tracking.Route.between(*shipment_options.route(shp)), delivery_days=rate.get("delivery_days"),
                end=model.now())
            tracker = self.store.get(placeholder["id"], account) or dict(placeholder)
            tracker = {**tracker, **{k: fresh[k] for k in (
                "status", "status_detail", "tracking_details", "carrier_detail", "est_delivery_date", "signed_by",
                "finalized", "is_return")}, "updated_at": model.now_z()}
            self.store.put("tracker", tracker, account)
            updated = {**shp, "tracker": tracker, "status": status, "updated_at": tracker["updated_at"]}
            self.store.put("shipment", updated, account)
        return updated

    def shipment_insure(self, req: Request) -> tuple[int, JSON]:
        amount = self._insurance_amount(req.body.get("amount"))
        with self.store.lock:
            shp = dict(self._shipment(req.params[0], req))
            if not shp.get("postage_label"):
                raise ApiError(422, "SHIPMENT.INSURE.UNAVAILABLE",
                               "The shipment must be purchased before it is insured.")
            if shp.get("insurance"):
                raise ApiError(422, "SHIPMENT.INSURE.EXISTS", "This shipment is already insured.")
            shp["insurance"] = f"{amount:.2f}"
            shp["fees"] = [*shp.get("fees", []), self._insurance_fee(amount, req.account)]
            shp["updated_at"] = model.now_z()
            self.store.put("shipment", shp, req.account)
        return 200, self.present(shp, req.base)

    def shipment_label(self, req: Request) -> tuple[int, JSON]:
        fmt = req.query.get("file_format", "").upper()
        if not fmt:
            raise required("file_format")
        keys = {"PNG": "label_url", "PDF": "label_pdf_url", "ZPL": "label_zpl_url"}
        if fmt not in keys:
            raise model.invalid("file_format", "must be one of PNG, PDF, ZPL")
        with self.store.lock:
            shp = dict(self._shipment(req.params[0], req))
            label = shp.get("postage_label")
            if not label:
                raise ApiError(422, "SHIPMENT.POSTAGE.REQUIRED",
                               "The shipment must be purchased before its label can be converted.")
            label = dict(label)
            label[keys[fmt]] = f"/labels/{label['id']}.{fmt.lower()}"
            label["updated_at"] = model.now_z()
            shp["postage_label"] = label
            self.store.put("shipment", shp, req.account)
        return 200, self.present(shp, req.base)

    def label_file(self, name: str) -> tuple[str, bytes] | None:
        """(content type, bytes) for `/labels/<id>.<ext>` (labels, forms, scan forms, batch labels), or None."""
        return files.serve(self.store, name)

    # ------------------------------------------------------------------ addresses

    def address_create(self, req: Request) -> tuple[int, JSON]:
        params = dict(_wrapped(req.body, "address"))
        for flag in ("verify_strict", "verify"):  # present at all means on, as at EasyPost
            if flag in req.body:
                params[flag] = True
        return 201, self._address(params, "address", req)

    def address_list(self, req: Request) -> tuple[int, JSON]:
        size = _page_size(req.query)
        ids = self.store.listing("address", req.account)[::-1]
        if req.query.get("before_id") in ids:
            ids = ids[ids.index(req.query["before_id"]) + 1:]
        page = [a for a in (self.store.get(i, req.account) for i in ids[: size + 1]) if a is not None]
        return 200, {"addresses": page[:size], "has_more": len(page) > size}

    def address_create_and_verify(self, req: Request) -> tuple[int, JSON]:
        params = dict(_wrapped(req.body, "address"))
        params["verify_strict"] = True
        return 200, {"address": self._address(params, "address", req)}

    def address_verify(self, req: Request) -> tuple[int, JSON]:
        oid = req.params[0]
        addr = self.store.get(oid, req.account) if oid.startswith("adr_") else None
        if addr is None:
            raise not_found()
        verified = model.verify_address(addr)
        if not verified["verifications"]["delivery"]["success"]:
            raise model.verify_failure(verified)
        self.store.put("address", verified, req.account)
        return 200, {"address": verified}

    # ------------------------------------------------------------------ trackers, rates, parcels, customs

    def tracker_create(self, req: Request) -> tuple[int, JSON]:
        params = _wrapped(req.body, "tracker")
        code = str(params.get("tracking_code") or "").strip()
        if not code:
            raise required("tracker.tracking_code")
        carrier = params.get("carrier")
        with self.store.lock:
            existing = self.store.tracker_for_code(code, req.account)
            if existing is not None:
                tracker = self.store.get(existing, req.account)
                # EasyPost returns the tracker it already has for a code; the one exception here is the
                # placeholder tracker made at purchase, which gets its history on first tracking.
                if tracker is not None and (tracker.get("tracking_details") or not tracker.get("shipment_id")):
                    return 200, tracker
            label_tracker = self.store.get(existing, req.account) if existing else None
            if code in tracking.TEST_CODES:
                tracker = tracking.build_tracker(code, carrier or "USPS", req.mode, status=tracking.TEST_CODES[code],
                                                 shipment_id=None)
            elif label_tracker is not None:
                # A label bought here: it has been printed, so the history starts, at the purchase, where it was sent
                # from.
                tracker = dict(label_tracker)
                fresh = self._label_history(label_tracker, req.account)
                for key in ("status", "status_detail", "tracking_details", "carrier_detail", "est_delivery_date"):
                    tracker[key] = fresh[key]
                tracker["updated_at"] = model.now_z()
            else:
                tracker = tracking.build_tracker(code, carrier or "USPS", req.mode, status="unknown",
                                                 shipment_id=None)
            self.store.put("tracker", tracker, req.account)
            self.store.trackers_by_code[(req.account, code)] = tracker["id"]
        return 200, tracker

    def _label_history(self, label_tracker: JSON, account: str) -> JSON:
        """A bought label's tracker once it is first tracked: from its purchase (the placeholder tracker was made
        then) and its shipment's origin, toward its destination."""
        shipment = self.store.get(label_tracker["shipment_id"], account) or {}
        rate = shipment.get("selected_rate") or {}
        return tracking.build_tracker(
            label_tracker["tracking_code"], label_tracker["carrier"], label_tracker["mode"], status="pre_transit",
            shipment_id=label_tracker["shipment_id"], start=tracking.parse_iso(label_tracker.get("created_at")),
            route=tracking.Route.between(*shipment_options.route(shipment)),
            delivery_days=rate.get("delivery_days"),
        )

    def tracker_list(self, req: Request) -> tuple[int, JSON]:
        size = _page_size(req.query)
        code = req.query.get("tracking_code")
        ids = self.store.listing("tracker", req.account)[::-1]
        if req.query.get("before_id") in ids:
            ids = ids[ids.index(req.query["before_id"]) + 1:]
        page: list[JSON] = []
        has_more = False
        for oid in ids:
            trk = self.store.get(oid, req.account)
            if trk is None or (code and trk.get("tracking_code") != code):
                continue
            if len(page) == size:
                has_more = True
                break
            page.append(trk)
        return 200, {"trackers": page, "has_more": has_more}

    def tracker_retrieve_batch(self, req: Request) -> tuple[int, JSON]:
        """`tracker.retrieve_batch(tracking_codes=[...])`: this account's trackers for the codes it already tracks, in
        the order asked (a code it does not track is left out: this call reads, it never creates)."""
        codes = req.body.get("tracking_codes")
        if isinstance(codes, str):
            codes = [c for c in codes.split(",") if c.strip()]
        if not isinstance(codes, list) or not codes:
            raise required("tracking_codes")
        found: list[JSON] = []
        for code in dict.fromkeys(str(c).strip() for c in codes):
            oid = self.store.tracker_for_code(code, req.account)
            tracker = self.store.get(oid, req.account) if oid else None
            if tracker is not None:
                found.append(tracker)
        return 200, {"trackers": found, "has_more": False}

    def beta_rates(self, req: Request) -> tuple[int, JSON]:
        params = _wrapped(req.body, "shipment")
        to_addr = params.get("to_address")
        from_addr = params.get("from_address")
        if not isinstance(to_addr, dict) or not to_addr:
            raise required("to_address")
        if not isinstance(from_addr, dict) or not from_addr:
            raise required("from_address")
        parcel = model.build_parcel(params.get("parcel") or {}, req.mode)
        options = shipment_options.shipment_options(params.get("options"))
        rates, _ = shipment_options.quote(None, {"from_address": from_addr, "to_address": to_addr, "parcel": parcel,
                                                 "is_return": _truthy(params.get("is_return", False)),
                                                 "options": options}, req.mode)

        def plain(addr: JSON) -> JSON:
            return {"object": "Address", **{k: addr.get(k) for k in model.ADDRESS_FIELDS if addr.get(k) is not None}}

        parcel_out = {k: parcel[k] for k in ("length", "width", "height", "weight", "predefined_package")}
        return 200, {"from_address": plain(from_addr), "to_address": plain(to_addr), "rates": rates,
                     "options": params.get("options") or {}, "parcel": {"object": "Parcel", **parcel_out},
                     "messages": []}

    def parcel_create(self, req: Request) -> tuple[int, JSON]:
        return 201, self.store.put("parcel", model.build_parcel(req.body.get("parcel") or {}, req.mode), req.account)

    def customs_info_create(self, req: Request) -> tuple[int, JSON]:
        info = self._customs_info(_wrapped(req.body, "customs_info"), req)
        assert info is not None
        return 201, info

    def customs_item_create(self, req: Request) -> tuple[int, JSON]:
        params = _wrapped(req.body, "customs_item")
        return 201, self.store.put("customs_item", model.build_customs_item(params, req.mode), req.account)
