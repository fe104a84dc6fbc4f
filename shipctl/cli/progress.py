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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
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


# --- the live display ----------------------------------------------------------------------------------


def _pct_style(pct: float) -> str:
    return "green" if pct < 60 else "yellow" if pct < 85 else "red"


BAR_WIDTH = 40
"""The widest a bar is drawn; on a narrow terminal the bars shrink first, so the figures (the ETA) stay whole."""
LABEL_WIDTH = 11


class LiveView:
    """Builds one frame of the live display from `stats`. Called by rich's refresh thread only.

    Separate from `open_progress` so tests can render a frame deterministically (fake clock, fake CPU).
    `width` gives the screen's columns each frame (None: bars at full width); the last frame shows the run's
    average CPU when `cpu` is a `CpuSampler`.
    """

    def __init__(
        self,
        stats: RunStats,
        *,
        noun: str = "shipments",
        clock: Clock = time.monotonic,
        cpu: CpuSampler | Callable[[], tuple[float, Sequence[float]]] | None = None,
        window: float = ROLLING_WINDOW,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.stats = stats
        self.noun = noun
        self.clock = clock
        self.width = width
        self._cpu: Callable[[], tuple[float, Sequence[float]]]
        if cpu is None:
            cpu = CpuSampler()
        self._cpu = cpu.sample if isinstance(cpu, CpuSampler) else cpu
        self._average = cpu.average if isinstance(cpu, CpuSampler) else self._cpu
        self._rate = RollingRate(window)
        self._bars = (0, BAR_WIDTH)
        """(screen width, bar width) of the last frame."""
        self._lock = threading.Lock()
        self.final = False
        """Set when the block exits: the last frame is drawn as finished even if `finished_at` is not set yet."""

    def __call__(self) -> RenderableType:
        with self._lock:
            return self._frame()

    def _frame(self) -> RenderableType:
        s = self.stats
        # Read each counter once, so the frame is consistent with itself even if slightly stale.
        done, resumed = s.done, s.resumed
        finished = self.final or s.finished_at is not None
        overall = s.throughput()
        rolling = self._rate.sample(self.clock(), done - resumed)
        now_rate = overall if rolling is None or finished else rolling
        proc_pct, per_core = self._average() if finished else self._cpu()
        cores = max(len(per_core), 1)
        figures = (
            self._counts(done, finished, eta_seconds(s, now_rate)),
            self._flight_text(s),
            Text(f"{proc_pct:5.1f}% (of {100 * cores}% on {cores} cores)"),
        )
        bar = self._bar_width(max(f.cell_len for f in figures))
        grid = Table.grid(padding=(0, 1), expand=False)
        grid.add_column(justify="left", no_wrap=True, min_width=LABEL_WIDTH)
        grid.add_column(no_wrap=True)
        grid.add_row(Text(self.noun, style="bold"), _with_bar(self._progress_bar(done, finished, bar), figures[0]))
        grid.add_row(Text("throughput"), self._rate_text(finished, now_rate, overall, resumed))
        grid.add_row(Text("in flight"), _with_bar(self._flight_bar(s.inflight, s.limit, s.max_limit, bar), figures[1]))
        grid.add_row(Text("health"), self._health(s.retries, s.rate_limited, s.failed))
        grid.add_row(Text("cpu shipctl"), _with_bar(self._cpu_bar(proc_pct, cores, bar), figures[2]))
        return Group(grid, self._core_grid(per_core))

    def _bar_width(self, figures: int) -> int:
        """The bars' width: what the screen leaves beside the label and the longest figures, at most BAR_WIDTH;
        none at all when that is too narrow to read."""
        if self.width is None:
            return BAR_WIDTH
        screen = self.width()
        room = screen - (LABEL_WIDTH + 1) - 1 - figures
        bar = min(BAR_WIDTH, room) if room >= 6 else 0
        # The figures grow by a digit now and then: the bars only ever shrink on one screen, never flicker.
        if self._bars[0] == screen:
            bar = min(bar, self._bars[1])
        self._bars = (screen, bar)
        return bar

    def _progress_bar(self, done: int, finished: bool, width: int) -> ProgressBar | None:
        total = self.stats.total
        if not width:
            return None
        if total is None:
            return ProgressBar(total=None, completed=done, width=width, pulse=not finished)
        return ProgressBar(total=max(total, 1), completed=min(done, total) if total else 1, width=width)

    def _counts(self, done: int, finished: bool, eta: float | None) -> Text:
        total = self.stats.total
        if total is None:
            counts = Text(f"{done} done", style="bold")
        else:
            pct = 100.0 * done / total if total else 100.0
            counts = Text.assemble((f"{done}/{total}", "bold"), f" {pct:3.0f}%")
        counts.append(" ")
        counts.append(format_duration(self.stats.elapsed()), style="cyan")
        if not finished:
            counts.append("  ETA ")
            counts.append(format_duration(eta) if eta is not None else "-:--:--", style="cyan")
        return counts

    def _rate_text(self, finished: bool, now_rate: float, overall: float, resumed: int) -> Text:
        if finished:
            text = Text.assemble((f"{overall:.1f} {self.noun}/s", "bold magenta"), " overall")
        else:
            text = Text.assemble(
                (f"{now_rate:.1f} {self.noun}/s", "bold magenta"),
                " now ",
                (f"(last {self._rate.window:.0f} s)", "dim"),
                f"  {overall:.1f}/s overall",
            )
        if resumed:
            text.append(f"  ({resumed} resumed from the journal)", style="dim")
        return text

    @staticmethod
    def _flight_bar(inflight: int, limit: int, max_limit: int, width: int) -> ProgressBar | None:
        """API calls in flight against the current (AIMD) limit; a halving turns it yellow."""
        cap = max(max_limit, limit, 1)
        if not width:
            return None
        return ProgressBar(total=cap, completed=min(inflight, cap), width=width,
                           complete_style="yellow" if limit < max_limit else "blue")

    @staticmethod
    def _flight_text(s: RunStats) -> Text:
        """In flight against the limit, and the limit's path: where `auto` started probing from, or how far 429s
        that meant capacity brought it down (the summary gives start, lowest and end once the run is over)."""
        limit, max_limit = s.limit, s.max_limit
        lowest = min(s.limit_low, limit)
        throttled = limit < max_limit and (s.rate_limited > 0 or lowest < s.limit_start)
        flight = Text.assemble((f"{s.inflight}", "bold"), " / limit ")
        flight.append(f"{limit}", style="bold yellow" if throttled else "bold")
        flight.append(f" (max {max_limit})")
        if throttled:
            flight.append(" throttled by 429", style="yellow")
            if lowest < limit:
                flight.append(f", lowest {lowest}", style="yellow")
        elif limit != s.limit_start:
            flight.append(f" probing up from {s.limit_start}", style="dim")
        return flight

    @staticmethod
    def _health(retries: int, rate_limited: int, failed: int) -> Text:
        return Text.assemble(
            ("retries ", ""),
            (f"{retries}", "yellow" if retries else ""),
            "   429s ",
            (f"{rate_limited}", "yellow" if rate_limited else ""),
            "   failed ",
            (f"{failed}", "bold red" if failed else ""),
        )

    @staticmethod
    def _cpu_bar(proc_pct: float, cores: int, width: int) -> ProgressBar | None:
        """This process's CPU, out of every core's 100%."""
        if not width:
            return None
        return ProgressBar(total=100.0 * cores, completed=min(proc_pct, 100.0 * cores), width=width,
                           complete_style=_pct_style(proc_pct / cores))

    def _core_grid(self, per_core: Sequence[float]) -> RenderableType:
        """One small bar per core, up to four to a row (fewer on a narrow screen), so 64 cores still fit."""
        fits = 4 if self.width is None else max(1, (self.width() - (LABEL_WIDTH + 17)) // 22 + 1)
        per_row = min(fits, 4) if len(per_core) > 2 else max(len(per_core), 1)
        grid = Table.grid(padding=(0, 1))
        for column in range(per_row):
            grid.add_column(no_wrap=True, min_width=LABEL_WIDTH if column == 0 else 0)
            grid.add_column(no_wrap=True)
            grid.add_column(no_wrap=True, justify="right", min_width=4)
        for start in range(0, len(per_core), per_row):
            cells: list[RenderableType] = []
            for i, pct in enumerate(per_core[start : start + per_row], start):
                cells.append(Text(f"cpu{i}"))
                cells.append(ProgressBar(total=100.0, completed=pct, width=10, complete_style=_pct_style(pct)))
                cells.append(Text(f"{pct:3.0f}%"))
            grid.add_row(*cells)
        return grid


def _with_bar(bar: ProgressBar | None, figures: Text) -> RenderableType:
    """A bar and its figures on one line; the figures alone when the screen has no room for a bar."""
    if bar is None:
        return figures
    line = Table.grid(padding=(0, 1))
    line.add_column(no_wrap=True)
    line.add_column(no_wrap=True)
    line.add_row(bar, figures)
    return line


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
    stats: RunStats, console: Console, interval: float, stop: threading.Event, clock: Clock,
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


def resolve_mode(mode: ProgressMode, console: Console) -> Literal["live", "plain", "off"]:
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
    console: Console | None = None,
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
