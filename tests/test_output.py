"""Output writers: streaming JSON/NDJSON, CSV with formula neutralising, the table, the default format."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shipctl.cli.terminal import Terminal
from shipctl.output import open_writer


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_format_table_on_a_tty_ndjson_otherwise() -> None:
    assert Terminal(stdout=Tty()).default_output() == "table"
    assert Terminal(stdout=io.StringIO()).default_output() == "ndjson"


def test_json_streams_an_array_and_closes_it() -> None:
    stream = io.StringIO()
    with open_writer("json", stream, ["a"]) as writer:
        writer.write({"a": 1, "b": {"c": Decimal("1.50")}})
        assert stream.getvalue().startswith("[\n{")  # written as it arrives, before the close
        writer.write({"a": 2})
    assert json.loads(stream.getvalue()) == [{"a": 1, "b": {"c": "1.50"}}, {"a": 2}]


def test_json_empty_is_an_empty_array() -> None:
    stream = io.StringIO()
    with open_writer("json", stream, []):
        pass
    assert stream.getvalue() == "[]\n"


def test_json_array_is_closed_even_when_the_run_fails() -> None:
    stream = io.StringIO()
    with pytest.raises(RuntimeError), open_writer("json", stream, []) as writer:
        writer.write({"a": 1})
        raise RuntimeError("boom")
    assert json.loads(stream.getvalue()) == [{"a": 1}]


class FlushCounter(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_ndjson_one_object_a_line_flushed_each() -> None:
    stream = FlushCounter()
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with open_writer("ndjson", stream, []) as writer:
        writer.write({"n": 1, "at": when, "amount": Decimal("9.99"), "text": "café"})
        assert stream.flushes == 1
        writer.write({"n": 2})
        assert stream.flushes == 2
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"n": 1, "at": "2024-05-01T12:00:00Z", "amount": "9.99", "text": "café"}, {"n": 2}]


def test_csv_header_rows_nested_json_and_formula_neutralising() -> None:
    stream = io.StringIO()
    columns = ["reference", "note", "nested", "flag", "missing"]
    with open_writer("csv", stream, columns) as writer:
        assert stream.getvalue() == "reference,note,nested,flag,missing\r\n"  # header at once
        for note in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]:
            writer.write({"reference": "R", "note": note, "nested": {"a": [1]}, "flag": True})
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert rows[0] == columns
    assert [r[1] for r in rows[1:]] == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b"]
    assert rows[1][2:] == ['{"a":[1]}', "true", ""]


def test_csv_numbers_stay_numbers_while_text_that_looks_like_one_is_neutralised() -> None:
    """A negative longitude or amount is a number (no spreadsheet evaluates it, and pandas or a database import
    must read it as one); the same characters as manifest text are still guarded."""
    from decimal import Decimal

    stream = io.StringIO()
    with open_writer("csv", stream, ["longitude", "amount", "count", "flag", "note"]) as writer:
        writer.write({"longitude": -76.39, "amount": Decimal("-7.80"), "count": -3, "flag": False, "note": "-2"})
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert rows[1] == ["-76.39", "-7.80", "-3", "false", "'-2"]


def test_table_collects_and_prints_at_close() -> None:
    stream = io.StringIO()
    with open_writer("table", stream, ["reference", "status", "detail"]) as writer:
        writer.write({"reference": "R1", "status": "bought", "detail": {"k": 1}})
        writer.write({"reference": "R2", "status": "failed"})
        assert stream.getvalue() == ""
    text = stream.getvalue()
    for expected in ("reference", "status", "R1", "bought", "R2", "failed", '{"k":1}'):
        assert expected in text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown output format"), open_writer("xml", io.StringIO(), []):  # type: ignore[arg-type]
        pass


def test_table_drops_empty_columns_and_never_truncates_identifiers() -> None:
    stream = io.StringIO()
    code = "9400111899223197428490123456"
    url = "http://127.0.0.1:8080/labels/" + "x" * 90 + ".png"
    with open_writer("table", stream, ["reference", "tracking_code", "label_url", "error_code"]) as writer:
        writer.write({"reference": "R1", "tracking_code": code, "label_url": url, "error_code": None})
    text = stream.getvalue()
    assert "error_code" not in text  # empty in every row: left out of the human view
    # StringIO is not a terminal, so rich lays the table out at 80 columns; a long code folds but stays whole.
    body = [line.split("│") for line in text.splitlines()[2:]]  # under the header and its rule
    cells = ["".join(part.strip() for part in column) for column in zip(*body, strict=True)]
    assert cells == ["R1", code, url]
    assert "…" not in text
