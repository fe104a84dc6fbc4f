"""Row models: EasyPost shape, flat round trip, cross-field rules, and --from/--to parsing."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shipctl.errors import UsageError
from shipctl.exit_codes import ExitCode
from shipctl.manifest import Address, InvalidRow, ShipmentRow, ValidRow, iter_rows, parse_address_arg
from shipctl.manifest.models import FLAT_COLUMNS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ORIGIN = {"name": "Acme", "street1": "388 Townsend St", "city": "San Francisco", "state": "CA", "zip": "94107"}
DEST = {"name": "Jane", "street1": "1 Beacon St", "city": "Boston", "state": "MA", "zip": "02108"}
CUSTOMS = {"contents_type": "merchandise", "customs_signer": "Steve",
           "customs_items": [{"description": "Shirt", "quantity": 2, "value": "23.25", "weight": "11",
                              "origin_country": "US"}]}


def row(**changes: Any) -> ShipmentRow:
    data: dict[str, Any] = {"reference": "A", "to_address": DEST, "from_address": ORIGIN, "parcel": {"weight": "12"}}
    data.update(changes)
    return ShipmentRow.model_validate(data)


def errors(**changes: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        row(**changes)
    return [(*e["loc"], (e.get("ctx") or {}).get("field")) for e in caught.value.errors()]


def test_to_easypost_is_the_shipment_create_shape() -> None:
    r = row(label_format="zpl", carrier="USPS", service="Priority", insurance="$100",
            parcel={"weight": "1.5 lb", "length": "25.4cm", "width": "8", "height": "4in"},
            to_address={**DEST, "country": "ca", "state": "ON", "zip": "m5h 2m9"}, customs_info=CUSTOMS)
    params = r.to_easypost()
    assert set(params) == {"reference", "to_address", "from_address", "parcel", "options", "customs_info"}
    assert params["options"] == {"label_format": "ZPL"}
    assert params["parcel"] == {"weight": 24.0, "length": 10.0, "width": 8.0, "height": 4.0}
    assert params["to_address"]["country"] == "CA" and params["to_address"]["zip"] == "M5H 2M9"
    assert params["from_address"]["country"] == "US"
    item = params["customs_info"]["customs_items"][0]
    assert item == {"description": "Shirt", "quantity": 2, "value": "23.25", "weight": 11.0, "origin_country": "US"}
    assert params["customs_info"]["eel_pfc"] == "NOEEI 30.37(a)"
    json.dumps(params)  # JSON-safe: what the SDK will serialise


def test_label_format_and_insurance_rules() -> None:
    assert row(label_format="png").label_format == "PNG"
    assert errors(label_format="GIF") == [("label_format", None)]
    assert errors(insurance="-5") == [("insurance", None)]
    assert row(insurance="0").insurance is None  # nothing to insure: no insurance sent
    assert row(insurance="$1,250.50").insurance == Decimal("1250.50")
    # Past decimal's precision (an exporter's float): the bound's error, not a crash quantizing it to cents.
    assert errors(insurance=1e26) == [("insurance", None)]
    assert errors(insurance="100.005") == [("insurance", None)]


def test_dimensions_all_three_or_none() -> None:
    assert errors(parcel={"weight": "12", "length": "10", "height": "4"}) == [("parcel", "width")]
    assert row(parcel={"weight": "12", "predefined_package": "FlatRateEnvelope"}).parcel.length is None


def test_international_needs_customs_and_territories_are_domestic() -> None:
    assert errors(to_address={**DEST, "country": "GB", "state": "", "zip": "SW1A 2AA"}) == [("customs_*",)]
    for territory in ("PR", "GU", "VI", "AS", "MP", "UM"):
        r = row(to_address={**DEST, "country": territory, "state": "", "zip": "00901"})
        assert not r.international and r.customs_info is None
    assert row(to_address={**DEST, "state": "PR", "zip": "00901"}).to_address.state == "PR"
    # origin abroad, destination US: international too
    assert errors(from_address={**ORIGIN, "country": "CA", "state": "ON", "zip": "M5H 2M9"}) == [("customs_*",)]


def test_customs_rules() -> None:
    item = CUSTOMS["customs_items"][0]
    assert errors(customs_info={**CUSTOMS, "customs_items": []}) == [("customs_info", "customs_items", None)]
    bad = {**item, "quantity": 0, "hs_tariff_number": "123", "origin_country": "Narnia"}
    assert errors(customs_info={**CUSTOMS, "customs_items": [bad]}) == [
        ("customs_info", "customs_items", 0, "quantity", None),
        ("customs_info", "customs_items", 0, "hs_tariff_number", None),
        ("customs_info", "customs_items", 0, "origin_country", None),
    ]
    assert errors(customs_info={**CUSTOMS, "contents_type": "other"}) == [("customs_info", "contents_explanation")]
    assert errors(customs_info={"contents_type": "gift", "customs_items": [item]}) == [
        ("customs_info", "customs_signer", None)]


def test_us_addresses_need_state_and_zip_and_a_name_or_company() -> None:
    assert errors(to_address={"street1": "1 Beacon St", "city": "Boston"}) == [
        ("to_address", "name", None), ("to_address", "state", None), ("to_address", "zip", None)]
    assert row(to_address={**DEST, "name": None, "company": "Acme"}).to_address.company == "Acme"
    foreign = row(to_address={"name": "Jo", "street1": "Bahnhofstrasse 1", "city": "Zurich", "country": "CH"},
                  customs_info=CUSTOMS)
    assert foreign.to_address.zip is None and foreign.to_address.state is None


def test_to_flat_round_trips_through_csv() -> None:
    originals = [r.row for r in iter_rows(EXAMPLES / "manifest.csv") if isinstance(r, ValidRow)]
    items = [{**CUSTOMS["customs_items"][0], "hs_tariff_number": "6109.10"}] * 2
    multi = row(to_address={**DEST, "country": "DE", "state": "", "zip": "10117"}, parcel={"weight": "2 lb"},
                customs_info={**CUSTOMS, "customs_items": items, "declared_value": "46.50"}, insurance="12.5",
                signature="adult", is_return="true", label_date=(date.today() + timedelta(days=2)).isoformat(),
                print_custom_1="PO 7731, bin A4", deliver_within="3 days",
                options={"saturday_delivery": "TRUE", "cod_amount": "12.00", "handling_instructions": "Fragile, ü"})
    originals.append(multi)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FLAT_COLUMNS)
    writer.writeheader()
    for r in originals:
        flat = r.to_flat()
        assert list(flat) == list(FLAT_COLUMNS) and all(isinstance(v, str) for v in flat.values())
        writer.writerow(flat)
    again = [r for r in iter_rows(io.BytesIO(buffer.getvalue().encode()))]
    assert all(isinstance(r, ValidRow) for r in again), [
        str(p) for r in again if isinstance(r, InvalidRow) for p in r.problems]
    assert [r.row for r in again if isinstance(r, ValidRow)] == originals


def test_parse_address_arg_inline_file_and_zip(tmp_path: Path) -> None:
    inline = parse_address_arg('{"from_name": "Acme", "Street": "1 Main St", "city": "Austin", "state": "texas",'
                               ' "postal_code": 78701}')
    assert (inline.name, inline.street1, inline.state, inline.zip) == ("Acme", "1 Main St", "TX", "78701")
    assert parse_address_arg(str(EXAMPLES / "from.json")).zip == "94107"
    zip_only = parse_address_arg("94107", allow_zip=True)
    assert (zip_only.zip, zip_only.country, zip_only.street1) == ("94107", "US", None)
    assert zip_only.to_easypost() == {"zip": "94107", "country": "US"}


@pytest.mark.parametrize(
    ("value", "message"),
    [("94107", "not inline JSON or a readable JSON file"), ('{"name": ', "invalid JSON"),
     ("[1]", "expected a JSON object"), ('{"name": "A", "street1": "x", "city": "y", "state": "CA"}', "zip: required"),
     ('{"nickname": "A"}', "unknown field 'nickname'"), ('{"name": {"a": 1}}', "must be a single value")],
)
def test_parse_address_arg_errors_are_usage_errors(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_address_arg(value)
    assert caught.value.exit_code == ExitCode.USAGE


def test_address_model_is_frozen_and_strict_about_extras() -> None:
    address = Address.model_validate(DEST)
    with pytest.raises(ValidationError):
        address.zip = "1"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Address.model_validate({**DEST, "planet": "Mars"})
