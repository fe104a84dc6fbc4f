"""Per-row shipping options (signature, insurance, return labels, ship date, label text, any other EasyPost option)
and the international pre-flight: what reaches the API (read back from the sandbox through the SDK), what the
results and the estimate say, and the rows refused before any call with their row and column."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests

from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY, invoke, ndjson
from tests.manifests import row, write_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOMORROW = (date.today() + timedelta(days=1)).isoformat()
BERLIN = {
    "to_street1": "Unter den Linden 77", "to_city": "Berlin", "to_state": "", "to_zip": "10117", "to_country": "DE",
    "customs_contents_type": "merchandise", "customs_signer": "Steve Brule", "item_description": "T-shirt",
    "item_quantity": 2, "item_value": "23.50", "item_weight": 8, "item_origin_country": "US",
    "item_hs_tariff_number": "6109.10",
}


def _sdk(sandbox: Sandbox) -> Any:
    return easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)


def test_option_columns_reach_the_api_and_the_results_say_what_was_applied(
        env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [
        row(0, **{"Signature Required": "adult", "Insured Value": "150", "Label Note": "PO 7731",
                  "Ship Date": TOMORROW, "option_saturday_delivery": "true",
                  "option_handling_instructions": "Fragile"}),
        row(1, **{"Signature Required": "yes", "return_label": "yes", "print_custom_2": "bin A4"}),
        row(2),
    ])
    result = invoke("create", str(manifest), "-o", "ndjson", "--label-format", "ZPL")
    assert result.exit_code == 0, result.output
    records = {r["reference"]: r for r in ndjson(result.stdout)}

    client = _sdk(env)
    try:
        first = client.shipment.retrieve(records["ORD-00000"]["shipment_id"]).to_dict()
        second = client.shipment.retrieve(records["ORD-00001"]["shipment_id"]).to_dict()
        plain = client.shipment.retrieve(records["ORD-00002"]["shipment_id"]).to_dict()
    finally:
        client._requests_session.close()
    options = first["options"]
    assert options["delivery_confirmation"] == "ADULT_SIGNATURE"
    assert options["print_custom_1"] == "PO 7731"
    assert options["saturday_delivery"] is True and options["handling_instructions"] == "Fragile"
    assert first["postage_label"]["label_date"].startswith(TOMORROW)
    assert first["insurance"] == "150.00" and any(fee["type"] == "InsuranceFee" for fee in first["fees"])
    assert second["is_return"] is True and second["options"]["delivery_confirmation"] == "SIGNATURE"
    assert not first["is_return"] and "delivery_confirmation" not in plain["options"] and plain["insurance"] is None
    # The label's free text is drawn on it: ZPL keeps it as a field a test can read.
    label = requests.get(first["postage_label"]["label_zpl_url"], timeout=30).text
    assert "PO 7731" in label
    assert "bin A4" in requests.get(second["postage_label"]["label_zpl_url"], timeout=30).text

    assert records["ORD-00000"]["insurance"] == "150.00"
    assert json.loads(records["ORD-00000"]["options"]) == {
        "saturday_delivery": True, "handling_instructions": "Fragile", "delivery_confirmation": "ADULT_SIGNATURE",
        "label_date": TOMORROW, "print_custom_1": "PO 7731"}
    assert json.loads(records["ORD-00001"]["options"]) == {
        "delivery_confirmation": "SIGNATURE", "print_custom_2": "bin A4", "is_return": True}
    assert records["ORD-00002"]["options"] is None and records["ORD-00002"]["insurance"] is None
    # The summary's cost table has the insurance fee on a line of its own, and it is what the sandbox charged.
    fee = next(Decimal(f["amount"]) for f in first["fees"] if f["type"] == "InsuranceFee")
    assert "insurance" in result.stderr and f"${fee:.2f}" in result.stderr


def test_the_estimate_includes_insurance_at_the_accounts_price(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, insurance="250"), row(1, insurance="40"), row(2)])
    result = invoke("create", str(manifest), "--dry-run", "-o", "ndjson")
    assert result.exit_code == 0, result.output
    records = ndjson(result.stdout)
    client = _sdk(env)
    try:
        user = client.user.retrieve_me()
    finally:
        client._requests_session.close()
    rate, minimum = Decimal(user.insurance_fee_rate), Decimal(user.insurance_fee_minimum)
    fees = sum((max((Decimal(v) * rate).quantize(Decimal("0.01")), minimum) for v in ("250", "40")), Decimal(0))
    total = sum((Decimal(r["rate"]) for r in records), Decimal(0)) + fees
    assert f"would cost ${total:.2f} (insurance ${fees:.2f} included)" in result.stderr
    assert env.ledger() == []  # a dry run buys nothing


def test_json_manifest_options_object_and_the_options_column(env: Sandbox, tmp_path: Path) -> None:
    # EasyPost's own option names in an options object go to shipctl's columns (checked, in the results).
    rows = [{**row(0), "options": {"label_format": "ZPL", "print_custom_1": "A-1", "saturday_delivery": True,
                                   "delivery_confirmation": "ADULT_SIGNATURE"}}]
    manifest = tmp_path / "orders.json"
    manifest.write_text(json.dumps(rows))
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 0, result.output
    record = ndjson(result.stdout)[0]
    assert json.loads(record["options"]) == {
        "saturday_delivery": True, "delivery_confirmation": "ADULT_SIGNATURE", "print_custom_1": "A-1"}
    client = _sdk(env)
    try:
        assert client.shipment.retrieve(record["shipment_id"]).options["label_format"] == "ZPL"
    finally:
        client._requests_session.close()
    # The options column (JSON, as shipctl writes it back) passes options through, but not around a column.
    around = write_manifest(tmp_path / "around.csv", [
        row(0, options='{"cod_amount": "12.00"}'), row(1, options='{"delivery_confirmation": "SIGNATURE"}'),
        row(2, options='{"a": 1', ), row(3, options='{"x": 1}', option_y="2")])
    result = invoke("validate", str(around))
    assert result.exit_code == 2
    assert "row 3, column option_delivery_confirmation: use the signature column for delivery_confirmation" in (
        result.stderr)
    assert "row 4, column options: not a JSON object of EasyPost options" in result.stderr
    assert "row 5, column options: give either option_* columns or options" in result.stderr
    assert "row 2," not in result.stderr


@pytest.mark.parametrize(
    ("changes", "column", "message"),
    [
        ({"item_hs_tariff_number": ""}, "item_hs_tariff_number",
         "an HS tariff number is required for goods to DE (item 1, 'T-shirt')"),
        ({"customs_declared_value": "50.00"}, "customs_declared_value",
         "the items add up to 23.50, not the declared 50.00"),
        ({"customs_declared_value": "47.00"}, "customs_declared_value",
         "the items add up to 23.50, not the declared 47.00 (item_value is the line's total, quantity × unit "
         "price, not the unit price)"),
        ({"item_value": "2600"}, "customs_eel_pfc",
         "2600 USD under tariff number 610910 is over 2,500 USD: the export needs an EEI filed in AES"),
        ({"item_value": "2600", "item_hs_tariff_number": "", "to_country": "JP", "to_city": "Tokyo",
          "to_zip": "100-0005", "to_street1": "1-1 Marunouchi"}, "customs_eel_pfc",
         "2600 USD in item 1 is over 2,500 USD"),
        ({"item_weight": "3 lb", "weight": 32}, "item_weight",
         "the items weigh 48 oz together, more than the parcel's 32 oz"),
        ({"customs_restriction_type": "quarantine"}, "customs_restriction_comments",
         "required when the restriction type is quarantine"),
        ({"customs_signer": ""}, "customs_signer", "required"),
        ({"signature": "maybe"}, "signature", "'maybe' is not a signature option: yes, adult, no"),
        ({"deliver_within": "0"}, "deliver_within", "0 is not between 1 and 30 business days"),
        ({"print_custom_1": "x" * 61}, "print_custom_1", "61 characters, at most 60 fit on the label"),
        ({"insurance": "250.555"}, "insurance", "'250.555' has more than 2 decimals"),
        ({"insurance": "5000.01"}, "insurance", "'5000.01' is more than EasyPost insures (5,000.00 USD a parcel)"),
        ({"label_date": "next week"}, "label_date", "'next week' is not a ship date"),
    ],
)
def test_a_row_that_fails_pre_flight_names_its_row_and_column_and_nothing_is_bought(
        env: Sandbox, tmp_path: Path, changes: dict[str, Any], column: str, message: str) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, **{**BERLIN, **changes})])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2, result.output
    assert f"row 3, column {column}: {message}" in result.stderr
    assert env.ledger() == []


def test_eu_documents_need_no_tariff_number_and_canada_is_exempt_from_the_eei_rule(
        env: Sandbox, tmp_path: Path) -> None:
    toronto = {**BERLIN, "to_street1": "100 King St W", "to_city": "Toronto", "to_state": "ON",
               "to_zip": "M5X 1A9", "to_country": "CA", "item_value": "2600", "item_hs_tariff_number": ""}
    documents = {**BERLIN, "customs_contents_type": "documents", "item_hs_tariff_number": "",
                 "item_description": "Contract"}
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, **toronto), row(1, **documents)])
    result = invoke("validate", str(manifest))
    assert result.exit_code == 0, result.output


def test_tariff_lines_are_counted_per_schedule_b_number_and_an_itn_lifts_the_rule(env: Sandbox, tmp_path: Path) -> None:
    items = json.dumps([
        {"description": "Shirt", "quantity": 40, "value": "2000", "weight": 8, "origin_country": "US",
         "hs_tariff_number": "6109.10.0004"},
        {"description": "Tank top", "quantity": 40, "value": "2000", "weight": 8, "origin_country": "US",
         "hs_tariff_number": "6109.10.0012"},
    ])
    tokyo = {**BERLIN, "to_country": "JP", "to_city": "Tokyo", "to_zip": "100-0005", "weight": 32}
    for key in [k for k in tokyo if k.startswith("item_")]:
        del tokyo[key]
    filed = {**tokyo, "customs_items": items, "customs_eel_pfc": "AES X20261203123456"}
    manifest = write_manifest(tmp_path / "orders.csv", [
        row(0, **tokyo, customs_items=items), row(1, **{**tokyo, "customs_items": items.replace("0012", "0004")}),
        row(2, **filed)])
    result = invoke("validate", str(manifest))
    assert result.exit_code == 2
    assert "row 2," not in result.stderr and "row 4," not in result.stderr
    assert "row 3, column customs_eel_pfc: 4000 USD under tariff number 6109100004 is over 2,500 USD" in result.stderr


def test_a_ship_date_in_the_past_fails_its_row_at_the_buy_not_the_manifest(env: Sandbox, tmp_path: Path) -> None:
    """Read as valid (a manifest rerun the next day must still resume what it bought); refused before its
    shipment is made, the other rows bought."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, label_date="2020-01-02"), row(1)])
    assert invoke("validate", str(manifest)).exit_code == 0
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 3, result.output
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    assert records["ORD-00000"]["error_code"] == "LABEL_DATE_PAST" and records["ORD-00000"]["shipment_id"] is None
    assert [e["reference"] for e in env.ledger()] == ["ORD-00001"]


def test_new_columns_leave_older_references_and_digests_alone() -> None:
    """A manifest without references, bought by shipctl before these columns, keeps its content references and
    digests (else a rerun would buy every row again, or call every row edited). The values are what shipctl at
    8ffcde1 computed for these example rows."""
    from shipctl.jobs.purchase import row_digest
    from shipctl.manifest import ValidRow, iter_rows

    rows = {r.row.reference: r.row for r in iter_rows(EXAMPLES / "manifest.csv") if isinstance(r, ValidRow)}
    assert (rows["ORD-1001"].content_key(), row_digest(rows["ORD-1001"])) == (
        "row-63aadf159b32", "e80e91ef8399b89096622944")
    assert (rows["ORD-1047"].content_key(), row_digest(rows["ORD-1047"])) == (
        "row-e2b7727747a0", "cff33baf6c994f8e19054231")


def test_the_same_row_spelt_differently_keeps_its_content_reference(tmp_path: Path) -> None:
    from shipctl.manifest import ValidRow, iter_rows

    def keys(rows: list[dict[str, Any]]) -> list[str]:
        path = write_manifest(tmp_path / "m.csv", [{k: v for k, v in r.items() if k != "reference"} for r in rows])
        return [r.row.reference for r in iter_rows(path) if isinstance(r, ValidRow)]

    a = keys([row(0, option_a="1", option_b="x", is_return="")])
    b = keys([row(0, option_b="x", option_a="1", is_return="false")])
    c = keys([row(0, options='{"b": "x", "a": "1"}')])
    assert a == b == c
    assert keys([row(0, option_a="2", option_b="x")]) != a


def test_return_labels_stay_off_the_days_scan_form(env: Sandbox, tmp_path: Path) -> None:
    from tests.close_day import buy, run_close, scan_forms, today

    buy(tmp_path / "orders.csv", [row(0, carrier="USPS"), row(1, carrier="USPS", is_return="true")])
    outcome, _ = run_close(today())
    assert outcome.excluded == {"a return label (it ships from the customer, not from this dock)": 1}
    forms = scan_forms(env)
    assert len(forms) == 1 and len(forms[0].tracking_codes) == 1


def test_an_international_labels_commercial_invoice_is_saved_beside_it(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, **BERLIN), row(1)])
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "--labels-dir", str(labels), "--label-format", "PDF", "-o", "ndjson")
    assert result.exit_code == 0, result.output
    saved = sorted(p.name for p in labels.iterdir())
    assert saved == ["ORD-00000.commercial_invoice.pdf", "ORD-00000.pdf", "ORD-00001.pdf"]
    assert (labels / "ORD-00000.commercial_invoice.pdf").read_bytes().startswith(b"%PDF")
