"""Where `create`'s results go: stdout, `--results`, `--failed`, `--rejects`, and the summary's own tally.

Every file is checked writable before anything is bought (`check_outputs`), and a write that fails later (a
full disk) names its output and stops the run: nothing bought is lost, because the journal holds every row and
a rerun re-emits them all.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shipctl import safefiles
from shipctl.cli.summary import Summary
from shipctl.cli.terminal import Terminal
from shipctl.errors import UsageError, WriteFailure
from shipctl.jobs.create import SinkClosed
from shipctl.jobs.purchase import BUY_UNCONFIRMED
from shipctl.manifest import FLAT_COLUMNS, InvalidRow, ValidRow
from shipctl.output import SCREEN_MOST, TableLayout, Writer, csv_cell, neutralise, open_writer
from shipctl.results import RESULT_COLUMNS, TABLE_COLUMNS, ResultRecord

_SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}


class CreateSummary(Summary):
    """The summary, plus what `create` needs for its exit code and its closing warnings."""

    def __init__(self) -> None:
        super().__init__(noun="shipments")
        self.attention_codes: Counter[str] = Counter()
        """Rows that still need a person, by code: label file not saved, row edited after purchase, refunded since."""
        self.unconfirmed = 0
        self.retryable = 0
        self.held = 0
        self.label_files = 0
        """Bought rows whose label file is in --labels-dir (saved by this run or an earlier one)."""
        self.no_file: Counter[str] = Counter()
        """Bought rows with no label file, by who bought them: `now` (this run) or `earlier` (resumed, found)."""
        self.cut_off: set[str] = set()
        """Outputs that stopped taking rows before the end (`stdout`, `--results FILE`, as a `WriteFailure` names
        them): a closed or failing stdout, a full disk. They do not hold every row's label URL."""

    def add(self, record: ResultRecord) -> None:
        if record.status in ("bought", "refunded") and record.error_code:
            self.attention_codes[record.error_code] += 1
        self.label_files += record.status == "bought" and bool(record.label_path)
        if record.status == "bought" and not record.label_path:
            self.no_file["earlier" if record.purchase in ("resumed", "found") else "now"] += 1
        self.held += record.error_code == "HELD_BY_OTHER_RUN"
        self.retryable += bool(record.retryable)
        self.unconfirmed += record.error_code == BUY_UNCONFIRMED
        super().add(record)

    @property
    def attention(self) -> int:
        return sum(self.attention_codes.values())


class ResultSink:
    """Each row's result to stdout and `--results`, its failure to the `--failed` rows, its tally to the summary.

    A closed stdout (`| head`) raises `SinkClosed` once; a failed write raises `WriteFailure` naming the output.
    Either stops the run; the other outputs keep receiving the rows still in flight.
    """

    def __init__(self, term: Terminal, stdout: Writer, results: Writer | None, results_path: Path | None,
                 keep_failed: bool, lines: dict[str, int] | None = None) -> None:
        self.term = term
        self.stdout: Writer | None = stdout
        self.results = results
        self.results_path = results_path
        self.keep_failed = keep_failed
        self.summary = CreateSummary()
        self.failed_rows: list[dict[str, Any]] = []
        self.lines: dict[str, int] = {} if lines is None else lines
        """Each reference's manifest line, so a table can be printed in the manifest's order."""

    def __call__(self, record: ResultRecord, valid: ValidRow) -> None:
        self.lines[record.reference] = valid.line
        data = record.as_dict()
        problem = self._to_stdout(data)
        if self.results is not None:
            try:
                self.results.write(data)
            except OSError as exc:
                self.results = None
                self.summary.cut_off.add(f"--results {self.results_path}")
                problem = problem or WriteFailure.from_os(f"--results {self.results_path}", exc)
        self.summary.add(record)
        # A row whose buy may have gone through is not offered for re-shipping: only a rerun on this journal can
        # tell. Nor is one that failed only for now (429, 5xx, timeouts): the same command retries it.
        if (self.keep_failed and record.status == "failed" and record.error_code != BUY_UNCONFIRMED
                and not record.retryable):
            # Why it failed travels with the row, so the clerk fixing it sees it (the reader ignores these columns).
            self.failed_rows.append({**valid.row.to_flat(), "error_code": record.error_code or "",
                                     "error_message": record.error_message or ""})
        if problem is not None:
            raise problem

    def _to_stdout(self, data: dict[str, Any]) -> Exception | None:
        if self.stdout is None:
            return None
        problem = self._write_stdout(self.stdout, data)
        if problem is not None:  # no later row reaches it: stdout no longer holds every label URL
            self.stdout = None
            self.summary.cut_off.add("stdout")
        return problem

    def _write_stdout(self, stdout: Writer, data: dict[str, Any]) -> Exception | None:
        try:
            stdout.write(data)
            return None
        except BrokenPipeError:
            self.term.silence_stdout()
            self.term.warn("stdout was closed: no new rows will start; rerun the command to resume")
            return SinkClosed()
        except OSError as exc:  # stdout on a full disk
            self.term.silence_stdout()
            return WriteFailure.from_os("stdout", exc)
        except Exception as exc:
            # A closed stdout (`>&-`), an encoding it cannot hold: the labels are bought and journaled; stop as for a
            # failed write, never let it take the run down mid-purchase.
            return WriteFailure("stdout", f"{type(exc).__name__}: {exc}")


class _Output:
    """An output's context manager whose OSErrors on opening or closing (a full disk) name that output."""

    def __init__(self, what: str, inner: contextlib.AbstractContextManager[Any]) -> None:
        self.what = what
        self.inner = inner

    def __enter__(self) -> Any:
        try:
            return self.inner.__enter__()
        except OSError as exc:
            raise WriteFailure.from_os(self.what, exc) from None

    def __exit__(self, *exc_info: Any) -> bool | None:
        try:
            return self.inner.__exit__(*exc_info)
        except OSError as exc:
            raise WriteFailure.from_os(self.what, exc) from None


@contextlib.contextmanager
def open_sink(term: Terminal, fmt: str, results: Path | None, keep_failed: bool) -> Iterator[ResultSink]:
    """stdout's writer in `fmt` and `--results`' (its format from its suffix); closing them may raise WriteFailure.

    A table comes in the manifest's order (rows finish in any order: the sink has seen each row's line by the
    time the table is printed) and fits the terminal; on a terminal, a run of more than `SCREEN_MOST` rows shows
    only the rows that need attention and says where every row is (README, "Tables on a screen and in a file").
    """
    lines: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        columns = TABLE_COLUMNS if fmt == "table" else RESULT_COLUMNS
        layout = None
        if fmt == "table":
            layout = TableLayout(
                width=term.width, order=lambda r: lines.get(str(r.get("reference")), sys.maxsize),
                most=SCREEN_MOST if term.width is not None else None,
                attention=lambda r: r.get("status") not in ("bought", "planned") or bool(r.get("error_code")),
                more=(f"every row is in {results}" if results is not None else "rerun the same command with "
                      "-o ndjson or --results FILE for every row (nothing is bought twice)"),
                notice=term.info,
            )
        stdout = stack.enter_context(_Output("stdout", open_writer(fmt, term.stdout, columns, table=layout)))  # type: ignore[arg-type]
        results_writer = None
        if results is not None:
            what = f"--results {results}"
            try:
                fh = stack.enter_context(_Output(what, safefiles.open_text(results)))
            except WriteFailure as failure:
                raise UsageError(f"cannot write {what}: {failure.reason}") from None
            suffix_format = _SUFFIX_FORMATS.get(results.suffix.lower(), "ndjson")
            results_writer = stack.enter_context(_Output(what, open_writer(suffix_format, fh, RESULT_COLUMNS)))  # type: ignore[arg-type]
        yield ResultSink(term, stdout, results_writer, results, keep_failed, lines)


def check_outputs(files: dict[str, Path | None], labels_dir: Path | None,
                  inputs: dict[str, Path | None] | None = None) -> None:
    """Every file the run will write must be writable before anything is bought, not found unwritable after.

    Each is tried for real rather than judged by its mode bits (which say nothing to root, nor about a read-only
    file system or a device such as /dev/full): an existing file is opened for appending and given zero bytes,
    which changes nothing; a new one is tried as a nameless temporary file in its folder.

    No output may be a file the run reads or another output writes: `inputs` names those read (the manifest, the
    journal; None for one without a path, such as stdin). Any OSError on the way (a name too long) is a usage
    error naming the flag.
    """
    _check_distinct(files, inputs or {})
    for flag, path in files.items():
        if path is not None:
            _guarded(f"{flag} {path}", functools.partial(_check_file, flag, path))
    if labels_dir is not None:
        _guarded(f"labels to --labels-dir {labels_dir}", lambda: _check_labels_dir(labels_dir))


def _guarded(what: str, check: Callable[[], None]) -> None:
    try:
        check()
    except OSError as exc:
        raise UsageError(f"cannot write {what}: {_reason(exc)}") from None


def _check_labels_dir(labels_dir: Path) -> None:
    what = f"labels to --labels-dir {labels_dir}"
    _make_folder(what, labels_dir)
    with tempfile.TemporaryFile(dir=labels_dir):
        pass


def check_journal(journal: Path | None, manifest: Path | None, label: str) -> None:
    """The journal is never the manifest it records, by any spelling or link (the same inode): said as the outputs'
    clash is, before the manifest is read, rather than SQLite's "file is not a database" (exit 1) once the run is
    under way. Nothing is written to either."""
    if journal is None or manifest is None:  # stdin: its journal is named later, never the manifest
        return
    if _same_path(f"the journal {journal}", journal, manifest):
        raise UsageError(f"cannot write the journal {journal}: it is the same file as the manifest {label}; "
                         "give --journal a file of its own")


def _check_distinct(files: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """Refuse an output that is the manifest, the journal, or another output: writing it would destroy the other."""
    seen: list[tuple[str, Path]] = [(name, path) for name, path in inputs.items() if path is not None]
    for flag, path in files.items():
        if path is None:
            continue
        what = f"{flag} {path}"
        for other, other_path in seen:
            if _same_path(what, path, other_path):
                raise UsageError(f"cannot write {what}: it is the same file as {other}")
        seen.append((what, path))


def _same_path(what: str, one: Path, other: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same inode."""
    try:
        if one.resolve() == other.resolve():
            return True
        return one.exists() and other.exists() and os.path.samefile(one, other)
    except OSError as exc:
        raise UsageError(f"cannot write {what}: {_reason(exc)}") from None


def _make_folder(what: str, folder: Path) -> None:
    """Create `folder` (and its parents), or say in words which part of the path stands in the way."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise UsageError(f"cannot write {what}: {part} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {what}: cannot create the folder {folder} ({_reason(exc)})") from None


def _check_file(flag: str, path: Path) -> None:
    what = f"{flag} {path}"
    _make_folder(what, path.parent)
    safefiles.check_links(path)  # a planted link is refused now, not after the labels are bought
    if path.is_dir():
        raise UsageError(f"cannot write {what}: it is a folder")
    if not path.exists():
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    elif stat.S_ISREG(path.stat().st_mode) or stat.S_ISCHR(path.stat().st_mode):
        # Not a FIFO: opening one blocks until a reader comes. Zero bytes: /dev/full refuses even those.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        try:
            os.write(fd, b"")
        finally:
            os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)  # as WriteFailure says it: "No space left on device"


FAILED_COLUMNS: tuple[str, ...] = (*FLAT_COLUMNS, "error_code", "error_message")
"""The `--failed` file's header: a manifest's columns, then why the row failed (ignored when it is read back)."""


def reject_row(item: InvalidRow) -> dict[str, Any]:
    """A `--rejects` row: its line, the row as read, and every problem with the column it is in."""
    raw = {k: v for k, v in item.raw.items() if not isinstance(v, dict | list)}
    return {"line": item.line, **raw, "error": "; ".join(f"{p.column}: {p.message}" for p in item.problems)}


def write_table_file(path: Path, rows: list[dict[str, Any]], header: tuple[str, ...] = ()) -> None:
    """Rows as CSV with `header`'s columns, then any other column a row has; neutralised as --results is (these
    files are opened in spreadsheets to be fixed; the manifest reader takes the `'` off again, so fed back every
    value is as it was). No rows: the header alone, so a script that attaches the file always finds it."""
    columns: list[str] = list(header)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with safefiles.open_text(path) as fh:
        writer = csv.writer(fh)
        writer.writerow([neutralise(c) for c in columns])
        writer.writerows([csv_cell(row.get(c)) for c in columns] for row in rows)
