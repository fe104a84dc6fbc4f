"""Live counters the engine mutates and a display polls.

Polling plain integers is the cheapest possible interface: the engine pays one attribute increment per event,
never a call into rich, and the display samples at its own pace (at most 10 Hz) from another thread. Reads
may be a moment stale; they are never torn (each field is one Python int).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["succeeded", "failed", "skipped"]


@dataclass
class RunStats:
    total: int | None = None
    """Rows to do in this run (None while still unknown, e.g. streaming stdin)."""
    done: int = 0
    """Rows finished, whatever their outcome (succeeded + failed + skipped)."""
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0
    """Rows re-emitted from the journal without any API call."""
    retries: int = 0
    calls_ok: int = 0
    """API calls that succeeded: zero after failures means the API is unreachable or refuses the key."""
    rate_limited: int = 0
    """429 answers seen (those that say the server is at capacity also halve `limit`, once per event)."""
    inflight: int = 0
    """API calls in flight right now."""
    waiting: int = 0
    """Rows quoted and waiting out the reference check's quiet period before their last look and buy."""
    limit: int = 16
    """The current in-flight limit (moves under AIMD)."""
    max_limit: int = 16
    limit_start: int = 16
    """The limit's path over the run: where it started and the lowest it fell to (`limit` is where it is)."""
    limit_low: int = 16
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    paused_seconds: float = 0.0
    """Time spent waiting on a person (the production prompt): not the run's work, so not in `elapsed()`."""
    paused_since: float | None = None

    def record(self, outcome: Outcome) -> None:
        """One row finished: the one place every command counts a row's outcome."""
        self.done += 1
        if outcome == "succeeded":
            self.succeeded += 1
        elif outcome == "failed":
            self.failed += 1
        else:
            self.skipped += 1

    def revise(self, was: Outcome, now: Outcome) -> None:
        """A row already counted turned out otherwise (a tracked code that later failed for good)."""
        for outcome, step in ((was, -1), (now, 1)):
            setattr(self, outcome, getattr(self, outcome) + step)

    def pause(self) -> None:
        """The clock stops (a question waits for a person) until `resume()`: throughput is the run's own."""
        if self.paused_since is None:
            self.paused_since = time.monotonic()

    def resume(self) -> None:
        if self.paused_since is not None:
            self.paused_seconds += time.monotonic() - self.paused_since
            self.paused_since = None

    def elapsed(self) -> float:
        """Seconds the run has worked: since it started, less the time paused. It stands still while paused,
        so a display may use it as its clock."""
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        since, paused = self.paused_since, self.paused_seconds  # each read once: another thread may resume
        if since is not None:
            paused += max(0.0, end - since)
        return max(0.0, end - self.started_at - paused)

    def throughput(self) -> float:
        """Rows finished per second over the whole run (resumed rows excluded: they cost nothing)."""
        elapsed = self.elapsed()
        worked = self.done - self.resumed
        return worked / elapsed if elapsed > 0 else 0.0
