"""`.xlsx` workbooks read directly: typed cells read as a CSV export would have them, sheet row numbers in the
problem report, `--sheet`, stdin, and `create`/`rates` over a workbook, through the real CLI."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from shipctl.manifest.xlsx import cell_text
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import row

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMERIC = ("to_zip", "from_zip", "to_phone", "from_phone", "weight", "length", "width", "height", "insurance",
           "item_quantity", "item_value", "item_weight")


def typed(column: str, text: str) -> Any:
    """What Excel makes of a CSV cell it opens: numbers become numbers (leading zeros lost), empty cells empty."""
    if not text:
        return None
    if column in NUMERIC:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    return text


def workbook(path: Path, sheets: dict[str, Sequence[Sequence[Any]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for values in rows:
            sheet.append(list(values))
    book.save(path)
    return path


def example_workbook(path: Path) -> Path:
    with (EXAMPLES / "manifest.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    typed_rows = [[typed(column, text) for column, text in zip(header, r, strict=True)] for r in rows[1:]]
    return workbook(path, {"Orders": [header, *typed_rows], "Notes": [["remember the ribbons"]]})


def rows_of(*rows: dict[str, Any]) -> list[list[Any]]:
    header = list(dict.fromkeys(column for r in rows for column in r))
    return [header, *([r.get(c) for c in header] for r in rows)]


def test_the_example_manifest_as_a_workbook_validates_like_the_csv(tmp_path: Path) -> None:
    book = example_workbook(tmp_path / "orders.xlsx")
    result = invoke("validate", str(book), "-o", "ndjson")
    assert (result.exit_code, result.stderr) == (0, "50 rows: 50 valid, 0 invalid\n")
    from_csv = ndjson(invoke("validate", str(EXAMPLES / "manifest.csv"), "-o", "ndjson").stdout)
    from_book = ndjson(result.stdout)
    assert [r["reference"] for r in from_book] == [r["reference"] for r in from_csv]
    # ZIPs Excel stored as numbers (2108) come back with their zeros, as they do from a CSV export.
    assert [r["to_address"]["zip"] for r in from_book] == [r["to_address"]["zip"] for r in from_csv]
    assert "02108" in [r["to_address"]["zip"] for r in from_book]
    assert [r["parcel"] for r in from_book] == [r["parcel"] for r in from_csv]


def test_cells_read_as_excel_typed_them(tmp_path: Path) -> None:
    rows = rows_of(
        row(0, to_zip=2108, weight=1.0, reference=dt.datetime(2024, 3, 1)),
        row(1, to_zip=1067, weight=12.5, length=10, width=8.0, height=4),
    )
    book = openpyxl.Workbook()
    sheet = book.active
    for values in rows:
        sheet.append(values)
    sheet.cell(row=3, column=rows[0].index("to_zip") + 1).number_format = "00000"  # Excel's "Zip Code" format
    book.save(tmp_path / "typed.xlsx")
    result = invoke("validate", str(tmp_path / "typed.xlsx"), "-o", "csv")
    assert (result.exit_code, result.stderr) == (0, "2 rows: 2 valid, 0 invalid\n"), result.stderr
    out = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["reference"] for r in out] == ["2024-03-01", "ORD-00001"]
    assert [r["to_zip"] for r in out] == ["02108", "01067"]
    assert [r["weight"] for r in out] == ["1", "12.5"]
    assert out[1]["width"] == "8"


@pytest.mark.parametrize(
    ("value", "number_format", "text"),
    [(None, None, ""), ("02108", None, "02108"), (True, None, "true"), (2108, "General", "2108"),
     (2108, "00000", "02108"), (21081234, "00000-0000", "02108-1234"), (21081234, "00000\\-0000", "02108-1234"),
     (2108, "[<=99999]00000;00000-0000", "02108"), (21081234, "[<=99999]00000;00000-0000", "02108-1234"),
     (1.0, None, "1"), (0.1 + 0.2, None, "0.3"), (12.5, "0.00", "12.5"), (dt.date(2024, 3, 1), None, "2024-03-01"),
     (dt.datetime(2024, 3, 1, 9, 30), None, "2024-03-01 09:30:00"), (dt.time(9, 30), None, "09:30:00")],
)
def test_cell_text(value: Any, number_format: str | None, text: str) -> None:
    assert cell_text(value, number_format) == text


def test_problems_name_the_rows_excel_shows(tmp_path: Path) -> None:
    rows = rows_of(row(0), row(1, weight="heavy"), row(2), row(3, weight="heavy", to_state="ZZ"))
    book = workbook(tmp_path / "orders.xlsx", {"Orders": [[], ["Orders for March"], *rows]})
    result = invoke("validate", str(book))
    # Rows 1-2 are a blank row and a title: the title row is the header here, so say it honestly.
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: unknown column ignored: Orders for March")
    book = workbook(tmp_path / "orders.xlsx", {"Orders": [[], [], *rows]})
    result = invoke("validate", str(book))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "rows 5, 7, column weight: 'heavy' is not a weight (e.g. 12, 12oz, 1.5 lb, 500g or 2kg)",
        "row 7, column to_state: 'ZZ' is not a US state (use a 2-letter code such as CA, NY)",
        "4 rows: 2 valid, 2 invalid",
    ]


def test_sheet_picks_a_sheet_by_name_any_case(tmp_path: Path) -> None:
    book = workbook(tmp_path / "orders.xlsx", {"Notes": [["hello"]], "March": rows_of(row(0), row(1))})
    assert invoke("validate", str(book), "--sheet", "march").stderr == "2 rows: 2 valid, 0 invalid\n"
    first = invoke("validate", str(book))
    assert (first.exit_code, first.stderr) == (
        0, "warning: unknown column ignored: hello\n0 rows: 0 valid, 0 invalid\n")
    missing = invoke("validate", str(book), "--sheet", "April")
    assert (missing.exit_code, missing.stderr) == (
        2, "error: --sheet: the workbook has no sheet 'April' (its sheets: Notes, March)\n")


def test_sheet_with_a_csv_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", str(EXAMPLES / "manifest.csv"), "--sheet", "Orders")
    assert (result.exit_code, result.stderr) == (
        2, "error: --sheet goes with an .xlsx workbook, and this manifest is not one\n")


def test_an_empty_sheet_is_an_error(tmp_path: Path) -> None:
    book = workbook(tmp_path / "orders.xlsx", {"Orders": []})
    result = invoke("validate", str(book))
    assert (result.exit_code, result.stderr) == (2, "error: the workbook's first sheet is empty\n")


def test_a_workbook_on_stdin_whatever_its_name(tmp_path: Path) -> None:
    book = example_workbook(tmp_path / "orders.dat")
    proc = subprocess.run([sys.executable, "-m", "shipctl", "validate", "-"], input=book.read_bytes(),
                          capture_output=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr.decode()) == (0, b"", "50 rows: 50 valid, 0 invalid\n")
    assert invoke("validate", str(book)).stderr == "50 rows: 50 valid, 0 invalid\n"


def test_create_buys_from_a_workbook_sheet(env: Sandbox, tmp_path: Path) -> None:
    rows = rows_of(row(0, to_zip=2108, to_city="Boston", to_state="MA", to_street1="1 Beacon St"), row(1), row(2))
    book = workbook(tmp_path / "orders.xlsx", {"Notes": [["x"]], "Ship": rows})
    result = invoke("create", str(book), "--sheet", "Ship", "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in ndjson(result.stdout)] == ["bought"] * 3
    assert sorted(entry["reference"] for entry in env.ledger()) == ["ORD-00000", "ORD-00001", "ORD-00002"]


def test_create_from_stdin_workbook_and_skip_invalid_rejects(env: Sandbox, tmp_path: Path) -> None:
    book = workbook(tmp_path / "orders.xlsx", {"Orders": rows_of(row(0), row(1, weight="heavy"), row(2))})
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", "-", "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson", "-q",
                    input=book.read_bytes())  # type: ignore[arg-type]
    assert result.exit_code == 3, result.stderr
    assert "row 3, column weight: 'heavy' is not a weight" in result.stderr
    with rejects.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(r["line"], r["reference"], r["weight"]) for r in written] == [("3", "ORD-00001", "heavy")]


def test_rates_quotes_a_workbook_sheet(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    book = workbook(tmp_path / "orders.xlsx", {"Orders": rows_of(row(0), row(1))})
    result = invoke("rates", str(book), "--sheet", "Orders", "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert [r["reference"] for r in ndjson(result.stdout)] == ["ORD-00000", "ORD-00000", "ORD-00001", "ORD-00001"]
    one_off = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1", "--sheet", "Orders")
    assert (one_off.exit_code, one_off.stderr) == (2, "error: --sheet goes with a manifest\n")
