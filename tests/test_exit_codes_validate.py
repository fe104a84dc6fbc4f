"""`shipctl validate` exit codes: 0 every row valid; 2 (USAGE) invalid rows, unreadable manifest, bad usage."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipctl.cli.app import app
from shipctl.exit_codes import ExitCode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def exit_code(*args: str, stdin: str | None = None) -> int:
    result = runner.invoke(app, ["validate", *args], input=stdin)
    assert "Traceback" not in result.stderr
    return result.exit_code


def test_ok_when_every_row_is_valid() -> None:
    assert exit_code(str(EXAMPLES / "manifest.csv")) == ExitCode.OK == 0


def test_usage_for_a_manifest_with_a_header_and_no_rows() -> None:
    # As `create` refuses it: `validate X && create X` must not pass the gate and fail at the buy.
    assert exit_code("-", stdin="reference,to_name\n") == ExitCode.USAGE


@pytest.mark.parametrize(
    "stdin",
    ["reference,weight\nA,12\n",  # invalid rows
     "[\n{,\n",  # broken JSON
     "",  # empty
     ],
)
def test_usage_when_rows_are_invalid_or_the_manifest_unreadable(stdin: str) -> None:
    assert exit_code("-", stdin=stdin) == ExitCode.USAGE == 2


@pytest.mark.parametrize(
    "args",
    [["--format", "xml", "-"], ["--output", "yaml", "-"], ["--from", "{nope", "-"], ["--encoding", "klingon", "-"],
     ["/no/such/manifest.csv"], []],
)
def test_usage_for_bad_arguments(args: list[str]) -> None:
    assert exit_code(*args, stdin="") == ExitCode.USAGE
