"""The engine on its own: the AIMD limiter, the sliding window, retries. No SDK here (see test_create_*)."""

from __future__ import annotations

import threading

import anyio
import pytest

from shipctl.engine.failures import CallFailure
from shipctl.engine.limiter import AdaptiveLimiter
from shipctl.engine.runner import Engine, RetryPolicy, chunked
from shipctl.engine.sizing import size_pools
from shipctl.engine.stats import RunStats


def _unclassified(exc: BaseException) -> CallFailure:
    return CallFailure(code="BUG", message=str(exc))


def test_pool_sizing_follows_the_design_card() -> None:
    assert size_pools(cores=2).workers == 16  # 2×2 = 4, raised to the in-flight cap
    assert size_pools(cores=64).workers == 40
    assert size_pools(cores=12).workers == 24
    s = size_pools(cores=2)
    assert (s.concurrency, s.ceiling, s.chunk_size) == (16, 16, 8)
    auto = size_pools(auto=True, max_concurrency=64, cores=2)
    assert (auto.concurrency, auto.ceiling, auto.workers) == (16, 64, 64)
    assert size_pools(concurrency=4, workers=2, chunk_size=3, cores=2).workers == 2


def test_chunked_yields_fixed_size_chunks_lazily() -> None:
    consumed: list[int] = []

    def source():  # type: ignore[no-untyped-def]
        for i in range(20):
            consumed.append(i)
            yield i

    chunks = chunked(source(), 8)
    assert next(chunks) == list(range(8))
    assert len(consumed) == 8  # nothing read ahead of the chunk being dispatched
    assert [len(c) for c in chunks] == [8, 4]


def test_limiter_halves_once_per_congestion_event_and_recovers() -> None:
    stats = RunStats()
    limiter = AdaptiveLimiter(16, 16, stats)
    gen = limiter.generation
    for _ in range(5):  # a burst of 429s answering calls sent at full load, in the same generation
        limiter.rate_limited(gen, level=16)
    assert limiter.limit == 8
    assert stats.rate_limited == 5
    for _ in range(7):  # fast recovery below the level that was refused: one slot per success
        limiter.succeeded()
    assert limiter.limit == 15
    for _ in range(15):  # then additive: one slot per window of `limit` successes
        limiter.succeeded()
    assert limiter.limit == 16
    for _ in range(100):
        limiter.succeeded()
    assert limiter.limit == 16  # never above the ceiling


def test_auto_probes_up_to_the_ceiling_until_a_429() -> None:
    stats = RunStats()
    limiter = AdaptiveLimiter(16, 64, stats)
    for _ in range(30):
        limiter.succeeded()
    assert limiter.limit == 32  # twice its start, a slot per success
    assert stats.max_limit == 32
    for _ in range(3000):
        limiter.succeeded()
    assert limiter.limit == stats.max_limit == 64  # then a slot a window, up to the ceiling


def test_capacity_is_learnt_from_the_load_a_refused_call_was_sent_at_not_the_overshoot() -> None:
    stats = RunStats()
    limiter = AdaptiveLimiter(16, 64, stats)
    for _ in range(3000):
        limiter.succeeded()
    assert limiter.limit == 64  # the probe overshot a server that takes 40 before the first 429 came back
    gen = limiter.generation
    limiter.rate_limited(gen, level=45)
    limiter.rate_limited(gen, level=41)  # the same event: the lowest refused load is the best estimate
    limiter.rate_limited(gen, level=60)
    assert limiter.limit == 32  # halved once
    for _ in range(8):
        limiter.succeeded()
    assert limiter.limit == 40  # fast back to the server's capacity, not to the overshoot
    for _ in range(200):
        limiter.succeeded()
    assert limiter.limit > 40  # then probes again, slowly


def test_a_probe_refused_at_the_same_wall_waits_longer_next_time() -> None:
    stats = RunStats()
    limiter = AdaptiveLimiter(16, 64, stats)
    limiter.rate_limited(limiter.generation, level=41)  # capacity 40 learnt; limit 8
    for _ in range(32):
        limiter.succeeded()
    assert limiter.limit == 40

    def successes_to_probe() -> int:
        count = 0
        while limiter.limit == 40:
            limiter.succeeded()
            count += 1
        return count

    first = successes_to_probe()
    limiter.rate_limited(limiter.generation, level=41)  # refused at the same wall again
    for _ in range(20):
        limiter.succeeded()
    assert limiter.limit == 40
    second = successes_to_probe()
    assert first == 40 and second == 80


async def _exercise_limit(limit: int, calls: int) -> int:
    stats = RunStats()
    engine = Engine(size_pools(concurrency=limit, cores=2), stats, _unclassified)
    peak = 0
    lock = threading.Lock()
    current = 0
    gate = threading.Barrier(limit, timeout=10)

    def work() -> None:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)
        gate.wait()  # all `limit` calls must be in flight at once for any of them to finish
        with lock:
            current -= 1

    async def handle(_i: int) -> None:
        await engine.call(work)

    await engine.run(range(calls), handle)
    assert stats.inflight == 0
    return peak


def test_engine_runs_exactly_the_in_flight_limit_concurrently() -> None:
    # The barrier only opens when `limit` calls are in flight together: a chunk barrier or a smaller pool
    # would deadlock (and time out) instead of passing.
    assert anyio.run(_exercise_limit, 16, 64) == 16
    assert anyio.run(_exercise_limit, 5, 20) == 5


def test_sliding_window_is_not_a_chunk_barrier() -> None:
    """One slow row must not hold back the rows of the next chunks."""

    async def main() -> list[int]:
        engine = Engine(size_pools(concurrency=4, chunk_size=2, cores=2), RunStats(), _unclassified)
        release_slow = threading.Event()
        finished: list[int] = []

        def work(i: int) -> None:
            if i == 0:
                assert release_slow.wait(10), "row 0 was never released"

        async def handle(i: int) -> None:
            await engine.call(work, i)
            finished.append(i)
            if len(finished) == 9:  # every other row finished while row 0 still held its slot
                release_slow.set()

        await engine.run(range(10), handle)
        return finished

    finished = anyio.run(main)
    assert finished[-1] == 0
    assert sorted(finished) == list(range(10))


def test_transient_failures_are_retried_and_permanent_ones_are_not() -> None:
    async def main() -> tuple[list[str], RunStats]:
        stats = RunStats()
        engine = Engine(
            size_pools(concurrency=2, cores=2), stats, _unclassified, RetryPolicy(base_delay=0.001, max_delay=0.01)
        )
        attempts: list[str] = []

        def flaky() -> str:
            attempts.append("flaky")
            if len(attempts) < 3:
                raise CallFailure("HTTP_503", "busy", transient=True, outcome_unknown=True)
            return "ok"

        def refused() -> str:
            attempts.append("refused")
            raise CallFailure("ADDRESS.VERIFY.FAILURE", "bad address")

        assert await engine.call(flaky) == "ok"
        with pytest.raises(CallFailure) as info:
            await engine.call(refused)
        assert info.value.code == "ADDRESS.VERIFY.FAILURE"
        return attempts, stats

    attempts, stats = anyio.run(main)
    assert attempts == ["flaky", "flaky", "flaky", "refused"]
    assert stats.retries == 2


def test_unknown_outcome_is_returned_to_the_caller_when_asked() -> None:
    async def main() -> int:
        engine = Engine(
            size_pools(concurrency=2, cores=2), RunStats(), _unclassified, RetryPolicy(base_delay=0.001)
        )
        calls = 0

        def buy() -> None:
            nonlocal calls
            calls += 1
            raise CallFailure("CONNECTION", "dropped", transient=True, outcome_unknown=True)

        with pytest.raises(CallFailure):
            await engine.call(buy, retry_unknown=False)
        return calls

    assert anyio.run(main) == 1  # never blindly repeated: the caller must reconcile first


def test_rate_limited_calls_are_retried_even_when_money_is_involved() -> None:
    async def main() -> tuple[int, RunStats]:
        stats = RunStats()
        engine = Engine(size_pools(concurrency=8, cores=2), stats, _unclassified, RetryPolicy(base_delay=0.001))
        calls = 0

        def buy() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise CallFailure("RATE_LIMITED", "slow down", transient=True, rate_limited=True, retry_after=0.0)
            return "bought"

        assert await engine.call(buy, retry_unknown=False) == "bought"
        return calls, stats

    calls, stats = anyio.run(main)
    assert calls == 2
    assert stats.rate_limited == 1
    # Halved from 8 to 4. The refused call was alone in flight, so nothing above 4 is known good: recovery
    # from here is additive and one success is not enough to grow.
    assert stats.limit == 4


def test_stop_lets_started_rows_finish_and_starts_no_more() -> None:
    async def main() -> list[int]:
        engine = Engine(size_pools(concurrency=2, chunk_size=2, cores=2), RunStats(), _unclassified)
        done: list[int] = []

        async def handle(i: int) -> None:
            await engine.call(lambda: None)
            done.append(i)
            if i == 3:
                engine.stop()

        await engine.run(range(1000), handle)
        return done

    done = anyio.run(main)
    assert 3 in done
    assert len(done) < 100


def test_a_call_under_way_is_waited_for_when_its_task_is_cancelled_and_none_is_sent_after() -> None:
    """The engine's worker threads keep anyio's `to_thread` contract: a cancelled row still waits for (and gets)
    the answer of the call it sent — a buy under way is journaled — and sends nothing once cancelled."""

    async def main() -> tuple[list[str], list[str]]:
        engine = Engine(size_pools(concurrency=2, cores=2), RunStats(), _unclassified)
        started = threading.Event()
        release = threading.Event()
        sent: list[str] = []
        seen: list[str] = []

        def buy() -> str:
            sent.append("buy")
            started.set()
            assert release.wait(10), "the buy was never released"
            return "bought"

        async def row(scope: anyio.CancelScope) -> None:
            with scope:
                seen.append(await engine.call(buy))
                seen.append("after the buy")  # not reached: the cancellation lands at the next checkpoint
                await engine.call(lambda: sent.append("second call"))

        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()
            group.start_soon(row, scope)
            await anyio.to_thread.run_sync(started.wait, 10)
            scope.cancel()
            await anyio.sleep(0.05)
            assert seen == []  # still waiting for the buy's answer, not abandoned
            release.set()
        engine.close()
        return sent, seen

    sent, seen = anyio.run(main)
    assert sent == ["buy"]
    assert seen == ["bought", "after the buy"] or seen == ["bought"]


def test_worker_threads_start_on_demand_and_end_with_close() -> None:
    # Threads are compared by identity, not counted: another test's engine may still be ending its own workers.
    def workers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("shipctl-worker-")}

    before = workers()

    async def main() -> tuple[set[threading.Thread], str]:
        engine = Engine(size_pools(concurrency=16, cores=2), RunStats(), _unclassified)
        name = ""
        for _ in range(5):  # one call at a time: one thread serves them all
            name = await engine.call(lambda: threading.current_thread().name)
        started = workers() - before
        engine.close()
        return started, name

    started, name = anyio.run(main)
    assert len(started) == 1
    assert name.startswith("shipctl-worker-")
    for thread in started:
        thread.join(5)
    assert not any(thread.is_alive() for thread in started)
