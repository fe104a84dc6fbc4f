"""`shipctl validate`: stdout carries only normalised rows, stderr the problems, warnings and summary."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipctl.cli.app import app
from shipctl.manifest.models import FLAT_COLUMNS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FROM = '{"name": "Acme", "street1": "388 Townsend St", "city": "San Francisco", "state": "CA", "zip": "94107"}'
BAD = "\n".join([
    "reference,to_name,to_street1,to_city,to_state,to_zip,to_country,weight,customs_signer",
    "A1,Jane,1 Beacon St,Boston,MA,02108,US,12,",
    "A2,Jane,1 Beacon St,Boston,MA,02108,US,heavy,",
    "A3,Jane,1 Beacon St,Boston,Massachusetts,2108,US,1.5 lb,",
    "A4,,1 Beacon St,Boston,ZZ,02108,US,12,",
    "A1,Jo,10 Downing St,London,,SW1A 2AA,GB,12,Steve",
]) + "\n"
BAD_PROBLEMS = [
    "row 3, column weight: 'heavy' is not a weight (e.g. 12, 12oz, 1.5 lb, 500g or 2kg)",
    "row 5, column to_name: a name or a company is required",
    "row 5, column to_state: 'ZZ' is not a US state (use a 2-letter code such as CA, NY)",
    "row 6, column reference: duplicate reference 'A1' (first on row 2)",
    "row 6, column customs_contents_type: required",
    "row 6, column item_*: at least one item is required: item_description, item_quantity, item_value, "
    "item_weight, item_origin_country",
]

runner = CliRunner()


def invoke(*args: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["validate", *args], input=stdin)
    assert "Traceback" not in result.stderr + result.stdout
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bad_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(BAD)
    return path


def test_valid_manifest_prints_only_a_summary_on_stderr() -> None:
    assert invoke(str(EXAMPLES / "manifest.csv")) == (0, "", "50 rows: 50 valid, 0 invalid\n")


@pytest.mark.parametrize("name", ["manifest.json", "manifest.ndjson"])
def test_json_examples_validate(name: str) -> None:
    assert invoke(str(EXAMPLES / name)) == (0, "", "50 rows: 50 valid, 0 invalid\n")


def test_every_problem_one_line_then_the_summary(bad_manifest: Path) -> None:
    code, out, err = invoke(str(bad_manifest), "--from", FROM)
    assert (code, out) == (2, "")
    assert err.splitlines() == [*BAD_PROBLEMS, "5 rows: 2 valid, 3 invalid"]


def test_quiet_keeps_problems_and_summary_but_drops_them_when_all_valid(bad_manifest: Path) -> None:
    code, _, err = invoke(str(bad_manifest), "--from", FROM, "--quiet")
    assert code == 2 and err.splitlines() == [*BAD_PROBLEMS, "5 rows: 2 valid, 3 invalid"]
    code, out, err = invoke(str(EXAMPLES / "excel_export.csv"), "--from", FROM, "-q")
    assert (code, out, err) == (0, "", "")


def test_excel_export_with_from_file_warns_once_about_unknown_columns() -> None:
    code, out, err = invoke(str(EXAMPLES / "excel_export.csv"), "--from", str(EXAMPLES / "from.json"))
    assert (code, out) == (0, "")
    assert err.splitlines() == ["warning: unknown column ignored: Notes", "11 rows: 11 valid, 0 invalid"]


def test_output_ndjson_writes_valid_rows_in_easypost_shape(bad_manifest: Path) -> None:
    code, out, err = invoke(str(bad_manifest), "--from", FROM, "--output", "ndjson")
    assert code == 2 and err.splitlines()[-1] == "5 rows: 2 valid, 3 invalid"
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["reference"] for r in records] == ["A1", "A3"]
    a3 = records[1]
    assert set(a3) == {"reference", "to_address", "from_address", "parcel", "options", "carrier", "service",
                       "insurance", "label_format", "deliver_within"}
    assert a3["to_address"] == {"name": "Jane", "street1": "1 Beacon St", "city": "Boston", "state": "MA",
                                "zip": "02108", "country": "US"}
    assert a3["parcel"] == {"weight": 24.0}
    assert a3["from_address"]["zip"] == "94107"


def test_output_json_is_one_array() -> None:
    code, out, _ = invoke(str(EXAMPLES / "manifest.ndjson"), "-o", "json")
    records = json.loads(out)
    assert code == 0 and len(records) == 50
    customs = [r for r in records if "customs_info" in r]
    assert len(customs) == 5 and all(r["customs_info"]["customs_items"] for r in customs)
    assert {r["options"].get("label_format") for r in records} == {"PDF", "ZPL"}


def test_output_csv_is_a_clean_manifest_that_validates_again(tmp_path: Path) -> None:
    code, out, _ = invoke(str(EXAMPLES / "excel_export.csv"), "--from", FROM, "--output", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert list(rows[0]) == list(FLAT_COLUMNS) and len(rows) == 11
    assert rows[0]["weight"] == "24" and rows[0]["to_state"] == "CA" and rows[1]["to_zip"] == "02108"
    again = tmp_path / "clean.csv"
    again.write_text(out)
    assert invoke(str(again)) == (0, "", "11 rows: 11 valid, 0 invalid\n")


def test_stdin_with_dash_and_format_override() -> None:
    text = (EXAMPLES / "manifest.ndjson").read_text()
    assert invoke("-", stdin=text) == (0, "", "50 rows: 50 valid, 0 invalid\n")
    code, _, err = invoke("-", "--format", "csv", stdin=text)
    assert code == 2 and "invalid" in err.splitlines()[-1]


def test_encoding_option() -> None:
    data = (EXAMPLES / "manifest.csv").read_text().replace("Elizabeth Swan", "Élisabeth Swan").encode("cp1252")
    code, _, err = invoke("-", stdin=data)
    assert code == 2
    assert err.splitlines() == ["error: line 2: bytes c9 are not valid utf-8 (pass --encoding, e.g. --encoding "
                                "cp1252 for a Windows/Excel export)"]
    assert invoke("-", "--encoding", "cp1252", stdin=data)[0] == 0


def test_unreadable_manifest_is_one_error_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"reference": "A",\n "to_name": }\n]\n')
    assert invoke(str(broken)) == (2, "", "error: line 3: invalid JSON: Expecting value\n")
    broken.write_text('[\n{"reference": "A",\n "to_name": \n\n')  # cut short: the last line with text
    assert invoke(str(broken)) == (2, "", "error: line 3: invalid JSON: Expecting value\n")
    assert invoke(str(tmp_path / "missing.csv")) == (
        2, "", f"error: cannot read {tmp_path / 'missing.csv'}: No such file or directory\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    assert invoke(str(tmp_path / "empty.csv")) == (2, "", "error: the manifest is empty\n")


def test_bad_from_is_a_usage_error() -> None:
    code, out, err = invoke(str(EXAMPLES / "manifest.csv"), "--from", '{"name": "Acme"}')
    assert (code, out) == (2, "")
    assert err.startswith("error: address (inline JSON): street1: required")
    assert len(err.splitlines()) == 1


def test_stdin_pipeline_in_a_real_process() -> None:
    """`cat manifest | shipctl validate - --output ndjson`, as a shell pipeline runs it."""
    data = (EXAMPLES / "manifest.csv").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "shipctl", "validate", "-", "--output", "ndjson"],
                          input=data, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode() == "50 rows: 50 valid, 0 invalid\n"
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    expected = [row["reference"] for row in csv.DictReader(io.StringIO(data.decode()))]
    assert [r["reference"] for r in records] == expected


def test_invalid_rows_in_a_real_process_exit_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "shipctl", "validate", "-", "--from", FROM],
                          input=BAD.encode(), capture_output=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [*BAD_PROBLEMS, "5 rows: 2 valid, 3 invalid"]


def test_an_insurance_over_the_cap_is_quoted_as_given() -> None:
    """`5000.001` read "5,000.00 is more than EasyPost insures (5,000.00 …)", and `1e309` printed 309 digits with
    thousands separators: the value is quoted as it was written."""
    manifest = "\n".join(["reference,to_name,to_street1,to_city,to_state,to_zip,weight,insurance",
                          "A1,Jane,1 Beacon St,Boston,MA,02108,12,5000.001",
                          "A2,Jane,1 Beacon St,Boston,MA,02108,12,1e309",
                          "A3,Jane,1 Beacon St,Boston,MA,02108,12,5000.00"]) + "\n"
    assert invoke("-", "--from", FROM, stdin=manifest) == (2, "", "\n".join([
        "row 2, column insurance: '5000.001' is more than EasyPost insures (5,000.00 USD a parcel)",
        "row 3, column insurance: '1e309' is more than EasyPost insures (5,000.00 USD a parcel)",
        "3 rows: 1 valid, 2 invalid",
    ]) + "\n")


def test_a_json_number_too_large_for_a_float_is_refused_never_read_as_inf() -> None:
    """`1e309` and `1e400` are read by JSON as infinity: a weight was quoted back as 'inf', a reference became `inf`
    (and an option was sent as "inf"). Each is refused in its column, and nothing else is said of it."""
    address = '"to_name": "Jane", "to_street1": "1 Beacon St", "to_city": "Boston", "to_state": "MA", "to_zip": "02108"'
    manifest = "\n".join([
        f'{{"reference": "A1", {address}, "weight": 1e309}}',
        f'{{"reference": 1e400, {address}, "weight": 12}}',
        f'{{"reference": "A3", {address}, "weight": 12, "options": {{"cod_amount": -1e400}}}}',
        f'{{"reference": "A4", {address}, "weight": 12, "insurance": 1e999}}',
        f'{{"reference": 12345678901234567890, {address}, "weight": 1.5e1}}',
    ]) + "\n"
    too_large = "a number too large to read (beyond 1.8e308)"
    code, out, err = invoke("-", "--from", FROM, "--output", "ndjson", stdin=manifest)
    assert (code, err.splitlines()) == (2, [
        f"row 1, column weight: {too_large}",
        f"row 2, column reference: {too_large}",
        f"row 3, column option_cod_amount: {too_large}",
        f"row 4, column insurance: {too_large}",
        "5 rows: 1 valid, 4 invalid",
    ])
    [valid] = [json.loads(line) for line in out.splitlines()]
    assert (valid["reference"], valid["parcel"]["weight"]) == ("12345678901234567890", 15.0)
