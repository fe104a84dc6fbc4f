"""`report` never adds test spend (a test key, the built-in sandbox) to production spend: each journal's labels are
grouped and totalled per mode, as per currency."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from shipctl.jobs.report import journal_mode
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.manifests import row, write_manifest


def _create(tmp_path: Path, name: str, count: int, *extra: str) -> Decimal:
    """A `create` run of `count` labels into its own journal; what its labels cost."""
    rows = [row(i, reference=f"{name}-{i:03d}") for i in range(count)]
    manifest = write_manifest(tmp_path / f"{name}.csv", rows)
    done = invoke("create", str(manifest), "--output", "ndjson", "--quiet", *extra)
    assert done.exit_code == 0, done.stderr
    return sum((Decimal(r["rate"]) for r in ndjson(done.stdout) if r["status"] == "bought"), Decimal(0))


def test_test_and_production_spend_are_totalled_apart(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_spend = _create(tmp_path, "T", 3)
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    live_spend = _create(tmp_path, "L", 4, "--yes")
    monkeypatch.delenv("EASYPOST_API_KEY")
    monkeypatch.delenv("EASYPOST_API_BASE")
    sandbox_spend = _create(tmp_path, "S", 2)  # the built-in sandbox: no key at all

    done = invoke("report", "-o", "csv")
    assert done.exit_code == 0, done.stderr
    records = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(records[0])[-1] == "mode"  # the new field last: readers of the others by position unaffected
    totals = {r["mode"]: r for r in records if r["section"] == "total"}
    assert set(totals) == {"production", "test"}
    assert (int(totals["production"]["labels"]), Decimal(totals["production"]["spend"])) == (4, live_spend)
    assert (int(totals["test"]["labels"]), Decimal(totals["test"]["spend"])) == (5, test_spend + sandbox_spend)
    groups = [r for r in records if r["section"] == "group"]
    assert sum(Decimal(g["spend"]) for g in groups if g["mode"] == "production") == live_spend
    assert [r["mode"] for r in records if r["section"] == "total"] == ["production", "test"]

    table = invoke("report", "-o", "table")
    assert table.exit_code == 0, table.stderr
    text = table.stdout
    production, test = text.index("Labels by day (production)"), text.index("Labels by day (test: no real money)")
    assert production < test
    assert f"${live_spend:,.2f}" in text[production:test].split("total USD")[1].splitlines()[0]
    assert f"${test_spend + sandbox_spend:,.2f}" in text[test:].split("total USD")[1].splitlines()[0]


def test_a_journals_mode_from_its_meta() -> None:
    """The mode its first run settled, else its target's; unknown counts as production (money that may be real)."""
    assert journal_mode({"mode": "test", "target": "sandbox"}) == "test"
    assert journal_mode({"mode": "production", "target": "http://127.0.0.1:1/v2 (test key)"}) == "production"
    assert journal_mode({"target": "sandbox"}) == "test"
    assert journal_mode({"target": "http://127.0.0.1:1/v2 (test key)"}) == "test"
    assert journal_mode({"target": "https://api.easypost.com/v2 (production key)"}) == "production"
    assert journal_mode({"target": "https://api.easypost.com/v2 (unknown key)"}) == "production"
    assert journal_mode({}) == "production"
