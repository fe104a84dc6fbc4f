"""Progress on stderr while a bulk run works: a rich live display on a terminal, plain lines for cron.

The engine never calls into this module. It mutates the plain integer counters of a `RunStats`; the display
*polls* them from its own thread — rich's refresh thread (live) or a timer thread (plain) — at most
`LIVE_REFRESH_PER_SECOND` times a second. So the engine pays nothing per event, and psutil is asked for CPU
figures only while a frame is being drawn (and at most once a second).

    with open_progress(stats, mode="auto", interval=10.0, noun="shipments"):
        ...  # the engine runs here, mutating `stats`

Modes: "auto" is "live" when the console is a terminal, "plain" otherwise; "off" (``--quiet``) draws nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from shipctl.cli.plain import PlainConsole

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from shipctl.engine.stats import RunStats

ProgressMode = Literal["auto", "live", "plain", "off"]
PROGRESS_MODES: tuple[str, ...] = get_args(ProgressMode)

LIVE_REFRESH_PER_SECOND = 5.0
"""Frames per second of the live display (the contract allows at most 10)."""
ROLLING_WINDOW = 5.0
"""Seconds over which the live display's "now" throughput is measured."""
CPU_SAMPLE_EVERY = 1.0
"""psutil is asked at most this often; shorter CPU windows are noise, not information."""

Clock = Callable[[], float]


# --- figures shared by both displays -------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """`0:00:23`, `1:02:03` — the shape of a clock, as the plain line and the bar show it."""
    return str(timedelta(seconds=max(0, round(seconds))))


def eta_seconds(stats: RunStats, rate: float) -> float | None:
    """Seconds until `total` at `rate` rows/s; None when unknowable (no total, or nothing done yet)."""
    if stats.total is None:
        return None
    remaining = stats.total - stats.done
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return remaining / rate


class RollingRate:
    """Rows per second over the last `window` seconds, from samples taken at refresh time (not per event)."""

    def __init__(self, window: float = ROLLING_WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, worked: int) -> float | None:
        """Record `worked` rows at `now`; the rate over the window, or None until two samples span time."""
        samples = self._samples
        samples.append((now, worked))
        # Keep one sample at or just beyond the window's edge, so the span is the full window.
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        first_t, first_n = samples[0]
        span = now - first_t
        if span <= 0:
            return None
        return max(0, worked - first_n) / span


class CpuSampler:
    """This process's CPU % and each core's, from psutil, cached for `every` seconds.

    psutil's percentages are "since the previous call", so the first call only primes them; `prime()` is made
    when the display starts so that the first frame after a second already shows a real figure.
    """

    def __init__(self, every: float = CPU_SAMPLE_EVERY, clock: Clock = time.monotonic) -> None:
        import psutil  # only the live display reads CPU figures: a plain or quiet run never loads it

        self.every = every
        self.clock = clock
        self.cores = psutil.cpu_count() or 1
        self._process = psutil.Process()
        self._last_at: float | None = None
        self._last: tuple[float, list[float]] = (0.0, [0.0] * self.cores)
        self._start: tuple[float, float, list[Any]] | None = None

    def prime(self) -> None:
        import psutil

        self._process.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None, percpu=True)
        self._last_at = self.clock()
        self._start = (time.monotonic(), self._cpu_seconds(), psutil.cpu_times(percpu=True))

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def average(self) -> tuple[float, list[float]]:
        """This process's CPU % and each core's over the whole run since `prime()`: the last frame's figures. A
        short run ends before a sample spans a second, and its last instant is idle anyway."""
        if self._start is None:
            return self.sample()
        started, cpu_then, cores_then = self._start
        wall = time.monotonic() - started
        if wall <= 0:
            return self.sample()
        import psutil

        per_core = []
        for then, now in zip(cores_then, psutil.cpu_times(percpu=True), strict=False):
            total = sum(now) - sum(then)
            per_core.append(100.0 * (1 - (now.idle - then.idle) / total) if total > 0 else 0.0)
        return 100.0 * (self._cpu_seconds() - cpu_then) / wall, per_core

    def sample(self) -> tuple[float, list[float]]:
        """(process %, where 100 = one whole core; [per-core %])."""
        now = self.clock()
        if self._last_at is None or now - self._last_at >= self.every:
            import psutil

            per_core = list(psutil.cpu_percent(interval=None, percpu=True))
            self._last = (float(self._process.cpu_percent(interval=None)), per_core)
            self._last_at = now
        return self._last


# --- the plain line ------------------------------------------------------------------------------------


STAMP = "%Y-%m-%d %H:%M:%S"
"""Local date and time on every plain line (ISO 8601 with a space): a cron log spans midnight, and each line
stands alone under grep."""


def plain_line(stats: RunStats, rate: float, now: float | None = None) -> str:
    """`2026-03-01 12:00:05 340/1000 done, 2 failed, 28.1/s, ETA 0:00:23`, then retries and 429s when nonzero."""
    clock = time.strftime(STAMP, time.localtime(now))
    done = stats.done
    counted = f"{done}/{stats.total}" if stats.total is not None else f"{done}"
    parts = [f"{clock} {counted} done", f"{stats.failed} failed", f"{rate:.1f}/s"]
    eta = eta_seconds(stats, rate)
    if stats.total is not None:
        parts.append("ETA " + (format_duration(eta) if eta is not None else "unknown"))
    if stats.waiting:
        parts.append(f"{stats.waiting} waiting for the reference check")
    if stats.retries:
        parts.append(f"{stats.retries} retries")
    if stats.rate_limited:
        lowest = min(stats.limit_low, stats.limit)
        low = f", lowest {lowest}" if lowest < stats.limit else ""
        parts.append(f"{stats.rate_limited} rate-limited (limit {stats.limit}/{stats.max_limit}{low})")
    return ", ".join(parts)


class Display:
    """What `open_progress` yields: lets a command hand the terminal to a person for a moment."""

    def __init__(self, live: Live | None = None, stats: RunStats | None = None) -> None:
        self._live = live
        self._stats = stats
        self.paused = threading.Event()

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """No drawing inside the block (e.g. while a confirmation question waits for an answer), and the run's
        clock stopped: the time a person takes to answer is not the run's, nor its throughput's."""
        self.paused.set()
        if self._stats is not None:
            self._stats.pause()
        if self._live is not None:
            self._live.stop()
        try:
            yield
        finally:
            if self._stats is not None:
                self._stats.resume()
            if self._live is not None:
                self._live.start()
            self.paused.clear()


def _plain_loop(
    stats: RunStats, console: Console | PlainConsole, interval: float, stop: threading.Event, clock: Clock,
    paused: threading.Event | None = None,
) -> None:
    last_t, last_n = clock(), stats.done - stats.resumed
    while not stop.wait(interval):
        if paused is not None and paused.is_set():
            continue
        now, worked = clock(), stats.done - stats.resumed
        span = now - last_t
        # The rate over the last interval shows a stall at once; the overall rate would hide it.
        rate = (worked - last_n) / span if span > 0 else stats.throughput()
        last_t, last_n = now, worked
        console.print(plain_line(stats, rate), markup=False, highlight=False, soft_wrap=True, emoji=False)


# --- the context manager the commands use ----------------------------------------------------------------


def resolve_mode(mode: ProgressMode, console: Console | PlainConsole) -> Literal["live", "plain", "off"]:
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode must be one of {', '.join(PROGRESS_MODES)}, not {mode!r}")
    if mode == "auto":
        return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"
    return mode


@contextmanager
def open_progress(
    stats: RunStats,
    *,
    mode: ProgressMode = "auto",
    interval: float = 10.0,
    noun: str = "shipments",
    console: Console | PlainConsole | None = None,
    shared_screen: bool = False,
) -> Iterator[Display]:
    """Show progress of `stats` on `console` (default: the terminal's stderr) while the block runs.

    `shared_screen`: stdout is the same terminal (the terminal object says so). Nothing is printed after the
    block exits: the live display leaves its last frame (its line ended, in a file too), the plain display stops
    mid-interval, and the caller prints the summary. The display's `suspended()` also stops the run's clock.
    """
    if console is None:
        from shipctl.cli.terminal import terminal

        console = terminal().err
    if interval <= 0:
        raise ValueError(f"progress interval must be positive, not {interval!r}")
    resolved = resolve_mode(mode, console)

    if resolved == "off":
        yield Display(stats=stats)
        return

    if resolved == "plain":
        stop = threading.Event()
        display = Display(stats=stats)
        thread = threading.Thread(
            target=_plain_loop,
            # The run's own clock: a rate is never spread over the time a question waited.
            args=(stats, console, interval, stop, stats.elapsed, display.paused),
            name="shipctl-progress",
            daemon=True,
        )
        thread.start()
        try:
            yield display
        finally:
            stop.set()
            thread.join()
        return

    from rich.live import Live

    from shipctl.cli.live_view import LiveView

    if isinstance(console, PlainConsole):  # `--progress live` into a file: rich draws it, as it would anywhere
        console = console.rich()
    cpu = CpuSampler()
    cpu.prime()
    view = LiveView(stats, noun=noun, cpu=cpu, clock=stats.elapsed, width=lambda: console.width)
    # stdout is data: rich may route it above the bar only when a person reads both on one terminal.
    # Never when stdout is a pipe or file — then `| jq` sees exactly the bytes written.
    live = Live(
        console=console,
        get_renderable=view,
        refresh_per_second=LIVE_REFRESH_PER_SECOND,
        transient=False,
        redirect_stdout=console.stderr and shared_screen,
        redirect_stderr=console.stderr,
    )
    with live:
        try:
            yield Display(live, stats)
        finally:
            view.final = True  # live.stop() draws the last frame: no ETA, the overall rate, the average CPU
    if not console.is_terminal:
        # To a file rich writes the last frame alone, without ending its line: the summary must start its own.
        console.line()
