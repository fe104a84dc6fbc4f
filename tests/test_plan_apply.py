"""`shipctl plan` / `shipctl apply`: apply buys exactly the planned rates, once; every refusal buys nothing. The
sandbox's ledger is the truth about what was bought."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl import plans
from shipctl.sandbox import Sandbox, start_sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest
from tests.sdk import sdk
from tests.test_dead_run_rerun import HeldThenLanded


def _plan(tmp_path: Path, rows: list[dict[str, Any]], *extra: str, code: int = 0
          ) -> tuple[Path, Path, dict[str, Any]]:
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    out = tmp_path / "plan.json"
    result = invoke("plan", str(manifest), "--out", str(out), "-o", "ndjson", *extra)
    assert result.exit_code == code, result.output  # 3: a row could not be planned (the others are)
    return manifest, out, json.loads(out.read_text())


def _ledger(env: Sandbox) -> dict[str, str]:
    """reference -> the rate id bought for it; fails on a reference bought twice."""
    entries = env.ledger()
    counts = Counter(str(e["reference"]) for e in entries)
    assert all(n == 1 for n in counts.values()), counts
    return {str(e["reference"]): str(e["rate_id"]) for e in entries}


def test_apply_buys_exactly_the_planned_rates_and_a_second_apply_buys_nothing(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i) for i in range(6)]
    rows[2] = row(2, service="Teleport")  # no such service: fails while planning, never bought
    manifest, out, document = _plan(tmp_path, rows, "--select", "fastest", code=3)
    assert env.ledger() == []  # planning buys nothing
    planned = {r["reference"]: r for r in document["rows"]}
    assert sorted(planned) == [f"ORD-{i:05d}" for i in (0, 1, 3, 4, 5)]
    assert [r["reference"] for r in document["not_planned"]] == ["ORD-00002"]
    assert document["manifest"]["sha256"] == plans.file_sha256(manifest)
    assert document["totals"]["by_currency"]["USD"] == str(sum(
        (plans.Decimal(r["rate"]) for r in planned.values()), plans.Decimal(0)))

    # apply takes no rule of its own: the plan chose (fastest), apply buys those very rate ids.
    result = invoke("apply", str(out), "-o", "ndjson", "--approved-by", "Dana")
    assert result.exit_code == 0, result.output  # applied in full (the row the plan left out is not its problem)
    assert _ledger(env) == {ref: r["rate_id"] for ref, r in planned.items()}
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    assert records["ORD-00002"]["status"] == "skipped" and records["ORD-00002"]["error_code"] == "NOT_IN_PLAN"
    with sqlite3.connect(document["journal"]) as db:
        approvals = db.execute("SELECT value FROM meta WHERE key LIKE 'approved_by:%'").fetchall()
    assert approvals == [(f"Dana ({document['digest']})",)]

    again = invoke("apply", str(out), "-o", "ndjson")
    assert again.exit_code == 0, again.output
    assert {r["purchase"] for r in ndjson(again.stdout) if r["status"] == "bought"} == {"resumed"}
    assert len(env.ledger()) == 5


def _write_document(path: Path, document: dict[str, Any]) -> None:
    document["digest"] = plans.digest_of(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize("case", ["altered", "manifest changed", "expired", "not a plan"])
def test_a_plan_that_cannot_be_applied_is_refused_before_anything_is_bought(
        env: Sandbox, tmp_path: Path, case: str) -> None:
    manifest, out, document = _plan(tmp_path, [row(i) for i in range(3)])
    if case == "altered":
        document["rows"][0]["rate"] = "0.01"  # someone lowers a price in the file
        out.write_text(json.dumps(document))
        expected = "was altered after it was made"
    elif case == "manifest changed":
        write_manifest(manifest, [row(i) for i in range(4)])
        expected = "changed since the plan was made"
    elif case == "expired":  # a plan made two days ago, valid for a day, intact
        made = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
        document["created_at"] = made.isoformat()
        document["expires_at"] = (made + dt.timedelta(days=1)).isoformat()
        _write_document(out, document)
        expected = "the plan expired at"
    else:
        out.write_text('{"rows": []}')
        expected = "is not a shipctl plan"
    result = invoke("apply", str(out))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert env.ledger() == []


def test_a_plan_for_another_api_is_refused(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = _plan(tmp_path, [row(0)])
    with start_sandbox(latency="none") as other:
        monkeypatch.setenv("EASYPOST_API_BASE", other.api_base)
        result = invoke("apply", str(out))
        assert other.ledger() == []
    assert result.exit_code == 2 and "the plan was made against" in result.stderr
    assert env.ledger() == []


def test_a_plan_made_with_a_test_key_is_refused_for_a_production_key(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = _plan(tmp_path, [row(0)])
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    result = invoke("apply", str(out), "--yes")
    assert result.exit_code == 2 and "this run talks to" in result.stderr
    assert env.ledger() == []


def _repriced(factor: str) -> Any:
    """A gateway rule: every rate on a retrieved shipment now costs `factor` times as much."""
    def rule(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method != "GET" or not path.startswith("/v2/shipments/shp_"):
            return None
        body = answer.json()
        for rate in body.get("rates") or []:
            rate["rate"] = str((plans.Decimal(rate["rate"]) * plans.Decimal(factor)).quantize(plans.Decimal("0.01")))
        return answer.status_code, "application/json", json.dumps(body).encode()
    return rule


def test_drift_within_the_limit_buys_and_beyond_it_fails_the_row(env: Sandbox, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    prices = {"factor": "1"}

    def rule(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if prices["factor"] == "1":
            return None
        return _repriced(prices["factor"])(method, path, answer)  # type: ignore[no-any-return]

    with gateway_in_front(env, monkeypatch, rule):
        _, out, document = _plan(tmp_path, [row(i) for i in range(3)])
        prices["factor"] = "1.04"  # every rate is 4% dearer when apply reads it
        strict = invoke("apply", str(out), "-o", "ndjson", "--all-or-nothing")
        assert strict.exit_code == 2, strict.output  # refused, as --max-cost refuses
        assert "--all-or-nothing: nothing was bought" in strict.stderr
        assert {r["error_code"] for r in ndjson(strict.stdout)} == {"PLANNED_RATE_DRIFT"}
        assert env.ledger() == []

        refused = invoke("apply", str(out), "-o", "ndjson", "--max-drift", "0.01")
        assert refused.exit_code == 3
        assert "beyond --max-drift 0.01; nothing was bought" in ndjson(refused.stdout)[0]["error_message"]
        assert env.ledger() == []

        allowed = invoke("apply", str(out), "-o", "ndjson", "--max-drift", "5%")
        assert allowed.exit_code == 0, allowed.output
    assert _ledger(env) == {r["reference"]: r["rate_id"] for r in document["rows"]}


def test_max_cost_holds_for_apply(env: Sandbox, tmp_path: Path) -> None:
    _, out, _ = _plan(tmp_path, [row(i) for i in range(3)])
    result = invoke("apply", str(out), "--max-cost", "1.00")
    assert result.exit_code == 2 and "is above --max-cost" in result.stderr
    assert env.ledger() == []


def test_a_production_plan_is_applied_only_with_a_yes(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    _, out, document = _plan(tmp_path, [row(i) for i in range(2)])
    assert document["mode"] == "production"
    refused = invoke("apply", str(out))  # no terminal to ask at, no --yes
    assert refused.exit_code == 2 and "production mode: 2 labels to buy" in refused.stderr
    assert env.ledger() == []
    bought = invoke("apply", str(out), "--yes")
    assert bought.exit_code == 0, bought.output
    assert _ledger(env) == {r["reference"]: r["rate_id"] for r in document["rows"]}


@pytest.mark.slow
def test_apply_killed_mid_run_then_applied_again_buys_every_planned_row_once(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = HeldThenLanded()
    with gateway_in_front(env, monkeypatch, gate.rule, hold=gate.hold):
        try:
            _, out, document = _plan(tmp_path, [row(i) for i in range(4)])
            command = [sys.executable, "-m", "shipctl", "apply", str(out), "-o", "ndjson", "--progress", "off"]
            doomed = subprocess.Popen([*command, "--concurrency", "1"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
            assert gate.arrived.wait(120), "no buy reached the gateway"
            doomed.send_signal(signal.SIGKILL)
            assert doomed.wait(timeout=60) == -signal.SIGKILL
            gate.release.set()
            gate.wait_landed(1)  # the dead run's buy is committed
            rerun = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                                   env=dict(os.environ), check=False)
        finally:
            gate.release.set()
    assert rerun.returncode == 0, rerun.stderr
    assert _ledger(env) == {r["reference"]: r["rate_id"] for r in document["rows"]}


def test_rows_bought_before_the_plan_are_resumed_not_skipped(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(2)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    write_manifest(manifest, [row(i) for i in range(4)])
    _, out, document = _plan(tmp_path, [row(i) for i in range(4)])
    assert sorted(r["reference"] for r in document["rows"]) == ["ORD-00002", "ORD-00003"]
    result = invoke("apply", str(out), "-o", "ndjson")
    assert result.exit_code == 0, result.output
    records = {r["reference"]: (r["status"], r["purchase"]) for r in ndjson(result.stdout)}
    assert records == {"ORD-00000": ("bought", "resumed"), "ORD-00001": ("bought", "resumed"),
                       "ORD-00002": ("bought", "new"), "ORD-00003": ("bought", "new")}
    assert sorted(_ledger(env)) == [f"ORD-{i:05d}" for i in range(4)]


def test_an_older_plan_applied_after_a_newer_one_buys_nothing_and_says_so(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    cheap, fast = tmp_path / "cheap.json", tmp_path / "fast.json"
    assert invoke("plan", str(manifest), "--out", str(cheap)).exit_code == 0
    assert invoke("plan", str(manifest), "--out", str(fast), "--select", "fastest").exit_code == 0
    assert invoke("apply", str(fast)).exit_code == 0
    bought = _ledger(env)
    stale = invoke("apply", str(cheap), "-o", "ndjson")
    assert stale.exit_code == 3, stale.output
    assert {r["error_code"] for r in ndjson(stale.stdout)} == {"BOUGHT_NOT_AS_PLANNED"}
    assert _ledger(env) == bought  # nothing bought twice


def test_plan_refuses_an_out_that_is_the_journal_before_creating_anything(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = invoke("plan", str(manifest), "--out", str(tmp_path / "orders.csv.journal.db"))
    assert result.exit_code == 2 and "--out is the journal itself" in result.stderr
    assert not (tmp_path / "orders.csv.journal.db").exists()
    assert sdk(env).shipment.all(page_size=5)["shipments"] == []  # the dry run never started


def test_an_approval_is_recorded_only_when_buying_starts(env: Sandbox, tmp_path: Path) -> None:
    _, out, document = _plan(tmp_path, [row(0)])
    assert invoke("apply", str(out), "--max-cost", "0.01", "--approved-by", "Mallory").exit_code == 2
    with sqlite3.connect(document["journal"]) as db:
        assert db.execute("SELECT count(*) FROM meta WHERE key LIKE 'approved_by:%'").fetchone() == (0,)
