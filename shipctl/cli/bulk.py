"""What the engine-driven commands (`create`, `rates`, `track`, `refund`) share.

Option checks and the `RunOptions` they yield, reading arguments from stdin, the manifest validation pass, the
engine session, and `InOrder`, which streams results yet keeps them in input order.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shipctl.cli import console
from shipctl.errors import UsageError

if TYPE_CHECKING:
    from shipctl.engine.sizing import Sizing
    from shipctl.output import OutputFormat
    from shipctl.progress import ProgressMode

T = TypeVar("T")

OUTPUT_FORMATS = ("table", "json", "ndjson", "csv")
PROGRESS_MODES = ("auto", "live", "plain", "off")


def check_output(output: str | None) -> str | None:
    if output is not None and output not in OUTPUT_FORMATS:
        raise UsageError("--output must be table, json, ndjson or csv")
    return output


def check_progress(progress: str, interval: float) -> None:
    if progress not in PROGRESS_MODES:
        raise UsageError("--progress must be auto, live, plain or off")
    if interval <= 0:
        raise UsageError("--progress-interval must be positive")


@dataclass(frozen=True)
class RunOptions:
    """The settings every engine-driven command hands down: output format, engine sizing, progress, verbosity, target.

    Built once per command by `run_options`, which checks them; `progress` is already "off" under `--quiet`.
    """

    output: str | None
    sizing: Sizing
    progress: ProgressMode
    progress_interval: float
    quiet: bool
    verbose: bool
    force_sandbox: bool

    def output_format(self) -> OutputFormat:
        """`--output`, else a table on a terminal and NDJSON otherwise."""
        from shipctl.output import default_format

        return self.output or default_format(sys.stdout)  # type: ignore[return-value]

    def open_progress(self, stats: Any, noun: str) -> contextlib.AbstractContextManager[Any]:
        from shipctl.progress import open_progress

        return open_progress(stats, mode=self.progress, interval=self.progress_interval, noun=noun)

    def describe_engine(self) -> None:
        """With `--verbose`, the engine's sizing and the event loop (call it inside the running loop)."""
        if self.verbose:
            describe_engine(self.sizing)


def run_options(
    *,
    output: str | None,
    concurrency: str,
    max_concurrency: int,
    workers: int | None,
    chunk_size: int | None,
    progress: str,
    progress_interval: float,
    quiet: bool,
    verbose: bool,
    sandbox: bool,
) -> RunOptions:
    """Check the shared options (output, then progress, then sizing) and group them."""
    from shipctl.cli.options import parse_sizing

    check_output(output)
    check_progress(progress, progress_interval)
    sizing = parse_sizing(concurrency, max_concurrency, workers, chunk_size)
    return RunOptions(
        output=output,
        sizing=sizing,
        progress="off" if quiet else progress,  # type: ignore[arg-type]
        progress_interval=progress_interval,
        quiet=quiet,
        verbose=verbose,
        force_sandbox=sandbox,
    )


def read_stdin_lines(what: str) -> list[str]:
    """Non-blank lines of stdin, stripped (read only because the user passed `-`)."""
    lines = [line.strip() for line in sys.stdin.read().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise UsageError(f"no {what} on stdin")
    return lines


def expand_args(values: Sequence[str], what: str) -> list[str]:
    """The arguments with `-` replaced by the lines of stdin; duplicates dropped, first order kept."""
    if list(values).count("-") > 1:
        raise UsageError("- (stdin) may be given only once")
    expanded: list[str] = []
    for value in values:
        expanded.extend(read_stdin_lines(what) if value == "-" else [value])
    return list(dict.fromkeys(expanded))


@dataclass
class Checked:
    """What the validation pass saw: every row, and how many of them were invalid."""

    rows: int = 0
    invalid: int = 0


def check_rows(
    path: Path,
    *,
    fmt: str | None,
    encoding: str | None,
    default_from: Any,
    on_invalid: Callable[[Any], None] | None = None,
    extra_check: Callable[[Any], list[Any]] | None = None,
) -> Checked:
    """Read the whole manifest once and print every problem on stderr; nothing is sent before this passes.

    `on_invalid` sees each `InvalidRow` after its problems are printed (`create --skip-invalid` keeps them).
    `extra_check` maps a `ValidRow` to the `Problem`s a command adds to the manifest's own rules (`create`:
    pins outside `--carriers`/`--services`); a row it flags counts, prints and is rejected as an invalid one.
    """
    from shipctl.manifest import InvalidRow, ValidRow, iter_rows

    seen = Checked()
    for item in iter_rows(
        path, fmt=fmt, encoding=encoding, default_from=default_from, on_warning=console.warn,  # type: ignore[arg-type]
    ):
        seen.rows += 1
        if extra_check is not None and isinstance(item, ValidRow) and (problems := extra_check(item)):
            item = InvalidRow(item.line, problems, item.raw)
        if isinstance(item, InvalidRow):
            seen.invalid += 1
            for problem in item.problems:
                console.err.print(str(problem), markup=False, highlight=False)
            if on_invalid is not None:
                on_invalid(item)
    return seen


class InOrder(Generic[T]):
    """Emit results in input order while they complete out of order: item i goes out once 0..i-1 have.

    Output still streams (NDJSON shows each row as soon as everything before it is done) and is the same on
    every run, whatever the completion order of concurrent calls.
    """

    def __init__(self, emit: Callable[[T], None], start: int = 0) -> None:
        self._emit = emit
        self._next = start
        self._waiting: dict[int, T] = {}

    def put(self, index: int, item: T) -> None:
        self._waiting[index] = item
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1


@dataclass
class Session:
    """What an engine-driven command needs: the target it talks to, one shared client, the engine, its stats."""

    target: Any
    client: Any
    engine: Any
    stats: Any


@contextlib.contextmanager
def engine_session(options: RunOptions, *, total: int | None) -> Iterator[Session]:
    from shipctl.carrier.client import make_client, session_of
    from shipctl.carrier.errors import classify
    from shipctl.cli.target import api_target
    from shipctl.engine.runner import Engine
    from shipctl.engine.stats import RunStats

    with api_target(force_sandbox=options.force_sandbox, quiet=options.quiet) as target:
        stats = RunStats(total=total)
        client = make_client(target.api_key, target.api_base, pool_size=options.sizing.ceiling + 4)
        try:
            yield Session(target, client, Engine(options.sizing, stats, classify), stats)
        finally:
            stats.finished_at = stats.finished_at or time.monotonic()
            session_of(client).close()


def describe_engine(sizing: Any) -> None:
    import asyncio

    loop = type(asyncio.get_running_loop())
    console.info(f"engine: {sizing.describe()}; event loop {loop.__module__}.{loop.__qualname__}")


def only(columns: Sequence[str], row: Mapping[str, Any]) -> dict[str, Any]:
    return {c: row.get(c) for c in columns}
