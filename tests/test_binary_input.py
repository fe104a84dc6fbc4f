"""Files that are not manifests: binary files, other spreadsheet formats, JSON that is no manifest, whitespace.

Each is one `error:` line saying what the file looks like and what to do (exit 2), never an encoding hint for
a binary file, never Python's codec or csv wording, never a traceback.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from shipctl.errors import ManifestError
from shipctl.manifest import iter_rows
from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BINARY = "error: this looks like a binary file, not a CSV/JSON manifest\n"
SAVE_AS = "save it as .xlsx (Excel Workbook) or CSV"


def garbage(path: Path) -> Path:
    path.write_bytes(random.Random(11).randbytes(4096))
    return path


@pytest.mark.parametrize("command", ["validate", "create"])
def test_a_binary_file_is_called_one_not_an_encoding_problem(
    command: str, env: Sandbox, tmp_path: Path
) -> None:
    bin_file = garbage(tmp_path / "garbage.bin")
    result = invoke(command, str(bin_file), "--from", str(EXAMPLES / "from.json"))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", BINARY)
    # Following the old advice gives the same answer, not Python's name for the codec ("charmap").
    result = invoke(command, str(bin_file), "--encoding", "cp1252")
    assert (result.exit_code, result.stderr) == (2, BINARY)
    assert env.ledger() == []


def test_a_binary_file_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "shipctl", "validate", str(garbage(tmp_path / "garbage.bin"))],
                          capture_output=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr.decode()) == (2, b"", BINARY)


def test_a_wrong_encoding_names_the_encoding_as_the_user_wrote_it() -> None:
    data = (EXAMPLES / "manifest.csv").read_bytes().replace(b"Elizabeth", b"Eliz\x81beth", 1)
    result = invoke("validate", "-", "--encoding", "cp1252", input=data)  # type: ignore[arg-type]
    assert result.exit_code == 2
    assert result.stderr == ("error: line 2: bytes 81 are not valid cp1252 (check --encoding: this file was saved "
                             "in another encoding than cp1252)\n")
    assert "charmap" not in result.stderr


def test_utf8_errors_suggest_cp1252_only_when_cp1252_reads_the_file() -> None:
    data = (EXAMPLES / "manifest.csv").read_bytes().replace(b"Elizabeth", b"Eliz\x81beth", 1)
    result = invoke("validate", "-", input=data)  # type: ignore[arg-type]
    assert result.stderr == ("error: line 2: bytes 81 are not valid utf-8 (pass --encoding with the encoding the "
                             "file was saved in, e.g. --encoding latin-1)\n")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
         f"error: this looks like an old-style Excel workbook (.xls) or a password-protected one: {SAVE_AS}, "
         "without a password\n"),
        ("label.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
         "error: this looks like a PDF document, not a CSV/JSON manifest\n"),
    ],
)
def test_other_formats_say_what_they_are(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)


def _zip(path: Path, members: dict[str, str], mimetype: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        if mimetype is not None:
            archive.writestr(zipfile.ZipInfo("mimetype"), mimetype)  # stored first, uncompressed, as ODF wants
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_an_ods_a_xlsb_and_a_zip_are_refused_with_what_to_do(tmp_path: Path) -> None:
    ods = _zip(tmp_path / "orders.ods", {"content.xml": "<x/>"}, "application/vnd.oasis.opendocument.spreadsheet")
    result = invoke("create", str(ods))
    assert (result.exit_code, result.stderr) == (
        2, f"error: this looks like an OpenDocument spreadsheet (.ods): {SAVE_AS}\n")
    xlsb = _zip(tmp_path / "orders.xlsb", {"[Content_Types].xml": "<x/>", "xl/workbook.bin": "x"})
    result = invoke("validate", str(xlsb))
    assert (result.exit_code, result.stderr) == (
        2, f"error: this is an Excel binary workbook (.xlsb), which shipctl does not read: {SAVE_AS}\n")
    other = _zip(tmp_path / "orders.zip", {"orders.csv": "a,b\n"})
    result = invoke("validate", str(other))
    assert (result.exit_code, result.stderr) == (
        2, "error: this looks like a ZIP archive, not a CSV/JSON manifest or an .xlsx workbook (unzip it first?)\n")


def test_utf16_without_a_byte_order_mark_says_which_encoding_to_pass(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes((EXAMPLES / "manifest.csv").read_text().encode("utf-16-le"))
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr) == (
        2, "error: this looks like UTF-16 text without a byte-order mark: pass --encoding utf-16-le\n")
    assert invoke("validate", str(path), "--encoding", "utf-16-le").stderr == "50 rows: 50 valid, 0 invalid\n"


def test_utf16_advice_names_the_encoding_that_was_passed(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes((EXAMPLES / "manifest.csv").read_text().encode("utf-16-be"))
    result = invoke("validate", str(path), "--encoding", "latin-1")
    assert (result.exit_code, result.stderr) == (
        2, "error: this looks like UTF-16 text without a byte-order mark, not latin-1: pass --encoding utf-16-be\n")


NUL_AT = "a NUL byte: a manifest never holds one, so the file is damaged or is not text\n"
NULS_AT = "NUL bytes: a manifest never holds them, so the file is damaged or is not text\n"


@pytest.mark.parametrize("line", [3, 46])  # in the first 8 KiB, which are sniffed, and past them
@pytest.mark.parametrize("command", ["validate", "create"])
def test_a_nul_byte_in_a_cell_names_its_line(command: str, line: int, env: Sandbox, tmp_path: Path) -> None:
    """One NUL in a name was "a binary file" with no line (within the first 8 KiB) or went into the name (past
    them): it is the line it is on, and nothing is bought."""
    lines = (EXAMPLES / "manifest.csv").read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b",", b",Ann\x00", 1)
    path = tmp_path / "orders.csv"
    path.write_bytes(b"\n".join(lines))
    result = invoke(command, str(path), "--from", str(EXAMPLES / "from.json"))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: line {line}: {NUL_AT}")
    assert env.ledger() == []


@pytest.mark.parametrize("encoding", [None, "latin-1", "utf-8"])
def test_a_block_of_nul_bytes_is_not_called_utf16(tmp_path: Path, encoding: str | None) -> None:
    """A header and then NULs (what a crash leaves of a file) was "UTF-16 without a byte-order mark", even with
    --encoding latin-1: every other byte is NUL there, but so are the bytes between."""
    path = tmp_path / "orders.csv"
    path.write_bytes((EXAMPLES / "manifest.csv").read_bytes().split(b"\n")[0] + b"\n" + bytes(5000))
    result = invoke("validate", str(path), *(["--encoding", encoding] if encoding else []))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: line 2: {NULS_AT}")


@pytest.mark.parametrize(
    ("encoding", "message"),
    [(None, "error: this looks like a binary file, not a CSV/JSON manifest (it starts with nothing but NUL bytes)\n"),
     ("latin-1", "error: this looks like a binary file, not a CSV/JSON manifest (it starts with nothing but NUL "
                 "bytes)\n"),
     # Taken at its word, UTF-16 has NUL characters on line 1, not a line longer than 16 MiB.
     ("utf-16-le", f"error: line 1: {NULS_AT}")],
)
def test_dev_zero_is_not_text(encoding: str | None, message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "shipctl", "validate", "/dev/zero",
                           *(["--encoding", encoding] if encoding else [])],
                          capture_output=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr.decode()) == (2, b"", message)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_a_nul_byte_in_json_names_its_line(tmp_path: Path, fmt: str) -> None:
    obj = json.dumps({"reference": "A\x00"}).replace("\\u0000", "\x00")  # a raw NUL, not JSON's escape
    text = f"[\n{obj}\n]" if fmt == "json" else f"{{}}\n{obj}\n"
    path = tmp_path / f"orders.{fmt}"
    path.write_text(text)
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr) == (2, f"error: line 2: {NUL_AT}")


def test_pythons_csv_wording_never_reaches_the_user(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"reference,weight\r\nA,12\rB,13\n")
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("error: line 2: a carriage return inside an unquoted field: the file mixes line "
                             "endings; save it again as CSV, or put that field in double quotes\n")
    assert "universal-newline" not in result.stderr


def test_an_unclosed_quote_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('reference,weight\nA,"12\n' + "x" * 140_000 + "\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.endswith("probably a double quote (\") that is never closed\n")
    assert "field limit" not in result.stderr


@pytest.mark.parametrize("text", ["A," + "x" * 10_000_000, 'A,"' + "x" * 140_000 + '"'])
def test_a_long_field_on_one_line_blames_no_quote(tmp_path: Path, text: str) -> None:
    """10 MB in one unquoted cell (no quote anywhere in the file) was "probably a double quote that is never closed":
    it is too long, in its column. Quoted and closed on its line, it is too long too (its column is not worked out)."""
    path = tmp_path / "long.csv"
    path.write_text(f"reference,notes\nB,short\n{text}\n")
    result = invoke("validate", str(path))
    column = "" if '"' in text else ", column notes"
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == f"error: line 3{column}: a field longer than 131,072 characters"
    assert "quote" not in result.stderr


def test_a_line_past_16_mib_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(b"reference,notes\nB,short\n" + b"x" * (17 << 20))
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        2, "error: line 3: a line of the manifest is longer than 16 MiB")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("null", "JSON null"), ("42", "a JSON number"), ('"orders"', "a JSON string"), ("true", "a JSON boolean"),
     ("  3.5\n", "a JSON number")],
)
@pytest.mark.parametrize("command", ["validate", "create"])
def test_json_that_is_not_a_manifest_exits_2_for_validate_as_for_create(
    command: str, text: str, kind: str, env: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "orders.json"
    path.write_text(text)
    result = invoke(command, str(path), "--from", str(EXAMPLES / "from.json"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"error: this is {kind}, not a manifest: expected an array of objects ([{{…}}, …]) or "
                             "one object a line\n")


def test_an_empty_object_is_one_problem_not_seven(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text("{}")
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "row 1, column *: an empty object (expected keys such as to_name, to_street1, to_city, to_zip, weight)",
        "1 row: 0 valid, 1 invalid",
    ]


def test_a_one_column_csv_is_still_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "refs.csv"
    path.write_text("reference\n")
    result = invoke("validate", str(path))
    # Read as a CSV (a header and no rows), not refused as some other format; no rows is exit 2, as for `create`.
    assert (result.exit_code, result.stderr) == (2, f"error: {path}: the manifest has no rows\n")


def test_a_whitespace_only_manifest_is_rejected_in_linear_time() -> None:
    """20 MB of blank lines took 24-30 s (quadratic); linear, it is well under a second on a loaded box."""
    data = (b" " * 99 + b"\n") * 200_000
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="the manifest is empty"):
        list(iter_rows(io.BytesIO(data)))
    assert time.perf_counter() - started < 5


def test_a_whitespace_only_manifest_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes((b" " * 99 + b"\n") * 100_000)
    result = invoke("validate", str(path))
    assert (result.exit_code, result.stderr) == (2, "error: the manifest is empty\n")


def test_leading_blank_lines_before_a_csv_keep_its_line_numbers(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    text = manifest.read_text()
    header, first, second = text.splitlines()
    (tmp_path / "padded.csv").write_text("\n" * 70_000 + "\n".join([header, first, second.replace(",8", ",x", 1)]))
    rows = list(iter_rows(tmp_path / "padded.csv"))
    assert [r.line for r in rows] == [70_002, 70_003]


def test_json_after_much_whitespace_is_still_json(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(" " * 200_000 + json.dumps([{"reference": "A"}]))
    result = invoke("validate", str(path))
    assert result.exit_code == 2 and "row 1, column to_name" in result.stderr
