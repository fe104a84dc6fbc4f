"""Whether a shipment the API holds is what a given `shipment.create` request would have made.

Used where shipctl must recognise a shipment its own create made but never recorded (a lost answer; a run killed
before it could record it): only such a shipment may be bought in place of a new one. A storefront's quote for the
same order, or another machine's from a row that differs (a signature, an apartment, a name), must not pass, so
every field the request gave is compared, and the addresses' and options' fields it did not give must be absent
from the shipment too. What the API adds by itself (its default options) and how it re-spells a verified address
are allowed for. A field this module cannot judge makes the answer "no": the row is then held, never mis-shipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from shipctl.carrier import addresses
from shipctl.carrier.shipments import field_of

_ADDRESS_FIELDS = ("name", "company", "city", "state", "country")
_API_OPTIONS = {"currency": "USD", "payment": {"type": "SENDER"}, "date_advance": 0, "label_format": "PNG"}
"""Options EasyPost fills in when a create does not give them, with the values it fills in."""
_NOT_ECHOED = ("verify", "verify_strict")
"""Request keys the API acts on but does not keep on the object (its verification is reported apart)."""


def made_from(shipment: Any, request: Mapping[str, Any]) -> bool:
    """Whether `shipment` (the API's answer, an SDK object or plain JSON) carries what `request` asked for."""
    if _text(field_of(shipment, "reference")) != _text(request.get("reference")):
        return False
    if bool(field_of(shipment, "is_return")) != bool(request.get("is_return")):
        return False
    for side in ("to_address", "from_address"):
        if not _same_address(field_of(shipment, side), request.get(side) or {}):
            return False
    if not _same_parcel(field_of(shipment, "parcel"), request.get("parcel") or {}):
        return False
    if not _same_options(field_of(shipment, "options"), request.get("options") or {}):
        return False
    customs = request.get("customs_info")
    made_customs = field_of(shipment, "customs_info")
    if (customs is None) != (made_customs is None):
        return False
    return customs is None or _carries(made_customs, customs)


def _same_address(made: Any, asked: Mapping[str, Any]) -> bool:
    if made is None:
        return False
    for key in _ADDRESS_FIELDS:
        if _text(field_of(made, key)) != _text(asked.get(key)):
            return False
    if (_text(field_of(made, "zip")) or "")[:5] != (_text(asked.get("zip")) or "")[:5]:
        return False
    street1, street2 = field_of(made, "street1"), field_of(made, "street2")
    # A verified address is EasyPost's spelling: abbreviations, upper case, the unit moved onto street1. Moved,
    # street1 must then be the whole street asked for: one without the unit is another address.
    if _text(street2):
        same_unit = _text(street2) == _text(asked.get("street2"))
        return same_unit and addresses.same_street(street1, asked.get("street1"), None)
    whole = " ".join(str(part) for part in (asked.get("street1"), asked.get("street2")) if part)
    return addresses.same_street(street1, whole, None)


def _same_parcel(made: Any, asked: Mapping[str, Any]) -> bool:
    if made is None:
        return False
    for key in ("weight", "length", "width", "height"):
        if not _same_number(field_of(made, key), asked.get(key)):
            return False
    return _text(field_of(made, "predefined_package")) == _text(asked.get("predefined_package"))


def _same_options(made: Any, asked: Mapping[str, Any]) -> bool:
    made_options = dict(made.items()) if isinstance(made, Mapping) else dict(getattr(made, "__dict__", {}) or {})
    for key, value in asked.items():
        if not _same_value(made_options.pop(key, None), value):
            return False
    # What the create did not give must be absent, or what the API fills in by itself.
    return all((key in _API_OPTIONS and _same_value(value, _API_OPTIONS[key])) or value in (None, "", False)
               for key, value in made_options.items() if not key.startswith("_"))


def _carries(made: Any, asked: Mapping[str, Any]) -> bool:
    """Every value `asked` gives is in `made` (nested mappings and lists item by item)."""
    for key, value in asked.items():
        if key in _NOT_ECHOED:
            continue
        if not _same_value(field_of(made, key), value):
            return False
    return True


def _same_value(made: Any, asked: Any) -> bool:
    if isinstance(asked, Mapping):
        return made is not None and _carries(made, asked)
    if isinstance(asked, list | tuple):
        items = list(made or ())
        return len(items) == len(asked) and all(_same_value(m, a) for m, a in zip(items, asked, strict=True))
    if isinstance(asked, bool):
        return bool(made) == asked
    if isinstance(asked, int | float) or isinstance(made, int | float):
        return _same_number(made, asked)
    if _text(made) == _text(asked):
        return True
    # Money and weights as text: "45" sent, "45.00" kept (customs values), one number.
    return _number(made) is not None and _number(made) == _number(asked)


def _same_number(made: Any, asked: Any) -> bool:
    if made in (None, "") or asked in (None, ""):
        return made in (None, "") and asked in (None, "")
    try:
        return abs(float(made) - float(asked)) < 0.005
    except (TypeError, ValueError):
        return _text(made) == _text(asked)


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _text(value: Any) -> str | None:
    """A value as text, for comparing: case and spacing do not count (EasyPost upper-cases a verified address), and
    an empty value is none."""
    if value is None:
        return None
    text = " ".join(str(value).split()).casefold()
    return text or None
