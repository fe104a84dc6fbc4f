"""`.xlsx` workbooks read directly, with openpyxl in read-only mode: one sheet, row by row, as cell text.

A clerk's orders live in Excel; exporting to CSV first loses nothing shipctl cannot restore, but it is one more
step and one more place for the encoding to go wrong. A sheet reads like a CSV file: its first non-blank row is
the header, each later row a manifest row, numbered as the sheet numbers it (row 1 = the first row of the
sheet), so problems point at the row Excel shows. Cells come as Excel typed them and are turned into the text
a CSV export would hold: whole numbers without `.0` (a ZIP stored as the number 2108 reads `2108`, and the
normaliser restores `02108` for a US address, as for CSV), a ZIP number format (`00000`, `00000-0000`) applied
as Excel displays it, dates as ISO dates, formulas as their last computed values.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import IO, Any, TypeVar

from shipctl.errors import ManifestError
from shipctl.manifest.sniff import NOT_A_MANIFEST, SAVE_AS
from shipctl.output import cell

T = TypeVar("T")

Rows = Iterator[tuple[int, list[str]]]
"""(sheet row number, cell texts) per row; blank rows included (the reader skips them)."""

_PLAIN_ZEROS = re.compile(r"0+")
_ZIP4 = re.compile(r"0{5}\\?-0{4}")
_ZIP_OR_ZIP4 = "[<=99999]00000;00000-0000"  # Excel's built-in "Zip Code + 4" special format


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
    rows = _sheet_rows(worksheet)
    for _line, cells in rows:
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


def _sheet_rows(worksheet: Any) -> Rows:
    """Every row from row 1 (read-only mode yields the blank ones too), as cell texts."""
    rows = iter(worksheet.iter_rows(min_row=1))
    line = 0
    while (row := _quietly(lambda: next(rows, None))) is not None:
        line += 1
        yield line, [cell_text(cell.value, getattr(cell, "number_format", None)) for cell in row]


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
