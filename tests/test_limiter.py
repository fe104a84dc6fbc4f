"""The in-flight limiter driven directly, as a closed loop of calls against a model server: no threads, no sleeps.

Each step fills every free slot (the level of a call is the number in flight once it is sent, itself included,
as the engine measures it), then the next call comes back: a 429 if the server was full when it arrived (at
once) or a scattered 429 falls on this completion, otherwise a success (oldest first).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import pytest

from shipctl.engine.limiter import AdaptiveLimiter
from shipctl.engine.stats import RunStats


@dataclass
class Trace:
    limits: list[int] = field(default_factory=list)
    """The limit after each completion."""
    refused: list[bool] = field(default_factory=list)

    def mean(self, start: int = 0, end: int | None = None) -> float:
        window = self.limits[start:end]
        return sum(window) / len(window)

    def share_refused(self, start: int = 0, end: int | None = None) -> float:
        window = self.refused[start:end]
        return sum(window) / len(window)


class Loop:
    """A client that always has work: `limiter.limit` calls in flight.

    The server takes at most `capacity` calls at once: a call that finds it full is refused at once (its 429 is
    the next completion), the others are answered oldest first; `scattered(n)` refuses the n-th completion
    (counted from 0 in each `run`) whatever the load.
    """

    def __init__(self, start: int, ceiling: int) -> None:
        self.stats = RunStats()
        self.limiter = AdaptiveLimiter(start, ceiling, self.stats)
        self.flight: deque[tuple[int, int, bool]] = deque()  # (generation, level, refused at once) per call
        self.serving = 0
        self.trace = Trace()

    def _send(self, generation: int, capacity: int | None) -> None:
        level = self.limiter.inflight  # as the engine measures it: the calls in flight, this one included
        if capacity is not None and self.serving >= capacity:
            self.flight.appendleft((generation, level, True))
        else:
            self.serving += 1
            self.flight.append((generation, level, False))

    def run(self, completions: int, capacity: int | None = None,
            scattered: Callable[[int], bool] = lambda _n: False,
            duration: Callable[[int], float] | None = None) -> Trace:
        """`duration(serving)`: how long a success took when the server was serving that many calls (None: the
        limiter is told no durations)."""
        limiter = self.limiter
        for n in range(completions):
            while (generation := limiter.try_acquire()) is not None:
                self._send(generation, capacity)
            generation, level, refused = self.flight.popleft()
            if not refused:
                self.serving -= 1
                refused = scattered(n)
            limiter.release()
            if refused:
                limiter.rate_limited(generation, level)
            elif duration is None:
                limiter.succeeded(level)
            else:
                limiter.succeeded(level, "call", duration(self.serving + 1))
            self.trace.limits.append(limiter.limit)
            self.trace.refused.append(refused)
        return self.trace


def scattered(per_hundred: int, seed: int) -> Callable[[int], bool]:
    """`per_hundred` 429s in every 100 completions, at random positions, whatever the load."""
    rng = random.Random(seed)
    positions: set[int] = set()

    def refuse(n: int) -> bool:
        if n % 100 == 0:
            positions.clear()
            positions.update(n + i for i in rng.sample(range(100), per_hundred))
        return n in positions

    return refuse


def test_scattered_429s_keep_the_limit_near_its_start() -> None:
    for per_hundred in (1, 5):
        for seed in range(5):
            loop = Loop(16, 16)
            trace = loop.run(3000, scattered=scattered(per_hundred, seed))
            assert trace.mean() >= 15.0, (per_hundred, seed, trace.mean())
            assert trace.mean(500) >= 15.5, (per_hundred, seed)  # once the loads have a record: all but free
            assert loop.limiter.limit == 16
            assert loop.stats.limit_start == 16
            assert loop.stats.limit_low >= 4  # a halving or two at the start, before anything was known
            assert loop.stats.rate_limited == 30 * per_hundred


def test_the_old_rule_collapses_where_this_one_holds() -> None:
    """What issue 12 measured: 5% scattered 429s used to drive the limit to its floor and keep it there."""
    loop = Loop(16, 16)
    loop.run(3000, scattered=scattered(5, 0))
    assert loop.stats.limit_low >= 8 and loop.limiter.limit == 16


def test_a_capacity_wall_brings_the_limit_down_within_a_few_windows_and_keeps_it_there() -> None:
    loop = Loop(16, 16)
    trace = loop.run(2000, capacity=10)
    first_cut = next(i for i, limit in enumerate(trace.limits) if limit <= 10)
    assert first_cut <= 16  # within the first window
    assert max(trace.limits[first_cut:]) <= 11  # never again above the wall but for a probe one slot over
    assert trace.share_refused(200) <= 0.02  # no hammering: a probe now and then
    assert trace.mean(200) >= 8.0  # and it does not sink far below the wall either
    assert loop.stats.limit_low >= 5


def test_auto_finds_a_wall_above_its_start_and_settles_near_it() -> None:
    loop = Loop(16, 64)
    trace = loop.run(6000, capacity=40)
    assert loop.stats.max_limit > 40  # it probed upward past its start and found the wall
    assert trace.mean(1000) >= 34.0  # settled near 40
    assert max(trace.limits[1000:]) <= 41
    assert trace.share_refused(1000) <= 0.02


def test_after_the_wall_is_lifted_the_limit_climbs_back() -> None:
    loop = Loop(16, 16)
    loop.run(2000, capacity=10)
    assert loop.limiter.limit <= 11
    trace = loop.run(1500)
    assert trace.limits[-1] == 16
    assert trace.limits.index(16, 2000) <= 2000 + 600


def test_auto_climbs_after_a_wall_moves_up() -> None:
    loop = Loop(16, 64)
    loop.run(4000, capacity=24)
    assert loop.limiter.limit <= 25
    trace = loop.run(6000, capacity=40)
    assert trace.mean(6000) >= 36.0  # the first 2,000 completions after the move, to climb back
    assert max(trace.limits[4000:]) <= 41


def test_scattered_429s_do_not_hide_a_wall() -> None:
    loop = Loop(16, 64)
    trace = loop.run(6000, capacity=30, scattered=scattered(5, 7))
    assert max(trace.limits[1000:]) <= 31
    assert trace.mean(1000) >= 24.0


def test_the_summary_fields_follow_the_limits_path() -> None:
    loop = Loop(8, 8)
    loop.limiter.rate_limited(loop.limiter.generation, level=8)
    assert (loop.stats.limit_start, loop.stats.limit_low, loop.stats.limit) == (8, 4, 4)
    loop.run(50)
    assert (loop.stats.limit_start, loop.stats.limit_low, loop.stats.limit, loop.stats.max_limit) == (8, 4, 8, 8)


def test_waiters_are_woken_in_order_when_a_slot_frees_or_the_limit_grows() -> None:
    async def main() -> list[int]:
        limiter = AdaptiveLimiter(1, 2, RunStats())
        assert await limiter.acquire() == 0
        woken: list[int] = []

        async def wait(i: int) -> None:
            await limiter.acquire()
            woken.append(i)

        async with anyio.create_task_group() as group:
            for i in range(3):
                group.start_soon(wait, i)
            await anyio.wait_all_tasks_blocked()
            assert woken == [] and limiter.inflight == 1
            limiter.succeeded()  # below the ceiling: one more slot, taken by the first waiter
            await anyio.wait_all_tasks_blocked()
            assert woken == [0] and limiter.inflight == 2
            limiter.release()
            await anyio.wait_all_tasks_blocked()
            limiter.release()
            limiter.release()
        return woken

    assert anyio.run(main) == [0, 1, 2]


def test_a_slot_granted_before_a_cut_belongs_to_the_event_that_caused_it() -> None:
    """Its 429 must not count as a second event (a second halving) just because the waiter resumed after the cut."""

    async def main() -> tuple[int, int]:
        limiter = AdaptiveLimiter(4, 4, RunStats())
        first = await limiter.acquire()
        for _ in range(3):
            await limiter.acquire()
        generations: list[int] = []

        async def wait() -> None:
            generations.append(await limiter.acquire())

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            limiter.release()  # the slot goes to the waiter, which has not run yet
            limiter.rate_limited(first, level=4)  # and now the cut: 4 → 2
            await anyio.wait_all_tasks_blocked()
        assert limiter.generation == first + 1
        limiter.rate_limited(generations[0], level=4)
        return generations[0], limiter.limit

    generation, limit = anyio.run(main)
    assert generation == 0
    assert limit == 2  # halved once, not twice


def test_auto_settles_at_the_knee_where_calls_slow_down_not_at_the_wall() -> None:
    """A server slowing down as it fills (1 + (load/40)^4, the sandbox's capacity mode) and refusing above 40: the
    limit stops growing where calls run 30% slower than at the start, well below the wall, and stays there."""
    loop = Loop(16, 64)
    trace = loop.run(4000, capacity=40, duration=lambda serving: 1 + (serving / 40) ** 4)
    settled = trace.limits[1000:]
    assert max(settled) <= 36 and min(settled) >= 22
    assert trace.share_refused(1000) <= 0.005  # the wall is not hammered once the knee is known
    assert trace.share_refused() <= 0.02


def test_without_durations_auto_still_finds_the_wall_by_its_429s() -> None:
    loop = Loop(16, 64)
    trace = loop.run(4000, capacity=40)
    assert max(trace.limits[1000:]) <= 41 and trace.mean(1000) >= 20


def test_before_any_429_auto_doubles_its_start_then_grows_a_slot_a_window() -> None:
    """Issue 12's traces: growing a slot per success all the way to the ceiling took `auto` from 16 to 62 before the
    first 429 came back, and every call sent above the wall (40) was refused. Past twice its start it now grows
    a slot per window of successes, so it meets the wall one slot at a time."""
    loop = Loop(16, 64)
    loop.run(16)
    assert loop.limiter.limit == 32  # a slot per success while under twice the start
    loop.run(32 * 4)
    assert 33 <= loop.limiter.limit <= 36  # then one a window of `limit` successes
    trace = loop.run(4000, capacity=40)
    assert loop.stats.max_limit <= 42  # it reached the wall a slot at a time, never far past it
    assert trace.share_refused() <= 0.01


def test_no_probe_when_too_little_work_is_left_for_it_to_pay() -> None:
    """A probe the server refuses costs its rows a Retry-After at the run's end; near the end, none is made."""
    ending = Loop(16, 64)
    ending.stats.total, ending.stats.done = 1000, 1000 - 8 * 32 + 1  # fewer calls left than 16 windows of 32
    ending.limiter._known_good = 32
    ending.run(32 * 4)
    assert ending.limiter.limit == 32
    early = Loop(16, 64)
    early.stats.total, early.stats.done = 1000, 100
    early.limiter._known_good = 32
    early.run(32 * 4)
    assert early.limiter.limit > 32


@pytest.mark.parametrize(("calls_a_row", "probes"), [(1, False), (2, True)])
def test_the_endgame_counts_the_calls_a_row_takes(calls_a_row: int, probes: bool) -> None:
    """300 rows left: 600 calls for `create` (more than 16 windows of 32: a probe pays), 300 for `track` (fewer)."""
    loop = Loop(16, 64)
    loop.stats.total, loop.stats.done = 1000, 700
    loop.stats.calls_ok = 700 * calls_a_row
    loop.limiter._known_good = 32
    loop.run(32 * 4)
    assert (loop.limiter.limit > 32) is probes



def _probing(scattered_below: int) -> AdaptiveLimiter:
    """`auto` probing at 41 above a known-good 40, after 400 successes at loads up to 40 (with `scattered_below`
    429s among them) and 40 at loads 41–43 (with 3 429s there: 7%, too few for a wall by the count alone)."""
    limiter = AdaptiveLimiter(16, 64, RunStats())
    limiter._known_good, limiter._walled = 40, True
    limiter._set_limit(41)
    for level in range(1, 401):
        limiter._count(limiter._ok, 1 + level % 40)
    for i in range(scattered_below):
        limiter._count(limiter._refused, 1 + i % 40)
    for level in range(40):
        limiter._count(limiter._ok, 41 + level % 3)
    for _ in range(2):
        limiter._count(limiter._refused, 42)
    return limiter


def test_a_probe_ends_at_a_blurred_wall_whose_429s_look_scattered() -> None:
    """Issue 12's traces: against the sandbox's wall at 40, 429s at client loads 43–50 were taken for scattered ones
    (calls at those loads mostly succeeded: the client's count of calls in flight runs ahead of the server's) and
    `auto` climbed on, drawing 50–120 429s in a 1,000-row run. A probe above the known-good level now ends when the
    loads above it draw clearly more 429s than the loads below, whatever the kind of each."""
    walled = _probing(scattered_below=0)
    walled.rate_limited(walled.generation, level=42)
    assert walled.limit == 40 and walled._patience == 2  # back to what holds, and the next probe waits longer
    scattered = _probing(scattered_below=28)  # the same 7% below: a scattered rate, not a wall
    scattered.rate_limited(scattered.generation, level=42)
    assert scattered.limit == 41  # the probe goes on


def test_one_429_above_the_known_good_level_is_no_rate() -> None:
    """A single 429 in a probe's first calls (the counts above the known-good level start empty) does not end it."""
    limiter = AdaptiveLimiter(16, 64, RunStats())
    limiter._known_good, limiter._walled = 40, True
    limiter._set_limit(41)
    for level in range(1, 401):
        limiter._count(limiter._ok, 1 + level % 40)
    for _ in range(10):
        limiter._count(limiter._ok, 41)
    limiter.rate_limited(limiter.generation, level=41)
    assert limiter.limit == 41


def test_a_fixed_limit_climbs_back_after_a_cut_even_near_the_runs_end() -> None:
    """The endgame rule is for `auto`'s probes: `--concurrency 16` cut by a 429 near the end still climbs back."""
    loop = Loop(16, 16)
    loop.stats.total, loop.stats.done = 1000, 995
    loop.limiter.rate_limited(loop.limiter.generation, level=9)  # capacity 8 learnt; limit 8
    assert loop.limiter.limit == 8
    loop.run(2000)
    assert loop.limiter.limit == 16
