"""Where `create`'s results go: stdout, `--results`, `--failed`, `--rejects`, and the summary's own tally.

Every file is checked writable before anything is bought (`check_outputs`), and a write that fails later (a
full disk) names its output and stops the run: nothing bought is lost, because the journal holds every row and
a rerun re-emits them all.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipctl import safefiles
from shipctl.cli.summary import Summary
from shipctl.cli.terminal import Terminal
from shipctl.errors import UsageError, WriteFailure
from shipctl.jobs.create import SinkClosed
from shipctl.jobs.purchase import BUY_UNCONFIRMED
from shipctl.manifest import ShipmentRow
from shipctl.output import Writer, cell, neutralise, open_writer
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

    def add(self, record: ResultRecord) -> None:
        if record.status in ("bought", "refunded") and record.error_code:
            self.attention_codes[record.error_code] += 1
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
                 keep_failed: bool) -> None:
        self.term = term
        self.stdout: Writer | None = stdout
        self.results = results
        self.results_path = results_path
        self.keep_failed = keep_failed
        self.summary = CreateSummary()
        self.failed_rows: list[dict[str, Any]] = []

    def __call__(self, record: ResultRecord, row: ShipmentRow) -> None:
        data = record.as_dict()
        problem = self._to_stdout(data)
        if self.results is not None:
            try:
                self.results.write(data)
            except OSError as exc:
                self.results = None
                problem = problem or WriteFailure.from_os(f"--results {self.results_path}", exc)
        self.summary.add(record)
        # A row whose buy may have gone through is not offered for re-shipping: only a rerun on this journal can
        # tell. Nor is one that failed only for now (429, 5xx, timeouts): the same command retries it.
        if (self.keep_failed and record.status == "failed" and record.error_code != BUY_UNCONFIRMED
                and not record.retryable):
            self.failed_rows.append(row.to_flat())
        if problem is not None:
            raise problem

    def _to_stdout(self, data: dict[str, Any]) -> Exception | None:
        if self.stdout is None:
            return None
        try:
            self.stdout.write(data)
            return None
        except BrokenPipeError:
            self.stdout = None
            self.term.silence_stdout()
            self.term.warn("stdout was closed: no new rows will start; rerun the command to resume")
            return SinkClosed()
        except OSError as exc:  # stdout on a full disk
            self.stdout = None
            self.term.silence_stdout()
            return WriteFailure.from_os("stdout", exc)


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
    """stdout's writer in `fmt` and `--results`' (its format from its suffix); closing them may raise WriteFailure."""
    with contextlib.ExitStack() as stack:
        columns = TABLE_COLUMNS if fmt == "table" else RESULT_COLUMNS
        stdout = stack.enter_context(_Output("stdout", open_writer(fmt, term.stdout, columns)))  # type: ignore[arg-type]
        results_writer = None
        if results is not None:
            what = f"--results {results}"
            try:
                fh = stack.enter_context(_Output(what, safefiles.open_text(results)))
            except WriteFailure as failure:
                raise UsageError(f"cannot write {what}: {failure.reason}") from None
            suffix_format = _SUFFIX_FORMATS.get(results.suffix.lower(), "ndjson")
            results_writer = stack.enter_context(_Output(what, open_writer(suffix_format, fh, RESULT_COLUMNS)))  # type: ignore[arg-type]
        yield ResultSink(term, stdout, results_writer, results, keep_failed)


def check_outputs(files: dict[str, Path | None], labels_dir: Path | None) -> None:
    """Every file the run will write must be writable before anything is bought, not found unwritable after."""
    for flag, path in files.items():
        if path is not None:
            _check_file(flag, path)
    if labels_dir is not None:
        try:
            labels_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=labels_dir):
                pass
        except OSError as exc:
            raise UsageError(f"cannot write labels to --labels-dir {labels_dir}: {exc.strerror or exc}") from None


def _check_file(flag: str, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    safefiles.check_links(path)  # a planted link is refused now, not after the labels are bought
    if path.is_dir():
        raise UsageError(f"cannot write {flag} {path}: it is a directory")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {flag} {path}: permission denied")


def write_table_file(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as CSV with every column any row has; neutralised as --results is (these files are opened in
    spreadsheets to be fixed; the manifest reader takes the `'` off again, so fed back every value is as it was)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with safefiles.open_text(path) as fh:
        writer = csv.writer(fh)
        writer.writerow([neutralise(c) for c in columns])
        writer.writerows([neutralise(cell(row.get(c))) for c in columns] for row in rows)
