"""Bad input is refused before the built-in sandbox starts: one line, exit 2, and no "using the built-in
sandbox" line that would suggest the command got as far as the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import invoke
from tests.manifests import row, write_manifest

SANDBOX_LINE = "using the built-in sandbox"


@pytest.mark.parametrize("args", [
    ("rates", "--to", "bad", "--weight", "x"),
    ("rates", "--to", "10001", "--from", "94105", "--weight", "x"),
    ("rates", "--to", "10001", "--from", "94105", "--weight", "1", "--dims", "10x8"),
    ("rates", "--to", "10001", "--weight", "1"),
    ("rates", "--to", "10001", "--from", "{not json", "--weight", "1"),
    ("rates", "missing.csv"),
    ("rates", "--all"),
    ("refund",),
    ("refund", "shp_1", "--journal", "x.db"),
    ("refund", "--journal", "missing.db"),
    ("refund", "--reference", "R1"),
    ("track",),
    ("track", "EZ1000000001", "--interval", "5"),
])
def test_refused_before_the_sandbox_starts(args: tuple[str, ...], no_key: Path) -> None:
    result = invoke(*args, "--concurrency", "2")
    assert result.exit_code == 2, result.stderr
    assert SANDBOX_LINE not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_an_invalid_manifest_is_reported_before_the_sandbox_starts(no_key: Path, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, weight="heavy")])
    result = invoke("rates", str(manifest))
    assert result.exit_code == 2
    assert SANDBOX_LINE not in result.stderr
    assert "column weight" in result.stderr


def test_an_unknown_reference_is_refused_before_the_sandbox_starts(no_key: Path, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    bought = invoke("create", str(manifest), "-o", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr
    journal = f"{manifest}.journal.db"
    result = invoke("refund", "--journal", journal, "-r", "ORD-00000", "-r", "NOPE")
    assert result.exit_code == 2
    assert result.stderr == f"error: not in journal {journal}: NOPE; nothing was refunded\n"
    assert result.stdout == ""
