"""Identical validation problems are grouped: one line per distinct problem with its rows, a hint once.

Through the real CLI (`validate`, `create`'s and `rates`' validation passes), stdout and stderr apart.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shipctl.manifest import InvalidRow, Problem
from shipctl.manifest.problems import ProblemGroups
from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import ORIGIN, row, write_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HINT = "hint: give rows without from_* an origin: pass --from FILE or set SHIPCTL_FROM"
WEIGHT = "'heavy' is not a weight (e.g. 12, 12oz, 1.5 lb, 500g or 2kg)"


def no_origin(path: Path, count: int = 2000, heavy: tuple[int, ...] = (), bad_state: int | None = None) -> Path:
    """`count` rows without any from_* column; rows `heavy` have a bad weight, `bad_state` a bad state."""
    rows = []
    for i in range(count):
        r = {k: v for k, v in row(i).items() if not k.startswith("from_")}
        if i in heavy:
            r["weight"] = "heavy"
        if i == bad_state:
            r["to_state"] = "ZZ"
        rows.append(r)
    return write_manifest(path, rows)


@pytest.fixture
def quiet_env(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    return env


def test_validate_groups_a_missing_origin_into_one_line_and_keeps_every_distinct_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    manifest = no_origin(tmp_path / "big.csv", heavy=(10, 11, 12, 500, 1999), bad_state=42)
    result = invoke("validate", str(manifest))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "rows 2–2001 (2,000 rows), column from_*: required",
        f"rows 12–14, 502, 2001 (5 rows), column weight: {WEIGHT}",
        "row 44, column to_state: 'ZZ' is not a US state (use a 2-letter code such as CA, NY)",
        HINT,
        "2000 rows: 0 valid, 2000 invalid",
    ]


def test_a_long_list_of_rows_is_shortened_with_and_n_more(tmp_path: Path) -> None:
    rows = [row(i, weight="" if i % 2 else 12) for i in range(2000)]
    result = invoke("validate", str(write_manifest(tmp_path / "alt.csv", rows)))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "rows 3, 5, 7, 9, 11, 13 and 994 more (1,000 rows), column weight: required",
        "2000 rows: 1000 valid, 1000 invalid",
    ]


def test_an_origin_given_in_part_gets_its_own_hint(tmp_path: Path) -> None:
    rows = [row(i) for i in range(3)]
    for r in rows:
        r["from_street1"] = ""
    result = invoke("validate", str(write_manifest(tmp_path / "part.csv", rows)), "--from", str(EXAMPLES / "from.json"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "rows 2–4 (3 rows), column from_street1: required",
        "hint: --from and SHIPCTL_FROM fill in only rows whose from_* cells are all empty",
        "3 rows: 0 valid, 3 invalid",
    ]


def test_problems_found_before_a_manifest_error_are_still_printed(tmp_path: Path) -> None:
    manifest = tmp_path / "cut.ndjson"
    manifest.write_text('{"reference": "A", "weight": "heavy"}\n{"reference": "B", "weight": "heavy"}\n{"to_name": \n')
    result = invoke("validate", str(manifest), "--from", str(EXAMPLES / "from.json"))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert f"rows 1, 2, column weight: {WEIGHT}" in lines
    assert lines[-1] == "error: line 3: invalid JSON: Expecting value"


def test_create_groups_its_validation_pass_and_buys_nothing(quiet_env: Sandbox, tmp_path: Path) -> None:
    manifest = no_origin(tmp_path / "orders.csv", count=300)
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "rows 2–301 (300 rows), column from_*: required",
        HINT,
        "300 rows: 0 valid, 300 invalid; nothing was bought (fix the rows, or pass --skip-invalid)",
    ]
    assert quiet_env.ledger() == []


def test_a_zip_that_lost_a_digit_no_zero_restores_is_refused_and_nothing_is_bought(env: Sandbox,
                                                                                  tmp_path: Path) -> None:
    """`7870` in Texas: padded it would be 07870, a New Jersey ZIP. Boston's `2134` is 02134, as a spreadsheet
    that dropped its zero meant; the manifest fails as a whole, so neither is bought."""
    manifest = write_manifest(tmp_path / "orders.csv", [
        row(0, to_street1="1 Main St", to_city="Austin", to_state="TX", to_zip="7870"),
        row(1, to_street1="1 Main St", to_city="Boston", to_state="MA", to_zip="2134"),
    ])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "row 2, column to_zip: '7870' has 4 digits, not 5: a spreadsheet drops only leading zeros, and no TX ZIP "
        "code starts with 0; check the ZIP",
        "2 rows: 1 valid, 1 invalid; nothing was bought (fix the rows, or pass --skip-invalid)",
    ]
    assert env.ledger() == []
    one = invoke("create", str(write_manifest(tmp_path / "one.csv", [row(0, to_state="TX", to_zip="7870")])))
    assert one.exit_code == 2
    assert one.stderr.splitlines()[-1] == (
        "1 row: 0 valid, 1 invalid; nothing was bought (fix the rows, or pass --skip-invalid)")
    alone = write_manifest(tmp_path / "boston.csv", [row(1, to_city="Boston", to_state="MA", to_zip="2134")])
    valid = invoke("validate", str(alone), "-o", "ndjson")
    assert valid.exit_code == 0, valid.stderr
    assert json.loads(valid.stdout.splitlines()[0])["to_address"]["zip"] == "02134"


def test_create_skip_invalid_still_writes_one_reject_per_row(quiet_env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i, weight="heavy" if i % 2 else 12) for i in range(6)]
    manifest = write_manifest(tmp_path / "mixed.csv", rows)
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", str(manifest), "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson", "-q")
    assert result.exit_code == 3
    assert f"rows 3, 5, 7, column weight: {WEIGHT}" in result.stderr.splitlines()
    with rejects.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [r["line"] for r in written] == ["3", "5", "7"]


def test_rates_groups_its_validation_pass(quiet_env: Sandbox, tmp_path: Path) -> None:
    manifest = no_origin(tmp_path / "orders.csv", count=50, heavy=(3,))
    result = invoke("rates", str(manifest))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "rows 2–51 (50 rows), column from_*: required",
        f"row 5, column weight: {WEIGHT}",
        HINT,
        "error: 50 rows: 0 valid, 50 invalid; nothing was quoted",
    ]


def test_with_the_origin_given_the_same_manifest_is_valid(tmp_path: Path) -> None:
    manifest = no_origin(tmp_path / "big.csv", count=20)
    origin = {k.removeprefix("from_"): v for k, v in ORIGIN.items()}
    result = invoke("validate", str(manifest), "--from", json.dumps(origin))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "20 rows: 20 valid, 0 invalid\n")


def _invalid(line: int, column: str = "weight", message: str = "required") -> InvalidRow:
    return InvalidRow(line, [Problem(line, column, message)], {})


def test_groups_keep_first_seen_order_and_count_rows_once() -> None:
    lines: list[str] = []
    with ProblemGroups(lines.append) as groups:
        groups.add(_invalid(9, "to_zip"))
        for line in (2, 3, 4, 7, 8, 20):
            groups.add(_invalid(line))
        groups.add(InvalidRow(21, [Problem(21, "weight", "required"), Problem(21, "weight", "required")], {}))
    assert lines == ["row 9, column to_zip: required", "rows 2–4, 7, 8, 20, 21 (7 rows), column weight: required"]


def test_groups_are_printed_when_too_many_are_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shipctl.manifest.problems.MAX_GROUPS", 3)
    lines: list[str] = []
    groups = ProblemGroups(lines.append)
    for line in range(2, 6):
        groups.add(_invalid(line, message=f"bad {line}"))
    assert len(lines) == 3  # the fourth distinct problem made room by printing the first three
    groups.flush()
    assert lines[-1] == "row 5, column weight: bad 5"
