"""`verify --fix`: the manifest written again with EasyPost's corrections in their cells, all else as it was.

CSV only (comma, semicolon or tab, as the reader finds it; the file's encoding and byte-order mark kept). A line
with no correction is copied byte for byte, the header included; a corrected row is written again by the csv
module in the same dialect, so only its quoting may differ, never another cell's value. A JSON, NDJSON or `.xlsx`
manifest is refused before any call (`fix_refusal`): rewriting those would reformat the whole file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shipctl import safefiles
from shipctl.errors import WriteFailure
from shipctl.jobs.verify import Correction
from shipctl.manifest.columns import canonical
from shipctl.manifest.sniff import classify
from shipctl.output import neutralise

_HEAD = 64 * 1024
_BOM = b"\xef\xbb\xbf"


def fix_refusal(path: Path, fmt: str | None, encoding: str | None) -> str | None:
    """Why `--fix` cannot write this manifest (it is not CSV), or None."""
    if fmt in ("json", "ndjson"):
        return f"the manifest is {fmt.upper()}"
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if classify(head, encoding) == "zip":
        return "the manifest is an .xlsx workbook"
    if fmt == "csv":
        return None
    first = _decode(head, encoding)[1].lstrip(" \t\r\n\ufeff")[:1]
    return {"[": "the manifest is JSON", "{": "the manifest is NDJSON"}.get(first)


@dataclass
class FixReport:
    rows: int = 0
    cells: int = 0
    unwritten: list[str] = field(default_factory=list)
    """Corrections with no column to go in (a `street2` the manifest has no column for, an origin from `--from`)."""


def write_fixed(source: Path, dest: Path, corrections: Iterable[Correction], encoding: str | None) -> FixReport:
    """Write `source` to `dest` with `corrections` applied (replacing `dest` whole, never half-written)."""
    raw = source.read_bytes()
    codec, text = _decode(raw, encoding)
    lines = _physical_lines(text)
    wanted = _by_line(corrections)
    report = FixReport()
    out = _rewrite(lines, wanted, report)
    data = ("".join(out)).encode(codec)
    if codec == "utf-8" and raw.startswith(_BOM):
        data = _BOM + data
    _replace(dest, data)
    return report


def _decode(raw: bytes, encoding: str | None) -> tuple[str, str]:
    """(codec to write back with, text without a byte-order mark), as the reader decodes."""
    if encoding is None:
        encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    codec = "utf-8" if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig") else encoding
    text = raw.decode(codec, errors="replace")
    return codec, text.removeprefix("\ufeff")


def _physical_lines(text: str) -> list[str]:
    """Each line with its own ending, split as the reader splits (on LF; on CR for a file with no LF)."""
    sep = "\r" if "\n" not in text and "\r" in text else "\n"
    parts = text.split(sep)
    lines = [p + sep for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _by_line(corrections: Iterable[Correction]) -> dict[int, list[Correction]]:
    wanted: dict[int, list[Correction]] = {}
    for correction in corrections:
        for line in correction.lines:
            wanted.setdefault(line, []).append(correction)
    return wanted


def _rewrite(lines: list[str], wanted: dict[int, list[Correction]], report: FixReport) -> list[str]:
    first = next((ln for ln in lines if ln.strip()), ",")
    delimiter = max((",", ";", "\t"), key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(iter(lines), delimiter=delimiter)
    out: list[str] = []
    columns: dict[str, int] | None = None
    consumed = 0
    for cells in reader:
        start, end = consumed + 1, reader.line_num
        record, consumed = lines[start - 1:end], end
        if columns is None and "".join(cells).strip():
            columns = _columns(cells)
        elif columns is not None and start in wanted:
            fixed = _apply(list(cells), columns, wanted[start], start, report)
            if fixed is not None:
                out.append(_serialise(fixed, delimiter, record[-1]))
                continue
        out.extend(record)
    return out


def _columns(header: list[str]) -> dict[str, int]:
    """Canonical column -> index; of two headers for one column the first wins, as the reader reads it."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        column = canonical(name.replace("\ufeff", "").strip())[0]
        if column is not None:
            columns.setdefault(column, index)
    return columns


def _apply(cells: list[str], columns: dict[str, int], corrections: list[Correction], line: int,
           report: FixReport) -> list[str] | None:
    changed = 0
    for correction in corrections:
        for change in correction.changes:
            index = columns.get(f"{correction.role}_{change.field}")
            new = change.new or ""
            if index is None or index >= len(cells):
                if new:
                    report.unwritten.append(f"line {line}: {correction.role}_{change.field} → {new} "
                                            "(the manifest has no such column)")
                continue
            if cells[index].strip() != new:
                cells[index] = neutralise(new)
                changed += 1
    if not changed:
        return None
    report.rows += 1
    report.cells += changed
    return cells


def _serialise(cells: list[str], delimiter: str, last_line: str) -> str:
    ending = "\r\n" if last_line.endswith("\r\n") else last_line[-1:] if last_line[-1:] in ("\n", "\r") else ""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=ending).writerow(cells)
    return buffer.getvalue()


def _replace(dest: Path, data: bytes) -> None:
    try:
        fd, tmp = safefiles.create_beside(dest)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise WriteFailure.from_os(f"--fix {dest}", exc) from None
