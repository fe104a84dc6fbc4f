"""A file shipctl wrote reads back without warnings: the `--rejects` and `--failed` columns shipctl adds are
ignored silently by `create` and `validate`; any other unknown column is still named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import row, write_manifest


def test_a_rejects_file_fed_back_warns_about_nothing_shipctl_added(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, weight="heavy"), row(2)])
    rejects = tmp_path / "rejects.csv"
    first = invoke("create", str(manifest), "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson", "-q")
    assert first.exit_code == 3, first.stderr
    with rejects.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert header[0] == "line" and header[-1] == "error"

    checked = invoke("validate", str(rejects))
    assert checked.exit_code == 2
    assert "unknown column" not in checked.stderr
    assert checked.stderr.splitlines() == [
        "row 2, column weight: 'heavy' is not a weight (e.g. 12, 12oz, 1.5 lb, 500g or 2kg)",
        "1 row: 0 valid, 1 invalid",
    ]
    # Fixed in place and fed back to create: bought, and still no warning.
    text = rejects.read_text().replace(",heavy,", ",12,")
    rejects.write_text(text)
    again = invoke("create", str(rejects), "-o", "ndjson")
    assert again.exit_code == 0, again.stderr
    assert "warning" not in again.stderr


def test_a_failed_file_with_its_error_columns_reads_back_cleanly(tmp_path: Path) -> None:
    failed = write_manifest(tmp_path / "failed.csv", [
        {**row(0), "error_code": "NO_RATES", "error_message": "no rate matches --carriers"},
    ])
    result = invoke("validate", str(failed))
    assert (result.exit_code, result.stderr) == (0, "1 row: 1 valid, 0 invalid\n")


def test_json_rows_with_shipctls_columns_read_back_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "failed.ndjson"
    path.write_text(json.dumps({**row(0), "line": 7, "error": "weight: required"}) + "\n")
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr) == (0, "1 row: 1 valid, 0 invalid\n")


def test_other_unknown_columns_are_still_named(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "orders.csv", [{**row(0), "error": "x", "status": "paid", "Zip5": "02108"}])
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr) == (
        0, "warning: unknown columns ignored: status, Zip5\n1 row: 1 valid, 0 invalid\n")
