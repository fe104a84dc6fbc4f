"""Column names: header normalisation, the alias table, and where each canonical column goes in a row.

`canonical(header)` turns whatever a spreadsheet called a column (`Recipient Name`, `Ship-To Zip`,
`to.name`, `Weight (lb)`) into a canonical flat column (`to_name`, `to_zip`, `weight`) and, for headers that
carry a unit, the unit a bare number in that column is in. Unknown headers give `None`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from shipctl.manifest.models import (
    ADDRESS_FIELDS,
    CUSTOMS_COLUMNS,
    FLAT_COLUMNS,
    ITEM_FIELDS,
    OPTION_FIELDS,
    PARCEL_FIELDS,
)

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_header(header: str) -> str:
    """Strip a BOM, trim, lowercase; every run of spaces, dots, dashes (any non-alphanumeric) becomes `_`."""
    return _NON_ALNUM.sub("_", header.replace("\ufeff", "").strip().lower()).strip("_")


class Target(NamedTuple):
    """Where a canonical column's value goes: a group of the row and a field in it."""

    group: int
    field: str


# Groups of a row under construction, as list indexes (the reader fills one dict per group).
TOP, TO, FROM, PARCEL, CUSTOMS, ITEM, OPTION = range(7)

_ADDRESS_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full_name", "contact", "contact_name", "attention", "attn", "recipient", "person"),
    "company": ("company", "company_name", "business", "business_name", "organization", "organisation", "org"),
    "street1": ("street1", "street", "street_1", "address", "address1", "address_1", "address_line_1",
                "address_line1", "addr1", "line1", "line_1", "street_address", "street_line_1"),
    "street2": ("street2", "street_2", "address2", "address_2", "address_line_2", "address_line2", "addr2",
                "line2", "line_2", "apt", "suite", "unit", "street_line_2"),
    "city": ("city", "town", "locality", "city_town"),
    "state": ("state", "province", "region", "state_province", "state_code", "province_code", "st", "county"),
    "zip": ("zip", "zip_code", "zipcode", "postal_code", "postalcode", "postcode", "post_code", "postal",
            "zip_postal_code", "postal_zip"),
    "country": ("country", "country_code", "country_iso", "iso_country"),
    "phone": ("phone", "phone_number", "telephone", "tel", "mobile", "phone_no"),
    "email": ("email", "email_address", "e_mail", "mail"),
    "residential": ("residential", "is_residential", "residence"),
}
_TO_PREFIXES = ("to", "recipient", "ship_to", "shipto", "destination", "dest", "consignee", "delivery",
                "receiver", "to_address")
_FROM_PREFIXES = ("from", "sender", "ship_from", "shipfrom", "shipper", "from_address")

_OTHER_ALIASES: dict[str, tuple[str, ...]] = {
    "reference": ("reference", "ref", "reference_number", "ref_no", "order", "order_id", "order_number",
                  "order_no", "order_ref", "order_reference", "external_id", "shipment_reference"),
    "weight": ("weight", "parcel_weight", "package_weight", "shipping_weight", "wt", "weight_oz",
               "weight_ounces", "parcel_weight_oz", "weight_in_oz"),
    "length": ("length", "parcel_length", "package_length", "len", "length_in", "length_inches", "l"),
    "width": ("width", "parcel_width", "package_width", "length_width", "width_in", "width_inches", "w"),
    "height": ("height", "parcel_height", "package_height", "depth", "height_in", "height_inches", "h"),
    "predefined_package": ("predefined_package", "package_type", "package", "predefined", "parcel_type",
                           "box", "box_type"),
    "carrier": ("carrier", "carrier_name", "courier"),
    "service": ("service", "service_level", "service_type", "shipping_service", "mail_class",
                "carrier_service", "shipping_method"),
    "label_format": ("label_format", "label_type", "label_file_format", "file_format"),
    "insurance": ("insurance", "insured_value", "insurance_amount", "insurance_value", "declared_value",
                  "insure"),
    "signature": ("signature", "delivery_confirmation", "signature_required", "signature_confirmation",
                  "signature_option", "require_signature"),
    "is_return": ("is_return", "return", "return_label", "return_shipment"),
    "label_date": ("label_date", "ship_date", "shipping_date", "ship_on", "shipment_date"),
    "print_custom_1": ("print_custom_1", "print_custom1", "label_custom_1", "label_text_1", "label_note_1",
                       "custom_1", "custom1", "label_note"),
    "print_custom_2": ("print_custom_2", "print_custom2", "label_custom_2", "label_text_2", "label_note_2",
                       "custom_2", "custom2"),
    "print_custom_3": ("print_custom_3", "print_custom3", "label_custom_3", "label_text_3", "label_note_3",
                       "custom_3", "custom3"),
    "deliver_within": ("deliver_within", "deliver_within_days", "delivery_days_max", "max_delivery_days",
                       "max_transit_days", "arrive_within", "deliver_within_business_days"),
    "options": ("options", "easypost_options", "shipment_options"),
    "customs_declared_value": ("customs_declared_value", "customs_total_value", "customs_total",
                               "total_customs_value", "declared_customs_value"),
    "customs_contents_type": ("customs_contents_type", "contents_type", "customs_type", "content_type"),
    "customs_contents_explanation": ("customs_contents_explanation", "contents_explanation",
                                     "customs_explanation"),
    "customs_signer": ("customs_signer", "signer", "customs_signature", "signed_by"),
    "customs_certify": ("customs_certify", "certify"),
    "customs_eel_pfc": ("customs_eel_pfc", "eel_pfc"),
    "customs_non_delivery_option": ("customs_non_delivery_option", "non_delivery_option", "non_delivery"),
    "customs_restriction_type": ("customs_restriction_type", "restriction_type"),
    "customs_restriction_comments": ("customs_restriction_comments", "restriction_comments"),
    # Bare `description`, `quantity`, `value` are deliberately not aliases: order exports use them for things
    # that are not customs, and reading them as customs would make every domestic row invalid.
    "item_description": ("item_description", "item_desc", "customs_description", "customs_contents"),
    "item_quantity": ("item_quantity", "item_qty", "customs_quantity"),
    "item_value": ("item_value", "customs_value", "item_price", "declared_item_value"),
    "item_weight": ("item_weight", "customs_weight", "item_weight_oz"),
    "item_hs_tariff_number": ("item_hs_tariff_number", "hs_tariff_number", "hs_code", "hs_tariff",
                              "tariff_code", "tariff_number", "hts_code", "hts", "hs", "item_hs_code"),
    "item_origin_country": ("item_origin_country", "origin_country", "country_of_origin", "made_in",
                            "item_country_of_origin", "manufacture_country"),
    "item_code": ("item_code", "item_sku"),
    "customs_items": ("customs_items", "items"),
}

# Headers that say their unit: a bare number in such a column is in that unit.
_UNIT_HEADERS: dict[str, tuple[str, str]] = {}
for _unit, _names in {"lb": ("lb", "lbs", "pounds"), "kg": ("kg", "kgs"), "g": ("g", "grams")}.items():
    for _name in _names:
        for _base in ("weight", "parcel_weight", "package_weight", "shipping_weight"):
            _UNIT_HEADERS[f"{_base}_{_name}"] = ("weight", _unit)
        _UNIT_HEADERS[f"item_weight_{_name}"] = ("item_weight", _unit)
for _dim in ("length", "width", "height"):
    _UNIT_HEADERS[f"{_dim}_cm"] = (_dim, "cm")
    _UNIT_HEADERS[f"parcel_{_dim}_cm"] = (_dim, "cm")
    _UNIT_HEADERS[f"{_dim}_mm"] = (_dim, "mm")

ALIASES: dict[str, str] = {}
"""Normalised header → canonical column."""
for _field, _aliases in _ADDRESS_ALIASES.items():
    for _alias in _aliases:
        for _prefix in _TO_PREFIXES:
            ALIASES[f"{_prefix}_{_alias}"] = "to_" + _field
        for _prefix in _FROM_PREFIXES:
            ALIASES[f"{_prefix}_{_alias}"] = "from_" + _field
# An unprefixed address field is the destination's (`zip`, `postal_code`, `name`, `city`).
for _field, _aliases in _ADDRESS_ALIASES.items():
    for _alias in _aliases:
        ALIASES.setdefault(_alias, "to_" + _field)
for _column, _aliases in _OTHER_ALIASES.items():
    for _alias in _aliases:
        ALIASES[_alias] = _column  # the explicit table wins over the address patterns (`item_description`)
for _column in FLAT_COLUMNS:
    ALIASES[_column] = _column
for _header, (_column, _) in _UNIT_HEADERS.items():
    ALIASES[_header] = _column
UNITS: dict[str, str] = {header: unit for header, (_, unit) in _UNIT_HEADERS.items()}
"""Normalised header → the unit of a bare number in it (`weight_lb` → `lb`)."""

TARGETS: dict[str, Target] = {"reference": Target(TOP, "reference")}
"""Canonical column → where its value goes in the row under construction."""
for _field in ADDRESS_FIELDS:
    TARGETS["to_" + _field] = Target(TO, _field)
    TARGETS["from_" + _field] = Target(FROM, _field)
for _field in PARCEL_FIELDS:
    TARGETS[_field] = Target(PARCEL, _field)
for _field in OPTION_FIELDS:
    TARGETS[_field] = Target(TOP, _field)
TARGETS["options"] = Target(TOP, "options")
for _field, _column in CUSTOMS_COLUMNS.items():
    TARGETS[_column] = Target(CUSTOMS, _field)
for _field in ITEM_FIELDS:
    TARGETS["item_" + _field] = Target(ITEM, _field)
TARGETS["customs_items"] = Target(CUSTOMS, "customs_items")
assert set(TARGETS) == set(FLAT_COLUMNS)

"""(group, field) → canonical column, for naming the column of a validation error."""


OPTION_PREFIX = "option_"
"""`option_<name>`: any EasyPost shipment option, passed through (`option_saturday_delivery`)."""
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")


def canonical(header: str) -> tuple[str | None, str | None]:
    """(canonical column or None when unknown, unit of bare numbers in it or None).

    `option_<name>` is `<name>`'s column where shipctl has one (`option_label_format`), else a passed-through
    option's own column, `option_<name>`, which `target()` places.
    """
    key = normalize_header(header)
    column = ALIASES.get(key)
    if column is None and key.startswith(OPTION_PREFIX):
        name = key[len(OPTION_PREFIX):]
        own = ALIASES.get(name)
        if own is not None and TARGETS[own].group == TOP and own in OPTION_FIELDS:
            return own, None
        if _OPTION_NAME.fullmatch(name):
            return key, None
    return column, UNITS.get(key)


def target(column: str) -> Target:
    """Where a canonical column (as `canonical` gives it) goes."""
    found = TARGETS.get(column)
    if found is not None:
        return found
    return Target(OPTION, column[len(OPTION_PREFIX):])
