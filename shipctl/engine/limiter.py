"""The shared in-flight limit: a semaphore whose size moves under AIMD.

* A 429 halves the limit (multiplicative decrease), once per "generation": the burst of 429s that answer
  calls started before the cut all belong to one congestion event, so they halve once, not once each.
* Recovery: back up to just under the level where the 429 struck, one slot per success (fast, like TCP slow
  start), then one slot per window of `limit` successes (additive increase) beyond it, up to the ceiling.
  "Where it struck" is the in-flight count when the refused call was *sent* (the lowest among the event's
  429s), not the limit at the time: a fast probe overshoots the server's capacity before the first 429 comes
  back, and remembering the overshoot would make every recovery overshoot again.
* A probe above that level that is refused at the same level again makes the next probe twice as patient
  (up to 64 windows): a server with a hard cap is not hammered twice a second, one that grows is still found.
* `auto` is just a ceiling above the starting limit: the limit probes upward while no 429 arrives.

It lives in the event loop thread only (no locks needed); waiting is FIFO so no caller starves.
"""

from __future__ import annotations

from collections import deque

import anyio

from shipctl.engine.stats import RunStats


class AdaptiveLimiter:
    def __init__(self, start: int, ceiling: int, stats: RunStats) -> None:
        self._limit = max(1, start)
        self._ceiling = max(self._limit, ceiling)
        self._inflight = 0
        self._waiters: deque[anyio.Event] = deque()
        self._generation = 0
        self._successes = 0
        # Below this level growth is fast (one slot per success); above it, additive. Until the first 429 every
        # level up to the ceiling is presumed good, so `auto` probes upward quickly.
        self._known_good = self._ceiling
        self._patience = 1
        self._stats = stats
        stats.limit = self._limit
        stats.max_limit = self._limit

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def generation(self) -> int:
        return self._generation

    async def acquire(self) -> int:
        """Take a slot; returns the generation to pass to `rate_limited` if this call gets a 429."""
        if self._inflight < self._limit and not self._waiters:
            self._take()
            return self._generation
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # the slot was handed to us just as we were cancelled: give it back
                self.release()
            else:
                self._waiters.remove(event)
            raise
        return self._generation

    def _take(self) -> None:
        self._inflight += 1
        self._stats.inflight = self._inflight

    def release(self) -> None:
        self._inflight -= 1
        self._stats.inflight = self._inflight
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._inflight < self._limit:
            self._take()
            self._waiters.popleft().set()

    def _set_limit(self, value: int) -> None:
        self._limit = max(1, min(self._ceiling, value))
        self._stats.limit = self._limit
        self._stats.max_limit = max(self._stats.max_limit, self._limit)
        self._wake()

    def succeeded(self) -> None:
        if self._limit >= self._ceiling:
            return
        if self._limit < self._known_good:
            self._set_limit(self._limit + 1)
            return
        self._successes += 1
        if self._successes >= self._limit * self._patience:
            self._successes = 0
            self._set_limit(self._limit + 1)

    def rate_limited(self, generation: int, level: int | None = None) -> None:
        """A 429 answered a call sent in `generation` when `level` calls (itself included) were in flight."""
        self._stats.rate_limited += 1
        capacity = max(1, (level if level is not None else self._limit) - 1)
        if generation == self._generation - 1:
            # Another 429 of the event just answered: it may reveal a lower capacity, no second halving.
            self._known_good = max(self._limit, min(self._known_good, capacity))
            return
        if generation != self._generation:
            return  # from an older event
        self._generation += 1
        same_wall = capacity >= self._known_good - 1 and self._known_good < self._ceiling
        self._patience = min(64, self._patience * 2) if same_wall else 1
        self._successes = 0
        self._set_limit(self._limit // 2)
        # A 429 at a load far below the limit (a per-second quota, say) must not sink recovery below the halving.
        self._known_good = max(self._limit, capacity)
