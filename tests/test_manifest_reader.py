"""The manifest reader: formats, real-world CSV, line numbers, aliases, duplicates, laziness, whole-file errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from shipctl.errors import ManifestError
from shipctl.exit_codes import ExitCode
from shipctl.manifest import Address, InvalidRow, Problem, ValidRow, iter_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

HEADER = ("reference,to_name,to_street1,to_city,to_state,to_zip,"
          "from_name,from_street1,from_city,from_state,from_zip,weight")
ORIGIN = "Acme,388 Townsend St,San Francisco,CA,94107"


def csv_row(ref: str, weight: str = "12", state: str = "MA", zip_code: str = "02108") -> str:
    return f"{ref},Jane Roe,1 Beacon St,Boston,{state},{zip_code},{ORIGIN},{weight}"


def read(data: str | bytes, **kwargs: Any) -> list[ValidRow | InvalidRow]:
    raw = data.encode() if isinstance(data, str) else data
    return list(iter_rows(io.BytesIO(raw), **kwargs))


def only_valid(results: list[ValidRow | InvalidRow]) -> list[ValidRow]:
    assert all(isinstance(r, ValidRow) for r in results), [
        str(p) for r in results if isinstance(r, InvalidRow) for p in r.problems
    ]
    return [r for r in results if isinstance(r, ValidRow)]


def problems(results: list[ValidRow | InvalidRow]) -> list[str]:
    return [str(p) for r in results if isinstance(r, InvalidRow) for p in r.problems]


# ------------------------------------------------------------------------------------------ examples


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.json", "manifest.ndjson"])
def test_examples_are_valid_and_hold_the_same_rows(name: str) -> None:
    rows = only_valid(list(iter_rows(EXAMPLES / name)))
    reference = only_valid(list(iter_rows(EXAMPLES / "manifest.csv")))
    assert len(rows) == 50
    assert [r.row.to_easypost() for r in rows] == [r.row.to_easypost() for r in reference]
    assert sum(r.row.customs_info is not None for r in rows) >= 3


def test_excel_export_validates_with_from_json() -> None:
    warnings: list[str] = []
    default_from = Address.model_validate(json.loads((EXAMPLES / "from.json").read_text()))
    rows = only_valid(list(iter_rows(EXAMPLES / "excel_export.csv", default_from=default_from,
                                     on_warning=warnings.append)))
    assert rows[0].line == 2
    first = rows[0].row
    assert first.to_address.name == "Elizabeth Swan"
    assert first.to_address.state == "CA"  # "California"
    assert first.parcel.weight == 24.0  # "1.5" in a "Weight (lb)" column
    assert rows[1].row.to_address.zip == "02108"  # Excel dropped the leading zero
    assert rows[1].row.to_address.country == "US"  # "United States"
    assert warnings == ["unknown column ignored: Notes"]


# ------------------------------------------------------------------------------------------ formats


def test_format_is_sniffed_from_content() -> None:
    obj = {"reference": "A", "to_name": "Jane Roe", "to_street1": "1 Beacon St", "to_city": "Boston", "to_state": "MA",
           "to_zip": "02108", "from_name": "Acme", "from_street1": "388 Townsend St", "from_city": "SF",
           "from_state": "CA", "from_zip": "94107", "weight": 12}
    as_csv = only_valid(read(f"{HEADER}\n{csv_row('A')}\n"))
    as_json = only_valid(read("  \n" + json.dumps([obj])))
    as_ndjson = only_valid(read(json.dumps(obj) + "\n"))
    assert as_csv[0].row.to_address == as_json[0].row.to_address == as_ndjson[0].row.to_address


def test_json_rows_may_be_easypost_nested() -> None:
    nested = {
        "reference": "N1",
        "to_address": {"name": "Jane", "street1": "1 Beacon St", "city": "Boston", "state": "MA", "zip": "02108"},
        "from_address": {"name": "Acme", "street1": "388 Townsend St", "city": "SF", "state": "CA", "zip": "94107"},
        "parcel": {"weight": 15.4, "length": 10, "width": 8, "height": 4},
        "options": {"label_format": "png"},
        "customs_info": {"contents_type": "gift", "customs_signer": "Steve",
                         "customs_items": [{"description": "Shirt", "quantity": 2, "value": 23.25, "weight": 11,
                                            "origin_country": "US"},
                                           {"description": "Hat", "quantity": 1, "value": "5", "weight": "3oz",
                                            "origin_country": "us", "hs_tariff_number": "6505.00"}]},
    }
    row = only_valid(read(json.dumps([nested])))[0].row
    assert row.parcel.weight == 15.4 and row.parcel.height == 4.0
    assert row.label_format == "PNG"
    assert row.customs_info is not None
    assert [i.description for i in row.customs_info.customs_items] == ["Shirt", "Hat"]
    assert row.customs_info.customs_items[1].hs_tariff_number == "650500"


def test_format_override_reads_json_looking_text_as_csv() -> None:
    results = read('{"a": 1}\n', fmt="csv")
    assert results == []  # a header line and no rows


def test_semicolon_and_tab_delimiters_are_sniffed() -> None:
    for delimiter in (";", "\t"):
        text = f"{HEADER}\n{csv_row('A')}\n".replace(",", delimiter)
        assert only_valid(read(text))[0].row.to_address.city == "Boston"


def test_bom_crlf_and_quoted_newlines() -> None:
    text = (f"\ufeff{HEADER}\r\n"
            f'A,"Jane\r\nRoe",1 Beacon St,Boston,MA,02108,{ORIGIN},12\r\n'
            f"{csv_row('B')}\r\n")
    rows = only_valid(read(text.encode("utf-8")))
    assert rows[0].row.reference == "A" and rows[0].row.to_address.name == "Jane\r\nRoe"
    assert [r.line for r in rows] == [2, 4]  # the quoted newline makes row A two lines long


def test_quoted_delimiter_inside_a_field() -> None:
    text = f'{HEADER}\nA,"Roe, Jane",1 Beacon St,Boston,MA,02108,{ORIGIN},12\n'
    assert only_valid(read(text))[0].row.to_address.name == "Roe, Jane"


def test_utf16_with_bom_is_detected() -> None:
    rows = only_valid(read(f"{HEADER}\n{csv_row('A')}\n".encode("utf-16")))
    assert rows[0].row.reference == "A"


def test_not_utf8_names_the_line_and_suggests_encoding() -> None:
    data = f"{HEADER}\n{csv_row('A')}\n".encode() + csv_row("B").replace("Jane", "Jos\xe9").encode("cp1252")
    with pytest.raises(ManifestError, match=r"line 3: .*not valid utf-8.*--encoding") as caught:
        read(data)
    assert caught.value.exit_code == ExitCode.USAGE
    rows = only_valid(read(data, encoding="cp1252"))
    assert rows[1].row.to_address.name == "Jos\xe9 Roe"


def test_unknown_encoding_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="unknown encoding"):
        read("a\n", encoding="klingon")


@pytest.mark.parametrize("data", [b"", b"   \n\r\n  ", b"\xef\xbb\xbf"])
def test_empty_manifest_is_a_manifest_error(data: bytes) -> None:
    with pytest.raises(ManifestError, match="empty"):
        read(data)


@pytest.mark.parametrize(
    ("text", "line"),
    [('[\n{"reference": "A"},\n{"reference": }\n]', 3), ('[{"a": 1}\n\n', 3), ('{"a": 1}\n{"b": \n', 2),
     ('[{"a": 1}] trailing', 1), ('[{"a": 1} {"b": 2}]', 1)],
)
def test_broken_json_names_the_line(text: str, line: int) -> None:
    with pytest.raises(ManifestError, match=rf"^line {line}: invalid JSON"):
        read(text)


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        list(iter_rows(tmp_path / "nope.csv"))


def test_json_value_that_is_not_an_object_is_an_invalid_row() -> None:
    results = read('[5, "x"]')
    assert problems(results) == ["row 1, column *: expected a JSON object, got int",
                                 "row 2, column *: expected a JSON object, got str"]


def test_empty_json_array_has_no_rows() -> None:
    assert read("[ ]") == []


# ------------------------------------------------------------------------------------------ rows and lines


def test_every_bad_row_is_reported_with_file_line_and_column() -> None:
    text = "\n".join([HEADER, csv_row("A"), csv_row("B", weight="heavy"), "", csv_row("C", state="ZZ"),
                      csv_row("D", zip_code="ABC"), csv_row("E")]) + "\n"
    results = read(text)
    assert [r.line for r in results] == [2, 3, 5, 6, 7]
    assert problems(results) == [
        "row 3, column weight: 'heavy' is not a weight (e.g. 12, 12oz, 1.5 lb, 500g or 2kg)",
        "row 5, column to_state: 'ZZ' is not a US state (use a 2-letter code such as CA, NY)",
        "row 6, column to_zip: 'ABC' is not a US ZIP code (use 5 digits or ZIP+4, e.g. 94107 or 94107-1234)",
    ]


def test_problem_string_format() -> None:
    assert str(Problem(12, "to_zip", "required")) == "row 12, column to_zip: required"


def test_required_columns_are_reported_each() -> None:
    text = "reference,weight\nA,12\n"
    assert problems(read(text)) == [
        "row 1, column to_name: a name or a company is required".replace("row 1", "row 2"),
        "row 2, column to_street1: required",
        "row 2, column to_city: required",
        "row 2, column to_state: required for US addresses",
        "row 2, column to_zip: required for US addresses",
        "row 2, column from_*: required",
    ]


def test_extra_cells_are_a_problem_but_missing_trailing_cells_are_empty() -> None:
    text = f"{HEADER},insurance\n{csv_row('A')}\n{csv_row('B')},50,surplus\n"
    results = read(text)
    assert isinstance(results[0], ValidRow) and results[0].row.insurance is None
    assert problems(results) == ["row 3, column *: 14 fields, but the header has 13"]


def test_blank_rows_are_skipped_and_do_not_shift_line_numbers() -> None:
    text = f"{HEADER}\n,,,,,,,,,,,\n\n{csv_row('A')}\n"
    results = read(text)
    assert [r.line for r in results] == [4]


def test_raw_keeps_original_headers_and_text() -> None:
    text = "Order Number,Recipient Name,Address,City,State,ZIP,Weight (lb)\nA, Jane ,1 Beacon St,Boston,MA,2108,1.5\n"
    result = read(text, default_from=_origin())[0]
    assert isinstance(result, ValidRow)
    assert result.raw["Recipient Name"] == " Jane " and result.raw["Weight (lb)"] == "1.5"
    assert result.row.to_address.name == "Jane"


def _origin() -> Address:
    return Address(name="Acme", street1="388 Townsend St", city="San Francisco", state="CA", zip="94107")


# ------------------------------------------------------------------------------------------ aliases


@pytest.mark.parametrize(
    ("headers", "column_family"),
    [
        ("Recipient Name,Recipient Address,Recipient City,Recipient State,Recipient Zip", "recipient_*"),
        ("Ship-To Name,Ship To Street 1,Ship.To.City,SHIP_TO_STATE,Ship To Postal Code", "ship_to_*"),
        ("to.name,to.street1,to.city,to.state,to.zip", "to.*"),
        ("Name,Address Line 1,City,Province,Postal Code", "bare fields"),
        ("name,street,town,state_code,zip_code", "bare fields"),
        ("Consignee Name,Consignee Address1,Consignee City,Consignee State,Consignee ZIP Code", "consignee_*"),
    ],
)
def test_destination_alias_families(headers: str, column_family: str) -> None:
    text = f"{headers},weight\nJane,1 Beacon St,Boston,MA,02108,12\n"
    warnings: list[str] = []
    row = only_valid(read(text, default_from=_origin(), on_warning=warnings.append))[0].row
    assert (row.to_address.name, row.to_address.street1, row.to_address.city, row.to_address.zip) == (
        "Jane", "1 Beacon St", "Boston", "02108"), column_family
    assert warnings == []


@pytest.mark.parametrize("prefix", ["from", "sender", "Ship From", "shipper", "from."])
def test_origin_alias_families(prefix: str) -> None:
    cols = ",".join(f"{prefix} {f}" if not prefix.endswith(".") else f"{prefix}{f}"
                    for f in ("name", "street1", "city", "state", "zip"))
    text = f"to_name,to_street1,to_city,to_state,to_zip,{cols},weight\nJane,1 Beacon St,Boston,MA,02108," \
           "Acme,388 Townsend St,San Francisco,CA,94107,12\n"
    row = only_valid(read(text))[0].row
    assert row.from_address.zip == "94107" and row.from_address.name == "Acme"


@pytest.mark.parametrize(
    ("header", "value", "ounces"),
    [("weight", "12", 12.0), ("Parcel Weight", "12", 12.0), ("weight_oz", "12", 12.0), ("Weight (oz)", "12", 12.0),
     ("Weight (lb)", "1.5", 24.0), ("weight_lbs", "2", 32.0), ("Weight (kg)", "1", 35.274),
     ("Weight (lb)", "8 oz", 8.0), ("package_weight", "500g", 17.637)],
)
def test_weight_aliases_and_unit_headers(header: str, value: str, ounces: float) -> None:
    text = f"to_name,to_street1,to_city,to_state,to_zip,{header}\nJane,1 Beacon St,Boston,MA,02108,{value}\n"
    row = only_valid(read(text, default_from=_origin()))[0].row
    assert row.parcel.weight == pytest.approx(ounces, abs=1e-3)


@pytest.mark.parametrize(
    ("headers", "values"),
    [("Order Number,Service Level,Label Type,Insured Value", "A,Priority,zpl,$100"),
     ("ref,shipping_service,label_format,declared_value", "A,Priority,zpl,100"),
     ("Order ID,mail_class,Label-Format,insurance_amount", "A,Priority,ZPL,100.00")],
)
def test_reference_service_label_insurance_aliases(headers: str, values: str) -> None:
    text = (f"to_name,to_street1,to_city,to_state,to_zip,weight,{headers}\n"
            f"Jane,1 Beacon St,Boston,MA,02108,12,{values}\n")
    row = only_valid(read(text, default_from=_origin()))[0].row
    assert (row.reference, row.service, row.label_format, str(row.insurance)) in {
        ("A", "Priority", "ZPL", "100"), ("A", "Priority", "ZPL", "100.00")}


def test_customs_aliases() -> None:
    text = ("to_name,to_street1,to_city,to_zip,to_country,weight,Contents Type,Signer,Customs Description,"
            "Customs Quantity,Customs Value,Item Weight,HS Code,Country of Origin\n"
            "Jane,10 Downing St,London,SW1A 2AA,GB,12,Gift,Steve,Scarf,1,45,9,6117.10,GB\n")
    row = only_valid(read(text, default_from=_origin()))[0].row
    assert row.customs_info is not None
    item = row.customs_info.customs_items[0]
    assert (row.customs_info.contents_type, item.description, item.hs_tariff_number, item.origin_country) == (
        "gift", "Scarf", "611710", "GB")


def test_unknown_columns_give_one_warning_naming_them() -> None:
    text = f"{HEADER},Notes,Gift Wrap\n{csv_row('A')},x,y\n{csv_row('B')},x,y\n"
    warnings: list[str] = []
    only_valid(read(text, on_warning=warnings.append))
    assert warnings == ["unknown columns ignored: Notes, Gift Wrap"]


def test_unknown_json_keys_give_one_warning_at_the_end() -> None:
    rows = [{"reference": "A", "to_name": "Jane", "to_street1": "1 Beacon St", "to_city": "Boston",
             "to_state": "MA", "to_zip": "02108", "weight": 12, "gift_note": "hi"},
            {"reference": "B", "to_name": "Jane", "to_street1": "1 Beacon St", "to_city": "Boston",
             "to_state": "MA", "to_zip": "02108", "weight": 12, "gift_note": "yo", "colour": "red"}]
    warnings: list[str] = []
    only_valid(read(json.dumps(rows), default_from=_origin(), on_warning=warnings.append))
    assert warnings == ["unknown columns ignored: gift_note, colour"]


def test_two_headers_for_one_column_warn_and_the_first_wins() -> None:
    text = "to_name,to_street1,to_city,to_state,zip,postal_code,weight\nJane,1 Beacon St,Boston,MA,02108,99999,12\n"
    warnings: list[str] = []
    row = only_valid(read(text, default_from=_origin(), on_warning=warnings.append))[0].row
    assert row.to_address.zip == "02108"
    assert warnings == ["column 'postal_code' ignored: 'zip' already gives to_zip"]


# ------------------------------------------------------------------------------------------ from address


def test_default_from_applies_only_to_rows_without_from_values() -> None:
    text = ("reference,to_name,to_street1,to_city,to_state,to_zip,from_name,from_street1,from_city,from_state,"
            "from_zip,weight\nA,Jane,1 Beacon St,Boston,MA,02108,,,,,,12\n"
            "B,Jane,1 Beacon St,Boston,MA,02108,Other,1 Main St,Austin,TX,78701,12\n")
    rows = only_valid(read(text, default_from=_origin()))
    assert rows[0].row.from_address.zip == "94107"
    assert rows[1].row.from_address.zip == "78701"


def test_row_without_any_origin_is_invalid() -> None:
    text = "to_name,to_street1,to_city,to_state,to_zip,weight\nJane,1 Beacon St,Boston,MA,02108,12\n"
    assert problems(read(text)) == ["row 2, column from_*: required"]


# ------------------------------------------------------------------------------------------ references


def test_duplicate_reference_later_row_is_invalid() -> None:
    text = "\n".join([HEADER, csv_row("A"), csv_row("B"), csv_row("A"), csv_row("A")]) + "\n"
    results = read(text)
    assert [type(r).__name__ for r in results] == ["ValidRow", "ValidRow", "InvalidRow", "InvalidRow"]
    assert problems(results) == ["row 4, column reference: duplicate reference 'A' (first on row 2)",
                                 "row 5, column reference: duplicate reference 'A' (first on row 2)"]


def test_duplicates_are_found_across_thousands_of_rows() -> None:
    lines = [HEADER] + [csv_row(f"R{i}") for i in range(10_000)] + [csv_row("R3"), csv_row("R9999")]
    results = read("\n".join(lines) + "\n")
    assert problems(results) == ["row 10002, column reference: duplicate reference 'R3' (first on row 5)",
                                 "row 10003, column reference: duplicate reference 'R9999' (first on row 10001)"]


def test_derived_reference_is_stable_and_content_based() -> None:
    header = HEADER.removeprefix("reference,")
    body = csv_row("X").removeprefix("X,")
    text = f"{header}\n{body}\n{body}\n{body.replace(',12', ',1 lb')}\n"
    first = [r.row.reference for r in only_valid(read(text))]
    again = [r.row.reference for r in only_valid(read(text))]
    assert first == again
    assert first[0].startswith("row-") and len(first[0]) == len("row-") + 12
    assert first[1] == first[0] + "-2"  # an identical second parcel is numbered, not rejected
    assert first[2] != first[0]  # different weight, different content
    # the key is the normalised content: 16 oz written as "1 lb" or "16" gives the same reference
    text_16 = f"{header}\n{body.replace(',12', ',16')}\n"
    assert only_valid(read(text_16))[0].row.reference == first[2]


# ------------------------------------------------------------------------------------------ laziness


class CountingReader(io.RawIOBase):
    """A stream that records how many bytes were asked of it (to prove the reader does not slurp)."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size)
        self.consumed += len(chunk)
        return chunk


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_rows_are_read_lazily(fmt: str) -> None:
    n = 20_000
    if fmt == "csv":
        data = "\n".join([HEADER] + [csv_row(f"R{i}") for i in range(n)]).encode()
    else:
        objs = [json.dumps({"reference": f"R{i}", "to_name": "Jane", "to_street1": "1 Beacon St",
                            "to_city": "Boston", "to_state": "MA", "to_zip": "02108", "weight": 12})
                for i in range(n)]
        data = ("\n".join(objs) if fmt == "ndjson" else "[" + ",\n".join(objs) + "]").encode()
    stream = CountingReader(data)
    rows = iter_rows(stream, default_from=_origin())  # type: ignore[arg-type]
    first = next(rows)
    assert isinstance(first, ValidRow) and first.row.reference == "R0"
    assert stream.consumed < len(data) / 10
    assert sum(1 for _ in rows) == n - 1
    assert stream.consumed == len(data)


def test_a_row_cut_short_says_so_and_one_missing_only_blank_trailing_cells_is_fine(tmp_path: Path) -> None:
    header = ("reference,to_name,to_street1,to_city,to_state,to_zip,weight,"
              "from_name,from_street1,from_city,from_state,from_zip,notes\n")
    path = tmp_path / "orders.csv"
    path.write_text(header
                    + "A1,Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701\n"  # the empty `notes` left out
                    + "A2,Bob,2 Main St,Boston\n")  # an export line cut short
    valid, invalid = list(iter_rows(path, on_warning=lambda _m: None))
    assert isinstance(valid, ValidRow) and valid.row.reference == "A1"
    assert isinstance(invalid, InvalidRow)
    assert invalid.problems[-1] == Problem(3, "*", "only 4 fields, but the header has 13: a line cut short, or a "
                                                   "quote out of place?")


def test_a_quote_that_never_closes_is_named_on_its_own_line_with_the_lines_it_swallowed(tmp_path: Path) -> None:
    """The quote opens on line 5 and runs to the end of the file: the row is line 5 (not line 4, a valid row, nor
    the header of a shorter file), and the message says which lines went into its cell."""
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip\n"
    good = "{},Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + "".join(good.format(f"A{i}") for i in range(2, 5))
                    + 'A5,Ann,"1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701\n'
                    + "".join(good.format(f"A{i}") for i in range(6, 9)))
    items = list(iter_rows(path, on_warning=lambda _m: None))
    assert [i.row.reference for i in items if isinstance(i, ValidRow)] == ["A2", "A3", "A4"]
    [bad] = [i for i in items if isinstance(i, InvalidRow)]
    assert [(p.line, p.column) for p in bad.problems] == [(5, "to_street1")]
    assert bad.problems[0].message.startswith("a quote opens here and is never closed: lines 5–8, to the end of the "
                                              "file")

    short = tmp_path / "short.csv"
    short.write_text(header + 'A2,Ann,"1 Main St,Boston\n' + good.format("A3"))
    [only] = list(iter_rows(short, on_warning=lambda _m: None))
    assert isinstance(only, InvalidRow) and {p.line for p in only.problems} == {2}  # not the header's line 1


def test_a_quoted_cell_over_two_lines_keeps_the_line_its_row_starts_on(tmp_path: Path) -> None:
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + 'A2,"Ann\nLee",1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701\n'
                    + "\n" + "A5,Bob,1 Main St,Boston,MA,02108,oops,S,1 Elm St,Austin,TX,78701\n")
    first, second = list(iter_rows(path, on_warning=lambda _m: None))
    assert isinstance(first, ValidRow) and first.line == 2
    assert isinstance(second, InvalidRow) and {p.line for p in second.problems} == {5}


def test_a_quote_left_open_in_the_last_column_loses_no_row_silently(tmp_path: Path) -> None:
    """The quote opens in the last column (an ignored `notes`): the row had every field, so it read as valid and the
    rows after it vanished into its note. It is invalid now, naming the line and the column."""
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    good = "{},Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,{}\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + good.format("A2", "") + good.format("A3", '"fragile, 2 boxes')
                    + good.format("A4", "") + good.format("A5", '""quoted""'))
    items = list(iter_rows(path, on_warning=lambda _m: None))
    assert [i.row.reference for i in items if isinstance(i, ValidRow)] == ["A2"]
    [bad] = [i for i in items if isinstance(i, InvalidRow)]
    assert [(p.line, p.column) for p in bad.problems] == [(3, "notes")]
    assert "lines 3–5" in bad.problems[0].message


def test_a_quote_left_open_is_named_in_its_own_column_not_an_earlier_cell_over_lines(tmp_path: Path) -> None:
    """`to_street1` runs over two lines, quoted and closed; the quote that never closes is in `notes`, on the row's
    second line. The runaway cell is always the last one read: `notes`, opened on line 3, not `to_street1`."""
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + 'A2,Ann,"1 Main St\nApt 2",Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,"open (unclosed\n'
                    + "A4,Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,\n")
    [bad] = list(iter_rows(path, on_warning=lambda _m: None))
    assert isinstance(bad, InvalidRow)
    assert bad.problems == [Problem(2, "notes", "a quote opens on line 3 and is never closed: lines 3–4, to the end "
                                                "of the file, were read into this one cell (the rows on them were not "
                                                "read)")]


def test_a_quote_closed_by_a_later_rows_quote_names_the_line_it_opens_on(tmp_path: Path) -> None:
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    good = "{},Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,{}\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + 'A2,Ann,"1 Main St\nApt 2",Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,"fragile\n'
                    + good.format("A4", "") + good.format("A5", '"gift"') + good.format("A6", ""))
    items = list(iter_rows(path, on_warning=lambda _m: None))
    assert [i.row.reference for i in items if isinstance(i, ValidRow)] == ["A6"]
    [bad] = [i for i in items if isinstance(i, InvalidRow)]
    assert [(p.line, p.column) for p in bad.problems] == [(2, "notes")]
    assert bad.problems[0].message.startswith("a quote opens on line 3 and closes only on line 5")


@pytest.mark.parametrize("tail", ['"two\nlines"\n', '"two\nlines"', '"two\nlines\n"', '"two\n""lines"""'])
def test_a_quoted_cell_over_lines_closed_at_the_end_of_the_file_is_a_valid_row(tmp_path: Path, tail: str) -> None:
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + "A2,Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701," + tail)
    [item] = list(iter_rows(path, on_warning=lambda _m: None))
    assert isinstance(item, ValidRow), item


def test_a_quote_closed_only_by_a_later_rows_quote_hides_no_row(tmp_path: Path) -> None:
    """A quote opened by mistake in an ignored note, closed by the next quoted note three rows on: the rows between
    were read into the first note, and both rows read as valid. The row with the stray quote is invalid now."""
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    good = "{},Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,{}\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + good.format("A2", "") + good.format("A3", '"fragile') + good.format("A4", "")
                    + good.format("A5", '"gift"') + good.format("A6", ""))
    items = list(iter_rows(path, on_warning=lambda _m: None))
    assert [i.row.reference for i in items if isinstance(i, ValidRow)] == ["A2", "A6"]
    [bad] = [i for i in items if isinstance(i, InvalidRow)]
    assert [(p.line, p.column) for p in bad.problems] == [(3, "notes")]
    assert "closes only on line 5" in bad.problems[0].message


def test_a_note_over_lines_with_a_few_commas_is_still_a_note(tmp_path: Path) -> None:
    header = "reference,to_name,to_street1,to_city,to_state,to_zip,weight,from_name,from_street1,from_city," \
             "from_state,from_zip,notes\n"
    path = tmp_path / "orders.csv"
    path.write_text(header + 'A2,Ann,1 Main St,Boston,MA,02108,12,S,1 Elm St,Austin,TX,78701,"Leave at door,\n'
                    'side gate, by the shed, not the porch"\n')
    [item] = list(iter_rows(path, on_warning=lambda _m: None))
    assert isinstance(item, ValidRow)
