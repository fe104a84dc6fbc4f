"""The files a clerk fixes and feeds back: `--failed` says why each row failed, `--rejects` names each problem's
column, and `--failed` is written (its header alone) even when nothing failed, and listed in the summary."""

from __future__ import annotations

import csv
from pathlib import Path

from shipctl.manifest import FLAT_COLUMNS
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import make_manifest, row, write_manifest


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_the_failed_file_says_why_each_row_failed(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i) for i in range(4)]
    rows[1] = row(1, carrier="NoSuchCarrier")
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    failed = tmp_path / "failed.csv"

    result = invoke("create", str(manifest), "-o", "ndjson", "--failed", str(failed))

    assert result.exit_code == 3, result.stderr
    header, failed_rows = read_csv(failed)
    assert header[-2:] == ["error_code", "error_message"]  # after the manifest's own columns
    assert [r["reference"] for r in failed_rows] == ["ORD-00001"]
    assert failed_rows[0]["error_code"] == "NO_MATCHING_RATE"
    emitted = {r["reference"]: r for r in ndjson(result.stdout)}
    assert failed_rows[0]["error_message"] == emitted["ORD-00001"]["error_message"]
    assert failed_rows[0]["error_message"].startswith("no rate")  # the whole reason, not a code alone
    assert "failed rows  " + str(failed) + " (1 row to fix)" in result.stderr

    # The clerk fixes the row and feeds the file back: the error columns are shipctl's, never the manifest's.
    failed_rows[0]["carrier"] = ""
    fixed = write_manifest(tmp_path / "fixed.csv", failed_rows)
    rerun = invoke("create", str(fixed), "-o", "ndjson")
    assert rerun.exit_code == 0, rerun.stderr
    assert [r["status"] for r in ndjson(rerun.stdout)] == ["bought"]


def test_rejects_name_the_column_of_every_problem(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i) for i in range(3)]
    rows[1] = row(1, weight="heavy", to_zip="")
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    rejects = tmp_path / "rejects.csv"

    result = invoke("create", str(manifest), "-o", "ndjson", "--skip-invalid", "--rejects", str(rejects))

    assert result.exit_code == 3, result.stderr
    _, rejected = read_csv(rejects)
    assert [r["reference"] for r in rejected] == ["ORD-00001"]
    problems = rejected[0]["error"].split("; ")
    assert sorted(p.split(": ", 1)[0] for p in problems) == ["to_zip", "weight"]
    assert any(p.startswith("weight: 'heavy' is not a weight") for p in problems), problems


def test_nothing_failed_still_writes_the_failed_file_with_its_header(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    failed = tmp_path / "out" / "failed.csv"

    result = invoke("create", str(manifest), "-o", "ndjson", "--failed", str(failed))

    assert result.exit_code == 0, result.stderr
    header, failed_rows = read_csv(failed)
    assert failed_rows == []
    assert header == [*FLAT_COLUMNS, "error_code", "error_message"]
    assert f"failed rows  {failed} (header only: no row to fix)" in result.stderr
