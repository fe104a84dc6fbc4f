"""What `create` says at the end, read as a clerk reads it: counts in the singular when there is one, no rate for a
run that found everything already done, the row of an edited-after-purchase warning named once, where `--fresh`
put the old journal, and no lock file left behind."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import make_manifest, row, write_manifest


def test_one_shipment_is_singular(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    full = invoke("create", str(manifest), "-o", "ndjson")
    assert full.exit_code == 0, full.stderr
    assert "Summary: 1 shipment in " in full.stderr and "1 shipments" not in full.stderr
    quiet = invoke("create", str(manifest), "-o", "ndjson", "-q", "--journal", str(tmp_path / "other.db"))
    assert quiet.stderr.startswith("1 shipment: 1 bought"), quiet.stderr


def test_a_fully_resumed_run_says_so_without_a_rate(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0

    again = invoke("create", str(manifest), "-o", "ndjson")

    assert again.exit_code == 0, again.stderr
    assert re.search(r"^Summary: 3 shipments, all already done \(resumed from the journal\), \d+\.\d s$",
                     again.stderr, re.MULTILINE), again.stderr
    assert "/s overall" not in again.stderr and "no API call" not in again.stderr
    quiet = invoke("create", str(manifest), "-o", "ndjson", "-q")
    assert "all resumed from the journal" in quiet.stderr and "/s)" not in quiet.stderr
    assert len(env.ledger()) == 3


def test_a_row_edited_after_purchase_is_named_once(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0), row(1)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    write_manifest(manifest, [row(0, weight=30), row(1)])

    again = invoke("create", str(manifest), "-o", "ndjson")

    assert again.exit_code == 3, again.stderr
    warning = next(line for line in again.stderr.splitlines() if "changed after its label was bought" in line)
    assert warning.startswith("warning: row 2 (reference ORD-00000): the row changed after its label was bought")
    assert warning.count("row 2") == 1 and warning.count("ORD-00000") == 1
    record = next(r for r in ndjson(again.stdout) if r["reference"] == "ORD-00000")
    assert record["error_code"] == "EDITED_AFTER_PURCHASE"
    assert record["error_message"].startswith("the row changed after its label was bought")


def test_fresh_says_where_the_old_journal_went_and_lists_it(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0

    fresh = invoke("create", str(manifest), "-o", "ndjson", "--fresh")

    assert fresh.exit_code == 0, fresh.stderr
    kept = list(tmp_path.glob("orders.csv.journal.db.*.bak"))
    assert len(kept) == 1
    assert f"--fresh: previous journal kept as {kept[0]}" in fresh.stderr
    assert f"previous journal  {kept[0]} (set aside by --fresh)" in fresh.stderr  # in the "written" block
    assert len(env.ledger()) == 2  # adopted, not bought again


def no_lock_files(tmp_path: Path) -> bool:
    runs = tmp_path / "state" / "runs"
    return not list(tmp_path.glob("*.lock")) and not (runs.exists() and list(runs.iterdir()))


def test_no_lock_file_is_left_beside_the_journal(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0), row(1, carrier="NoSuchCarrier")]
    manifest = write_manifest(tmp_path / "orders.csv", rows)

    partial = invoke("create", str(manifest), "-o", "ndjson")
    assert partial.exit_code == 3, partial.stderr
    assert no_lock_files(tmp_path)
    assert invoke("create", str(manifest), "-o", "ndjson", "--fresh").exit_code == 3
    assert no_lock_files(tmp_path)

    # A journal refused before anything runs (it belongs to another API) leaves no lock either.
    with sqlite3.connect(tmp_path / "orders.csv.journal.db") as db:
        db.execute("UPDATE meta SET value = 'https://elsewhere.example/v2 (test key)' WHERE key = 'target'")
    refused = invoke("create", str(manifest), "-o", "ndjson")
    assert refused.exit_code == 2 and "records purchases made against" in refused.stderr
    assert no_lock_files(tmp_path)
