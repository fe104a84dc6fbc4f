"""What a job needs from whoever runs it, and a headless stand-in for tests, benchmarks and scripts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shipctl.money import Totals

if TYPE_CHECKING:
    from shipctl.engine.sizing import Sizing
    from shipctl.engine.stats import RunStats


@dataclass(frozen=True)
class Spend:
    """A question before real money moves: `count` `noun` to `verb` ("buy", "refund"), `totals` when known, in
    `mode` (the API's: "production", or None when nobody can tell)."""

    verb: str
    count: int
    totals: Totals = field(default_factory=dict)
    noun: str = "labels"
    mode: str | None = "production"
    smartrate_calls: int = 0
    """SmartRate calls made to choose these rates (delivery-time rules): EasyPost bills them beyond a free tier."""


class Host(Protocol):
    def info(self, message: str) -> None:
        """A line for the person running the job (stderr in the CLI)."""

    def warn(self, message: str) -> None:
        """Something the person should act on, though the job goes on."""

    def detail(self, message: str) -> None:
        """A line worth showing unless the person asked for quiet (which API, which way of quoting)."""

    def progress(self, stats: RunStats) -> contextlib.AbstractContextManager[object]:
        """Show `stats` while the block runs (the engine mutates them; the display polls)."""

    def approve(self, spend: Spend) -> bool:
        """True to go ahead. Asked only where money is real or its mode unknown (`money.needs_approval`)."""

    def engine_started(self, sizing: Sizing) -> None:
        """Called from inside the running event loop, once per job (the CLI prints it under `--verbose`)."""

    def exit_now(self) -> None:
        """Leave the process at once (a second Ctrl-C); the journal's commits are atomic, so nothing is lost."""


@dataclass
class Headless:
    """A host with nobody there: notices are kept, no progress is shown, spending is approved by `approve_all`."""

    approve_all: bool = False
    notices: list[str] = field(default_factory=list)
    asked: list[Spend] = field(default_factory=list)
    on_exit: Callable[[], None] | None = None

    def info(self, message: str) -> None:
        self.notices.append(message)

    def warn(self, message: str) -> None:
        self.notices.append("warning: " + message)

    def detail(self, message: str) -> None:
        self.notices.append(message)

    def progress(self, stats: RunStats) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def approve(self, spend: Spend) -> bool:
        self.asked.append(spend)
        return self.approve_all

    def engine_started(self, sizing: Sizing) -> None:
        pass

    def exit_now(self) -> None:
        if self.on_exit is not None:
            self.on_exit()
