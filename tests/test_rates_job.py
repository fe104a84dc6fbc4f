"""The `rates` job on its own, without the CLI: a `Headless` host, `open_session` on the built-in sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shipctl.engine.sizing import size_pools
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.jobs import Headless, open_session
from shipctl.jobs.rates import (
    BULK_COLUMNS,
    RATE_COLUMNS,
    Filters,
    ManifestQuery,
    ManifestQuote,
    OneOffQuery,
    OneOffQuote,
)
from shipctl.manifest import parse_address_arg
from shipctl.sandbox import Sandbox
from tests.gateway import gateway_in_front
from tests.manifests import make_manifest, row, write_manifest

SIZING = size_pools(concurrency=4)


def _address(zip_code: str) -> dict[str, Any]:
    return parse_address_arg(zip_code, allow_zip=True).to_easypost()


def _one_off(host: Headless, filters: Filters | None = None) -> list[dict[str, Any]]:
    query = OneOffQuery(_address("10001"), _address("94105"), {"weight": 24.0}, filters or Filters())
    with open_session(SIZING, total=1, announce=host.detail) as session:
        records = OneOffQuote(query, host).run(session)
        assert session.stats.succeeded == 1
    return records


def test_one_off_quote_on_the_built_in_sandbox(no_key: Path) -> None:
    host = Headless()
    records = _one_off(host)
    assert len(records) == 9
    assert all(tuple(r) == RATE_COLUMNS for r in records)
    amounts = [Decimal(r["rate"]) for r in records]
    assert amounts == sorted(amounts)
    assert {r["carrier"] for r in records} == {"USPS", "UPS", "FedEx"}
    assert all(r["delivery_date"] for r in records)
    assert any("using the built-in sandbox" in notice for notice in host.notices)
    assert host.asked == []  # a quote spends nothing: nobody is asked


def test_one_off_filters_and_a_filter_nothing_matches(no_key: Path) -> None:
    records = _one_off(Headless(), Filters(carriers=("ups",), services=("Ground",)))
    assert [(r["carrier"], r["service"]) for r in records] == [("UPS", "Ground")]
    with pytest.raises(ShipctlError, match="no rate matches --carriers/--services; offered: ") as raised:
        _one_off(Headless(), Filters(carriers=("DHL",)))
    assert raised.value.exit_code == ExitCode.USAGE


def _no_stateless_rates(method: str, path: str, answer: Any) -> tuple[int, str, bytes] | None:
    if path.startswith("/beta/"):
        return 404, "application/json", json.dumps({"error": {"code": "NOT_FOUND", "message": "not found"}}).encode()
    return None


def test_the_quoter_falls_back_to_shipments_once_and_says_so_once(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Headless()
    job = ManifestQuote(ManifestQuery(make_manifest(tmp_path / "m.csv", 4), "m.csv"), host)
    records: list[dict[str, Any]] = []
    with gateway_in_front(env, monkeypatch, _no_stateless_rates), open_session(SIZING, total=4) as session:
        outcome = job.run(session, records.append)
    assert outcome.quoted == 4 and len(records) == 8
    assert [n for n in host.notices if "stateless rates are not offered here" in n] == [
        "stateless rates are not offered here (NOT_FOUND); quoting by creating shipments (nothing is bought)"]
    assert len(env.store.listing("shipment")) == 4  # one unbought shipment per row
    assert env.ledger() == []


def test_manifest_quote_in_input_order_with_totals_as_data(no_key: Path, tmp_path: Path) -> None:
    rows = [row(i) for i in range(5)] + [row(5, carrier="USPS", service="NoSuchService")]
    host = Headless()
    job = ManifestQuote(ManifestQuery(write_manifest(tmp_path / "m.csv", rows), "m.csv"), host)
    assert job.validate() == 6
    records: list[dict[str, Any]] = []
    with open_session(SIZING, total=6, announce=host.detail) as session:
        outcome = job.run(session, records.append)

    assert all(tuple(r) == BULK_COLUMNS for r in records)
    expected = [(f"ORD-{i:05d}", pick) for i in range(5) for pick in ("cheapest", "fastest")]
    assert [(r["reference"], r["pick"]) for r in records] == [*expected, ("ORD-00005", None)]
    failed = records[-1]
    assert failed["error_code"] == "NO_RATES" and "NoSuchService" in failed["error_message"]
    assert (outcome.rows, outcome.quoted, outcome.failed, outcome.code) == (6, 5, 1, ExitCode.PARTIAL)

    # The totals are data: the "cheapest" sum is the sum of the rows' cheapest picks.
    cheapest = sum((Decimal(r["rate"]) for r in records if r["pick"] == "cheapest"), Decimal(0))
    assert outcome.totals.quoted == 5
    assert outcome.totals.cheapest == {"USD": cheapest}
    lines = outcome.totals.lines()
    assert {line.carrier for line in lines} == {"USPS", "UPS", "FedEx"}
    assert all(line.rows + line.missing == 5 and line.currency == "USD" for line in lines)
    assert [line.amount for line in lines] == sorted(line.amount for line in lines)


def test_manifest_quote_show_all_and_carrier_filter(no_key: Path, tmp_path: Path) -> None:
    query = ManifestQuery(make_manifest(tmp_path / "m.csv", 3), "m.csv", filters=Filters(carriers=("UPS",)),
                          show_all=True)
    job = ManifestQuote(query, Headless())
    records: list[dict[str, Any]] = []
    with open_session(SIZING, total=job.validate()) as session:
        outcome = job.run(session, records.append)
    assert outcome.code == ExitCode.OK and outcome.quoted == 3
    assert {r["carrier"] for r in records} == {"UPS"} and all(r["pick"] is None for r in records)
    by_row = [[Decimal(r["rate"]) for r in records if r["reference"] == f"ORD-{i:05d}"] for i in range(3)]
    assert all(len(prices) > 1 and prices == sorted(prices) for prices in by_row)
    [ups] = outcome.totals.lines()
    assert (ups.carrier, ups.rows, ups.missing, ups.amount) == ("UPS", 3, 0, sum(p[0] for p in by_row))


def test_an_invalid_manifest_is_refused_before_any_session(tmp_path: Path) -> None:
    host = Headless()
    manifest = write_manifest(tmp_path / "bad.csv", [row(0), row(1, weight="heavy")])
    with pytest.raises(ShipctlError, match="2 rows: 1 valid, 1 invalid; nothing was quoted") as raised:
        ManifestQuote(ManifestQuery(manifest, "bad.csv"), host).validate()
    assert raised.value.exit_code == ExitCode.USAGE
    assert any(notice.startswith("row 3, column weight") for notice in host.notices)
