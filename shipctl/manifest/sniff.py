"""What a manifest's first bytes say it is, before any of it is decoded as text.

A PDF, a ZIP or an old `.xls` decoded as UTF-8 fails on some byte, and "pass --encoding cp1252" is then the
wrong advice: no encoding turns a binary file into a manifest. So the first block is looked at first: an
`.xlsx` workbook is read as one (`shipctl.manifest.xlsx`), a spreadsheet format shipctl does not read says to
save it as `.xlsx` or CSV, and any other binary file is refused as one.
"""

from __future__ import annotations

import codecs
import json
from typing import Literal

from shipctl.errors import ManifestError

Kind = Literal["text", "zip"]

NOT_A_MANIFEST = "not a CSV/JSON manifest"
SAVE_AS = "save it as .xlsx (Excel Workbook) or CSV"

_ZIP = b"PK\x03\x04"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Excel .xls, and Office files encrypted with a password
_ODS = b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet"
_NAMED: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "a SQLite database (a shipctl journal?)"),
)
_WIDE = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1a\x1b")
_SAMPLE = 8192


def classify(head: bytes, encoding: str | None) -> Kind:
    """`zip` for a ZIP container (perhaps a workbook), `text` for anything that may be a manifest; a ManifestError
    for a file that cannot be one, saying what it looks like and, for a spreadsheet, what to do."""
    if head.startswith(_ZIP):
        if _ODS in head[:128]:
            raise ManifestError(f"this looks like an OpenDocument spreadsheet (.ods): {SAVE_AS}")
        return "zip"
    if head.startswith(_OLE2):
        raise ManifestError(
            f"this looks like an old-style Excel workbook (.xls) or a password-protected one: {SAVE_AS}, "
            "without a password"
        )
    for magic, what in _NAMED:
        if head.startswith(magic):
            advice = ": decompress it first" if what.startswith("a gzip") else ""
            raise ManifestError(f"this looks like {what}, {NOT_A_MANIFEST}{advice}")
    if not _wide(head, encoding):
        _refuse_binary(head[:_SAMPLE], encoding)
    return "text"


def _wide(head: bytes, encoding: str | None) -> bool:
    """UTF-16/32 text: NUL bytes are its ordinary letters, not a sign of a binary file."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    if encoding is None:
        return False
    try:
        return codecs.lookup(encoding).name.replace("-", "_") in _WIDE
    except LookupError:
        return False  # the reader says the encoding is unknown


def _refuse_binary(sample: bytes, encoding: str | None) -> None:
    """Text (CSV, JSON, in any 8-bit encoding) has hardly any control bytes. NUL bytes alone do not make a binary
    file: UTF-16 without its byte-order mark is full of them, and a text file with a few (a stray one in a cell, or
    a block of them where a crash left the file unwritten) is refused by the reader, naming their line."""
    nuls = sample.count(0)
    if nuls:
        _refuse_wide(sample, nuls, encoding)
    rest = sample.replace(b"\x00", b"") if nuls else sample
    if nuls and not rest:  # nothing but NUL bytes (/dev/zero, a file never written)
        raise ManifestError(f"this looks like a binary file, {NOT_A_MANIFEST} (it starts with nothing but NUL bytes)")
    controls = sum(1 for byte in rest if byte < 0x20 and byte not in _TEXT_CONTROLS) + rest.count(0x7F)
    if controls > max(4, len(rest) // 100):
        raise ManifestError(f"this looks like a binary file, {NOT_A_MANIFEST}")


def _refuse_wide(sample: bytes, nuls: int, encoding: str | None) -> None:
    """UTF-16 saved without its byte-order mark: every other byte of ASCII text is NUL, and the bytes between are
    not (a block of NULs has them on both sides, and is no text at all)."""
    if nuls * 3 < len(sample):
        return
    even, odd = _nul_share(sample[0::2]), _nul_share(sample[1::2])
    order = "le" if odd >= 0.9 and even <= 0.1 else "be" if even >= 0.9 and odd <= 0.1 else None
    if order is not None:
        instead = f", not {encoding}" if encoding is not None else ""
        raise ManifestError(f"this looks like UTF-16 text without a byte-order mark{instead}: "
                            f"pass --encoding utf-16-{order}")


def _nul_share(half: bytes) -> float:
    return half.count(0) / len(half) if half else 0.0


def json_scalar(text: str) -> None:
    """Refuse a whole document that is one JSON number, string, boolean or null: JSON, but no manifest (read as
    CSV it would be a header with no rows, and `validate` would pass it)."""
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return
    if text[end:].strip() or isinstance(value, (dict, list)):
        return
    kind = ("JSON null" if value is None else "a JSON boolean" if isinstance(value, bool)
            else "a JSON string" if isinstance(value, str) else "a JSON number")
    raise ManifestError(
        f"this is {kind}, not a manifest: expected an array of objects ([{{…}}, …]) or one object a line"
    )
