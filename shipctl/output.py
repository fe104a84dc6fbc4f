"""Result writers for stdout: table, json, ndjson, csv (README, "Buying labels").

All but the table stream: a JSON array is opened before the first record and closed at the end (`[]` when
nothing came), NDJSON is flushed a line at a time so a pipeline sees each row as it is done, CSV writes its
header at once. The table needs every row to size its columns, so it prints when the writer closes.
CSV cells a spreadsheet would run as a formula are neutralised with a leading `'`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal, Protocol, TextIO

OutputFormat = Literal["table", "json", "ndjson", "csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Writer(Protocol):
    def write(self, record: Mapping[str, Any]) -> None: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    """Compact JSON text. pydantic-core's encoder (Rust) is ~3x the standard library's on result rows."""
    import pydantic_core

    return pydantic_core.to_json(value, fallback=_json_default).decode()


def cell(value: Any) -> str:
    """A value as one text cell: nested values as JSON, None as empty, booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return _dumps(value)
    return str(value)


def neutralise(text: str) -> str:
    """Prefix `'` to a cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR first)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unneutralise(text: str) -> str:
    """The cell as it was before `neutralise` (a CSV shipctl wrote, read back as a manifest), trimmed as the
    reader trims every cell; any other text as it is."""
    return text[1:].strip() if text[:1] == "'" and text[1:2] in _FORMULA_START else text


class _NdjsonWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, record: Mapping[str, Any]) -> None:
        self.stream.write(_dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class _JsonWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0
        stream.write("[")

    def write(self, record: Mapping[str, Any]) -> None:
        self.stream.write(("\n" if self.count == 0 else ",\n") + _dumps(record))
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()


class _CsvWriter:
    def __init__(self, stream: TextIO, columns: Sequence[str]) -> None:
        self.stream = stream
        self.columns = tuple(columns)
        # CRLF (RFC 4180), not "\n": csv quotes a field only for characters of the line terminator, so with
        # "\n" a cell holding a bare "\r" would go out unquoted and split the row for every reader.
        self.writer = csv.writer(stream, lineterminator="\r\n")
        self.writer.writerow([neutralise(c) for c in self.columns])

    def write(self, record: Mapping[str, Any]) -> None:
        self.writer.writerow([neutralise(cell(record.get(c))) for c in self.columns])

    def close(self) -> None:
        self.stream.flush()


class _TableWriter:
    def __init__(self, stream: TextIO, columns: Sequence[str]) -> None:
        self.stream = stream
        self.columns = tuple(columns)
        self.rows: list[list[str]] = []

    def write(self, record: Mapping[str, Any]) -> None:
        self.rows.append([cell(record.get(c)) for c in self.columns])

    def close(self) -> None:
        from rich.console import Console
        from rich.table import Table

        # For a person: columns empty in every row are left out (the data formats keep them), and a cell too
        # wide for the terminal folds onto more lines instead of being cut with "…" -- a truncated tracking
        # code or shipment id is worse than none.
        keep = [i for i in range(len(self.columns)) if any(row[i] for row in self.rows)] or list(
            range(len(self.columns))
        )
        table = Table(show_edge=False, header_style="bold")
        needed = 0
        for i in keep:
            values = [row[i] for row in self.rows]
            longest = max([len(self.columns[i])] + [len(v) for v in values])
            # A one-word value (an id, a code, a number) is kept whole on its line when it can be: only prose
            # and very long tokens fold.
            whole = longest <= 40 and not any(" " in v for v in values)
            table.add_column(self.columns[i], overflow="fold", min_width=longest if whole else None)
            needed += (longest if whole else 8) + 3  # cell, padding and separator
        for row in self.rows:
            table.add_row(*(row[i] for i in keep))
        console = Console(file=self.stream, highlight=False, soft_wrap=False)
        if needed > console.width:  # rather a wide line the terminal wraps than an id cropped at the edge
            console.width = needed
        console.print(table)


@contextmanager
def open_writer(fmt: OutputFormat, stream: TextIO, columns: Sequence[str]) -> Iterator[Writer]:
    """A writer for `fmt` on `stream`; closing it ends the JSON array, prints the table, flushes.

    It closes on error too, so what was written stays well-formed (a JSON array is still closed).
    """
    writer: _NdjsonWriter | _JsonWriter | _CsvWriter | _TableWriter
    if fmt == "ndjson":
        writer = _NdjsonWriter(stream)
    elif fmt == "json":
        writer = _JsonWriter(stream)
    elif fmt == "csv":
        writer = _CsvWriter(stream, columns)
    elif fmt == "table":
        writer = _TableWriter(stream, columns)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    try:
        yield writer
    finally:
        writer.close()
