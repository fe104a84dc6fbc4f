"""`shipctl track`: where are these parcels? Many codes at once through the engine; `--watch` until delivered."""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from shipctl.cli import console
from shipctl.cli.app import command
from shipctl.cli.bulk import InOrder, RunOptions, engine_session, expand_args, only, run_options
from shipctl.cli.options import (
    Concurrency,
    ForceSandbox,
    MaxConcurrency,
    Output,
    Progress,
    ProgressInterval,
    Quiet,
    Verbose,
    Workers,
    chunk_size_option,
)
from shipctl.errors import UsageError
from shipctl.exit_codes import ExitCode

TRACK_COLUMNS = (
    "tracking_code", "carrier", "status", "status_detail", "est_delivery_date",
    "last_event", "last_event_at", "last_location", "error_code", "error_message",
)
TRACK_TABLE_COLUMNS = (  # a terminal is narrow: the table leaves out what the other formats spell out
    "tracking_code", "carrier", "status", "est_delivery_date", "last_event", "last_event_at", "last_location",
    "error_message",
)
HISTORY_COLUMNS = (
    "tracking_code", "carrier", "datetime", "status", "status_detail", "message", "location",
    "error_code", "error_message",
)


@dataclass
class _Code:
    index: int
    code: str
    tracking: Any = None  # carrier.trackers.Tracking once tracked
    error_code: str | None = None
    error_message: str | None = None
    shown_events: int = 0
    signature: tuple[object, ...] | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


def _summary_row(item: _Code) -> dict[str, Any]:
    t = item.tracking
    if t is None:
        return {"tracking_code": item.code, "error_code": item.error_code, "error_message": item.error_message}
    last = t.last_event
    return {
        "tracking_code": t.tracking_code or item.code, "carrier": t.carrier, "status": t.status,
        "status_detail": t.status_detail, "est_delivery_date": t.est_delivery_date,
        "last_event": last.message if last else None, "last_event_at": last.datetime if last else None,
        "last_location": last.location if last else None,
        "error_code": item.error_code, "error_message": item.error_message,
    }


def _history_rows(item: _Code, since: int) -> list[dict[str, Any]]:
    t = item.tracking
    if t is None:
        return [{"tracking_code": item.code, "error_code": item.error_code, "error_message": item.error_message}]
    code = t.tracking_code or item.code
    if not t.events:
        return [] if since else [{"tracking_code": code, "carrier": t.carrier, "status": t.status,
                                  "status_detail": t.status_detail}]
    return [
        {"tracking_code": code, "carrier": t.carrier, "datetime": e.datetime, "status": e.status,
         "status_detail": e.status_detail, "message": e.message, "location": e.location}
        for e in t.events[since:]
    ]


@dataclass
class _Watch:
    interval: float
    timeout: float | None
    polls: int = 0
    timed_out: bool = False
    changes: int = 0
    pending: dict[int, _Code] = field(default_factory=dict)


@command()
def track(
    codes: list[str] | None = typer.Argument(None, help="Tracking codes, or - to read one a line from stdin."),
    carrier: str | None = typer.Option(None, "--carrier", help="The carrier of every code (default: detected)."),
    history: bool = typer.Option(False, "--history", help="One row per tracking event instead of per code."),
    watch: bool = typer.Option(False, "--watch", help="Re-poll until every code is delivered, returned or failed."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between polls with --watch."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop watching after this many seconds (exit 3)."),
    output: Output = None,
    concurrency: Concurrency = "16",
    max_concurrency: MaxConcurrency = 64,
    workers: Workers = None,
    chunk_size: Annotated[int | None, chunk_size_option("Codes dispatched")] = None,
    progress: Progress = "auto",
    progress_interval: ProgressInterval = 10.0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    sandbox: ForceSandbox = False,
) -> None:
    """Track parcels by tracking code: status, estimated delivery and the latest event of each."""
    run = run_options(
        output=output, concurrency=concurrency, max_concurrency=max_concurrency, workers=workers,
        chunk_size=chunk_size, progress=progress, progress_interval=progress_interval, quiet=quiet, verbose=verbose,
        sandbox=sandbox,
    )
    if interval <= 0:
        raise UsageError("--interval must be positive")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    if (timeout is not None or interval != 60.0) and not watch:
        raise UsageError("--interval and --timeout go with --watch")
    if not codes:
        raise UsageError("give tracking codes as arguments, or - to read them from stdin")
    from shipctl.carrier.trackers import normalize_code

    items = [_Code(i, normalize_code(c)) for i, c in enumerate(expand_args(codes, "tracking codes"))]
    code = _execute(
        items,
        carrier=carrier,
        history=history,
        watch=_Watch(interval, timeout) if watch else None,
        run=run,
    )
    raise typer.Exit(int(code))


def _execute(
    items: list[_Code],
    *,
    carrier: str | None,
    history: bool,
    watch: _Watch | None,
    run: RunOptions,
) -> ExitCode:
    import anyio

    from shipctl.carrier.trackers import code_problem, create_tracker, retrieve_tracker
    from shipctl.engine.failures import CallFailure
    from shipctl.engine.runner import run_async
    from shipctl.output import open_writer

    fmt = run.output_format()
    columns = HISTORY_COLUMNS if history else TRACK_TABLE_COLUMNS if fmt == "table" else TRACK_COLUMNS

    def rows_of(item: _Code) -> list[dict[str, Any]]:
        if history:
            rows = _history_rows(item, item.shown_events)
            if item.tracking is not None:
                item.shown_events = len(item.tracking.events)
            return rows
        return [_summary_row(item)]

    with contextlib.ExitStack() as stack:
        session = stack.enter_context(engine_session(run, total=len(items)))
        engine, stats, client = session.engine, session.stats, session.client
        # A table sizes its columns from every row, so a watch prints one table per poll; the streaming formats
        # keep one writer for the whole run (one JSON array, one CSV header).
        per_round = fmt == "table" and watch is not None
        whole_run = None if per_round else stack.enter_context(open_writer(fmt, sys.stdout, columns))

        def writer_for_round() -> contextlib.AbstractContextManager[Any]:
            if whole_run is not None:
                return contextlib.nullcontext(whole_run)
            return open_writer(fmt, sys.stdout, columns)

        async def first(item: _Code, emit: InOrder[list[dict[str, Any]]]) -> None:
            problem = code_problem(item.code)
            if problem:
                item.error_code, item.error_message = "TRACKING_CODE.INVALID", problem
            else:
                try:
                    item.tracking = await engine.call(create_tracker, client, item.code, carrier)
                    item.signature = item.tracking.signature()
                except CallFailure as failure:
                    item.error_code, item.error_message = failure.code, failure.message
            stats.done += 1
            if item.failed:
                stats.failed += 1
            else:
                stats.succeeded += 1
            emit.put(item.index, rows_of(item))

        async def poll(item: _Code, changed: dict[int, _Code]) -> None:
            try:
                tracking = await engine.call(retrieve_tracker, client, item.tracking.id)
            except CallFailure as failure:
                if failure.transient:  # try again next poll
                    console.warn(f"{item.code}: {failure.code}: {failure.message} (will poll again)")
                    return
                item.error_code, item.error_message = failure.code, failure.message
                changed[item.index] = item
                return
            item.tracking = tracking
            if tracking.signature() != item.signature:
                item.signature = tracking.signature()
                changed[item.index] = item

        async def main() -> None:
            run.describe_engine()
            with writer_for_round() as writer:

                def write_rows(rows: list[dict[str, Any]]) -> None:
                    for row in rows:
                        writer.write(only(columns, row))

                emit: InOrder[list[dict[str, Any]]] = InOrder(write_rows)
                with run.open_progress(stats, noun="codes"):
                    await engine.run(items, lambda item: first(item, emit))
            if watch is None:
                return
            watch.pending = {i.index: i for i in items if i.tracking is not None and not i.tracking.final}
            deadline = None if watch.timeout is None else time.monotonic() + watch.timeout
            while watch.pending:
                wait = watch.interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        watch.timed_out = True
                        break
                    wait = min(wait, left)
                if not run.quiet:
                    console.info(f"{time.strftime('%H:%M:%S')} {_codes(len(watch.pending))} not final yet; "
                                 f"next poll in {_seconds(wait)}")
                await anyio.sleep(wait)
                if deadline is not None and time.monotonic() >= deadline:
                    watch.timed_out = True
                    break
                changed: dict[int, _Code] = {}
                await engine.run(list(watch.pending.values()), functools.partial(poll, changed=changed))
                watch.polls += 1
                with writer_for_round() as writer:
                    for index in sorted(changed):
                        item = changed[index]
                        for row in rows_of(item):
                            writer.write(only(columns, row))
                        if item.failed:
                            stats.succeeded -= 1
                            stats.failed += 1
                watch.changes += len(changed)
                for index, item in changed.items():
                    if item.failed or item.tracking.final:
                        watch.pending.pop(index, None)

        run_async(main)
        stats.finished_at = time.monotonic()

    _summarise(items, stats, watch)
    if stats.failed or (watch is not None and watch.timed_out):
        return ExitCode.PARTIAL
    return ExitCode.OK


def _seconds(value: float) -> str:
    return f"{value:.3g} s"


def _codes(n: int) -> str:
    return f"{n} code" if n == 1 else f"{n} codes"


def _summarise(items: list[_Code], stats: Any, watch: _Watch | None) -> None:
    statuses = Counter(i.tracking.status for i in items if i.tracking is not None and not i.failed)
    parts = [f"{_codes(len(items))}: {stats.succeeded} tracked"]
    if stats.failed:
        parts.append(f"{stats.failed} failed")
    line = ", ".join(parts)
    if statuses:
        line += " (" + ", ".join(f"{n} {status}" for status, n in statuses.most_common()) + ")"
    line += f", {stats.elapsed():.1f} s"
    if watch is not None:
        line += f", {watch.polls} polls"
        if watch.timed_out:
            line += f"; --timeout reached with {_codes(len(watch.pending))} not final"
    console.info(line)
