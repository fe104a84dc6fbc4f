"""`.xlsx` workbooks read directly, with openpyxl in read-only mode: one sheet, row by row, as cell text.

A clerk's orders live in Excel; exporting to CSV first loses nothing shipctl cannot restore, but it is one more
step and one more place for the encoding to go wrong. A sheet reads like a CSV file: its first non-blank row is
the header, each later row a manifest row, numbered as the sheet numbers it (row 1 = the first row of the
sheet), so problems point at the row Excel shows. Cells come as Excel typed them and are turned into the text
a CSV export would hold: whole numbers without `.0` (a ZIP stored as the number 2108 reads `2108`, and the
normaliser restores `02108` for a US address, as for CSV), a ZIP number format (`00000`, `00000-0000`) applied
as Excel displays it, dates as ISO dates, formulas as their last computed values.

What a CSV export would hold but the typed cell does not say is refused, cell by cell, as a problem of its row
(the reader reports it against the cell's column, or ignores it in a column shipctl does not read), never
guessed: an error value (`#N/A`), a formula with no saved value (a workbook written by a program and never
opened in Excel), a cell inside a merged range (only its top-left cell holds the value), and a number whose
format shows words beside it (`0.0 "lb"` shows 12 as `12.0 lb`; the cell holds only 12). The sheet's
`<dimension>` tag is not trusted: every row and column in the sheet is read.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import IO, Any, TypeVar

from shipctl.errors import ManifestError
from shipctl.manifest.sniff import NOT_A_MANIFEST, SAVE_AS
from shipctl.output import cell

T = TypeVar("T")

Refusals = list[tuple[int, str]]
"""(0-based cell index, problem) for each cell of a row that cannot be read as a CSV export would hold it."""

Rows = Iterator[tuple[int, list[str], Refusals]]
"""(sheet row number, cell texts, refused cells) per row; blank rows included (the reader skips them)."""

_PLAIN_ZEROS = re.compile(r"0+")
_ZIP4 = re.compile(r"0{5}\\?-0{4}")
_ZIP_OR_ZIP4 = "[<=99999]00000;00000-0000"  # Excel's built-in "Zip Code + 4" special format
# Number format parts that are not literal text: [colour/condition/locale], layout (`_x` pads, `*x` repeats),
# General, and the exponent of scientific notation; what is left, quoted or escaped or bare, is shown as is.
_FORMAT_CODES = re.compile(r'\[[^\]]*\]|_.|\*.|general|e[+-]', re.IGNORECASE)
_FORMAT_LITERALS = re.compile(r'"([^"]*)"?|\\(.)')
_NO_VALUE = "a formula with no saved value: open and save the workbook in Excel, or export CSV"
_CELL = re.compile(r"([A-Za-z]{1,3})(\d+)")


def read_workbook(binary: IO[bytes], head: bytes, sheet: str | None, stack: ExitStack) -> tuple[list[str], Rows]:
    """The header and the rows after it of `sheet` (default: the first sheet) of the workbook in `binary`, whose
    first bytes, `head`, have been read already."""
    fileobj = _seekable(binary, head, stack)
    _check_container(fileobj)
    import openpyxl  # only a workbook pays for importing it

    try:
        book = _quietly(lambda: openpyxl.load_workbook(fileobj, read_only=True, data_only=True))
    except Exception as exc:  # a damaged workbook fails in zipfile, XML or openpyxl itself: all say the same
        raise ManifestError(f"cannot read the workbook: {exc}") from None
    stack.callback(book.close)
    worksheet = _worksheet(book, sheet)
    worksheet.reset_dimensions()  # a stale <dimension ref=…> tag would cut rows and columns off silently
    merged, uncached = _scan_sheet(worksheet)
    no_value = _uncached_cells(_sheet_xml(worksheet, stack)) if uncached else iter(())
    rows = _sheet_rows(worksheet, merged, no_value)
    for _line, cells, _refused in rows:
        if any(cell.strip() for cell in cells):
            while cells and not cells[-1].strip():  # formatted but empty columns after the last header
                cells.pop()
            return cells, rows
    name = worksheet.title
    raise ManifestError(f"sheet {name!r} of the workbook is empty" if sheet else "the workbook's first sheet is empty")


def _seekable(binary: IO[bytes], head: bytes, stack: ExitStack) -> IO[bytes]:
    """`binary` itself when it can seek (a file); a spooled copy of it otherwise (stdin): a ZIP is read from its end."""
    try:
        if binary.seekable():
            binary.seek(0)
            return binary
    except (OSError, ValueError):
        pass
    copy: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
    copy.write(head)
    shutil.copyfileobj(binary, copy)
    copy.seek(0)
    return copy


def _check_container(fileobj: IO[bytes]) -> None:
    """A ZIP is an `.xlsx` workbook, or something shipctl does not read (say which)."""
    try:
        with zipfile.ZipFile(fileobj) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ManifestError(f"this looks like a damaged ZIP archive or workbook ({exc}), {NOT_A_MANIFEST}") from None
    finally:
        fileobj.seek(0)
    if "xl/workbook.xml" in names:
        return
    if "xl/workbook.bin" in names:
        raise ManifestError(f"this is an Excel binary workbook (.xlsb), which shipctl does not read: {SAVE_AS}")
    if "content.xml" in names:
        raise ManifestError(f"this looks like an OpenDocument file (.ods): {SAVE_AS}")
    raise ManifestError(f"this looks like a ZIP archive, {NOT_A_MANIFEST} or an .xlsx workbook (unzip it first?)")


def _quietly(call: Callable[[], T]) -> T:
    """openpyxl warns (`UserWarning`) about workbook features it drops (styles, data validation): those do not
    matter to a manifest, and Python's warning text on stderr would only confuse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _worksheet(book: Any, sheet: str | None) -> Any:
    if sheet is None:
        if not book.worksheets:
            raise ManifestError("the workbook has no worksheet")
        return book.worksheets[0]
    names = list(book.sheetnames)
    # Excel treats sheet names without regard to case: so does --sheet, an exact match first.
    found = sheet if sheet in names else next((n for n in names if n.casefold() == sheet.casefold()), None)
    if found is None:
        raise ManifestError(f"--sheet: the workbook has no sheet {sheet!r} (its sheets: {', '.join(names)})")
    worksheet = book[found]
    if not hasattr(worksheet, "iter_rows"):
        raise ManifestError(f"--sheet: {found!r} is a chart, not a sheet of rows")
    return worksheet


def _sheet_xml(worksheet: Any, stack: ExitStack) -> IO[bytes]:
    """The sheet's XML, opened as openpyxl's read-only worksheet opens it to read its rows."""
    source: IO[bytes] = worksheet._get_source()
    stack.callback(source.close)
    return source


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _is_uncached(element: Any) -> bool:
    """A cell `<c>` holding a formula but no computed value: openpyxl (and pandas through it) writes `<v/>`, and
    a formula's empty text result is `<v></v>` with t="str" (Excel): only the first is missing a value."""
    formula = value = None
    for child in element:
        name = _local(child.tag)
        if name == "f":
            formula = child
        elif name == "v":
            value = child
    if formula is None:
        return False
    return value is None or (not value.text and element.get("t", "n") not in ("str", "s", "inlineStr"))


def _sheet_cells(source: IO[bytes]) -> Iterator[tuple[str, Any, int, int]]:
    """(local tag, element, row, column) of each `<c>` and each `<mergeCell>` in the sheet's XML, streamed:
    each row is dropped once read, so memory stays flat. Rows and cells without `r` count on as openpyxl does."""
    from openpyxl.xml.functions import iterparse  # defusedxml's when openpyxl is set to use it

    line = column = 0
    parent = None
    for event, element in iterparse(source, events=("start", "end")):
        name = _local(element.tag)
        if event == "start":
            if name == "row":
                line = int(element.get("r") or line + 1)
                column = 0
            elif name == "sheetData":
                parent = element
            continue
        if name == "c":
            found = _CELL.fullmatch(element.get("r") or "")
            column = _column_index(found.group(1)) if found else column + 1
            yield name, element, line, column
        elif name == "mergeCell":
            yield name, element, line, column
        elif name == "row" and parent is not None:
            parent.remove(element)


def _column_index(letters: str) -> int:
    from openpyxl.utils.cell import column_index_from_string

    return int(column_index_from_string(letters.upper()))


def _scan_sheet(worksheet: Any) -> tuple[list[tuple[int, int, int, int]], bool]:
    """The sheet's merged ranges (min_col, min_row, max_col, max_row), which its XML lists after the rows, and
    whether any cell holds a formula with no saved value (only then are the rows matched against the XML)."""
    from openpyxl.utils.cell import range_boundaries

    merged: list[tuple[int, int, int, int]] = []
    uncached = False
    try:
        with worksheet._get_source() as source:
            for name, element, _line, _column in _sheet_cells(source):
                if name == "mergeCell":
                    min_col, min_row, max_col, max_row = range_boundaries(element.get("ref", ""))
                    merged.append((min_col, min_row, max_col or min_col, max_row or min_row))
                elif not uncached:
                    uncached = _is_uncached(element)
    except Exception as exc:  # the same damage openpyxl itself would fail on while reading the rows
        raise ManifestError(f"cannot read the workbook: {exc}") from None
    return sorted(merged, key=lambda r: r[1]), uncached


def _uncached_cells(source: IO[bytes]) -> Iterator[tuple[int, int]]:
    """(row, column) of each formula cell with no saved value, in sheet order."""
    for name, element, line, column in _sheet_cells(source):
        if name == "c" and _is_uncached(element):
            yield line, column


class _Merged:
    """The cells of each row that merged ranges cover (all but each range's top-left cell), row by row."""

    def __init__(self, ranges: list[tuple[int, int, int, int]]) -> None:
        from openpyxl.utils.cell import get_column_letter

        self.pending = ranges  # sorted by first row
        self.next = 0
        self.active: list[tuple[tuple[int, int, int, int], str]] = []
        self.letter = get_column_letter

    def covered(self, line: int) -> Refusals:
        while self.next < len(self.pending) and self.pending[self.next][1] <= line:
            self.active.append((self.pending[self.next], self._message(self.pending[self.next])))
            self.next += 1
        self.active = [(r, message) for r, message in self.active if r[3] >= line]
        refused = []
        for (min_col, min_row, max_col, _max_row), message in self.active:
            refused += [(col - 1, message) for col in range(min_col, max_col + 1) if (line, col) != (min_row, min_col)]
        return refused

    def _message(self, merged: tuple[int, int, int, int]) -> str:
        min_col, min_row, max_col, max_row = merged
        span = f"{self.letter(min_col)}{min_row}:{self.letter(max_col)}{max_row}"
        return (f"inside the merged cells {span}, whose value only their first cell holds: unmerge them and fill in "
                "every row")


def _sheet_rows(worksheet: Any, merged: list[tuple[int, int, int, int]], no_value: Iterator[tuple[int, int]]) -> Rows:
    """Every row from row 1 (read-only mode yields the blank ones too), as cell texts and refused cells."""
    rows = iter(worksheet.iter_rows(min_row=1))
    covered = _Merged(merged)
    uncached = next(no_value, None)
    line = 0
    while (row := _quietly(lambda: next(rows, None))) is not None:
        line += 1
        texts, refused = _row_cells(row)
        while uncached is not None and uncached[0] <= line:
            if uncached[0] == line:
                refused.append((uncached[1] - 1, _NO_VALUE))
            uncached = next(no_value, None)
        if merged and any(text.strip() for text in texts):  # a merged range running on past the data is no row
            refused += covered.covered(line)
        elif merged:
            covered.covered(line)
        yield line, texts, refused


def _row_cells(row: Iterable[Any]) -> tuple[list[str], Refusals]:
    texts: list[str] = []
    refused: Refusals = []
    for index, item in enumerate(row):
        value = item.value
        number_format = getattr(item, "number_format", None)
        texts.append(cell_text(value, number_format))
        if item.data_type == "e":
            refused.append((index, f"the cell shows the error {value}: fix the formula or the data it uses"))
        elif number_format and type(value) in (int, float) and _shown_words(number_format):
            words = _shown_words(number_format)
            refused.append((index, f"the number {texts[-1]} is shown with {words!r} by its number format "
                                   f"{number_format!r}, which the cell does not hold: type the value with its "
                                   "unit into the cell as text (e.g. 12 lb), or export CSV"))
    return texts, refused


@functools.lru_cache(maxsize=256)
def _shown_words(number_format: str) -> str:
    """The literal text with letters in it (a unit, a currency name) that `number_format` shows beside a
    number; empty when it shows none (`0.00`, `"$"#,##0.00`, `[Red]0`, `00000-0000`)."""
    literal = "".join(a or b for a, b in _FORMAT_LITERALS.findall(number_format))
    bare = _FORMAT_CODES.sub("", _FORMAT_LITERALS.sub("", number_format))
    text = (literal + " " + "".join(c for c in bare if c.isalpha())).strip()
    return text if any(c.isalpha() for c in text) else ""


def cell_text(value: Any, number_format: str | None = None) -> str:
    """A cell as the text a CSV export of it would hold (see the module's docstring)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value, number_format)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return cell(value)  # empty, text and booleans as shipctl writes any cell


def _number(value: float, number_format: str | None) -> str:
    whole = isinstance(value, int) or (value.is_integer() and abs(value) < 1e15)
    if not whole:
        return format(value, ".15g")  # Excel keeps 15 significant digits: 0.30000000000000004 is its 0.3
    number = int(value)
    if number_format and number >= 0:
        padded = _zero_padded(number, number_format)
        if padded is not None:
            return padded
    return str(number)


def _zero_padded(number: int, number_format: str) -> str | None:
    """`number` as a zero-padded format shows it (`00000` → 02108, `00000-0000` → 02108-1234); None for others."""
    text = str(number)
    if number_format == _ZIP_OR_ZIP4:
        return text.zfill(5) if number <= 99999 else _zip4(text)
    if _ZIP4.fullmatch(number_format):
        return _zip4(text)
    if _PLAIN_ZEROS.fullmatch(number_format) and len(text) <= len(number_format):
        return text.zfill(len(number_format))
    return None


def _zip4(text: str) -> str | None:
    if len(text) > 9:
        return None
    digits = text.zfill(9)
    return f"{digits[:5]}-{digits[5:]}"
