"""`shipctl track`: where are these parcels? Many codes at once through the engine; `--watch` until delivered.

The job is `shipctl.jobs.track`; this module reads the options, puts the rows on stdout and ends with one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import RunOptions, engine_options
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:  # the job and the SDK load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.jobs.track import TrackInputs, TrackOutcome
    from shipctl.output import OutputFormat, Writer

TRACK_TABLE_COLUMNS = (  # a terminal is narrow: the table leaves out what the other formats spell out
    "tracking_code", "carrier", "status", "est_delivery_date", "last_event", "last_event_at", "last_location",
    "error_message",
)
DEFAULT_INTERVAL = 60.0


@command()
@engine_options("Codes dispatched")
def track(
    codes: list[str] | None = typer.Argument(None, help="Tracking codes, or - to read one a line from stdin."),
    carrier: str | None = typer.Option(None, "--carrier", help="The carrier of every code (default: detected)."),
    history: bool = typer.Option(False, "--history", help="One row per tracking event instead of per code."),
    watch: bool = typer.Option(False, "--watch", help="Re-poll until every code is delivered, returned or failed."),
    interval: float = typer.Option(DEFAULT_INTERVAL, "--interval", help="Seconds between polls with --watch."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop watching after this many seconds (exit 3)."),
    *,
    run: RunOptions,
) -> None:
    """Track parcels by tracking code: status, estimated delivery and the latest event of each.

    Examples:

      shipctl track EZ4000000004 EZ1000000001 --history

      shipctl track - --watch --interval 300 --timeout 86400 < codes.txt
    """
    from shipctl.cli.host import CliHost
    from shipctl.cli.inputs import expand_args
    from shipctl.jobs.track import TrackInputs

    _check_options(codes, watch=watch, interval=interval, timeout=timeout)
    inputs = TrackInputs(
        tuple(expand_args(codes or (), "tracking codes")),
        carrier=carrier, history=history, watch=watch, interval=interval, timeout=timeout,
    )
    outcome = _execute(inputs, CliHost(run, noun="codes"))
    terminal().info(end_line(outcome))
    raise typer.Exit(int(outcome.exit_code))


def _check_options(codes: list[str] | None, *, watch: bool, interval: float, timeout: float | None) -> None:
    if interval <= 0:
        raise UsageError("--interval must be positive")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    if (timeout is not None or interval != DEFAULT_INTERVAL) and not watch:
        raise UsageError("--interval and --timeout go with --watch")
    if not codes:
        raise UsageError("give tracking codes as arguments, or - to read them from stdin")


def _execute(inputs: TrackInputs, host: CliHost) -> TrackOutcome:
    from shipctl.cli.unreachable import UnreachableWatch
    from shipctl.jobs.session import open_session
    from shipctl.jobs.track import HISTORY_COLUMNS, TRACK_COLUMNS, Tracking

    fmt = host.result_format()
    columns = HISTORY_COLUMNS if inputs.history else TRACK_TABLE_COLUMNS if fmt == "table" else TRACK_COLUMNS
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(open_session(
            host.run.sizing, total=len(inputs.codes), force_sandbox=host.run.force_sandbox, announce=host.detail,
        ))
        watch = UnreachableWatch(session)
        if fmt == "table" and inputs.watch:
            tables = TablePerRound(columns)
            job = Tracking(inputs, session, host, watch.sink(tables.write), end_round=tables.end_round)
        else:
            # The streaming formats keep one writer for the whole run: one JSON array, one CSV header.
            writer = stack.enter_context(_stdout_writer(fmt, columns))
            job = Tracking(inputs, session, host, watch.sink(writer.write))
        outcome = job.run()
    watch.raise_if_unreachable()  # one error line, not a failed row per code
    return outcome


class TablePerRound:
    """Under `--watch` each round is its own table on stdout: a table sizes its columns from every row, so it
    cannot wait for the end of a watch that may run for days. A round with no news prints nothing (the
    "not final yet; next poll in" line on stderr says the watch goes on)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = columns
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def end_round(self) -> None:
        rows, self.rows = self.rows, []
        with _stdout_writer("table", self.columns) as writer:
            for row in rows:
                writer.write(row)


@contextlib.contextmanager
def _stdout_writer(fmt: OutputFormat, columns: Sequence[str]) -> Iterator[Writer]:
    from shipctl.output import TableLayout, open_writer

    term = terminal()
    # A table fits the terminal it is on (a file gets every row on one line); events come oldest first.
    layout = TableLayout(width=term.width, notice=term.info)
    with open_writer(fmt, term.stdout, columns, table=layout) as writer:
        yield writer


def end_line(outcome: TrackOutcome) -> str:
    """`3 codes: 2 tracked, 1 failed (2 delivered), 0.4 s`, and for a watch its polls and how it ended."""
    from shipctl.jobs.track import codes_phrase

    line = f"{codes_phrase(outcome.codes)}: {outcome.tracked} tracked"
    if outcome.failed:
        line += f", {outcome.failed} failed"
    if outcome.statuses:
        line += " (" + ", ".join(f"{n} {status}" for status, n in outcome.statuses) + ")"
    line += f", {outcome.elapsed:.1f} s"
    if outcome.watched:
        line += f", {outcome.polls} polls"
        if outcome.timed_out:
            line += f"; --timeout reached with {codes_phrase(outcome.not_final)} not final"
    return line
