"""Shipment options that change what is quoted, bought or printed: `delivery_confirmation` (a surcharge on the
rates of carriers that offer it), `label_date` (the bought label's date), `print_custom_1..3` (drawn on the
label), and `is_return` (the label goes from the customer back to the shipper).

Every other option is kept and echoed as given, as EasyPost ignores options it does not use. Pure: no I/O.
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shipctl.sandbox import model
from shipctl.sandbox.model import JSON, ApiError

DELIVERY_CONFIRMATIONS = (
    "NO_SIGNATURE", "SIGNATURE", "ADULT_SIGNATURE", "ADULT_SIGNATURE_RESTRICTED", "SIGNATURE_RESTRICTED",
    "INDIRECT_SIGNATURE", "DO_NOT_SAFE_DROP",
)

# What each carrier adds to every one of its rates for a delivery confirmation, in USD (close to their 2024
# published prices). A confirmation a carrier does not offer leaves its rates out, with a `rate_error` message,
# as EasyPost does when a carrier refuses an option: a label never silently lacks the signature asked for.
SIGNATURE_SURCHARGES: dict[str, dict[str, Decimal]] = {
    "USPS": {"NO_SIGNATURE": Decimal("0.00"), "SIGNATURE": Decimal("3.65"), "SIGNATURE_RESTRICTED": Decimal("9.35"),
             "ADULT_SIGNATURE": Decimal("8.40"), "ADULT_SIGNATURE_RESTRICTED": Decimal("8.65")},
    "UPS": {"NO_SIGNATURE": Decimal("0.00"), "SIGNATURE": Decimal("6.70"), "ADULT_SIGNATURE": Decimal("8.10"),
            "DO_NOT_SAFE_DROP": Decimal("1.50")},
    "FedEx": {"NO_SIGNATURE": Decimal("0.00"), "INDIRECT_SIGNATURE": Decimal("6.95"), "SIGNATURE": Decimal("7.90"),
              "ADULT_SIGNATURE": Decimal("9.30"), "DO_NOT_SAFE_DROP": Decimal("1.50")},
}

PRINT_CUSTOM = ("print_custom_1", "print_custom_2", "print_custom_3")

_DEFAULTS: JSON = {"currency": "USD", "payment": {"type": "SENDER"}, "date_advance": 0}
_CENT = Decimal("0.01")


def _refused(field: str, message: str) -> ApiError:
    return ApiError(422, "SHIPMENT.INVALID_PARAMS", message, [{"field": f"options.{field}", "message": message}])


def shipment_options(given: Any, today: datetime.date | None = None) -> JSON:
    """A new shipment's `options`: what was given (unknown keys too), EasyPost's defaults for the rest; an unknown
    `delivery_confirmation`, an unreadable `label_date` or one before `today` (UTC) is refused (422)."""
    options = dict(given) if isinstance(given, dict) else {}
    for key, value in _DEFAULTS.items():
        options.setdefault(key, value)
    options.setdefault("label_format", "PNG")
    confirmation = options.get("delivery_confirmation")
    if confirmation is not None and confirmation not in DELIVERY_CONFIRMATIONS:
        raise _refused("delivery_confirmation", f"delivery_confirmation {confirmation!r} is not one of "
                                                f"{', '.join(DELIVERY_CONFIRMATIONS)}.")
    if options.get("label_date") not in (None, ""):
        label_date(options, today)  # refused now, not when the label is bought
    for key in PRINT_CUSTOM:
        if options.get(key) is not None and not isinstance(options[key], str | int | float):
            raise _refused(key, f"{key} must be a string.")
    return options


def label_date(options: JSON, today: datetime.date | None = None) -> str | None:
    """`options.label_date` as EasyPost shows a label's date (UTC, `2025-03-07T16:46:20Z`); a date alone is its
    midnight UTC. None when not given."""
    raw = options.get("label_date")
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    try:
        if len(text) == 10:
            when = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(),
                                             datetime.timezone.utc)
        else:
            when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise _refused("label_date", f"label_date {text!r} is not an ISO 8601 date or date and time.") from None
    today = today or datetime.datetime.fromtimestamp(model.now(), datetime.timezone.utc).date()
    # The day is the one the shipper wrote (in its own offset): a shipper early in the day east of UTC is not
    # dating the label in the past.
    if when.date() < today:
        raise _refused("label_date", f"label_date {text} is in the past: a label cannot be dated before today "
                                     f"({today.isoformat()}).")
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def custom_lines(options: JSON | None) -> list[str]:
    """The `print_custom_1..3` texts a label prints, in order."""
    options = options or {}
    return [str(options[key]) for key in PRINT_CUSTOM if options.get(key) not in (None, "")]


def route(shp: JSON) -> tuple[JSON | None, JSON | None]:
    """(where the parcel leaves from, where it goes): a return label goes from `to_address` (the customer) back to
    `from_address` (the shipper), while the shipment keeps both addresses as they were given, as EasyPost does."""
    if shp.get("is_return"):
        return shp.get("to_address"), shp.get("from_address")
    return shp.get("from_address"), shp.get("to_address")


def _plus(amount: str, surcharge: Decimal) -> str:
    return str((Decimal(amount) + surcharge).quantize(_CENT, ROUND_HALF_UP))


def quote(shipment_id: str | None, shp: JSON, mode: str) -> tuple[list[JSON], list[JSON]]:
    """(rates, messages) for a shipment (its addresses, parcel, `is_return` and `options`): the rates for the way
    the parcel travels, each carrying its carrier's delivery confirmation surcharge; carriers without the
    confirmation asked for give a `rate_error` message instead of rates."""
    origin, destination = route(shp)
    rates = model.build_rates(shipment_id, origin or {}, destination or {}, shp["parcel"], mode)
    confirmation = (shp.get("options") or {}).get("delivery_confirmation")
    if not confirmation:
        return rates, []
    kept: list[JSON] = []
    refused: dict[str, str] = {}
    for rate in rates:
        surcharge = SIGNATURE_SURCHARGES.get(rate["carrier"], {}).get(confirmation)
        if surcharge is None:
            refused[rate["carrier"]] = rate["carrier_account_id"]
            continue
        for key in ("rate", "retail_rate", "list_rate"):
            rate[key] = _plus(rate[key], surcharge)
        kept.append(rate)
    messages = [{"carrier": carrier, "carrier_account_id": account, "type": "rate_error",
                 "message": f"{carrier} does not offer delivery_confirmation {confirmation}."}
                for carrier, account in refused.items()]
    return kept, messages


# --------------------------------------------------------------------------- insurance

def insurance_fee(amount: Decimal | float | str, user: JSON) -> Decimal:
    """What insuring `amount` costs: `amount × insurance_fee_rate`, never less than `insurance_fee_minimum` (the
    account's fields, `GET /v2/users`), rounded half up to the cent."""
    fee = (Decimal(str(amount)) * Decimal(str(user["insurance_fee_rate"]))).quantize(_CENT, ROUND_HALF_UP)
    return max(fee, Decimal(str(user["insurance_fee_minimum"])))
