"""`.xlsx` workbooks read directly: typed cells read as a CSV export would have them, sheet row numbers in the
problem report, `--sheet`, stdin, and `create`/`rates` over a workbook, through the real CLI."""

from __future__ import annotations

import csv
import datetime as dt
import re
import subprocess
import sys
import zipfile
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
        # Boston and Ware, Massachusetts: ZIPs that start with 0, whose zeros Excel's numbers drop.
        row(0, to_zip=2108, to_city="Boston", to_state="MA", weight=1.0, reference=dt.datetime(2024, 3, 1)),
        row(1, to_zip=1067, to_city="Ware", to_state="MA", weight=12.5, length=10, width=8.0, height=4),
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
    assert (first.exit_code, first.stderr) == (  # the first sheet, a header and no rows
        2, f"warning: unknown column ignored: hello\nerror: {book}: the manifest has no rows\n")
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


# ------------------------------------------------------------------------------ cells a sheet must not misread


def sheet_book(path: Path, rows: Sequence[Sequence[Any]], edit: Any = None) -> Path:
    """A one-sheet workbook of `rows`; `edit(sheet)` styles, merges or adds formulas before it is saved."""
    book = openpyxl.Workbook()
    sheet = book.active
    for values in rows:
        sheet.append(list(values))
    if edit is not None:
        edit(sheet)
    book.save(path)
    return path


def column_of(rows: list[list[Any]], name: str) -> int:
    return rows[0].index(name) + 1


def test_a_stale_dimension_tag_does_not_cut_rows_or_columns(tmp_path: Path) -> None:
    rows = rows_of(*(row(i) for i in range(5)))
    rows[0].append("insurance")  # column O: past the tag's last column
    for values in rows[1:]:
        values.append(100)
    assert len(rows[0]) == 15
    book = sheet_book(tmp_path / "full.xlsx", rows)
    stale = tmp_path / "stale.xlsx"
    with zipfile.ZipFile(book) as src, zipfile.ZipFile(stale, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(rb'<dimension ref="A1:O6"\s*/>', b'<dimension ref="A1:N4"/>', data)
                assert count == 1
            dst.writestr(item, data)
    result = invoke("validate", str(stale), "-o", "ndjson")
    assert (result.exit_code, result.stderr) == (0, "5 rows: 5 valid, 0 invalid\n"), result.stderr
    out = ndjson(result.stdout)
    assert [r["reference"] for r in out] == [f"ORD-{i:05d}" for i in range(5)]
    assert [r["insurance"] for r in out] == ["100"] * 5


def test_a_formula_with_no_saved_value_is_refused(env: Sandbox, tmp_path: Path) -> None:
    rows = rows_of(row(0, insurance=50), row(1, insurance=None), row(2, insurance=75))
    at = column_of(rows, "insurance")

    def formulas(sheet: Any) -> None:
        sheet.cell(row=3, column=at).value = "=B2*0+120"  # openpyxl saves no value for it: Excel never computed it

    book = sheet_book(tmp_path / "orders.xlsx", rows, formulas)
    result = invoke("validate", str(book))
    assert (result.exit_code, result.stderr.splitlines()) == (2, [
        "row 3, column insurance: a formula with no saved value: open and save the workbook in Excel, or export CSV",
        "3 rows: 2 valid, 1 invalid",
    ])
    created = invoke("create", str(book), "--skip-invalid", "-o", "ndjson", "-q")
    assert created.exit_code == 3, created.stderr
    assert sorted(entry["reference"] for entry in env.ledger()) == ["ORD-00000", "ORD-00002"]


def test_a_formula_with_a_saved_value_reads_as_its_value(tmp_path: Path) -> None:
    rows = rows_of(row(0, insurance=None))
    at = column_of(rows, "insurance")
    book = sheet_book(tmp_path / "orders.xlsx", rows, lambda s: s.cell(row=2, column=at, value="=60+40"))
    saved = tmp_path / "saved.xlsx"  # as Excel saves it: the formula and its last value
    with zipfile.ZipFile(book) as src, zipfile.ZipFile(saved, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(rb"<f>60\+40</f>\s*<v\s*/>", b"<f>60+40</f><v>100</v>", data)
                assert count == 1
            dst.writestr(item, data)
    result = invoke("validate", str(saved), "-o", "ndjson")
    assert (result.exit_code, result.stderr) == (0, "1 row: 1 valid, 0 invalid\n"), result.stderr
    assert ndjson(result.stdout)[0]["insurance"] == "100"


def test_merged_cells_are_refused_not_read_as_blank(env: Sandbox, tmp_path: Path) -> None:
    rows = rows_of(row(0, insurance=200), row(1, insurance=None), row(2, insurance=None), row(3, insurance=50))
    at = column_of(rows, "insurance")
    letter = openpyxl.utils.get_column_letter(at)
    book = sheet_book(tmp_path / "orders.xlsx", rows, lambda s: s.merge_cells(f"{letter}2:{letter}4"))
    result = invoke("validate", str(book))
    assert (result.exit_code, result.stderr.splitlines()) == (2, [
        f"rows 3, 4, column insurance: inside the merged cells {letter}2:{letter}4, whose value only their first "
        "cell holds: unmerge them and fill in every row",
        "4 rows: 2 valid, 2 invalid",
    ])
    created = invoke("create", str(book), "--skip-invalid", "-o", "ndjson", "-q")
    assert created.exit_code == 3, created.stderr
    assert sorted(entry["reference"] for entry in env.ledger()) == ["ORD-00000", "ORD-00003"]


def test_a_merged_range_in_an_ignored_column_or_past_the_data_is_no_problem(tmp_path: Path) -> None:
    rows = rows_of(row(0, notes="gift"), row(1, notes=None))
    at = column_of(rows, "notes")
    letter = openpyxl.utils.get_column_letter(at)
    book = sheet_book(tmp_path / "orders.xlsx", rows, lambda s: s.merge_cells(f"{letter}2:{letter}9"))
    result = invoke("validate", str(book))
    assert (result.exit_code, result.stderr) == (
        0, "warning: unknown column ignored: notes\n2 rows: 2 valid, 0 invalid\n")


@pytest.mark.parametrize("number_format", ['0.0 "lb"', "0.0\\ \\l\\b", '#,##0 "kg"', "0.0 lb"])
def test_a_unit_in_a_number_format_is_not_dropped(env: Sandbox, tmp_path: Path, number_format: str) -> None:
    rows = rows_of(row(0, weight=12), row(1, weight=12))
    at = column_of(rows, "weight")
    book = sheet_book(tmp_path / "orders.xlsx", rows,
                      lambda s: setattr(s.cell(row=3, column=at), "number_format", number_format))
    result = invoke("validate", str(book))
    assert result.exit_code == 2
    problem, summary = result.stderr.splitlines()
    assert problem.startswith("row 3, column weight: the number 12 is shown with '")
    assert f"by its number format {number_format!r}" in problem
    assert "type the value with its unit into the cell as text (e.g. 12 lb), or export CSV" in problem
    assert summary == "2 rows: 1 valid, 1 invalid"
    created = invoke("create", str(book), "--skip-invalid", "-o", "ndjson", "-q")
    assert created.exit_code == 3, created.stderr
    assert [entry["reference"] for entry in env.ledger()] == ["ORD-00000"]


@pytest.mark.parametrize("number_format", ["0.0", '"$"#,##0.00', '_("$"* #,##0.00_)', "[Red]0.00", "0.00E+00"])
def test_number_formats_without_words_read_as_the_number(tmp_path: Path, number_format: str) -> None:
    rows = rows_of(row(0, weight=12, insurance=100))
    book = sheet_book(tmp_path / "orders.xlsx", rows, lambda s: [
        setattr(s.cell(row=2, column=column_of(rows, c)), "number_format", number_format)
        for c in ("weight", "insurance")])
    result = invoke("validate", str(book), "-o", "ndjson")
    assert (result.exit_code, result.stderr) == (0, "1 row: 1 valid, 0 invalid\n"), result.stderr
    assert ndjson(result.stdout)[0]["insurance"] == "100"


@pytest.mark.parametrize("error", ["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!"])
def test_error_cells_are_refused(env: Sandbox, tmp_path: Path, error: str) -> None:
    book = sheet_book(tmp_path / "orders.xlsx", rows_of(row(0), row(1, to_name=error), row(2)))
    result = invoke("validate", str(book))
    assert (result.exit_code, result.stderr.splitlines()) == (2, [
        f"row 3, column to_name: the cell shows the error {error}: fix the formula or the data it uses",
        "3 rows: 2 valid, 1 invalid",
    ])
    created = invoke("create", str(book), "--skip-invalid", "-o", "ndjson", "-q")
    assert created.exit_code == 3, created.stderr
    assert sorted(entry["reference"] for entry in env.ledger()) == ["ORD-00000", "ORD-00002"]
    assert all(error not in str(entry) for entry in env.ledger())
