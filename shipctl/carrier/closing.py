"""The end-of-day calls over the SDK (ScanForms, Pickups) and the shipment as `close` needs to see it.

Blocking functions, run in worker threads by the engine; each converts the SDK's objects to plain frozen types
on the spot, like `shipments.py`. A shipment's origin is compared the way a carrier compares a pickup location:
street, city, state, ZIP (five digits) and country, in upper case with runs of spaces as one; the name, company
and phone on the label do not make another origin. Punctuation counts (`St.` is not `St`): grouping finer than
the API costs a form, grouping coarser costs a refusal.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from shipctl.carrier.shipments import _field, api_time

_SPACES = re.compile(r"\s+")
_ADDRESS_FIELDS = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")


def _fold(value: Any) -> str:
    return _SPACES.sub(" ", str(value or "")).strip().upper()


@dataclass(frozen=True)
class Origin:
    """Where a parcel is picked up: the normalised fields a carrier's form is per."""

    street1: str
    street2: str
    city: str
    state: str
    zip: str
    country: str

    @property
    def key(self) -> str:
        return "|".join((self.street1, self.street2, self.city, self.state, self.zip, self.country))

    def __str__(self) -> str:
        street = f"{self.street1} {self.street2}".strip()
        return f"{street}, {self.city} {self.state} {self.zip}".strip() + (
            f" {self.country}" if self.country != "US" else "")


def origin_of(address: Any) -> Origin | None:
    if address is None:
        return None
    zip_code = _fold(_field(address, "zip"))
    country = _fold(_field(address, "country")) or "US"
    if country == "US":
        zip_code = zip_code[:5]  # ZIP+4 or not, one place
    return Origin(_fold(_field(address, "street1")), _fold(_field(address, "street2")), _fold(_field(address, "city")),
                  _fold(_field(address, "state")), zip_code, country)


def _id_of(value: Any) -> str | None:
    """An embedded object's id, or the id itself where the API gives only that."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    found = _field(value, "id")
    return str(found) if found else None


@dataclass(frozen=True)
class ClosingShipment:
    """A shipment as `close` reads it: who carries it, from where, whether it is refunded or on a form."""

    id: str
    mode: str | None
    reference: str | None
    tracking_code: str | None
    carrier: str | None
    carrier_account_id: str | None
    origin: Origin | None
    from_address: dict[str, Any]
    """The origin as the API holds it (name, street, phone...), for a pickup at that address."""
    refund_status: str | None
    bought: bool
    scan_form_id: str | None
    bought_at: dt.datetime | None
    """When the label was bought (its `postage_label.created_at`), as the API says."""
    is_return: bool = False
    """A return label: it ships from the customer, not from this origin's dock."""


def closing_shipment_from(obj: Any) -> ClosingShipment:
    label = _field(obj, "postage_label")
    rate = _field(obj, "selected_rate")
    address = _field(obj, "from_address")
    return ClosingShipment(
        id=str(_field(obj, "id")),
        mode=_field(obj, "mode") or None,
        reference=_field(obj, "reference"),
        tracking_code=_field(obj, "tracking_code"),
        carrier=_field(rate, "carrier") if rate else None,
        carrier_account_id=_field(rate, "carrier_account_id") if rate else None,
        origin=origin_of(address),
        from_address={k: v for k in _ADDRESS_FIELDS if (v := _field(address, k)) not in (None, "")},
        refund_status=_field(obj, "refund_status"),
        bought=bool(label and _field(label, "label_url")),
        scan_form_id=_id_of(_field(obj, "scan_form")),
        bought_at=api_time(_field(label, "created_at") or _field(label, "label_date")) if label else None,
        is_return=_field(obj, "is_return") is True,
    )


def retrieve_for_close(client: Any, shipment_id: str) -> ClosingShipment:
    return closing_shipment_from(client.shipment.retrieve(quote(shipment_id, safe="")))


# -- scan forms -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanForm:
    id: str
    status: str | None
    """EasyPost's: `creating`, `created` or `failed` (then `message` says why)."""
    message: str | None
    form_url: str | None
    tracking_codes: tuple[str, ...]
    batch_id: str | None


def scan_form_from(obj: Any) -> ScanForm:
    return ScanForm(
        id=str(_field(obj, "id")),
        status=_field(obj, "status"),
        message=_field(obj, "message"),
        form_url=_field(obj, "form_url"),
        tracking_codes=tuple(str(c) for c in (_field(obj, "tracking_codes") or ())),
        batch_id=_field(obj, "batch_id"),
    )


def create_scan_form(client: Any, shipment_ids: tuple[str, ...]) -> ScanForm:
    """`POST /scan_forms` with the shipments by id: one form for all of them, or a refusal for all of them."""
    return scan_form_from(client.scan_form.create(shipments=[{"id": sid} for sid in shipment_ids]))


def retrieve_scan_form(client: Any, form_id: str) -> ScanForm:
    return scan_form_from(client.scan_form.retrieve(quote(form_id, safe="")))


# -- pickups --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PickupRate:
    carrier: str
    service: str
    rate: str
    currency: str

    @property
    def amount(self) -> Decimal:
        try:
            return Decimal(self.rate)
        except InvalidOperation:
            return Decimal("Infinity")


@dataclass(frozen=True)
class Pickup:
    id: str
    status: str | None
    """EasyPost's: `unknown` until bought, `scheduled` once bought, `canceled`."""
    confirmation: str | None
    reference: str | None
    rates: tuple[PickupRate, ...]

    @property
    def bought(self) -> bool:
        return self.status == "scheduled" or bool(self.confirmation)

    def cheapest(self, carrier: str | None) -> PickupRate | None:
        """The lowest rate, of `carrier` when it offers any (a form's pickup is that carrier's)."""
        mine = [r for r in self.rates if carrier and r.carrier.lower() == carrier.lower()] or list(self.rates)
        return min(mine, key=lambda r: r.amount, default=None)


def pickup_from(obj: Any) -> Pickup:
    rates = tuple(
        PickupRate(carrier=str(_field(r, "carrier") or ""), service=str(_field(r, "service") or ""),
                   rate=str(_field(r, "rate") or ""), currency=str(_field(r, "currency") or "USD"))
        for r in (_field(obj, "pickup_rates") or ())
    )
    return Pickup(id=str(_field(obj, "id")), status=_field(obj, "status"), confirmation=_field(obj, "confirmation"),
                  reference=_field(obj, "reference"), rates=rates)


def create_pickup(client: Any, params: dict[str, Any]) -> Pickup:
    """`POST /pickups`: a pickup with its rates; nothing is booked (or paid) until it is bought."""
    return pickup_from(client.pickup.create(**params))


def buy_pickup(client: Any, pickup_id: str, carrier: str, service: str) -> Pickup:
    return pickup_from(client.pickup.buy(quote(pickup_id, safe=""), carrier=carrier, service=service))


def retrieve_pickup(client: Any, pickup_id: str) -> Pickup:
    return pickup_from(client.pickup.retrieve(quote(pickup_id, safe="")))


def find_pickup(client: Any, reference: str, *, pages: int = 10) -> Pickup | None:
    """The newest pickup whose `reference` is `reference`, from the first `pages` pages of the list."""
    params: dict[str, Any] = {"page_size": 100}
    for _ in range(pages):
        page = client.pickup.all(**params)
        found = [pickup_from(p) for p in (_field(page, "pickups") or ())]
        for pickup in found:
            if pickup.reference == reference:
                return pickup
        if not found or not _field(page, "has_more"):
            return None
        params["before_id"] = found[-1].id
    return None
