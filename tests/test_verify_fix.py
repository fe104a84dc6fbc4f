"""`verify --fix`'s writer: corrections land in their cells; every other byte of the manifest is kept."""

from __future__ import annotations

from pathlib import Path

from shipctl.carrier.addresses import Change
from shipctl.jobs.manifest_fix import fix_refusal, write_fixed
from shipctl.jobs.verify import Correction
from shipctl.manifest import ValidRow, iter_rows


def _correct(lines: tuple[int, ...], *changes: tuple[str, str, str], role: str = "to") -> Correction:
    return Correction(role, lines, tuple(Change(f, o, n) for f, o, n in changes))  # type: ignore[arg-type]


def test_semicolons_bom_lf_and_a_multiline_cell_are_kept(tmp_path: Path) -> None:
    text = (
        "Reference;Ship-To Name;Ship To Street;Ship To City;Ship To State;Ship To Zip;From Zip;From Street;"
        "From City;From State;From Name;Weight (lb)\n"
        'A1;"Ann\nfront desk";350 5th Ave;New York;NY;10118;94104;417 Montgomery St;San Francisco;CA;Acme;1\n'
        "A2;Bob;600 Congress Ave;Austn;TX;78701;94104;417 Montgomery St;San Francisco;CA;Acme;2\n"
    )
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbf" + text.encode())
    dest = tmp_path / "out.csv"
    report = write_fixed(source, dest, [_correct((4,), ("city", "Austn", "AUSTIN"))], None)
    assert (report.rows, report.cells, report.unwritten) == (1, 1, [])
    assert dest.read_bytes() == b"\xef\xbb\xbf" + text.replace(";Austn;", ";AUSTIN;").encode()
    rows = [r for r in iter_rows(dest) if isinstance(r, ValidRow)]
    assert [r.row.to_address.city for r in rows] == ["New York", "AUSTIN"]


def test_an_origin_correction_reaches_every_row_that_shares_it(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"reference,from_city,to_city\r\nA,San Fransisco,Austin\r\nB,San Fransisco,Austin\r\n")
    dest = tmp_path / "out.csv"
    write_fixed(source, dest, [_correct((2, 3), ("city", "San Fransisco", "SAN FRANCISCO"), role="from")], None)
    assert dest.read_bytes() == b"reference,from_city,to_city\r\nA,SAN FRANCISCO,Austin\r\nB,SAN FRANCISCO,Austin\r\n"


def test_a_correction_without_a_column_is_reported_not_invented(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("reference,to_street1,to_zip\nA,1 Main Street Apt 2,78701\n")
    dest = tmp_path / "out.csv"
    report = write_fixed(source, dest, [_correct((2,), ("street1", "1 Main Street Apt 2", "1 MAIN ST"),
                                                 ("street2", "", "APT 2"))], None)
    assert dest.read_text() == "reference,to_street1,to_zip\nA,1 MAIN ST,78701\n"
    assert report.unwritten == ["line 2: to_street2 → APT 2 (the manifest has no such column)"]


def test_only_csv_can_be_fixed(tmp_path: Path) -> None:
    csv_file, json_file, ndjson_file = tmp_path / "a.csv", tmp_path / "a.json", tmp_path / "a.ndjson"
    csv_file.write_text("reference,to_zip\nA,78701\n")
    json_file.write_text('  [{"reference": "A"}]')
    ndjson_file.write_text('{"reference": "A"}\n')
    assert fix_refusal(csv_file, None, None) is None
    assert fix_refusal(json_file, None, None) == "the manifest is JSON"
    assert fix_refusal(ndjson_file, None, None) == "the manifest is NDJSON"
    assert fix_refusal(csv_file, "json", None) == "the manifest is JSON"
