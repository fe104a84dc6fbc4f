"""The bulk engine: chunked dispatch into a sliding window of row tasks, every API call gated and retried.

* Items are pulled from the (lazy) source in chunks of `chunk_size`; a chunk is a unit of dispatch (one
  journal transaction, one validation batch), never a barrier: each row task takes the next item the moment
  it finishes its last, so one slow call never leaves other slots idle.
* Every blocking call runs in a worker thread under the shared `AdaptiveLimiter`; backoff sleeps happen
  outside the limiter, so a row waiting out a Retry-After does not hold a slot. The threads are the engine's own
  (`_Workers`): anyio's `to_thread.run_sync` costs ~50 µs of CPU per call against ~5 µs here, and every
  shipment makes at least two calls.
* Failures arrive already classified (`CallFailure`) by the `classify` function the carrier layer supplies,
  which runs in the worker thread (where the SDK's response hook left Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import queue
import random
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from shipctl.engine.failures import CallFailure, Stopped
from shipctl.engine.limiter import AdaptiveLimiter
from shipctl.engine.sizing import Sizing
from shipctl.engine.stats import RunStats

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

T = TypeVar("T")
R = TypeVar("R")

Classifier = Callable[[BaseException], CallFailure]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, never ignored."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))
        if retry_after is not None:
            return min(self.max_delay * 6, retry_after + backoff / 4)
        return backoff


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class Engine:
    def __init__(
        self,
        sizing: Sizing,
        stats: RunStats,
        classify: Classifier,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.sizing = sizing
        self.stats = stats
        self.retry = retry or RetryPolicy()
        self._classify = classify
        self.limiter = AdaptiveLimiter(sizing.concurrency, sizing.ceiling, stats)
        self._workers = _Workers(sizing.workers)
        weakref.finalize(self, self._workers.close)
        self._stopping = False
        self._on_stop: list[Callable[[], object]] = []
        self._stopped: anyio.Event | None = None  # made on the loop, when something first waits on it
        self._group: anyio.abc.TaskGroup | None = None  # the running `run`'s, for `later`

    def close(self) -> None:
        """End the worker threads (idle ones; a call still running finishes first). `call` starts new ones."""
        self._workers.close()

    # -- calls -------------------------------------------------------------------------------------------

    def _in_thread(self, fn: Callable[[], R]) -> R:
        try:
            return fn()
        except CallFailure:
            raise
        except Exception as exc:
            raise self._classify(exc) from None

    async def call(
        self, fn: Callable[..., R], *args: Any, retry_unknown: bool = True, unless_stopping: bool = False,
        before_send: Callable[[], None] | None = None, on_rate_limited: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> R:
        """Run `fn(*args, **kwargs)` in a worker thread under the in-flight limit, retrying transient failures.

        With `retry_unknown=False`, a failure whose outcome is unknown (the server may have acted) is raised at
        once so the caller can reconcile; 429s are always retried (the request was refused, not processed).
        Raises `CallFailure` when the failure is permanent or the attempt budget is spent. With
        `unless_stopping`, raises `Stopped` instead of sending once the run has been told to stop (checked after
        waiting for a slot, which may take long): a buy is not started after Ctrl-C. `before_send` runs right
        before each attempt goes out (on the loop, holding the slot); what it raises is raised, nothing sent.
        `on_rate_limited` runs for each attempt answered 429: refused, so the server did nothing with it.
        """
        bound = functools.partial(fn, *args, **kwargs)
        attempt = 0
        while True:
            attempt += 1
            generation = await self.limiter.acquire()
            if unless_stopping and self._stopping:
                self.limiter.release()
                raise Stopped
            if before_send is not None:
                try:
                    before_send()
                except BaseException:
                    self.limiter.release()
                    raise
            level = self.limiter.inflight
            sent = time.monotonic()
            try:
                result = await self._workers.run(self._in_thread, bound)
            except CallFailure as failure:
                self.limiter.release()
                if failure.rate_limited:
                    self.limiter.rate_limited(generation, level)
                    if on_rate_limited is not None:
                        on_rate_limited()
                if not failure.transient or attempt >= self.retry.max_attempts:
                    raise
                if failure.outcome_unknown and not failure.rate_limited and not retry_unknown:
                    raise
                self.stats.retries += 1
                await anyio.sleep(self.retry.delay(attempt, failure.retry_after))
                continue
            except BaseException:
                self.limiter.release()
                raise
            self.limiter.release()
            self.limiter.succeeded(level, fn, time.monotonic() - sent)
            self.stats.calls_ok += 1
            return result

    # -- dispatch ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop dispatching new items; rows already started run to completion."""
        self._stopping = True
        for wake in self._on_stop:
            wake()

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds`, ended early when the run is told to stop; whether the run is still going."""
        if seconds > 0 and not self._stopping:
            if self._stopped is None:
                self._stopped = anyio.Event()
                self.on_stop(self._stopped.set)
            with anyio.move_on_after(seconds):
                await self._stopped.wait()
        return not self._stopping

    def later(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` after `seconds` (at once when the run is told to stop: `job` checks `stopping` itself) in the
        running `run`, which ends only after it. A row that must wait gives its row task back meanwhile: 32 row
        tasks each asleep for seconds would leave the limiter idle."""
        if self._group is None:
            raise RuntimeError("Engine.later outside Engine.run")
        self._group.start_soon(self._after, seconds, job)

    async def _after(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        await self.pause(seconds)
        await job()

    def on_stop(self, wake: Callable[[], object]) -> None:
        """Call `wake` when the run is told to stop (on the loop): a row waiting on something of its own can end."""
        self._on_stop.append(wake)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(
        self,
        items: Iterable[T],
        handle: Callable[[T], Awaitable[None]],
        *,
        before_chunk: Callable[[list[T]], None] | None = None,
    ) -> None:
        """Call `handle` on every item with a sliding window of row tasks; `handle` must not raise for a row."""
        # Twice the ceiling of row tasks: rows sleeping through a backoff must not starve the limiter.
        tasks = max(self.sizing.chunk_size, 2 * self.sizing.ceiling)
        # One plain generator shared by the row tasks: a task takes the next item the moment it is free (the
        # generator runs only between awaits, so never twice at once), and a chunk is read and planned only
        # when its first item is taken.
        source = self._dispatch(items, before_chunk)
        outer = self._group
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for _ in range(tasks):
                    group.start_soon(self._row_task, source, handle)
        finally:
            self._group = outer

    def _dispatch(self, items: Iterable[T], before_chunk: Callable[[list[T]], None] | None) -> Iterator[T]:
        for chunk in chunked(items, self.sizing.chunk_size):
            if self._stopping:
                return
            if before_chunk is not None:
                before_chunk(chunk)
            yield from chunk

    async def _row_task(self, source: Iterator[T], handle: Callable[[T], Awaitable[None]]) -> None:
        for item in source:
            if self._stopping:
                return  # what was taken is not started
            await handle(item)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[Any], Any], Any]


class _Workers:
    """Worker threads fed from one queue; each result goes back to its loop through `call_soon_threadsafe`.

    Threads start on demand, up to `size` (a 1-row run starts one); calls beyond that wait in the queue, as they
    would for anyio's capacity limiter. The wait for a result is shielded from cancellation, as anyio's
    `to_thread.run_sync` is: a call sent is always waited for (a buy under way is journaled), and a cancelled
    task sends nothing new (the checkpoint before the call)."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._started = 0
        self._busy = 0

    async def run(self, fn: Callable[[T], R], arg: T) -> R:
        await anyio.lowlevel.checkpoint_if_cancelled()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._busy += 1
        try:
            if self._busy > self._started and self._started < self._size:
                self._started += 1
                threading.Thread(target=_work, args=(self._queue,), name=f"shipctl-worker-{self._started}",
                                 daemon=True).start()
            self._queue.put((loop, future, fn, arg))
            with anyio.CancelScope(shield=True):
                result = await future
            return result
        finally:
            self._busy -= 1

    def close(self) -> None:
        for _ in range(self._started):
            self._queue.put(None)
        self._started = 0


def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        loop, future, fn, arg = job
        try:
            outcome: tuple[bool, Any] = (True, fn(arg))
        except BaseException as exc:  # handed to the awaiting task, which raises it
            outcome = (False, exc)
        # RuntimeError: the loop is closed, the run left without waiting (a second Ctrl-C).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, *outcome)
        del job, loop, future, fn, arg, outcome


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# Below this many rows asyncio's own loop runs the job: importing uvloop costs more CPU (~15-30 ms) than its
# cheaper loop iterations save (~20 µs per call).
UVLOOP_FROM_ROWS = 200


def run_async(main: Callable[[], Awaitable[R]], *, uvloop: bool = True) -> R:
    """Run under anyio on asyncio, with uvloop as the loop where it is installed (and `uvloop` is asked for).

    Task groups wrap what they raise in exception groups; a group holding a single error is unwrapped so the
    CLI's edge sees the `ShipctlError` (or bug) itself and reports it as one line with the right exit code.
    """
    import signal

    # A signal receiver set up inside the run (Ctrl-C, SIGTERM) leaves SIG_DFL behind when it closes, not what was
    # there before: the process's own handling is put back, so a signal after the run is handled as before it.
    handlers = ({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
                if threading.current_thread() is threading.main_thread() else {})
    try:
        return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": uvloop and uvloop_available()})
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
