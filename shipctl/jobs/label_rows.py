"""Which labels `shipctl labels` considers, and in what order: read from a journal or from `create`'s records.

Local reading only, done before any API is started, so a wrong path, column or reference is a usage error with
nothing fetched. A journal is read as it is, without its lock: `labels` may print what a `create` still running on
it has bought so far (rows still in flight are "not bought" until it records them).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from shipctl.errors import ManifestError, UsageError
from shipctl.jobs.purchase import is_void
from shipctl.journal import JournalRow

State = Literal["bought", "voided", "not_bought", "not_attempted", "invalid"]

_JOURNAL_COLUMNS = ", ".join(f.name for f in fields(JournalRow))


@dataclass
class LabelRow:
    """One label to print, or to say why not: as the journal or the records know it (the API may know better)."""

    reference: str
    shipment_id: str | None
    state: State
    tracking_code: str | None = None
    carrier: str | None = None
    label_path: str | None = None
    line: int | None = None
    """The manifest line it came from (journals), to find its other columns for `--sort-by`."""


@dataclass(frozen=True)
class JournalRead:
    rows: list[LabelRow]
    target: str | None
    """The API the journal's purchases were made against (`Target.identity`), when it says."""


def read_journal(path: Path) -> JournalRead:
    """Every row of the journal at `path`, in manifest order; a missing or unreadable one is a usage error."""
    if not path.is_file():
        raise UsageError(f"journal {path} does not exist")
    try:
        # mode=rw: never create a journal that is not there; query_only: this command writes nothing into it.
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise UsageError(f"journal {path} cannot be opened: {exc}") from None
    try:
        db.execute("PRAGMA query_only = ON")
        target = db.execute("SELECT value FROM meta WHERE key = 'target'").fetchone()
        rows = [JournalRow(*row) for row in
                db.execute(f"SELECT {_JOURNAL_COLUMNS} FROM rows ORDER BY line, reference")]
    except sqlite3.Error as exc:
        raise UsageError(f"journal {path} is not a shipctl journal ({exc})") from None
    finally:
        db.close()
    return JournalRead([_from_journal(row) for row in rows], None if target is None else str(target[0]))


def _from_journal(row: JournalRow) -> LabelRow:
    state: State = "not_bought"
    if row.state == "bought":
        state = "voided" if is_void(row.refund_status) else "bought"
    return LabelRow(row.reference, row.shipment_id, state, row.tracking_code, row.carrier, row.label_path, row.line)


def with_unattempted(rows: list[LabelRow], manifest: ManifestFile) -> list[LabelRow]:
    """`rows` (a journal's) and a `not_attempted` row for every valid manifest row the journal never recorded (an
    `invalid` one for an invalid row), in manifest order.

    A `create` stopped early journals only the rows it reached (a row is journaled as its chunk is planned), and a
    row `--skip-invalid` left out is never journaled: without these, a clerk told "left out: 34 not bought" would
    think the pile complete. A row is the journal's when its reference is there (a row without one: its content
    key, as `create` made it) or, for a row read here as invalid without a reference, when its line is.
    """
    from shipctl.manifest import ValidRow, iter_rows
    from shipctl.manifest.columns import canonical

    references = {row.reference for row in rows}
    lines = {row.line for row in rows if row.line is not None}
    missing: list[LabelRow] = []
    try:
        for item in iter_rows(manifest.path, encoding=manifest.encoding, sheet=manifest.sheet):
            reference = item.row.reference if isinstance(item, ValidRow) else _raw_reference(item.raw, canonical)
            known = reference in references if reference else item.line in lines
            if not known:
                # An invalid row was never bought on purpose (`--skip-invalid`): it wants fixing, not a rerun.
                state: State = "not_attempted" if isinstance(item, ValidRow) else "invalid"
                missing.append(LabelRow(reference or f"line {item.line}", None, state, line=item.line))
    except ManifestError as exc:
        raise UsageError(f"cannot read the manifest {manifest.path} to account for each of its rows: {exc.message} "
                         "(give it --encoding/--sheet as create read it, or --journal PATH alone)") from None
    if not missing:
        return rows
    return sorted([*rows, *missing], key=lambda row: row.line if row.line is not None else 0)


def rows_from_records(text: str) -> list[LabelRow]:
    """`create`'s records (NDJSON, or one JSON array from `-o json`), or plain shipment ids one a line.

    A record's `status` says what it is: `bought` (or `labels`' own `printed`) to print, `refunded` void, anything
    else (failed, skipped, planned) never bought. A record without `status` (another tool's) is printed if the API
    says it is bought.
    """
    stripped = text.strip()
    items: list[Any] = []
    if stripped.startswith("["):
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(stripped)
            if isinstance(data, list):
                items = data
    if not items:
        items = [_line_item(line.strip()) for line in text.splitlines()
                 if line.strip() and not line.strip().startswith("#")]
    rows = [_from_record(i, item) for i, item in enumerate(items)]
    if not rows:
        raise UsageError("no records on stdin (pipe in what `shipctl create` printed, or shipment ids one a line)")
    return _unique(rows)


_BOUGHT_STATUSES = frozenset({"bought", "printed", "printed_before", "printing_elsewhere"})
"""Record statuses of a label to print: `create`'s `bought`, and `labels`' own (its `-o` records fed back: a label
another `--only-new` run was printing is bought all the same)."""
_VOID_STATUSES = frozenset({"refunded", "voided"})


def _line_item(line: str) -> Any:
    if line.startswith("{"):
        with contextlib.suppress(ValueError, RecursionError):
            return json.loads(line)
    return line


def _from_record(index: int, item: Any) -> LabelRow:
    if not isinstance(item, dict):
        return LabelRow(str(item), str(item), "bought")  # a shipment id; the API gives its reference
    sid = _text(item.get("shipment_id"))
    reference = _text(item.get("reference")) or sid or f"record {index + 1}"
    status = item.get("status")
    state: State = "bought"
    if status in _VOID_STATUSES:
        state = "voided"
    elif (status is not None and status not in _BOUGHT_STATUSES) or not sid:
        state = "not_bought"
    return LabelRow(reference, sid, state, _text(item.get("tracking_code")), _text(item.get("carrier")),
                    _text(item.get("label_path")))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _unique(rows: list[LabelRow]) -> list[LabelRow]:
    """One row per shipment (the same record piped twice is one label), first place kept."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = row.shipment_id or row.reference
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def pick_references(rows: list[LabelRow], references: Sequence[str], where: str) -> list[LabelRow]:
    """Only the rows named, in the order of `rows` (the pile's order); a name not there is a usage error."""
    if not references:
        return rows
    known = {row.reference for row in rows}
    missing = [ref for ref in references if ref not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"not in {where}: {shown}; nothing was printed")
    wanted = set(references)
    return [row for row in rows if row.reference in wanted]


# --- --sort-by ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestFile:
    """A manifest, read as `create` read it."""

    path: Path
    encoding: str | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class ManifestColumn:
    """`--sort-by COLUMN` over this manifest, read as `create` read it."""

    path: Path
    column: str
    encoding: str | None = None
    sheet: str | None = None


def sort_rows(rows: list[LabelRow], by: ManifestColumn) -> list[LabelRow]:
    """`rows` in the order of `by.column`'s values (stable: equal values keep manifest order; numbers as numbers,
    `A2` before `A10`; rows without a value last)."""
    values = _column_values(by)
    keyed = [(values.get(("ref", row.reference), values.get(("line", row.line))), row) for row in rows]
    numeric = all(_number(v) is not None for v, _ in keyed if not _blank(v))
    return [row for _, row in sorted(keyed, key=lambda pair: _sort_key(pair[0], numeric))]


def _column_values(by: ManifestColumn) -> dict[tuple[str, Any], Any]:
    """The column's value per row of the manifest, by reference and by line (a row whose reference the manifest
    does not spell out, or cannot validate without `--from`, is found by its line, as the journal records it)."""
    from shipctl.manifest import ValidRow, iter_rows
    from shipctl.manifest.columns import canonical

    values: dict[tuple[str, Any], Any] = {}
    header: list[str] = []
    chosen: str | None = None
    try:
        for item in iter_rows(by.path, encoding=by.encoding, sheet=by.sheet):
            if chosen is None:
                # JSON rows need not all have the same keys: the column may first appear on a later row.
                header.extend(k for k in item.raw if k not in header)
                chosen = _match(by.column, header)
                if chosen is None:
                    continue
            value = item.raw.get(chosen)
            values[("line", item.line)] = value
            reference = item.row.reference if isinstance(item, ValidRow) else _raw_reference(item.raw, canonical)
            if reference:
                values[("ref", reference)] = value
    except ManifestError as exc:
        raise UsageError(f"--sort-by: cannot read the manifest {by.path}: {exc.message}") from None
    if chosen is None:
        shown = ", ".join(header) if header else "none (it has no rows)"
        raise UsageError(f"--sort-by {by.column}: the manifest {by.path} has no such column; its columns: {shown}")
    return values


def _match(column: str, header: Iterable[str]) -> str | None:
    """The header `column` names: spelt the same, then the same once normalised (`Bin` = `bin`), then the same
    canonical column (`zip` = `Ship To Zip`)."""
    from shipctl.manifest.columns import canonical, normalize_header

    names = list(header)
    if column in names:
        return column
    wanted = normalize_header(column)
    for name in names:
        if normalize_header(name) == wanted:
            return name
    target = canonical(column)[0]
    if target is not None:
        for name in names:
            if canonical(name)[0] == target:
                return name
    return None


def _raw_reference(raw: dict[str, Any], canonical: Any) -> str | None:
    for key, value in raw.items():
        if canonical(key)[0] == "reference" and value not in (None, ""):
            return str(value).strip()
    return None


def _blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def _number(value: Any) -> float | None:
    try:
        return float(str(value).strip().replace(",", ""))
    except ValueError:
        return None


_DIGITS = re.compile(r"(\d+)")


def _sort_key(value: Any, numeric: bool) -> tuple[Any, ...]:
    if _blank(value):
        return (1,)
    if numeric:
        return (0, _number(value))
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    parts = _DIGITS.split(text.strip().casefold())
    return (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p))
