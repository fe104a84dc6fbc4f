"""The pydantic row models: what a valid manifest row is, normalised, and its EasyPost request shape.

Validators normalise as they check (README, "Columns"): countries to ISO alpha-2, US states to 2 letters, US ZIPs to
5 digits or ZIP+4, weights to ounces, dimensions to inches. Cross-field rules (all three dimensions or none,
customs on international rows) live here too, so a `ShipmentRow` is valid however it was built.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shipctl.manifest import normalize

# The models below are built without pydantic's plugin scan, as typer builds its own adapters: the scan reads every
# installed package's entry points (about 25 ms, the largest start-up cost after the SDK, on every command that
# validates a row), and these are shipctl's internal row models, not an application's models that a plugin such as
# an observability tool is installed to watch. `PYDANTIC_DISABLE_PLUGINS` is pydantic's own switch (2.7 and later;
# older versions scan as before); it is set only while the classes are built and put back afterwards.
_PLUGINS_SWITCH = "PYDANTIC_DISABLE_PLUGINS"
_plugins_before = os.environ.get(_PLUGINS_SWITCH)
os.environ[_PLUGINS_SWITCH] = "1"

ContentsType = Literal[
    "documents", "gift", "merchandise", "returned_goods", "sample", "dangerous_goods",
    "humanitarian_donation", "other",
]
LabelFormat = Literal["PDF", "PNG", "ZPL"]

PRINT_CUSTOM_MAX = 60
"""Characters of a `print_custom_*` line: what fits on a 4x6 label's free-text area."""

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


def _problem(field: str, message: str) -> PydanticCustomError:
    """A cross-field error pinned to one field (the reader turns `field` into the column name)."""
    return PydanticCustomError("shipctl", message, {"field": field})


class Address(BaseModel):
    """A postal address in EasyPost's field names.

    Strict by default (street, city, and for the US state and ZIP, are required). Validated with
    `context={"partial": True}` it may be only a ZIP, for one-off rate quotes (`--to 94107`).
    """

    model_config = _CONFIG

    company: str | None = None
    name: str | None = Field(default=None, validate_default=True)
    street1: str | None = Field(default=None, validate_default=True)
    street2: str | None = None
    city: str | None = Field(default=None, validate_default=True)
    country: str = "US"
    state: str | None = Field(default=None, validate_default=True)
    zip: str | None = Field(default=None, validate_default=True)
    phone: str | None = None
    email: str | None = None
    residential: bool | None = None

    @field_validator("name", "street1", "city", mode="after")
    @classmethod
    def _required(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value or (info.context and info.context.get("partial")):
            return value or None
        if info.field_name == "name":
            if info.data.get("company"):
                return None
            raise PydanticCustomError("shipctl", "a name or a company is required")
        raise PydanticCustomError("shipctl", "required")

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        return normalize.country(value)

    @field_validator("state", mode="after")
    @classmethod
    def _state(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if not value:
            if country == "US" and not (info.context and info.context.get("partial")):
                raise PydanticCustomError("shipctl", "required for US addresses")
            return None
        if country in normalize.US_ZIP_COUNTRIES:
            return normalize.us_state(value)
        return value.upper() if len(value) <= 3 else value

    @field_validator("zip", mode="after")
    @classmethod
    def _zip(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if not value:
            if country in normalize.US_ZIP_COUNTRIES:
                raise PydanticCustomError("shipctl", "required for US addresses")
            return None
        if country in normalize.US_ZIP_COUNTRIES:
            return normalize.us_zip(value, info.data.get("state"))
        return value.upper()

    @field_validator("email", mode="after")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and ("@" not in value or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an email address")
        return value or None

    def to_easypost(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


class Parcel(BaseModel):
    """Weight in ounces; dimensions in inches (all three or none); or a predefined package."""

    model_config = _CONFIG

    weight: float
    length: float | None = None
    width: float | None = None
    height: float | None = None
    predefined_package: str | None = None

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> float:
        return normalize.weight_oz(value)

    @field_validator("length", "width", "height", mode="before")
    @classmethod
    def _length(cls, value: Any) -> float | None:
        if value is None or value == "":
            return None
        return normalize.length_in(value)

    @model_validator(mode="after")
    def _all_three_or_none(self) -> Parcel:
        if (self.length is None) is (self.width is None) is (self.height is None):  # runs for every row: keep it short
            return self
        dims = {"length": self.length, "width": self.width, "height": self.height}
        given = [name for name, value in dims.items() if value is not None]
        if given and len(given) < 3:
            missing = next(name for name, value in dims.items() if value is None)
            raise _problem(missing, f"give length, width and height together (only {', '.join(given)} given)")
        return self

    def to_easypost(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


class CustomsItem(BaseModel):
    model_config = _CONFIG

    description: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    value: Decimal
    weight: float
    hs_tariff_number: str | None = None
    origin_country: str
    code: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any) -> Decimal:
        return normalize.money(value)

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> float:
        return normalize.weight_oz(value)

    @field_validator("hs_tariff_number", mode="after")
    @classmethod
    def _tariff(cls, value: str | None) -> str | None:
        return normalize.hs_tariff(value) if value else None

    @field_validator("origin_country", mode="after")
    @classmethod
    def _origin(cls, value: str) -> str:
        return normalize.country(value)

    def to_easypost(self) -> dict[str, Any]:
        data = {key: value for key, value in self.__dict__.items() if value is not None}
        data["value"] = str(self.value)
        return data


class CustomsInfo(BaseModel):
    """EasyPost's customs form: who signs, what is inside, and at least one item."""

    model_config = _CONFIG

    contents_type: ContentsType
    customs_signer: str = Field(min_length=1)
    contents_explanation: str | None = None
    customs_certify: bool = True
    eel_pfc: str = "NOEEI 30.37(a)"
    non_delivery_option: Literal["return", "abandon"] = "return"
    restriction_type: Literal["none", "other", "quarantine", "sanitary_phytosanitary_inspection"] = "none"
    restriction_comments: str | None = None
    customs_items: list[CustomsItem] = Field(min_length=1)
    declared_value: Decimal | None = None
    """The parcel's declared customs value, checked against its items; shipctl's own, never sent."""

    @field_validator("declared_value", mode="before")
    @classmethod
    def _declared(cls, value: Any) -> Decimal | None:
        return None if value is None or value == "" else normalize.money(value)

    @field_validator("contents_type", "non_delivery_option", "restriction_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _explained(self) -> CustomsInfo:
        if self.contents_type == "other" and not self.contents_explanation:
            raise _problem("contents_explanation", "required when the contents type is other")
        return self

    def to_easypost(self) -> dict[str, Any]:
        data = {key: value for key, value in self.__dict__.items() if value is not None}
        data.pop("declared_value", None)
        data["customs_items"] = [item.to_easypost() for item in self.customs_items]
        return data


def domestic_zone(country: str) -> str:
    """The customs zone of a country code: US territories ship as US domestic."""
    return "US" if country in normalize.US_ZIP_COUNTRIES else country


class ShipmentRow(BaseModel):
    """One manifest row, validated and normalised; `to_easypost()` is the `shipment.create` request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str = Field(min_length=1)
    to_address: Address
    from_address: Address
    parcel: Parcel
    customs_info: CustomsInfo | None = None
    carrier: str | None = None
    service: str | None = None
    label_format: LabelFormat | None = None
    insurance: Decimal | None = None
    signature: str | None = None
    """EasyPost's `delivery_confirmation` (`SIGNATURE`, `ADULT_SIGNATURE`, …)."""
    is_return: bool | None = None
    label_date: str | None = None
    print_custom_1: str | None = None
    print_custom_2: str | None = None
    print_custom_3: str | None = None
    deliver_within: int | None = None
    """Business days: the row's delivery-time rule (the cheapest rate that arrives within them)."""
    options: dict[str, str | bool] | None = None
    """Any other EasyPost shipment option, passed through as given (`option_<name>` columns)."""

    @field_validator("signature", mode="before")
    @classmethod
    def _signature(cls, value: Any) -> str | None:
        return normalize.signature(value) if isinstance(value, str) and value.strip() else None

    @field_validator("is_return", mode="after")
    @classmethod
    def _return(cls, value: bool | None) -> bool | None:
        return True if value else None  # not a return is the default: `false` and an empty cell are one row

    @field_validator("print_custom_1", "print_custom_2", "print_custom_3", mode="after")
    @classmethod
    def _label_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ord(c) < 32 for c in value):
            raise ValueError("a label line is one line: no line breaks or tabs")
        if len(value) > PRINT_CUSTOM_MAX:
            raise ValueError(f"{len(value)} characters, at most {PRINT_CUSTOM_MAX} fit on the label")
        return value or None

    @field_validator("label_date", mode="before")
    @classmethod
    def _label_date(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        return normalize.ship_date(str(value))

    @field_validator("deliver_within", mode="before")
    @classmethod
    def _deliver_within(cls, value: Any) -> int | None:
        return None if value is None or value == "" else normalize.business_days(value)

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> dict[str, str | bool] | None:
        if value is None or value == "" or value == {}:
            return None
        if isinstance(value, str):  # the `options` column: a JSON object, as shipctl writes it
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("not a JSON object of EasyPost options") from None
        if not isinstance(value, dict):
            raise ValueError("expected an object of EasyPost options")
        options: dict[str, str | bool] = {}
        for key, item in value.items():
            name = str(key)
            if not OPTION_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an EasyPost option name (lower case, digits and _)")
            if name in NOT_OPTIONS:
                raise ValueError(f"{name} is not a shipment option: use the {NOT_OPTIONS[name]} column")
            if item is None:
                continue
            options[name] = _option_value(name, item)
        return options or None

    @field_validator("label_format", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("insurance", mode="before")
    @classmethod
    def _insurance(cls, value: Any) -> Decimal | None:
        if value is None or value == "":
            return None
        amount = normalize.money(value)
        # The bound first: quantizing an amount past decimal's 28 digits of precision (1e+26) raises.
        if amount > INSURANCE_MAX:
            # As given: rounded to cents, 5000.001 read "5,000.00 is more than … 5,000.00", and 1e309 had 309 digits.
            shown = repr(value) if isinstance(value, str) else normalize.fmt_number(amount)
            raise ValueError(f"{shown} is more than EasyPost insures ({INSURANCE_MAX:,.2f} USD a parcel)")
        if amount != amount.quantize(CENT):
            raise ValueError(f"{value!r} has more than 2 decimals: insurance is in cents")
        return amount or None  # 0: not insured

    @model_validator(mode="after")
    def _customs_when_international(self) -> ShipmentRow:
        if self.options:
            _own_columns_not_passed_through(self.options)
        if self.customs_info is not None:
            if self.international:
                _preflight(self.customs_info, self.from_address.country, self.to_address.country,
                           self.parcel.weight)
            return self
        origin, destination = self.from_address.country, self.to_address.country
        if origin != destination and domestic_zone(origin) != domestic_zone(destination):
            raise _problem(
                "customs_*",
                f"an international shipment ({origin} → {destination}) needs customs: customs_contents_type, "
                "customs_signer and item_description, item_quantity, item_value, item_weight, "
                "item_origin_country",
            )
        return self

    @property
    def international(self) -> bool:
        return domestic_zone(self.from_address.country) != domestic_zone(self.to_address.country)

    def to_easypost(self) -> dict[str, Any]:
        """Keyword arguments for `client.shipment.create(**params)`; JSON-safe (money as strings)."""
        params: dict[str, Any] = {
            "reference": self.reference,
            "to_address": self.to_address.to_easypost(),
            "from_address": self.from_address.to_easypost(),
            "parcel": self.parcel.to_easypost(),
            "options": self.easypost_options(),
        }
        if self.is_return:
            params["is_return"] = True
        if self.customs_info is not None:
            params["customs_info"] = self.customs_info.to_easypost()
        return params

    def easypost_options(self) -> dict[str, Any]:
        """The shipment's `options`: the passed-through ones, then the row's own columns (which win)."""
        options: dict[str, Any] = dict(self.options) if self.options else {}
        for field, key in _OPTION_KEYS:
            value = getattr(self, field)
            if value is not None:
                options[key] = value
        return options

    def to_flat(self) -> dict[str, str]:
        """The canonical flat columns (`FLAT_COLUMNS`), every one present, `""` when unset.

        Written as a CSV row and read back, it gives an equal `ShipmentRow`. A customs form with more than
        one item goes into the `customs_items` column as JSON, the `item_*` columns then stay empty.
        """
        flat = dict.fromkeys(FLAT_COLUMNS, "")
        flat["reference"] = self.reference
        _put_cells(flat, "to_", self.to_address.__dict__)
        _put_cells(flat, "from_", self.from_address.__dict__)
        _put_cells(flat, "", self.parcel.__dict__)
        _put_cells(flat, "", {key: getattr(self, key) for key in OPTION_FIELDS})
        if self.options:
            flat["options"] = json.dumps(self.options, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        if self.customs_info is not None:
            _put_customs(flat, self.customs_info)
        return flat

    def content_key(self) -> str:
        """A stable key from the row's normalised content (reference excluded): `row-` + 12 hex digits.

        A row that uses none of the columns added since the key was first defined hashes exactly as it did then
        (a manifest without references, bought by an older shipctl, keeps its references, so nothing is bought
        again); an added column counts by name and value, only when it is set.
        """
        flat = self.to_flat()
        text = "\x1f".join(flat[column] for column in _KEYED_COLUMNS)
        text += "".join(f"\x1f{column}={flat[column]}" for column in ADDED_COLUMNS if flat[column])
        return "row-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


OPTION_FIELDS: tuple[str, ...] = (
    "carrier", "service", "label_format", "insurance", "signature", "is_return", "label_date",
    "print_custom_1", "print_custom_2", "print_custom_3", "deliver_within",
)
"""The row's own top-level columns, in `FLAT_COLUMNS` order."""
ADDED_COLUMNS: tuple[str, ...] = (
    "signature", "is_return", "label_date", "print_custom_1", "print_custom_2", "print_custom_3", "deliver_within",
    "options", "customs_declared_value",
)
"""Columns added after the content key (`content_key`) and the row digest were defined: they count only when set."""
ADDED_FIELDS: tuple[str, ...] = tuple(c for c in ADDED_COLUMNS if not c.startswith("customs_"))
OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
NOT_OPTIONS: dict[str, str] = {
    "insurance": "insurance", "is_return": "is_return", "reference": "reference", "carrier": "carrier",
    "service": "service",
}
"""Names that look like options but are not: sent inside `options` they would be ignored by EasyPost (no insurance,
an outbound label), so they go through their own column."""
INSURANCE_MAX = Decimal(5000)
CENT = Decimal("0.01")
_OPTION_KEYS: tuple[tuple[str, str], ...] = (
    ("label_format", "label_format"), ("signature", "delivery_confirmation"), ("label_date", "label_date"),
    ("print_custom_1", "print_custom_1"), ("print_custom_2", "print_custom_2"), ("print_custom_3", "print_custom_3"),
)
"""Row field → the EasyPost shipment option it is sent as."""


def _option_value(key: Any, value: Any) -> str | bool:
    """A passed-through option's value: true/false as booleans (EasyPost's flags), everything else as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (dict, list)) or value is None:
        raise _problem(f"option_{key}", "expected a single value")
    if isinstance(value, float) and not math.isfinite(value):  # JSON's 1e400 read as infinity: not sent as `inf`
        raise _problem(f"option_{key}", "NaN is not a number" if value != value else
                       "a number too large to read (beyond 1.8e308)")
    text = str(value).strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _own_columns_not_passed_through(options: dict[str, str | bool]) -> None:
    """An option shipctl has a column for goes through that column (validated, in the results), not around it."""
    for field, key in _OPTION_KEYS:
        if key in options:
            raise _problem(f"option_{key}", f"use the {field} column for {key}")


# The EU (27) and the UK require a tariff number on every item of a parcel of goods (EU ICS2, UK since 2021).
HS_REQUIRED: frozenset[str] = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "GB",
})
EEI_THRESHOLD = Decimal(2500)
"""US Census Foreign Trade Regulations: an export worth more than this under one Schedule B / HS number needs an
EEI filed (an AES ITN on the customs form) instead of the NOEEI 30.37(a) exemption."""


def _preflight(customs: CustomsInfo, origin: str, destination: str, parcel_oz: float) -> None:
    """What can be known about an international row's customs before any call: the first problem found."""
    if destination in HS_REQUIRED and customs.contents_type != "documents":
        _tariff_numbers(customs.customs_items, destination)
    if customs.declared_value is not None:
        _adds_up(customs.customs_items, customs.declared_value)
    weight = sum(item.weight for item in customs.customs_items)
    if weight > parcel_oz + 0.05:
        raise _problem(
            "item_weight",
            f"the items weigh {normalize.fmt_number(weight)} oz together, more than the parcel's "
            f"{normalize.fmt_number(parcel_oz)} oz",
        )
    if customs.restriction_type != "none" and not customs.restriction_comments:
        raise _problem(
            "customs_restriction_comments", f"required when the restriction type is {customs.restriction_type}"
        )
    # Canada is exempt from filing for most goods (FTR 30.36); elsewhere a tariff line over $2,500 needs an ITN.
    if origin == "US" and destination != "CA" and "".join(customs.eel_pfc.split()).upper().startswith("NOEEI30.37(A)"):
        _under_eei_threshold(customs.customs_items)


def _tariff_numbers(items: list[CustomsItem], destination: str) -> None:
    for number, item in enumerate(items, start=1):
        if not item.hs_tariff_number:
            raise _problem(
                _item_column("hs_tariff_number", number),
                f"an HS tariff number is required for goods to {destination} (item {number}, {item.description!r})",
            )


def _adds_up(items: list[CustomsItem], declared: Decimal) -> None:
    total = sum((item.value for item in items), Decimal(0))
    if total == declared:
        return
    hint = ""
    if sum((item.value * item.quantity for item in items), Decimal(0)) == declared:
        hint = " (item_value is the line's total, quantity × unit price, not the unit price)"
    raise _problem(
        "customs_declared_value",
        f"the items add up to {normalize.fmt_number(total)}, not the declared {normalize.fmt_number(declared)}{hint}",
    )


def _under_eei_threshold(items: list[CustomsItem]) -> None:
    # Per Schedule B number as given (10 digits, or the 6 of an HS code); an item without one is a line of its own.
    lines: dict[str, Decimal] = {}
    for number, item in enumerate(items, start=1):
        key = item.hs_tariff_number or f"#{number}"
        lines[key] = lines.get(key, Decimal(0)) + item.value
    for key, value in lines.items():
        if value > EEI_THRESHOLD:
            where = f"under tariff number {key}" if not key.startswith("#") else f"in item {key[1:]}"
            raise _problem(
                "customs_eel_pfc",
                f"{normalize.fmt_number(value)} USD {where} is over {EEI_THRESHOLD:,} USD: the export needs an EEI "
                "filed in AES and its ITN here (AES X…), not NOEEI 30.37(a)",
            )


def _item_column(field: str, number: int) -> str:
    return f"item_{field}" if number == 1 else f"item_{field}[{number}]"


def _put_cells(flat: dict[str, str], prefix: str, fields: dict[str, Any]) -> None:
    """Write each set field as the cell of column `prefix + field`."""
    for key, value in fields.items():
        if value is not None:
            flat[prefix + key] = _cell(value)


def _put_customs(flat: dict[str, str], customs: CustomsInfo) -> None:
    # A lone item fits the item_* columns; several only fit the customs_items column, as JSON.
    for key, value in customs.__dict__.items():
        if key != "customs_items" and value is not None:
            flat[CUSTOMS_COLUMNS[key]] = _cell(value)
    if len(customs.customs_items) == 1:
        _put_cells(flat, "item_", customs.customs_items[0].__dict__)
    else:
        flat["customs_items"] = json.dumps(
            [item.to_easypost() for item in customs.customs_items], separators=(",", ":")
        )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, Decimal)):
        return normalize.fmt_number(value)
    return str(value)


ADDRESS_FIELDS: tuple[str, ...] = (
    "name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email", "residential",
)
assert set(ADDRESS_FIELDS) == set(Address.model_fields)
PARCEL_FIELDS: tuple[str, ...] = tuple(Parcel.model_fields)
ITEM_FIELDS: tuple[str, ...] = tuple(CustomsItem.model_fields)
CUSTOMS_COLUMNS: dict[str, str] = {
    field: field if field.startswith("customs_") else "customs_" + field
    for field in CustomsInfo.model_fields
    if field != "customs_items"
}
"""CustomsInfo field → its flat column (`contents_type` → `customs_contents_type`)."""
FLAT_COLUMNS: tuple[str, ...] = (
    "reference",
    *("to_" + f for f in ADDRESS_FIELDS),
    *("from_" + f for f in ADDRESS_FIELDS),
    *PARCEL_FIELDS,
    *OPTION_FIELDS,
    "options",
    *CUSTOMS_COLUMNS.values(),
    *("item_" + f for f in ITEM_FIELDS),
    "customs_items",
)
"""Every canonical flat column, in the order `to_flat()` and CSV output use."""
_KEYED_COLUMNS: tuple[str, ...] = tuple(c for c in FLAT_COLUMNS if c != "reference" and c not in ADDED_COLUMNS)

if _plugins_before is None:
    del os.environ[_PLUGINS_SWITCH]
else:
    os.environ[_PLUGINS_SWITCH] = _plugins_before
