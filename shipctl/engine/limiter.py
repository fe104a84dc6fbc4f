"""The shared in-flight limit: a semaphore whose size moves under AIMD, cut only by 429s that mean capacity.

A 429 is either *capacity* (the server refuses what it gets above some number of calls in flight: every call
sent above that level is refused) or *scattered* (a refusal at random, EasyPost throttling by its own load:
sending fewer calls does not make it rarer). Only the first kind is cured by sending fewer, so:

* Every completion is counted by the load it was sent at (the number of calls in flight, itself included, as
  the engine passes it; a success reported without one counts at the load it came back at). The counts are
  halved every `DECAY_EVERY` completions, so they speak of the last few hundred calls.
* A 429 sent at load `L` is *capacity* unless the calls at loads ≥ `L` mostly succeed: at least
  `SCATTER_RATIO` successes per 429 there. A wall at `N` refuses (nearly) everything above `N`, so its 429s
  are capacity from the first; a random 1–5% leaves 20–100 successes per 429 at every load, so they are
  scattered, and cost nothing but their own retry. A 429 with nothing known about its load yet (the run's
  first calls) is capacity: caution until the calls say otherwise.
* A capacity 429 halves the limit (multiplicative decrease), once per "generation": the burst of 429s that
  answer calls started before the cut all belong to one congestion event, so they halve once, not once each.
* Recovery: back up to just under the level where the 429 struck, one slot per success (fast, like TCP slow
  start), then one slot per window of `limit` successes (additive increase) beyond it, up to the ceiling.
  "Where it struck" is the in-flight count when the refused call was *sent* (the lowest among the event's
  capacity 429s), not the limit at the time: a fast probe overshoots the server's capacity before the first
  429 comes back, and remembering the overshoot would make every recovery overshoot again.
* A probe above that level that is refused at the same level again makes the next probe twice as patient
  (up to `MAX_PATIENCE` windows): a server with a hard cap is not hammered. A probe level that holds for its
  whole window becomes the new known-good level and patience starts over: a wall that moved up is followed.
* Before the first 429, growth is fast only up to twice the start (`SLOW_START_TIMES`), then a slot a window: a
  429 comes back a round trip after the call that drew it, and a limit doubling all the way to the ceiling would
  have sent every call above the wall by then (measured: 16 → 62 against a wall at 40, 15–30 refused at once).
* A probe above the known-good level ends (the limit back to that level, the next probe more patient) when the
  loads above it draw clearly more 429s than the loads at or below it, even 429s the counts call scattered: from
  the client's side a wall is blurred (its count of calls in flight runs ahead of the server's, so calls a little
  above the wall often succeed), and a probe that went on would climb past it.
* No probe in a run's last stretch (`ENDGAME_WINDOWS`, from the run's total and done rows): one slot more is worth
  a few rows by then, and a refused probe adds its rows' Retry-After to the run's end.
* `auto` is a ceiling above the starting limit: the limit probes upward while no 429 arrives *and the calls do
  not slow down*. A server nearing its capacity queues work before it refuses any (and a client whose own CPU is
  the bottleneck answers its calls later): each kind of call's time at the starting load is its baseline, and
  once the calls' times run `SLOW_DOWN` above their baselines (a moving average over all kinds), the limit stops
  growing, and gives back a slot per window while they stay there. The limit settles near the knee of the
  server's curve, where more calls in flight would only queue, not at its wall, so a wall is met rarely.

It lives in the event loop thread only (no locks needed); waiting is FIFO so no caller starves.
"""

from __future__ import annotations

from collections import deque

import anyio

from shipctl.engine.stats import RunStats

#: Successes per 429 at a load (and above) for a 429 there to count as scattered rather than capacity.
SCATTER_RATIO = 8
#: Completions after which the per-load counts are halved (their memory is about twice this).
DECAY_EVERY = 256
MAX_PATIENCE = 16
#: 429s above the known-good level before their rate there can end a probe.
ABOVE_EVIDENCE = 3
#: How far above the start the limit grows one slot per success before the first 429 (then a slot a window).
SLOW_START_TIMES = 2
#: No probe once the calls left (the rows left, times the calls the rows so far took each) are fewer than this many
#: windows of the limit.
ENDGAME_WINDOWS = 16
#: Calls this much slower than at the starting load (their moving average) stop the limit's growth.
SLOW_DOWN = 1.3
#: Weight of one call in the moving averages: the baseline's, and the slowdown's (about the last 20 calls).
BASE_WEIGHT = 0.1
SLOWDOWN_WEIGHT = 0.05


class _Waiter:
    __slots__ = ("event", "generation")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.generation = 0


class AdaptiveLimiter:
    def __init__(self, start: int, ceiling: int, stats: RunStats) -> None:
        self._limit = max(1, start)
        self._ceiling = max(self._limit, ceiling)
        self._inflight = 0
        self._waiters: deque[_Waiter] = deque()
        self._generation = 0
        self._successes = 0
        # Below this level growth is fast (one slot per success); above it, additive. Until the first 429, twice
        # the start is presumed good, so `auto` doubles quickly, then probes a slot a window: a doubling past
        # the server's wall would have every call above it refused before the first 429 came back.
        self._known_good = min(self._ceiling, SLOW_START_TIMES * self._limit)
        self._patience = 1
        self._walled = False  # a capacity 429 has been seen: `_known_good` is a level the server refused above
        # Recent successes and 429s by the load they ran at (index = calls in flight, 1..ceiling).
        self._ok = [0] * (self._ceiling + 1)
        self._refused = [0] * (self._ceiling + 1)
        self._completions = 0
        self._start = self._limit
        # Per kind of call (the engine passes its function): its time when sent at the starting load or below.
        self._baseline: dict[object, float] = {}
        self._slowdown = 1.0  # calls' times over their baselines, a moving average
        self._stats = stats
        stats.limit = stats.max_limit = stats.limit_start = stats.limit_low = self._limit

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def generation(self) -> int:
        return self._generation

    def try_acquire(self) -> int | None:
        """Take a slot if one is free and nobody waits: the generation (as `acquire`), else None."""
        if self._inflight < self._limit and not self._waiters:
            self._take()
            return self._generation
        return None

    async def acquire(self) -> int:
        """Take a slot; returns the generation to pass to `rate_limited` if this call gets a 429.

        A waiter's generation is the one its slot was granted in, not the one when it resumes: a slot granted
        just before a cut was granted under the old limit, and its 429 belongs to the event that caused the cut.
        """
        generation = self.try_acquire()
        if generation is not None:
            return generation
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.event.is_set():  # the slot was handed to us just as we were cancelled: give it back
                self.release()
            else:
                self._waiters.remove(waiter)
            raise
        return waiter.generation

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
            waiter = self._waiters.popleft()
            waiter.generation = self._generation
            waiter.event.set()

    def _set_limit(self, value: int) -> None:
        self._limit = max(1, min(self._ceiling, value))
        stats = self._stats
        stats.limit = self._limit
        stats.max_limit = max(stats.max_limit, self._limit)
        stats.limit_low = min(stats.limit_low, self._limit)
        self._wake()

    # -- what the calls say about each load ------------------------------------------------------------

    def _level(self, level: int) -> int:
        return max(1, min(self._ceiling, level))

    def _count(self, table: list[int], level: int) -> None:
        table[self._level(level)] += 1
        self._completions += 1
        if self._completions >= DECAY_EVERY:
            self._completions = 0
            for counts in (self._ok, self._refused):
                for i, value in enumerate(counts):
                    counts[i] = value // 2

    def _is_capacity(self, level: int) -> bool:
        """Whether a 429 sent at `level` (already counted) says the server refuses that load."""
        at = self._level(level)
        return sum(self._ok[at:]) < SCATTER_RATIO * sum(self._refused[at:])

    def _above_refuses(self) -> bool:
        """Whether loads above the known-good level draw 429s clearly more often than the loads at or below it (a
        wall, however blurred), rather than at the same scattered rate."""
        good = self._known_good + 1
        refused = sum(self._refused[good:])
        if refused < ABOVE_EVIDENCE:  # one 429 in a probe's first calls is no rate
            return False
        above = refused / max(1, sum(self._ok[good:]) + refused)
        below = sum(self._refused[:good]) / max(1, sum(self._ok[:good]) + sum(self._refused[:good]))
        return above > 2 * below + 0.01

    # -- outcomes --------------------------------------------------------------------------------------

    def _timed(self, level: int, kind: object, seconds: float) -> None:
        """Fold a success's duration into the baseline of its kind (sent at the starting load) or the slowdown."""
        base = self._baseline.get(kind)
        if level <= self._start:
            self._baseline[kind] = seconds if base is None else base + BASE_WEIGHT * (seconds - base)
        elif base is not None and base > 0:
            self._slowdown += SLOWDOWN_WEIGHT * (seconds / base - self._slowdown)

    def succeeded(self, level: int | None = None, kind: object = None, seconds: float | None = None) -> None:
        """A call sent when `level` calls (itself included) were in flight succeeded; without a level, the load it
        completed at (what is still in flight, plus itself: it was released already). `kind` and `seconds`: what
        kind of call it was and how long it took, for the slowdown (only under `auto` does it matter)."""
        load = level if level is not None else self._inflight + 1
        self._count(self._ok, load)
        if self._ceiling > self._start and seconds is not None:
            self._timed(load, kind, seconds)
        if self._limit >= self._ceiling:
            return
        if self._slowdown > SLOW_DOWN and self._limit > self._start:
            # Past the knee: grow no more, probe no more, and give back a slot per window while it lasts.
            self._known_good = min(self._known_good, self._limit)
            self._successes += 1
            if self._successes >= self._limit:
                self._successes = 0
                self._known_good = max(self._start, self._limit - 1)
                self._set_limit(self._limit - 1)
            return
        if self._limit < self._known_good:
            self._set_limit(self._limit + 1)
            return
        self._successes += 1
        if self._successes >= self._limit * self._patience:
            self._successes = 0
            if self._limit > self._known_good:  # a probe that held for its whole window: the wall moved
                self._known_good = self._limit
                self._patience = 1
            if not self._winding_down():
                self._set_limit(self._limit + 1)

    def _winding_down(self) -> bool:
        """Too little work is left for a probe to pay: one slot more is worth a few rows by now, and a probe the
        server refuses costs its rows a Retry-After (a second or more), added to the run's end."""
        if self._ceiling <= self._start:  # a fixed limit climbing back after a cut is no probe
            return False
        stats = self._stats
        if stats.total is None:
            return False
        # Calls a row takes, as the rows worked so far took them (two for create, one for rates or track); two
        # until a call is counted.
        worked = stats.done - stats.resumed
        per_row = stats.calls_ok / worked if stats.calls_ok and worked > 0 else 2.0
        return per_row * (stats.total - stats.done) < ENDGAME_WINDOWS * self._limit

    def rate_limited(self, generation: int, level: int | None = None) -> None:
        """A 429 answered a call sent in `generation` when `level` calls (itself included) were in flight."""
        self._stats.rate_limited += 1
        load = level if level is not None else self._limit
        self._count(self._refused, load)
        if generation < self._generation - 1:
            return  # from an older event
        if not self._is_capacity(load):
            # Scattered: sending fewer would not make it rarer. But a probe above the known-good level that draws
            # one has not held, whatever its kind: from the client's side a wall looks blurred (its own count of
            # calls in flight runs ahead of the server's), and a probe that went on would climb past it.
            if self._limit > max(self._known_good, self._start) and load > self._known_good and self._above_refuses():
                self._patience = min(MAX_PATIENCE, self._patience * 2)
                self._successes = 0
                self._set_limit(self._known_good)
            return
        capacity = max(1, load - 1)
        if generation == self._generation - 1:
            # Another 429 of the event just answered: it may reveal a lower capacity, no second halving.
            self._known_good = max(self._limit, min(self._known_good, capacity))
            return
        self._generation += 1
        # The same wall: a probe refused at the level an earlier event learnt (not the presumed-good level of slow
        # start, which no 429 has drawn yet).
        same_wall = self._walled and capacity >= self._known_good - 1 and self._known_good < self._ceiling
        self._walled = True
        self._patience = min(MAX_PATIENCE, self._patience * 2) if same_wall else 1
        self._successes = 0
        self._set_limit(self._limit // 2)
        # A 429 at a load far below the limit (a per-second quota, say) must not sink recovery below the halving.
        self._known_good = max(self._limit, capacity)
