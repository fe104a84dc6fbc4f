"""The live display: one frame of a bulk run's progress, bars and figures, drawn by rich on a terminal.

`progress.open_progress` shows it (this module, and rich with it, is loaded only for a run that draws it); rich's
refresh thread calls `LiveView` for each frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shipctl.cli.progress import ROLLING_WINDOW, Clock, CpuSampler, RollingRate, eta_seconds, format_duration

if TYPE_CHECKING:
    from shipctl.engine.stats import RunStats


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
        if s.waiting:
            flight.append(f"  {s.waiting} waiting for the reference check", style="dim")
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
