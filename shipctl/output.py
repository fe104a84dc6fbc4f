"""Result writers for stdout: table, json, ndjson, csv (README, "Buying labels").

All but the table stream: a JSON array is opened before the first record and closed at the end (`[]` when
nothing came), NDJSON is flushed a line at a time so a pipeline sees each row as it is done, CSV writes its
header at once. The table needs every row to size its columns, so it prints when the writer closes; how it
fits a screen (fold free text, never an id; leave out the least useful columns; summarise a large one) is
`TableLayout`, which the CLI fills in from the terminal (README, "Tables on a screen and in a file").
CSV cells a spreadsheet would run as a formula are neutralised with a leading `'`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal, Protocol, TextIO

OutputFormat = Literal["table", "json", "ndjson", "csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def counted(n: int, noun: str) -> str:
    """`1 shipment`, `2 shipments`: `noun` is the plural, as `Summary.noun` is."""
    return f"{n} {noun[:-1] if n == 1 and noun.endswith('s') else noun}"


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


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: text a spreadsheet would evaluate neutralised; a number (a negative longitude, a
    refund's amount) kept a number, which no spreadsheet runs and every other reader wants as one."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return cell(value)
    return neutralise(cell(value))


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
        self.writer.writerow([csv_cell(record.get(c)) for c in self.columns])

    def close(self) -> None:
        self.stream.flush()


# -- the table, for a person -------------------------------------------------------------------------------

PROSE_COLUMNS = frozenset({
    "error_message", "message", "last_event", "location", "last_location", "options", "rate_choice",
})
"""Free text: folded at its spaces to fit the screen. Every other column is kept whole on one line (an id, a
code, a reference, an amount: a tracking code split over two lines is copied wrong), except an unknown column
whose values have spaces."""
DROP_FIRST = (
    "rate_choice", "options", "insurance", "purchase", "delivery_days", "currency", "shipment_id", "label_path",
    "address_verification", "status_detail", "est_delivery_date",
    "last_event_at", "delivery_date", "service", "refund_status", "pick", "carrier", "error_code", "error_message",
    "status",
)
"""Least useful first: what a table too wide for the screen leaves out (the data formats keep every column).
`address_verification` is mostly `verified` (a failure is also a warning on stderr); `error_code` goes before the
price (the message says what failed, the summary counts the codes); `status` last of all (a tracking event's
message says it too), and just before it `error_message`: folded down to a narrow column it takes many lines, while
`status` says in one short cell which rows need a person. A column not named here is never left out."""
PROSE_MIN = 12
"""The narrowest a free-text column is squeezed to (wider when a word is longer, up to `WORD_MAX`)."""
WORD_MAX = 20
MORE_HINT = "rerun the same command with -o ndjson"


@dataclass(frozen=True)
class TableLayout:
    """How a table is laid out for a person; the CLI fills it in from the terminal (this module never asks).

    `width`: the screen's columns, which the table fits by folding free text, then by leaving out the least
    useful columns (`DROP_FIRST`), said in one line to `notice`. None (a file, a pipe): no screen to fit, every
    row stays on one line at the table's natural width, nothing folded or left out.
    `order`: a sort key for the rows (stable); None keeps them as written.
    `most`: with more rows than this, only the rows `attention` picks are shown (at most `most`; the first
    `HEAD` rows when none is picked), and `notice` says how many more there are and where to see them (`more`).
    """

    width: int | None = None
    order: Callable[[Mapping[str, Any]], Any] | None = None
    most: int | None = None
    attention: Callable[[Mapping[str, Any]], bool] | None = None
    more: str = MORE_HINT
    notice: Callable[[str], None] | None = None


HEAD = 10
SCREEN_MOST = 100
"""The most rows a command puts in a table on a screen (`TableLayout.most`); above it, the rows needing attention."""
"""Rows shown from a summarised table in which no row needs attention: enough to see what the rows look like."""


@dataclass
class _Column:
    name: str
    values: list[str]
    prose: bool
    natural: int
    """Its width with every cell on one line."""
    least: int
    """The narrowest it may be: whole columns never shrink; free text down to `PROSE_MIN` or its longest word."""


def _column(name: str, values: list[str]) -> _Column:
    from rich.cells import cell_len

    lines = [line for v in values for line in v.splitlines()] or [""]
    natural = max(cell_len(name), *(cell_len(line) for line in lines))
    prose = name in PROSE_COLUMNS or any(" " in v for v in values)
    if not prose:
        return _Column(name, values, False, natural, natural)
    longest_word = max(cell_len(word) for line in [*lines, name] for word in (line.split() or [""]))
    return _Column(name, values, True, natural, min(natural, max(PROSE_MIN, min(longest_word, WORD_MAX))))


def _table_width(columns: Sequence[_Column], widths: Sequence[int]) -> int:
    return sum(widths) + 3 * len(columns) - 1  # a space either side of each cell, a rule between columns


def fit_columns(columns: list[_Column], width: int) -> tuple[list[_Column], list[str]]:
    """The columns that fit `width` at their narrowest, leaving out the least useful first; and those left out.

    When even the essential ones do not fit, they are all kept: a line the terminal wraps beats a value lost.
    """
    def fits(names: set[str]) -> bool:
        chosen = [c for c in columns if c.name in names]
        return _table_width(chosen, [c.least for c in chosen]) <= width

    kept = {c.name for c in columns}
    dropped: list[str] = []
    for name in DROP_FIRST:
        if fits(kept):
            break
        if len(kept) > 1 and name in kept:
            kept.discard(name)
            dropped.append(name)
    # A wide column left out may have made room for a narrow one left out before it: the more useful back first.
    for name in reversed(dropped[:-1]):
        if fits(kept | {name}):
            kept.add(name)
    return [c for c in columns if c.name in kept], [n for n in dropped if n not in kept]


class _TableWriter:
    def __init__(self, stream: TextIO, columns: Sequence[str], layout: TableLayout | None = None) -> None:
        self.stream = stream
        self.columns = tuple(columns)
        self.layout = layout or TableLayout()
        self.records: list[Mapping[str, Any]] = []

    def write(self, record: Mapping[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        records = self._shown()
        if not records:  # a table of no rows says nothing: the command's own line on stderr says why
            return
        rows = [[cell(record.get(c)) for c in self.columns] for record in records]
        # Columns empty in every row are left out (the data formats keep them).
        columns = [_column(name, [row[i] for row in rows]) for i, name in enumerate(self.columns)
                   if any(row[i] for row in rows)] or [_column(n, ["" for _ in rows]) for n in self.columns]
        self._print(columns, len(rows))

    def _shown(self) -> list[Mapping[str, Any]]:
        """The rows in their order; for a large table on a screen, only those a person must see."""
        layout, records = self.layout, self.records
        if layout.order is not None:
            records = sorted(records, key=layout.order)
        if layout.most is None or len(records) <= layout.most:
            return records
        picked = [r for r in records if layout.attention is not None and layout.attention(r)]
        shown = picked[: layout.most] if picked else records[:HEAD]
        if layout.notice is not None:
            what = (f"the first {len(shown)} are shown" if not picked
                    else f"the {len(shown)} that need attention are shown" if len(shown) == len(picked)
                    else f"{len(shown)} of the {len(picked)} that need attention are shown")
            layout.notice(f"{len(records):,} rows, more than {layout.most} for a screen: {what}; "
                          f"{len(records) - len(shown):,} more rows: {layout.more}")
        return shown

    def _print(self, columns: list[_Column], count: int) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        width = self.layout.width
        if width is None:  # no screen: every row on one line, as wide as it needs
            table_width = _table_width(columns, [c.natural for c in columns])
        else:
            columns, dropped = fit_columns(columns, width)
            if dropped and self.layout.notice is not None:
                self.layout.notice(f"the table leaves out {', '.join(dropped)} to fit {width} columns; -o csv "
                                   "has every column")
            # Rather a line the terminal wraps than a value cut at the edge.
            table_width = max(width, _table_width(columns, [c.least for c in columns]))
        table = Table(show_edge=False, header_style="bold")
        for c in columns:
            foldable = c.prose and width is not None
            table.add_column(c.name, overflow="fold", no_wrap=not foldable,
                             min_width=c.least if foldable else c.natural)
        for i in range(count):
            # Text, not markup: a manifest's "[bold]" or ":smile:" prints as written.
            table.add_row(*(Text(c.values[i]) for c in columns))
        # Rendered, then written without the padding rich puts after the last cell: no trailing blanks in a file.
        # A bold header on a screen only (the layout has a width only there); plain text in a file.
        on_screen = width is not None
        console = Console(file=io.StringIO(), width=table_width, highlight=False, soft_wrap=False, emoji=False,
                          force_terminal=on_screen, color_system="standard" if on_screen else None)
        with console.capture() as captured:
            console.print(table)
        self.stream.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


@contextmanager
def open_writer(
    fmt: OutputFormat, stream: TextIO, columns: Sequence[str], *, table: TableLayout | None = None,
) -> Iterator[Writer]:
    """A writer for `fmt` on `stream`; closing it ends the JSON array, prints the table, flushes.

    `table` lays out a table (the screen's width, the rows' order, summarising a large one); without it a table
    is laid out as for a file. It closes on error too, so what was written stays well-formed (a JSON array is
    still closed).
    """
    writer: _NdjsonWriter | _JsonWriter | _CsvWriter | _TableWriter
    if fmt == "ndjson":
        writer = _NdjsonWriter(stream)
    elif fmt == "json":
        writer = _JsonWriter(stream)
    elif fmt == "csv":
        writer = _CsvWriter(stream, columns)
    elif fmt == "table":
        writer = _TableWriter(stream, columns, table)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    try:
        yield writer
    finally:
        writer.close()
