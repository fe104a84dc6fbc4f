"""The bulk engine: chunked dispatch into a sliding window of row tasks, every API call gated and retried.

* Items are pulled from the (lazy) source in chunks of `chunk_size`; a chunk is a unit of dispatch (one
  journal transaction, one validation batch), never a barrier: each row task takes the next item the moment
  it finishes its last, so one slow call never leaves other slots idle.
* Every blocking call runs in a worker thread under the shared `AdaptiveLimiter`; backoff sleeps happen
  outside the limiter, so a row waiting out a Retry-After does not hold a slot.
* Failures arrive already classified (`CallFailure`) by the `classify` function the carrier layer supplies,
  which runs in the worker thread (where the SDK's response hook left Retry-After).
"""

from __future__ import annotations

import functools
import itertools
import random
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

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
        self._threads = anyio.CapacityLimiter(sizing.workers)
        self._stopping = False

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
        before_send: Callable[[], None] | None = None, **kwargs: Any,
    ) -> R:
        """Run `fn(*args, **kwargs)` in a worker thread under the in-flight limit, retrying transient failures.

        With `retry_unknown=False`, a failure whose outcome is unknown (the server may have acted) is raised at
        once so the caller can reconcile; 429s are always retried (the request was refused, not processed).
        Raises `CallFailure` when the failure is permanent or the attempt budget is spent. With
        `unless_stopping`, raises `Stopped` instead of sending once the run has been told to stop (checked after
        waiting for a slot, which may take long): a buy is not started after Ctrl-C. `before_send` runs right
        before each attempt goes out (on the loop, holding the slot); what it raises is raised, nothing sent.
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
            try:
                result = await anyio.to_thread.run_sync(self._in_thread, bound, limiter=self._threads)
            except CallFailure as failure:
                self.limiter.release()
                if failure.rate_limited:
                    self.limiter.rate_limited(generation, level)
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
            self.limiter.succeeded(level)
            self.stats.calls_ok += 1
            return result

    # -- dispatch ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop dispatching new items; rows already started run to completion."""
        self._stopping = True

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
        send, receive = anyio.create_memory_object_stream[T](max_buffer_size=self.sizing.chunk_size)
        async with anyio.create_task_group() as group:
            for _ in range(tasks):
                group.start_soon(self._row_task, receive.clone(), handle)
            receive.close()
            async with send:
                for chunk in chunked(items, self.sizing.chunk_size):
                    if self._stopping:
                        break
                    if before_chunk is not None:
                        before_chunk(chunk)
                    for item in chunk:
                        await send.send(item)

    async def _row_task(self, receive: MemoryObjectReceiveStream[T], handle: Callable[[T], Awaitable[None]]) -> None:
        async with receive:
            async for item in receive:
                if self._stopping:
                    continue  # drain what was queued without starting it
                await handle(item)


def run_async(main: Callable[[], Awaitable[R]]) -> R:
    """Run under anyio on asyncio, with uvloop as the loop where it is installed.

    Task groups wrap what they raise in exception groups; a group holding a single error is unwrapped so the
    CLI's edge sees the `ShipctlError` (or bug) itself and reports it as one line with the right exit code.
    """
    try:
        return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": uvloop_available()})
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


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
