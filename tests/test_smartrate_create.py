"""`create --deliver-within/--confidence` and the manifest's deliver_within, end to end: the real SDK over HTTP to
the sandbox. The expected rate is computed here from SmartRate's answer read through the SDK, never by shipctl's
own selection code."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import easypost
import pytest

from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import PROD_KEY, TEST_KEY, invoke, ndjson
from tests.manifests import row, write_manifest


def smartrate_calls(sb: Sandbox, key: str = TEST_KEY) -> int:
    return sb.api.smartrates.calls(account_for_key(key))


def expected(client: easypost.EasyPostClient, shipment_id: str, days: int, confidence: int) -> dict[str, Any] | None:
    """The cheapest of the shipment's SmartRates whose time in transit at `confidence` is within `days`."""
    smart = client.shipment.get_smart_rates(shipment_id)
    in_time = [r for r in smart if r["time_in_transit"][f"percentile_{confidence}"] <= days]
    if not in_time:
        return None
    best = min(in_time, key=lambda r: Decimal(str(r["rate"])))
    return {"id": best["id"], "carrier": best["carrier"], "service": best["service"], "rate": f"{best['rate']:.2f}"}


def test_deliver_within_buys_the_cheapest_rate_meeting_the_percentile(
    env: Sandbox, client: easypost.EasyPostClient, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(i) for i in range(6)])
    result = invoke("create", str(manifest), "--deliver-within", "3", "--confidence", "90", "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    assert smartrate_calls(env) == 6  # one per row with a rule, before anything below asks again
    ledger = {e["reference"]: e for e in env.ledger()}
    assert sorted(ledger) == sorted(records)
    chose_dearer = 0
    for ref, record in records.items():
        want = expected(client, record["shipment_id"], 3, 90)
        assert want is not None
        bought = ledger[ref]
        assert (bought["rate_id"], bought["carrier"], bought["service"]) == (want["id"], want["carrier"],
                                                                             want["service"])
        assert record["rate"] == want["rate"]
        assert record["rate_choice"].startswith(
            f"cheapest within 3 business days at 90%: {want['carrier']} {want['service']} {want['rate']} ")
        shipment = client.shipment.retrieve(record["shipment_id"])
        cheapest = min(shipment.rates, key=lambda r: Decimal(r.rate))
        if cheapest.id != want["id"]:
            chose_dearer += 1
            assert f"passed over: {cheapest.carrier} {cheapest.service} {cheapest.rate} (" in record["rate_choice"]
    assert chose_dearer  # the rule mattered: plain "cheapest" would have bought something else


def test_a_rows_deliver_within_wins_over_the_flag_and_confidence_applies_to_both(
    env: Sandbox, client: easypost.EasyPostClient, tmp_path: Path
) -> None:
    rows = [row(0), row(1, deliver_within="1 day"), row(2, deliver_within=6), row(3)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    result = invoke("create", str(manifest), "--deliver-within", "4", "--confidence", "75", "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    ledger = {e["reference"]: e for e in env.ledger()}
    for ref, days in {"ORD-00000": 4, "ORD-00001": 1, "ORD-00002": 6, "ORD-00003": 4}.items():
        want = expected(client, records[ref]["shipment_id"], days, 75)
        assert want is not None
        assert ledger[ref]["rate_id"] == want["id"], ref
        plural = "day" if days == 1 else "days"
        assert records[ref]["rate_choice"].startswith(f"cheapest within {days} business {plural} at 75%: ")


def test_no_rate_in_time_fails_the_row_and_buys_nothing(
    env: Sandbox, client: easypost.EasyPostClient, tmp_path: Path
) -> None:
    # Overnight services' 99th percentile is more than one business day (the sandbox's documented spread).
    manifest = write_manifest(tmp_path / "m.csv", [row(0), row(1, deliver_within=1)])
    result = invoke("create", str(manifest), "--confidence", "99", "-o", "ndjson", "-q")
    assert result.exit_code == 3
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    failed = records["ORD-00001"]
    assert failed["status"] == "failed" and failed["error_code"] == "DELIVERY_TIME_NOT_MET"
    assert expected(client, failed["shipment_id"], 1, 99) is None  # the sandbox agrees: nothing arrives in time
    message = failed["error_message"]
    assert message.startswith("no rate arrives within 1 business day at 99%; nothing was bought; offered: ")
    smart = client.shipment.get_smart_rates(failed["shipment_id"])
    for rate in smart:  # every offer listed with its days at the percentile
        assert (f"{rate['carrier']} {rate['service']} {rate['rate']:.2f} "
                f"({rate['time_in_transit']['percentile_99']} days at p99)") in message
    assert [e["reference"] for e in env.ledger()] == ["ORD-00000"]  # the row without a rule is bought as before
    assert records["ORD-00000"]["rate_choice"] is None


def test_dry_run_says_how_many_smartrate_calls_it_made_and_reports_the_choice(
    env: Sandbox, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0), row(1, deliver_within=2), row(2), row(3, deliver_within=5)])
    result = invoke("create", str(manifest), "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert "2 SmartRate calls made to choose rates by delivery time; nothing was bought" in result.stderr
    assert smartrate_calls(env) == 2  # only the rows with a rule called it
    records = {r["reference"]: r for r in __import__("json").loads(result.stdout)}
    assert records["ORD-00001"]["rate_choice"].startswith("cheapest within 2 business days at 90%: ")
    assert records["ORD-00000"]["rate_choice"] is None and records["ORD-00002"]["rate_choice"] is None
    assert env.ledger() == []


def test_the_production_confirmation_counts_the_smartrate_calls(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "m.csv", [row(i) for i in range(3)])
    refused = invoke("create", str(manifest), "--deliver-within", "3", "-o", "ndjson")
    assert "3 SmartRate calls made to choose rates by delivery time" in refused.stderr
    assert "refusing to buy" in refused.stderr and env.ledger() == []
    assert smartrate_calls(env, PROD_KEY) == 3


def test_a_rerun_never_buys_twice_and_keeps_the_reason(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0, deliver_within=6), row(1, deliver_within=1)])
    first = invoke("create", str(manifest), "--confidence", "99", "-o", "ndjson", "-q")
    assert first.exit_code == 3  # ORD-00001: nothing overnight arrives in a day at p99
    again = invoke("create", str(manifest), "--confidence", "99", "-o", "ndjson", "-q")
    records = {r["reference"]: r for r in ndjson(first.stdout)}
    second = {r["reference"]: r for r in ndjson(again.stdout)}
    assert second["ORD-00000"]["purchase"] == "resumed"
    assert second["ORD-00000"]["rate_choice"] == records["ORD-00000"]["rate_choice"]
    # The failed row's shipment was journaled before its SmartRate call: the rerun reuses it and asks again.
    assert second["ORD-00001"]["shipment_id"] == records["ORD-00001"]["shipment_id"]
    assert second["ORD-00001"]["error_code"] == "DELIVERY_TIME_NOT_MET"
    assert smartrate_calls(env) == 3
    # A looser percentile on the same journal buys it, on that same shipment, once.
    third = invoke("create", str(manifest), "--confidence", "50", "-o", "ndjson", "-q")
    assert third.exit_code == 0, third.stderr
    bought = {r["reference"]: r for r in ndjson(third.stdout)}["ORD-00001"]
    assert bought["shipment_id"] == records["ORD-00001"]["shipment_id"] and bought["purchase"] == "new"
    assert sorted(e["reference"] for e in env.ledger()) == ["ORD-00000", "ORD-00001"]


def test_a_rule_on_an_international_row_is_refused_before_any_call(env: Sandbox, tmp_path: Path) -> None:
    abroad = row(1, to_country="CA", to_state="ON", to_zip="K1M 1M4", to_city="Ottawa", to_street1="24 Sussex Dr",
                 customs_contents_type="merchandise", customs_signer="Acme", item_description="T-shirt",
                 item_quantity=1, item_value=10, item_weight=5, item_origin_country="US")
    manifest = write_manifest(tmp_path / "m.csv", [row(0), abroad])
    result = invoke("create", str(manifest), "--deliver-within", "3")
    assert result.exit_code == 2
    assert "row 3, column deliver_within: --deliver-within 3: SmartRate's delivery times are for US domestic" \
        in result.stderr
    assert smartrate_calls(env) == 0 and env.ledger() == []


def test_flags_are_checked(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0)])
    for args, said in (
        (("--deliver-within", "0"), "--deliver-within: 0 is not between 1 and 30 business days"),
        (("--deliver-within", "soon"), "--deliver-within: 'soon' is not a number of business days"),
        (("--deliver-within", "3", "--confidence", "80"), "--confidence must be 50, 75, 85, 90, 95, 97 or 99"),
        (("--deliver-within", "3", "--select", "fastest"), "--select fastest, not both"),
    ):
        result = invoke("create", str(manifest), *args)
        assert result.exit_code == 2, args
        assert said in result.stderr, result.stderr
    assert env.ledger() == []
