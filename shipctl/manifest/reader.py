"""One lazy reader for every manifest: CSV, JSON array or NDJSON, from a file or stdin.

Bytes are read in 64 KiB chunks and decoded incrementally, so memory stays flat however long the manifest
is. The format is sniffed from the first non-blank character (`[` JSON, `{` NDJSON, anything else CSV);
a CSV's delimiter from its header line. Every row comes out as a `ValidRow` or an `InvalidRow`: row-level
problems never raise. Only a manifest that cannot be read at all raises `ManifestError`, naming the line.
"""

from __future__ import annotations

import codecs
import csv
import functools
import itertools
import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import ValidationError

from shipctl import startup
from shipctl.errors import ManifestError
from shipctl.manifest.columns import CUSTOMS, ITEM, TARGETS, canonical, normalize_header
from shipctl.manifest.columns import target as column_target
from shipctl.manifest.dedupe import ReferenceSet
from shipctl.manifest.models import CUSTOMS_COLUMNS, Address, Parcel, ShipmentRow
from shipctl.manifest.rows import InvalidRow, Problem, RawRow, ValidRow
from shipctl.manifest.sniff import classify, json_scalar
from shipctl.output import unneutralise
from shipctl.references import reference_key

Format = Literal["csv", "json", "ndjson"]

_CHUNK = 1 << 16
_MAX_ROW_CHARS = 16 << 20
_PENDING_REFERENCE = "\x00pending"
_SAME_ONCE_NORMALISED = ", the same order written another way: Unicode form, an invisible character or a .0"
_CACHE_SIZE = 256
_MAX_UNKNOWN = 50
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = " \t\r\n\ufeff"
_NOTHING_REFUSED: list[tuple[int, str]] = []  # shared by every CSV row: never appended to

SHIPCTL_COLUMNS = frozenset({"line", "error", "error_code", "error_message"})
"""Columns shipctl itself adds to the manifests it writes for a rerun (`--rejects`: `line`, `error`; `--failed`:
`error_code`, `error_message`): ignored without the unknown-column warning, so a file shipctl wrote reads back
cleanly. Any other unknown column is still named in the warning (it may be a header shipctl failed to map)."""


def iter_rows(
    source: str | Path | IO[bytes],
    *,
    fmt: Format | None = None,
    encoding: str | None = None,
    default_from: Address | None = None,
    on_warning: Callable[[str], None] | None = None,
    sheet: str | None = None,
) -> Iterator[ValidRow | InvalidRow]:
    """Yield every row of a manifest (a path, or a byte stream such as stdin's), validated, in file order.

    `default_from` is the origin of rows without `from_*` values; `on_warning` receives each warning
    (unknown or duplicated columns) as one line of text. An `.xlsx` workbook (known by its content, whatever
    its name) is read from its first sheet, or from `sheet`.
    """
    warn = on_warning or (lambda message: None)
    startup.work_begins()
    with ExitStack() as stack:
        binary = _open(source, stack)
        head = _read(binary)
        builder = _RowBuilder(default_from)
        stack.callback(builder.close)
        if classify(head, encoding) == "zip":
            from shipctl.manifest.xlsx import read_workbook  # zipfile and openpyxl: only for a workbook

            headers, cells = read_workbook(binary, head, sheet, stack)
            yield from _table_rows(headers, cells, builder, warn)
            return
        if sheet is not None:
            raise ManifestError("--sheet goes with an .xlsx workbook, and this manifest is not one")
        chunks = _text_chunks(binary, encoding, head)
        text, content = _first_content(chunks)
        if fmt is None:
            fmt = "json" if content.startswith("[") else "ndjson" if content.startswith("{") else "csv"
            if fmt == "csv":
                json_scalar(content)
        if fmt == "csv":
            yield from _csv_rows(text, chunks, builder, warn)
        else:
            yield from _json_rows(text, chunks, builder, warn)


def _open(source: str | Path | IO[bytes], stack: ExitStack) -> IO[bytes]:
    if isinstance(source, (str, Path)):
        try:
            return stack.enter_context(open(source, "rb"))
        except OSError as exc:
            raise ManifestError(f"cannot read {source}: {exc.strerror or exc}") from None
    return source


def _text_chunks(binary: IO[bytes], encoding: str | None, chunk: bytes) -> Iterator[str]:
    """Decoded text, chunk by chunk (`chunk` is the first, already read); bytes that do not decode, and NUL
    characters, raise ManifestError naming their line."""
    given = encoding
    if encoding is None:
        encoding = "utf-16" if chunk[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
    except LookupError:
        raise ManifestError(f"unknown encoding {encoding!r}") from None
    line = 1
    while True:
        final = not chunk
        try:
            text = decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise _undecodable(exc, line, given) from None
        if "\x00" in text:  # a search per chunk, not per row
            raise _nul(text, line)
        line += text.count("\n")
        if text:
            yield text
        if final:
            return
        chunk = _read(binary)


def _undecodable(exc: UnicodeDecodeError, line: int, given: str | None) -> ManifestError:
    """Which bytes on which line, named in the user's own words for the encoding (Python's codec for cp1252
    calls itself "charmap"), and what to try next."""
    at = line + exc.object[: exc.start].count(b"\n")
    bad = exc.object[exc.start : exc.end].hex(" ")
    if given is not None and codecs.lookup(given).name != "utf-8":
        hint = f"check --encoding: this file was saved in another encoding than {given}"
        return ManifestError(f"line {at}: bytes {bad} are not valid {given} ({hint})")
    name = "utf-8" if exc.encoding.startswith("utf-8") else exc.encoding
    try:
        bytes(exc.object).decode("cp1252")
        hint = "pass --encoding, e.g. --encoding cp1252 for a Windows/Excel export"
    except UnicodeDecodeError:  # cp1252 would fail too: do not send the user round in a circle
        hint = "pass --encoding with the encoding the file was saved in, e.g. --encoding latin-1"
    return ManifestError(f"line {at}: bytes {bad} are not valid {name} ({hint})")


def _nul(text: str, line: int) -> ManifestError:
    """A NUL in decoded text: no manifest holds one (a CSV cell with it would send it to the API), so it is the
    file that is wrong, damaged (a crash leaves blocks of NULs) or not text, and its line says where."""
    at = text.index("\x00")
    end = text.find("\n", at)
    many = text.count("\x00", at, len(text) if end < 0 else end) > 1
    what = "NUL bytes: a manifest never holds them" if many else "a NUL byte: a manifest never holds one"
    return ManifestError(f"line {line + text.count(chr(10), 0, at)}: {what}, so the file is damaged or is not text")


def _read(binary: IO[bytes]) -> bytes:
    try:
        return binary.read(_CHUNK) or b""
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc}") from None


def _first_content(chunks: Iterator[str]) -> tuple[str, str]:
    """(all text read so far, its first non-blank character onwards); empty input is a ManifestError.

    The blank chunks are kept aside and joined once: adding each to the text so far and stripping it again
    took quadratic time on a manifest of nothing but whitespace (10 MB: 7 s).
    """
    blank: list[str] = []
    for chunk in chunks:
        stripped = chunk.lstrip(_BLANK)
        if stripped:
            return "".join(blank) + chunk, stripped
        blank.append(chunk)
    raise ManifestError("the manifest is empty")


_Key = tuple[tuple[str, Any], ...]
"""A group's values as a cache key."""


class _RowBuilder:
    """Turns the values of one row, grouped (`TOP`, `TO`, `FROM`, …), into a ValidRow or InvalidRow."""

    def __init__(self, default_from: Address | None) -> None:
        self.default_from = default_from
        self.references = ReferenceSet()
        # Validated origins and parcels by their input values: most manifests repeat a few of each, and a
        # cached instance passes through pydantic without being validated again. Bounded: cleared when full.
        self.from_cache: dict[_Key, Address] = {}
        self.parcel_cache: dict[_Key, Parcel] = {}
        # `ShipmentRow.model_validate` without its Python wrapper: this runs once per row.
        self.validate = ShipmentRow.__pydantic_validator__.validate_python

    def build(
        self, line: int, raw: RawRow, parts: list[dict[str, Any]], problems: list[Problem]
    ) -> ValidRow | InvalidRow:
        data, to, origin, parcel, customs, item, options = parts
        reference = data.get("reference")
        if reference is None:
            data["reference"] = _PENDING_REFERENCE
        elif (first := self.references.add(key := reference_key(reference), line)) is not None:
            problems.append(Problem(line, "reference", f"duplicate reference {reference!r} (first on row {first}"
                                    f"{_SAME_ONCE_NORMALISED if key != reference else ''})"))
        data["to_address"] = to
        from_key = None
        if origin:
            from_key = tuple(origin.items())
            data["from_address"] = self.from_cache.get(from_key, origin)
        elif self.default_from is not None:
            data["from_address"] = self.default_from
        parcel_key = tuple(parcel.items())
        data["parcel"] = self.parcel_cache.get(parcel_key, parcel)
        if item or customs:
            _attach_customs(data, customs, item, line, problems)
        if options:
            _attach_options(data, options, line, problems)
        try:
            row: ShipmentRow = self.validate(data)
        except ValidationError as exc:
            problems.extend(_problems(line, exc, {problem.column for problem in problems}))
        if problems:
            return InvalidRow(line, problems, _raw_dict(raw))
        if from_key is not None and from_key not in self.from_cache:
            _remember(self.from_cache, from_key, row.from_address)
        if parcel_key not in self.parcel_cache:
            _remember(self.parcel_cache, parcel_key, row.parcel)
        if reference is None:
            row.reference = self._content_reference(row, line)
            return ValidRow(line, row, raw, derived=True)
        return ValidRow(line, row, raw)

    def _content_reference(self, row: ShipmentRow, line: int) -> str:
        # Identical rows without a reference are two parcels, not a mistake: number the repeats.
        key = candidate = row.content_key()
        repeat = 1
        while self.references.add(candidate, line) is not None:
            repeat += 1
            candidate = f"{key}-{repeat}"
        return candidate

    def close(self) -> None:
        self.references.close()


def _raw_dict(raw: RawRow) -> dict[str, Any]:
    if isinstance(raw, tuple):
        headers, cells = raw
        return dict(zip(headers, cells, strict=True))
    return raw


def _attach_customs(
    data: dict[str, Any], customs: dict[str, Any], item: dict[str, Any], line: int, problems: list[Problem]
) -> None:
    if item:
        # The item_* columns and a customs_items list are two spellings of one field: mixing them is ambiguous.
        if "customs_items" in customs:
            problems.append(Problem(line, "customs_items", "give either item_* columns or customs_items"))
        else:
            customs["customs_items"] = [item]
    if customs:
        data["customs_info"] = customs


def _attach_options(data: dict[str, Any], options: dict[str, Any], line: int, problems: list[Problem]) -> None:
    # The option_* columns and an options object are two spellings of one field, like customs items.
    if "options" in data:
        problems.append(Problem(line, "options", "give either option_* columns or options"))
    else:
        data["options"] = options


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Cache `value` under a key not yet there (the caller checked)."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _problems(line: int, exc: ValidationError, named: Collection[str] = ()) -> list[Problem]:
    """The row's problems in pydantic's `exc`; `named`: columns that have a problem already, read from a value the
    reader could not take (a list for a weight), which is then not also "required"."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        field = (error.get("ctx") or {}).get("field")
        if field:
            loc.append(field)
        kind = error["type"]
        message = error["msg"]
        if kind == "missing":
            if _column(loc) in named:
                continue
            message = "required"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind not in ("shipctl",) and isinstance(error.get("input"), str):
            message = f"{message} (got {error['input']!r})"
        column = _column(loc)
        if column == "item_*":
            message = ("at least one item is required: item_description, item_quantity, item_value, item_weight,"
                       " item_origin_country")
        problems.append(Problem(line, column, message))
    return problems


def _column(loc: list[Any]) -> str:
    """The flat column a pydantic error location points at: (`to_address`, `zip`) → `to_zip`."""
    if not loc:
        return "*"
    head = loc[0]
    if head in ("to_address", "from_address"):
        prefix = "to_" if head == "to_address" else "from_"
        return prefix + (str(loc[1]) if len(loc) > 1 else "*")
    if head == "parcel":
        return str(loc[1]) if len(loc) > 1 else "weight"
    if head == "customs_info":
        if len(loc) == 1:
            return "customs_*"
        if loc[1] != "customs_items":
            return CUSTOMS_COLUMNS.get(str(loc[1]), str(loc[1]))
        if len(loc) < 4:
            return "item_*"
        column = f"item_{loc[3]}"
        return column if loc[2] == 0 else f"{column}[{int(loc[2]) + 1}]"
    return str(head)


# ---------------------------------------------------------------------------------------------------- CSV


def _separator(head: str) -> str:
    """The line separator: `\n` (also ending `\r\n` lines), or `\r` in a file with no `\n` (old Mac)."""
    return "\r" if "\n" not in head and "\r" in head else "\n"


class _End:
    """What `_line_batches` leaves: the file's last line, once every line was taken; and the batch of lines it gave
    last, after `before` lines, which holds the line csv.reader is on (to look at a line it fails on again)."""

    last_line: str | None = None
    batch: Sequence[str] = ()
    before = 0

    def line(self, number: int) -> str | None:
        """Line `number` (from 1), if it is in the last batch."""
        index = number - self.before - 1
        return self.batch[index] if 0 <= index < len(self.batch) else None


def _lines(head: str, chunks: Iterator[str], sep: str, end: _End) -> Iterator[str]:
    """Physical lines, each ending in its separator (csv.reader needs them whole to count lines): a chunk's lines
    at a time, so that csv.reader takes them one by one without a Python frame per line."""
    return itertools.chain.from_iterable(_line_batches(head, chunks, sep, end))


def _line_batches(head: str, chunks: Iterator[str], sep: str, end: _End) -> Iterator[list[str]]:
    pending = last = ""
    taken = 0
    for chunk in itertools.chain((head,), chunks):
        pending += chunk
        if sep in chunk:
            lines = pending.split(sep)
            pending = lines.pop()
            batch = [line + sep for line in lines]
            last = batch[-1]
            end.batch, end.before = batch, taken
            taken += len(batch)
            yield batch
        elif len(pending) > _MAX_ROW_CHARS:
            raise ManifestError(f"line {taken + 1}: a line of the manifest is longer than 16 MiB")
    if pending:
        last = pending
        end.batch, end.before = [pending], taken
        yield [pending]
    # Reached only when csv.reader asks past the last line: a row it then gives back was ended by the end of the
    # text, not by a line break.
    end.last_line = last


def _open_at_end(cells: list[str], end: _End) -> int | None:
    """For a row over several lines that the end of the text ended: the index of the cell whose quote never
    closed (it took every line to the end, the last line break too), else None. That is always the last cell: the
    text ended inside it. (Cells before it may hold line breaks too, in quotes that closed.) A quoted cell closed at
    the very end (`"…\n…"`) ends before its quote, so it does not end with the file's last line; an unclosed one
    does (`""` in it read as one quote)."""
    last = end.last_line
    if last is None or not cells[-1].endswith(last.replace('""', '"')):
        return None
    return len(cells) - 1


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@functools.lru_cache(maxsize=8)
def _compile_plan(
    plan: tuple[tuple[int, int, str, str | None], ...], *, quoted: bool
) -> Callable[[list[str]], list[dict[str, Any]]]:
    """A function that splits one row's cells into the row's groups, unrolled for this header.

    This is the reader's innermost loop; unrolled it runs about three times faster than interpreting the
    plan cell by cell. `quoted`: the variant that takes the `'` off cells shipctl neutralised when it wrote them
    (`output.neutralise`), for rows that have one; rows without a `'` anywhere skip the test per cell. The
    generated source holds only integers and the names from our own column tables (as repr literals), never
    text from the manifest.

    Cached by plan: a `create` reads its manifest twice (the validation pass, then the run), and each compile
    costs about a millisecond of its start-up; the function made holds no state of a read.
    """
    source = ["def split(c):", "    p = [{}, {}, {}, {}, {}, {}, {}]", "    g0, g1, g2, g3, g4, g5, g6 = p"]
    for index, group, field, unit in plan:
        # An empty cell (most of a row's, often) is skipped before the strip call.
        source += [f"    v = c[{int(index)}]", "    if v:", "        v = v.strip()"]
        if quoted:
            source.append("        if v and v[0] == \"'\": v = unquote(v)")
        source.append("        if v:")
        if unit is not None:
            source.append(f"            if v[-1].isdigit(): v += {unit!r}")
        source.append(f"            g{int(group)}[{field!r}] = v")
    source.append("    return p")
    namespace: dict[str, Any] = {"unquote": unneutralise}
    exec(compile("\n".join(source), "<csv row plan>", "exec"), namespace)  # noqa: S102 - see docstring
    split: Callable[[list[str]], list[dict[str, Any]]] = namespace["split"]
    return split


def _csv_rows(
    head: str, chunks: Iterator[str], builder: _RowBuilder, warn: Callable[[str], None]
) -> Iterator[ValidRow | InvalidRow]:
    first_line = head.lstrip("\ufeff").lstrip("\r\n").split("\n", 1)[0]
    sep = _separator(head)
    end, delimiter = _End(), _delimiter(first_line)
    reader = csv.reader(_lines(head, chunks, sep, end), delimiter=delimiter)

    def next_cells() -> list[str] | None:
        started = reader.line_num + 1
        try:
            return next(reader, None)
        except csv.Error as exc:
            raise _csv_failure(exc, (started, reader.line_num), end, delimiter, ()) from None

    table = _Table(_csv_header(next_cells), builder, warn)
    # `_Table.row`, unrolled into the loop (this is the loop every CSV row goes through).
    headers, width, build, json_items = table.headers, table.width, table.build, table.has_json_items
    split, split_quoted = table.split, table.split_quoted
    ended = reader.line_num  # the last line the reader took, so a row starts on the line after it
    try:
        for cells in reader:
            line, ended = ended + 1, reader.line_num
            joined = "".join(cells)
            if not joined or joined.isspace():
                continue
            problems: list[Problem] = []
            given, read = len(cells), cells
            if given != width:
                cells = _fit_width(cells, width, line, problems)
            parts = split_quoted(cells) if "'" in joined else split(cells)
            if json_items and "customs_items" in parts[CUSTOMS]:
                _json_items(parts, line, problems)
            built = build(line, (headers, cells), parts, problems)
            if ended > line and (odd := _quote_out_of_place(built, read, (line, ended), end, sep, delimiter,
                                                            headers)) is not None:
                yield odd
                continue
            if given < width and isinstance(built, InvalidRow):
                # Short rows are padded (some tools leave trailing empty cells out), but when the row is then
                # missing what it needs, the likelier cause is a line cut short, not a blank column.
                if ended > line:  # a quoted cell ran over line breaks: most likely a quote that never closes
                    why = (f"a quote out of place? (a quoted cell runs from line {line} to line {ended}: the lines "
                           "after it were read into it)")
                else:
                    why = "a line cut short, or a quote out of place?"
                built.problems.append(Problem(line, "*", f"only {given} fields, but the header has {width}: {why}"))
            yield built
    except csv.Error as exc:
        raise _csv_failure(exc, (ended + 1, reader.line_num), end, delimiter, headers) from None


def _quote_out_of_place(built: ValidRow | InvalidRow, cells: list[str], lines: tuple[int, int], end: _End,
                        sep: str, delimiter: str, headers: Sequence[str]) -> InvalidRow | None:
    """A row read over several lines (`lines`: its first and last) whose quote was out of place, as an invalid row
    (nothing of it is bought, and the rows it hid are seen), whatever else it holds; else None. Either the quote
    never closed, and the rest of the file was read into its cell, or it closed only after whole rows were: most
    likely opened by mistake and closed by the next quote in the file."""
    line, ended = lines
    opened = _open_at_end(cells, end)
    index = opened if opened is not None else _rows_inside(cells, sep, delimiter, len(headers))
    if index is None:
        return None
    # The cell's quote opens on the row's first line unless cells before it ran over lines too.
    opens = line + sum(cell.count(sep) for cell in cells[:index])
    if opened is not None:
        why = (f"is never closed: lines {opens}–{ended}, to the end of the file, were read into this one cell (the "
               "rows on them were not read)")
    else:
        why = (f"closes only on line {ended}: the lines between hold rows of their own, read into this one cell (a "
               "quote out of place?)")
    where = "here" if opens == line else f"on line {opens}"
    column = headers[index] if index < len(headers) else "*"
    return InvalidRow(line, [Problem(line, column, f"a quote opens {where} and {why}")], built.raw)


def _rows_inside(cells: list[str], sep: str, delimiter: str, width: int) -> int | None:
    """The index of a quoted cell over several lines with a line after its first that holds a row's worth of
    delimiters: rows read into one cell by a quote out of place that a later quote closed, else None. (A note over
    two lines with a comma or two in it is not a row.)"""
    if width < 3:
        return None
    for index, cell in enumerate(cells):
        if sep in cell:
            inner = cell.split(sep)[1:]
            if any(part.count(delimiter) >= width - 1 for part in inner if part):
                return index
    return None


def _csv_failure(exc: csv.Error, lines: tuple[int, int], end: _End, delimiter: str,
                 headers: Sequence[str]) -> ManifestError:
    """Python's csv messages in the user's terms ("do you need to open the file in universal-newline mode?" is
    advice for a programmer, not for someone holding a spreadsheet export), naming the line csv.reader failed on
    (`lines`: the first line of the record it was reading, and that line)."""
    text = str(exc)
    at = lines[1]
    if "field larger than field limit" in text:
        return _too_long(lines, end, delimiter, headers)
    if "new-line character seen in unquoted field" in text:
        return ManifestError(f"line {at}: a carriage return inside an unquoted field: the file mixes line endings; "
                             "save it again as CSV, or put that field in double quotes")
    return ManifestError(f"line {at}: not valid CSV ({text})")


def _too_long(lines: tuple[int, int], end: _End, delimiter: str, headers: Sequence[str]) -> ManifestError:
    """A field past csv's limit. Only a quoted field runs over line breaks, so a record over several lines is a
    quote that most likely never closes; on one line the field is just too long, quoted or not, and without a
    quote on the line its column is known."""
    started, at = lines
    too_long = f"a field longer than {csv.field_size_limit():,} characters"
    if at > started:
        return ManifestError(f"line {at}: {too_long}: probably a double quote (\") that is never closed")
    text = end.line(at)
    if text is None or '"' in text:
        return ManifestError(f"line {at}: {too_long}")
    cells = text.split(delimiter)
    index = next((i for i, cell in enumerate(cells) if len(cell) > csv.field_size_limit()), len(headers))
    column = f", column {headers[index]}" if index < len(headers) and headers[index] else ""
    return ManifestError(f"line {at}{column}: {too_long}")


class _Table:
    """The rows of a table (a CSV file or a sheet) under its header: each row's cells split into the row's groups
    by a plan compiled for this header, then built."""

    def __init__(self, headers: list[str], builder: _RowBuilder, warn: Callable[[str], None]) -> None:
        plan, columns = _csv_plan(headers, warn)
        self.headers = headers
        self.width = len(headers)
        self._plan = tuple(plan)
        self.split = _compile_plan(self._plan, quoted=False)
        self._split_quoted: Callable[[list[str]], list[dict[str, Any]]] | None = None
        self.has_json_items = "customs_items" in columns
        self.column_at = {headers.index(name): column for column, name in columns.items()}
        self.build = builder.build

    def split_quoted(self, cells: list[str]) -> list[dict[str, Any]]:
        """`split` for a row with a `'` in it, compiled when the first such row comes: many manifests have none."""
        if self._split_quoted is None:
            self._split_quoted = _compile_plan(self._plan, quoted=True)
        return self._split_quoted(cells)

    def row(self, line: int, cells: list[str], joined: str, problems: list[Problem]) -> ValidRow | InvalidRow:
        """Row `line`, not blank (`joined`: its cells joined), with the `problems` found reading it."""
        if len(cells) != self.width:
            cells = _fit_width(cells, self.width, line, problems)
        parts = self.split_quoted(cells) if "'" in joined else self.split(cells)
        if self.has_json_items and "customs_items" in parts[CUSTOMS]:
            _json_items(parts, line, problems)
        return self.build(line, (self.headers, cells), parts, problems)


def _table_rows(
    headers: list[str],
    rows: Iterator[tuple[int, list[str], list[tuple[int, str]]]],
    builder: _RowBuilder,
    warn: Callable[[str], None],
) -> Iterator[ValidRow | InvalidRow]:
    """A sheet's rows, each `(line, cells, refused)`, under its header, validated.

    `refused` names the cells (index, problem) a sheet could not read as text: a problem of the row in a column
    shipctl reads, nothing in a column it ignores."""
    table = _Table(headers, builder, warn)
    for line, cells, refused in rows:
        problems = [Problem(line, table.column_at[i], message) for i, message in refused if i in table.column_at]
        joined = "".join(cells)
        if (joined and not joined.isspace()) or problems:
            yield table.row(line, cells, joined, problems)


def _csv_header(next_cells: Callable[[], list[str] | None]) -> list[str]:
    """The column names of the first non-blank line."""
    header = next_cells()
    while header is not None and not "".join(header).strip():
        header = next_cells()
    if header is None:
        raise ManifestError("the manifest is empty")
    return [h.replace("\ufeff", "").strip() for h in header]


def _csv_plan(
    headers: list[str], warn: Callable[[str], None]
) -> tuple[list[tuple[int, int, str, str | None]], dict[str, str]]:
    """The row plan, (cell index, group, field, unit suffix) per known column, and each column's header name.

    Of two headers for one column the first wins, so a row never depends on which synonym came last.
    """
    plan: list[tuple[int, int, str, str | None]] = []
    seen: dict[str, str] = {}
    unknown: list[str] = []
    for index, name in enumerate(headers):
        column, unit = canonical(name)
        if column is None:
            if normalize_header(name) not in SHIPCTL_COLUMNS:
                unknown.append(name or f"#{index + 1}")
        elif column in seen:
            warn(f"column {name!r} ignored: {seen[column]!r} already gives {column}")
        else:
            seen[column] = name
            target = column_target(column)
            plan.append((index, target.group, target.field, " " + unit if unit else None))
    _warn_unknown(unknown, warn)
    return plan, seen


def _fit_width(cells: list[str], width: int, line: int, problems: list[Problem]) -> list[str]:
    """Cells padded or cut to the header's width; extra cells that hold text are a problem, blank ones are not."""
    if len(cells) > width and "".join(cells[width:]).strip():
        problems.append(Problem(line, "*", f"{len(cells)} fields, but the header has {width}"))
    return (cells + [""] * width)[:width]


UNKNOWN_NAMED = 20
"""The most unknown columns one warning names (a generated header of 100,000 made a line of 789 KB)."""


def _warn_unknown(names: Collection[str], warn: Callable[[str], None]) -> None:
    if names:
        shown = list(names)[:UNKNOWN_NAMED]
        more = f" and {len(names) - len(shown):,} more" if len(names) > len(shown) else ""
        warn(f"unknown column{'s' if len(names) > 1 else ''} ignored: {', '.join(shown)}{more}")


# ---------------------------------------------------------------------------------------------------- JSON


def _json_values(head: str, chunks: Iterator[str]) -> Iterator[Any]:
    """The values of a JSON array, or of a stream of whitespace-separated JSON values (NDJSON), lazily."""
    text = _JsonText(head, chunks)
    text.skip_space()
    if text.take("["):
        yield from _json_array(text)
        return
    while not text.at_end():
        yield text.value()


def _json_array(text: _JsonText) -> Iterator[Any]:
    """The values of the array whose `[` was just taken; nothing may follow its `]` but whitespace."""
    text.skip_space()
    if not text.take("]"):
        while True:
            yield text.value()
            if text.take(","):
                text.skip_space()
                continue
            if text.take("]"):
                break
            if text.at_end():
                raise text.fail("invalid JSON: the array is not closed (missing ']')")
            raise text.fail(f"invalid JSON: expected ',' or ']', found {text.buf[text.pos]!r}")
    text.skip_space()
    if not text.at_end():
        raise text.fail("invalid JSON: unexpected data after the array")


class _JsonText:
    """A cursor over JSON text that arrives in chunks: only the unread tail is kept, so memory stays flat."""

    def __init__(self, head: str, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.raw_decode = json.JSONDecoder().raw_decode  # bound once: it runs for every row
        self.buf = head.lstrip("\ufeff")
        self.pos = 0
        self.line_base = 1  # the file line buf[0] is on
        self.eof = False

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def take(self, char: str) -> bool:
        """Step over `char` if it comes next."""
        if self.buf.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def more(self) -> None:
        """Drop the text already read and append the next chunk (or note the end of input)."""
        self.line_base += self.buf.count("\n", 0, self.pos)
        self.buf = self.buf[self.pos :]
        self.pos = 0
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return
        self.buf += chunk
        if len(self.buf) > _MAX_ROW_CHARS:
            raise ManifestError(f"line {self.line_base}: a single row is longer than 16 MiB")

    def fail(self, message: str, at: int | None = None) -> ManifestError:
        """An error naming the line of `at` (default: the cursor)."""
        at = self.pos if at is None else at
        if not self.buf[at:].strip():  # cut short: name the last line that has text, not the blank end
            at = len(self.buf[:at].rstrip())
        return ManifestError(f"line {self.line_base + self.buf.count(chr(10), 0, at)}: {message}")

    def skip_space(self) -> None:
        """Step over whitespace; afterwards the cursor is on a character, or at the end of input."""
        while True:
            match = _JSON_SPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or self.eof:
                return
            self.more()

    def value(self) -> Any:
        """Decode the value at the cursor, reading more chunks until it is whole; step over the space after it."""
        while True:
            try:
                result, end = self.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self.fail(f"invalid JSON: {exc.msg}", exc.pos) from None
                self.more()
                continue
            except (ValueError, RecursionError) as exc:
                raise self.fail(f"invalid JSON: {exc}") from None
            if end == len(self.buf) and not self.eof:  # a number may go on in the next chunk
                self.more()
                continue
            self.pos = end
            self.skip_space()
            return result


_NESTED_PREFIX = {
    "to_address": "to_", "from_address": "from_", "parcel": "", "options": "option_", "customs_info": "customs_",
}


class _JsonColumns:
    """Resolves JSON keys to canonical columns (cached), remembering unknown ones for one warning."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[str | None, str | None]] = {}
        self.unknown: dict[str, None] = {}
        self.own: set[str] = set()  # keys naming shipctl's own columns: not warned about

    def resolve(self, key: str) -> tuple[str | None, str | None]:
        found = self.cache.get(key)
        if found is None:
            found = canonical(key)
            if len(self.cache) < 4096:
                self.cache[key] = found
        if found[0] is None and key not in self.unknown and len(self.unknown) < _MAX_UNKNOWN:
            self._unknown(key)
        return found

    def _unknown(self, key: str) -> None:
        if key not in self.own:
            if normalize_header(key) in SHIPCTL_COLUMNS:
                self.own.add(key)
            else:
                self.unknown[key] = None


def _scalar(value: Any) -> str | None:
    """A JSON value as cell text; None when absent; TypeError for an object or a list, ValueError for a number that
    is no finite float."""
    if isinstance(value, str):
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = str(value)
        if text[-1].isdigit():  # every finite number's text ends in a digit; `inf` and `nan` do not
            return text
        # A number past a float's range (`1e309`) was read as infinity: its digits are gone, and its text `inf`
        # would be quoted back as a weight 'inf', or become the reference `inf`. So the cell is refused.
        raise ValueError("NaN is not a number" if value != value else "a number too large to read (beyond 1.8e308)")
    raise TypeError("an object or a list" if isinstance(value, (dict, list)) else type(value).__name__)


def _json_parts(obj: dict[str, Any], line: int, columns: _JsonColumns) -> tuple[list[dict[str, Any]], list[Problem]]:
    parts: list[dict[str, Any]] = [{}, {}, {}, {}, {}, {}, {}]
    problems: list[Problem] = []
    flat: list[tuple[str, Any]] = []
    for key, value in obj.items():
        prefix = _NESTED_PREFIX.get(key) if isinstance(value, dict) else None
        if prefix is None:
            flat.append((key, value))
        else:
            for inner, inner_value in value.items():
                name = inner if prefix == "customs_" and inner.startswith("customs_") else prefix + str(inner)
                flat.append((name, inner_value))
    for key, value in flat:
        column, unit = columns.resolve(str(key))
        if column is None:
            continue
        group, field = column_target(column)
        if column == "customs_items":
            parts[group][field] = value
            continue
        try:
            text = _scalar(value)
        except TypeError as exc:
            problems.append(Problem(line, column, f"expected a single value, got {exc}"))
            continue
        except ValueError as exc:
            problems.append(Problem(line, column, str(exc)))
            continue
        if text is not None and field not in parts[group]:
            if unit is not None and text[-1].isdigit():
                text += " " + unit
            parts[group][field] = text
    if "customs_items" in parts[CUSTOMS]:
        _json_items(parts, line, problems, columns)
    return parts, problems


def _json_items(
    parts: list[dict[str, Any]], line: int, problems: list[Problem], columns: _JsonColumns | None = None
) -> None:
    """Validate the shape of a `customs_items` list (JSON, or JSON text in a CSV cell) into item dicts."""
    value = parts[CUSTOMS].pop("customs_items")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            problems.append(Problem(line, "customs_items", "not a JSON list of items"))
            return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(Problem(line, "customs_items", "expected a list of item objects"))
        return
    items = []
    for number, item in enumerate(value, start=1):
        fields: dict[str, Any] = {}
        for key, item_value in item.items():
            name = str(key) if str(key).startswith("item_") else f"item_{key}"
            column, unit = columns.resolve(name) if columns else canonical(name)
            if column is None or TARGETS[column].group != ITEM:
                continue
            try:
                text = _scalar(item_value)
            except TypeError as exc:
                problems.append(Problem(line, f"{column}[{number}]", f"expected a single value, got {exc}"))
                continue
            except ValueError as exc:
                problems.append(Problem(line, f"{column}[{number}]", str(exc)))
                continue
            if text is not None:
                fields[TARGETS[column].field] = text + (" " + unit if unit and text[-1].isdigit() else "")
        items.append(fields)
    parts[CUSTOMS]["customs_items"] = items


def _json_rows(
    head: str, chunks: Iterator[str], builder: _RowBuilder, warn: Callable[[str], None]
) -> Iterator[ValidRow | InvalidRow]:
    columns = _JsonColumns()
    for index, obj in enumerate(_json_values(head, chunks), start=1):
        if not isinstance(obj, dict):
            kind = "a list" if isinstance(obj, list) else type(obj).__name__ if obj is not None else "null"
            yield InvalidRow(index, [Problem(index, "*", f"expected a JSON object, got {kind}")], {})
            continue
        parts, problems = _json_parts(obj, index, columns)
        if not problems and not any(parts):
            # Seven "required" lines would hide what is wrong: there is no shipment here at all.
            what = "an empty object" if not obj else "an object with no manifest fields"
            yield InvalidRow(index, [Problem(index, "*", f"{what} (expected keys such as to_name, to_street1, "
                                                         "to_city, to_zip, weight)")], obj)
            continue
        yield builder.build(index, obj, parts, problems)
    _warn_unknown(columns.unknown, warn)

