"""`shipctl rates`: one-off and bulk quotes, the real SDK over real HTTP to the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import make_manifest, row, write_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RATE_KEYS = {"carrier", "service", "rate", "currency", "delivery_days", "delivery_date"}
TO_JSON = json.dumps({"name": "Ann", "street1": "350 5th Ave", "city": "New York", "state": "NY", "zip": "10118"})


@pytest.fixture
def env(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The shared `env`, with no $SHIPCTL_FROM from outside and a terminal wide enough for whole tables."""
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return env


def prices(rows: list[dict[str, Any]]) -> list[Decimal]:
    return [Decimal(r["rate"]) for r in rows]


def test_one_off_zip_to_zip_sorted_by_price_without_creating_a_shipment(env: Sandbox) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1.5lb", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert len(rows) == 9
    assert all(set(r) == RATE_KEYS for r in rows)
    assert prices(rows) == sorted(prices(rows))
    assert {r["carrier"] for r in rows} == {"USPS", "UPS", "FedEx"}
    assert all(isinstance(r["delivery_days"], int) for r in rows)
    assert env.store.listing("shipment") == []  # quoted statelessly: nothing created
    assert "error" not in result.stderr


def test_one_off_table_on_request(env: Sandbox) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "24", "--dims", "10x8x4",
                    "--output", "table")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[0:1] == ["carrier"] and "delivery_days" in lines[0]
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) == 9
    amounts = [Decimal(line.split("│")[2].strip()) for line in body]
    assert amounts == sorted(amounts)


def test_weight_units_change_the_quote(env: Sandbox) -> None:
    light = ndjson(invoke("rates", "--to", "10001", "--from", "94105", "--weight", "8oz", "-o", "ndjson").stdout)
    heavy = ndjson(invoke("rates", "--to", "10001", "--from", "94105", "--weight", "2kg", "-o", "ndjson").stdout)
    metric = ndjson(invoke("rates", "--to", "10001", "--from", "94105", "--weight", "226.8g", "--dims",
                           "25x20x10cm", "-o", "ndjson").stdout)
    assert prices(heavy)[0] > prices(light)[0]
    assert prices(metric) == prices(light)  # 226.8 g is 8 oz


def test_one_off_with_json_addresses_and_filters(env: Sandbox) -> None:
    result = invoke("rates", "--to", TO_JSON, "--from", str(EXAMPLES / "from.json"), "--weight", "12",
                    "--carriers", "ups,fedex", "--services", "Ground,FEDEX_GROUND,2ndDayAir", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert {(r["carrier"], r["service"]) for r in rows} == {("UPS", "Ground"), ("FedEx", "FEDEX_GROUND"),
                                                           ("UPS", "2ndDayAir")}
    assert prices(rows) == sorted(prices(rows))


def test_from_defaults_to_the_environment(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCTL_FROM", "94105")
    result = invoke("rates", "--to", "10001", "--weight", "1lb", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "10001", "--from", "94105", "--weight", "heavy"), "--weight"),
        (("--to", "10001", "--from", "94105", "--weight", "-2"), "--weight"),
        (("--to", "not-a-zip", "--from", "94105", "--weight", "1"), "--to"),
        (("--to", '{"zip": "10001", "colour": "red"}', "--from", "94105", "--weight", "1"), "unknown field"),
        (("--to", "10001", "--weight", "1"), "--from"),
        (("--from", "94105", "--weight", "1"), "give --to and --weight"),
        (("--to", "10001", "--from", "94105", "--weight", "1", "--dims", "10x8"), "--dims"),
        (("--to", "10001", "--from", "94105", "--weight", "1", "--carriers", "DHL"), "no rate matches"),
        (("--to", "10001", "--from", "94105", "--weight", "1", "--all"), "--all goes with a manifest"),
        (("--to", "10001", "--from", "94105", "--weight", "1", "--output", "xml"), "--output must be"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(env: Sandbox, args: tuple[str, ...], message: str) -> None:
    result = invoke("rates", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_an_incomplete_json_address_exits_2(env: Sandbox) -> None:
    result = invoke("rates", "--to", '{"name": "Ann", "country": "US"}', "--from", "94105", "--weight", "1")
    assert result.exit_code == 2
    assert "--to: address (inline JSON): zip: required for US addresses" in result.stderr
    assert result.stdout == ""


def _refuse_every_quote(method: str, path: str, answer: Any) -> tuple[int, str, bytes] | None:
    """A front for the sandbox whose API refuses every quote's parcel, as EasyPost answers a parameter it rejects."""
    if method == "POST" and (path.startswith("/beta/rates") or path.endswith("/shipments")):
        body = json.dumps({"error": {"code": "PARAMETER.INVALID", "message": "Invalid parameter.", "errors": [
            {"field": "parcel.weight", "message": "must be at most 1120 ounces"}]}}).encode()
        return 422, "application/json", body
    return None


def test_a_quote_the_api_refuses_exits_2_with_its_message(
    env: Sandbox, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_in_front(sandbox, monkeypatch, _refuse_every_quote) as proxy:
        monkeypatch.setenv("EASYPOST_API_BASE", proxy.api_base)
        result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "80lb")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the API refused the quote: ")
    assert "parcel.weight: must be at most 1120 ounces" in result.stderr
    assert result.stdout == ""


def test_a_weight_no_parcel_carrier_takes_is_refused_before_any_call(env: Sandbox) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "200lb")
    assert result.exit_code == 2
    assert "'200lb' is 3200 oz, more than a parcel carrier takes" in result.stderr
    assert env.store.listing("shipment") == [] and result.stdout == ""


def _no_stateless_rates(method: str, path: str, answer: Any) -> tuple[int, str, bytes] | None:
    """A front for the sandbox that does not offer `/beta/rates` (as some accounts and servers do not)."""
    if path.startswith("/beta/"):
        body = json.dumps({"error": {"code": "NOT_FOUND", "message": "not found", "errors": []}}).encode()
        return 404, "application/json", body
    return None


@pytest.fixture
def no_stateless(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with gateway_in_front(sandbox, monkeypatch, _no_stateless_rates) as proxy:
        yield proxy.api_base


def test_falls_back_to_a_shipment_where_stateless_rates_are_not_offered(
    env: Sandbox, no_stateless: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", no_stateless)
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1.5lb", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert len(rows) == 9 and prices(rows) == sorted(prices(rows))
    assert "stateless rates are not offered here" in result.stderr
    assert len(env.store.listing("shipment")) == 1  # quoted through one shipment
    assert env.ledger() == []  # never bought


def test_bulk_example_manifest_cheapest_and_fastest_per_row(env: Sandbox, tmp_path: Path) -> None:
    # The example manifest, with its last row pinned to a service no carrier offers.
    text = (EXAMPLES / "manifest.csv").read_text(encoding="utf-8")
    assert text.count("FirstClassPackageInternationalService") == 1
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text.replace("FirstClassPackageInternationalService", "FirstClassMailInternational"))
    result = invoke("rates", str(manifest), "--output", "ndjson")
    rows = ndjson(result.stdout)
    quoted = [r for r in rows if r["error_code"] is None]
    failed = [r for r in rows if r["error_code"] is not None]
    references = list(dict.fromkeys(r["reference"] for r in rows))
    assert len(references) == 50
    assert [r["reference"] for r in rows] == sorted((r["reference"] for r in rows), key=references.index)
    for ref in references:
        picks = [r["pick"] for r in quoted if r["reference"] == ref]
        assert picks in ([], ["cheapest", "fastest"])
    # The pinned row fails, the others are quoted, the run exits 3.
    assert [r["reference"] for r in failed] == ["ORD-1049"]
    assert failed[0]["error_code"] == "NO_RATES" and "FirstClassMailInternational" in failed[0]["error_message"]
    assert result.exit_code == 3
    assert "totals per carrier" in result.stderr
    assert "50 rows: 49 quoted, 1 failed" in result.stderr
    assert env.store.listing("shipment") == []
    assert env.ledger() == []


def test_bulk_all_offers_and_carrier_totals(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 6)
    result = invoke("rates", str(manifest), "--all", "--output", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 6 * 9
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_ref.setdefault(r["reference"], []).append(r)
    assert list(by_ref) == [f"ORD-{i:05d}" for i in range(6)]
    for offers in by_ref.values():
        assert prices(offers) == sorted(prices(offers))
    # Per carrier: the sum over rows of that carrier's cheapest offer, printed on stderr.
    usps = sum((min(Decimal(r["rate"]) for r in offers if r["carrier"] == "USPS") for offers in by_ref.values()),
               Decimal(0))
    line = next(line for line in result.stderr.splitlines() if line.strip().startswith("USPS"))
    assert line.split()[1:] == ["6", "rows", f"${usps:,.2f}"]


def test_bulk_carrier_filter_and_row_failures(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0), row(1, carrier="UPS", service="Ground"), row(2, carrier="USPS", service="Express")]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    result = invoke("rates", str(manifest), "--carriers", "UPS", "--output", "ndjson", "--quiet")
    assert result.exit_code == 3
    out = ndjson(result.stdout)
    assert [(r["reference"], r["pick"], r["carrier"]) for r in out] == [
        ("ORD-00000", "cheapest", "UPS"), ("ORD-00000", "fastest", "UPS"),
        ("ORD-00001", "cheapest", "UPS"), ("ORD-00001", "fastest", "UPS"),
        ("ORD-00002", None, None),
    ]
    assert out[2]["service"] == "Ground"  # the row's pin is honoured
    assert out[4]["error_code"] == "NO_RATES"
    assert "3 rows: 2 quoted, 1 failed" in result.stderr
    assert "totals per carrier" not in result.stderr  # --quiet


def test_bulk_invalid_manifest_quotes_nothing_and_exits_2(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "bad.csv", [row(0), row(1, weight="heavy")])
    result = invoke("rates", str(manifest))
    assert result.exit_code == 2
    assert "row 3, column weight" in result.stderr
    assert "nothing was quoted" in result.stderr
    assert result.stdout == ""


def test_bulk_reads_stdin(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    result = invoke("rates", "-", "--output", "ndjson", "--quiet", input=manifest.read_text())
    assert result.exit_code == 0, result.stderr
    assert [r["reference"] for r in ndjson(result.stdout)] == [f"ORD-{i:05d}" for i in range(3) for _ in (0, 1)]


@pytest.mark.slow
def test_rates_ndjson_composes_in_a_pipeline(env: Sandbox) -> None:
    """`shipctl rates … --output ndjson` in a real process: every stdout line is one JSON rate, nothing else."""
    done = subprocess.run(
        [sys.executable, "-m", "shipctl", "rates", "--to", "10001", "--from", "94105", "--weight", "1.5lb",
         "--output", "ndjson"],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 9
    rates = [json.loads(line) for line in lines]
    assert all(set(r) == RATE_KEYS for r in rates)
    assert prices(rates) == sorted(prices(rates))
    assert "{" not in done.stderr


def test_estimated_delivery_counts_business_days() -> None:
    from datetime import date

    from shipctl.jobs.rates import estimated_delivery

    friday = date(2026, 11, 27)
    assert estimated_delivery(1, friday) == "2026-11-30"  # over the weekend to Monday
    assert estimated_delivery(3, friday) == "2026-12-02"
    assert estimated_delivery(None, friday) is None


def test_one_off_rates_show_an_estimated_delivery_date(env: Sandbox) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1lb", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert rows and all(r["delivery_date"] and r["delivery_date"] > "2026" for r in rows)
