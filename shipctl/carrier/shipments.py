"""Shipment operations over the SDK, returning plain frozen types.

Each function is blocking and runs in a worker thread (the engine's job); conversion from the SDK's objects to
plain data happens there too, so nothing downstream depends on the SDK's classes.

The two calls every row makes, create and buy, go through the SDK's own requestor (`easypost.requestor`: its
authentication, timeouts, response hooks and error classes, exactly as its `shipment` service calls it) and are
read from the answer's plain JSON: the service would first build EasyPostObjects of every rate and address
(~0.3 ms a call, about a fifth of the SDK's CPU per shipment) that shipctl reads straight into its own records
anyway. The requestor is the SDK's internal module: the version range is pinned (`easypost>=9,<11`), CI runs
the tests at both ends of it, and `tests/test_sdk_requestor.py` holds the two paths to the same answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from easypost.requestor import RequestMethod, Requestor

from shipctl import safefiles
from shipctl.carrier.addresses import AddressCheck, check_from, strict_failure
from shipctl.carrier.client import session_of, take_server_time
from shipctl.errors import WriteFailure


@dataclass(frozen=True)
class Rate:
    id: str | None
    carrier: str
    service: str
    rate: str
    currency: str
    delivery_days: int | None
    delivery_date: str | None = None
    retail_rate: str | None = None
    list_rate: str | None = None
    """EasyPost's retail and list prices for the same service, as it writes them, when its answer carried them in
    the rate's own currency (else None: a price in another currency is no yardstick for savings)."""

    @property
    def amount(self) -> Decimal:
        try:
            return Decimal(self.rate)
        except InvalidOperation:
            return Decimal("Infinity")


@dataclass(frozen=True)
class Shipment:
    id: str
    mode: str | None
    """'test' or 'production' as the API says; None when the answer did not say (never assume test)."""
    rates: tuple[Rate, ...]
    selected_rate: Rate | None
    tracking_code: str | None
    label_url: str | None
    refund_status: str | None
    reference: str | None = None
    to_zip: str | None = None
    to_street1: str | None = None
    weight: float | None = None
    destination: AddressCheck | None = None
    """The to_address's verification when `shipment.create` was asked for one (`create --verify`), else None."""
    insurance_fee: str | None = None
    """What insuring the label was charged (USD), from the answer's `fees` (an `InsuranceFee` charged and not
    refunded); None when it carried none."""
    created_at: dt.datetime | None = None
    """When the API made it (aware), or None when its answer did not say."""
    raw: Any = dataclasses.field(default=None, compare=False, repr=False)
    """The API's answer it was read from (plain JSON or the SDK's object), for `jobs.made_from`."""
    seen_at: dt.datetime | None = None
    """The API's clock when it answered (its Date header), for `retrieve_shipment`'s answers: `created_at`'s age
    judged by one clock, whatever this machine's says."""

    @property
    def bought(self) -> bool:
        return self.label_url is not None


def api_time(value: Any) -> dt.datetime | None:
    """A timestamp as the API writes it (`2026-12-03T04:05:06Z`), aware; None when absent or unreadable (a time
    without a zone is taken as UTC, as EasyPost's are)."""
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.timezone.utc)


def _field(obj: Any, key: str) -> Any:
    """Read a key from an SDK object (its values live in __dict__) or a plain dict, cheaply."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, "__dict__", {}).get(key)


field_of = _field
"""`_field` for other modules: a key of the API's answer, whether the SDK built an object of it or not."""


def rate_from(obj: Any) -> Rate:
    days = _field(obj, "delivery_days")
    if days is None:
        days = _field(obj, "est_delivery_days")
    currency = str(_field(obj, "currency") or "USD")
    return Rate(
        id=_field(obj, "id"),
        carrier=str(_field(obj, "carrier") or ""),
        service=str(_field(obj, "service") or ""),
        rate=str(_field(obj, "rate") or ""),
        currency=currency,
        delivery_days=int(days) if days is not None else None,
        delivery_date=_field(obj, "delivery_date"),
        retail_rate=_priced(obj, "retail_rate", "retail_currency", currency),
        list_rate=_priced(obj, "list_rate", "list_currency", currency),
    )


def _priced(obj: Any, key: str, currency_key: str, currency: str) -> str | None:
    value = _field(obj, key)
    if value is None or str(value).strip() == "":
        return None
    other = _field(obj, currency_key)
    if other and str(other).strip().upper() != currency.strip().upper():
        return None
    return str(value)


def shipment_from(obj: Any, *, with_rates: bool = True) -> Shipment:
    label = _field(obj, "postage_label")
    selected = _field(obj, "selected_rate")
    to_address = _field(obj, "to_address")
    weight = _field(_field(obj, "parcel"), "weight")
    mode = _field(obj, "mode")
    return Shipment(
        id=str(_field(obj, "id")),
        mode=str(mode) if mode else None,
        rates=tuple(rate_from(r) for r in (_field(obj, "rates") or ())) if with_rates else (),
        selected_rate=rate_from(selected) if selected else None,
        tracking_code=_field(obj, "tracking_code"),
        label_url=_field(label, "label_url") if label else None,
        refund_status=_field(obj, "refund_status"),
        reference=_field(obj, "reference"),
        to_zip=_field(to_address, "zip"),
        to_street1=_field(to_address, "street1"),
        weight=float(weight) if weight is not None else None,
        destination=check_from(to_address),
        insurance_fee=_insurance_fee(_field(obj, "fees")),
        created_at=api_time(_field(obj, "created_at")),
        raw=obj,
    )


def _insurance_fee(fees: Any) -> str | None:
    for fee in fees or ():
        if _field(fee, "type") == "InsuranceFee" and _field(fee, "charged") is not False \
                and not _field(fee, "refunded"):
            amount = _field(fee, "amount")
            try:
                return str(Decimal(str(amount)).quantize(Decimal("0.01"))) if amount is not None else None
            except InvalidOperation:
                return None
    return None


def _post(client: Any, url: str, params: dict[str, Any]) -> dict[str, Any]:
    """POST `params` to `url` as the SDK's services do, answered as the API's JSON (see the module docstring)."""
    answer: dict[str, Any] = Requestor(client).request(method=RequestMethod.POST, url=url, params=params)
    return answer


def create_shipment(client: Any, params: dict[str, Any]) -> Shipment:
    try:
        return shipment_from(_post(client, "/shipments", {"shipment": params}))
    except Exception as exc:
        failure = strict_failure(exc)  # a destination `verify_strict` refused: EasyPost's own codes, said plainly
        if failure is None:
            raise
        raise failure from None


def retrieve_shipment(client: Any, shipment_id: str) -> Shipment:
    # An id never needs it, but a reference may hold "?", "#" or "/": the SDK pastes it into the path as is.
    shipment = shipment_from(client.shipment.retrieve(quote(shipment_id, safe="")))
    return dataclasses.replace(shipment, seen_at=take_server_time())


def made_between(client: Any, *, start: dt.datetime, end: dt.datetime, purchased: bool, before_id: str | None,
                 page_size: int = 100) -> tuple[list[Shipment], bool]:
    """One page (newest first) of the account's shipments made in [start, end], bought (`purchased`) or not:
    (shipments, has_more). EasyPost's list has no reference filter; its times are whole seconds, so the window is
    widened to them."""
    items, more = shipments_page(client, start=_whole_second(start, up=False), end=_whole_second(end, up=True),
                                 purchased=purchased, before_id=before_id, page_size=page_size)
    return [shipment_from(s, with_rates=False) for s in items], more


def shipments_page(client: Any, *, start: str | None, end: str | None, purchased: bool, before_id: str | None,
                   page_size: int) -> tuple[list[Any], bool]:
    """One page (newest first) of `GET /shipments` as the SDK answers it: (its shipments, has_more). The filters
    go with every page: the SDK's `get_next_page` would drop the dates."""
    params: dict[str, Any] = {"purchased": purchased, "page_size": page_size}
    if start:
        params["start_datetime"] = start
    if end:
        params["end_datetime"] = end
    if before_id:
        params["before_id"] = before_id
    page = client.shipment.all(**params)
    return list(_field(page, "shipments") or ()), bool(_field(page, "has_more"))


def _whole_second(when: dt.datetime, *, up: bool) -> str:
    stamp = when.astimezone(dt.timezone.utc)
    floor = stamp.replace(microsecond=0)
    if up and floor != stamp:
        floor += dt.timedelta(seconds=1)
    return floor.strftime("%Y-%m-%dT%H:%M:%SZ")


def buy_shipment(client: Any, shipment_id: str, rate_id: str, insurance: Decimal | None = None) -> Shipment:
    params: dict[str, Any] = {"rate": {"id": rate_id}}
    if insurance is not None:
        params["insurance"] = str(insurance)
    # A bought shipment's rates are history: only the selected one matters, so skip converting the rest.
    return shipment_from(_post(client, f"/shipments/{shipment_id}/buy", params), with_rates=False)


def label_url(client: Any, shipment_id: str, file_format: str) -> str:
    """Convert the label through the API (EasyPost: GET /shipments/:id/label) and return that format's URL."""
    obj = client.shipment.label(shipment_id, file_format=file_format)
    label = _field(obj, "postage_label")
    key = {"PDF": "label_pdf_url", "ZPL": "label_zpl_url", "EPL2": "label_epl2_url"}.get(file_format, "label_url")
    url = _field(label, key) or _field(label, "label_url")
    if not url:
        raise RuntimeError(f"the API returned no {file_format} label for {shipment_id}")
    return str(url)


def download(client: Any, url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download to a temporary file beside `dest`, then rename: a crash never leaves half a label."""

    def origin(address: str) -> tuple[str, str, int | None] | None:
        parts = urlsplit(address)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or {"http": 80, "https": 443}.get(scheme)
        except ValueError:  # a malformed port: no origin, so it matches nothing
            return None
        return scheme, (parts.hostname or "").lower(), port

    headers: dict[str, str] = {}
    # A label served by the API's own origin (the built-in sandbox, which answers only its key) needs the key;
    # anywhere else (EasyPost's labels are on a CDN) it must never be sent. requests drops it on a redirect to
    # another host.
    mine = origin(str(client.api_base))
    if mine is not None and origin(url) == mine:
        headers["Authorization"] = f"Bearer {client.api_key}"
    response = session_of(client).get(url, timeout=timeout, headers=headers)
    response.raise_for_status()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A label is the user's file (default mode, unlike mkstemp's 0600), made new: never a planted link's target.
        fd, tmp = safefiles.create_beside(dest)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(response.content)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Not a network failure to retry: the local disk is full, read-only or failing, for every label after this.
        raise WriteFailure.from_os(f"the label file {dest}", exc) from None
    return dest
