"""What every job runs on: the API target, one shared SDK client, the engine and its stats; and `InOrder`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shipctl import startup
from shipctl.carrier.client import make_client, session_of
from shipctl.carrier.errors import classify
from shipctl.engine.runner import UVLOOP_FROM_ROWS, Engine, run_async
from shipctl.engine.sizing import Sizing
from shipctl.engine.stats import RunStats
from shipctl.target import Target, api_target

T = TypeVar("T")


@dataclass
class Session:
    target: Target
    client: Any
    engine: Engine

    @property
    def stats(self) -> RunStats:
        return self.engine.stats

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run `main` on the event loop (uvloop where installed, unless the run is known to be short) and stamp
        the end of the run."""
        total = self.stats.total
        try:
            return run_async(main, uvloop=total is None or total >= UVLOOP_FROM_ROWS)
        finally:
            self.stats.finished_at = time.monotonic()


@contextlib.contextmanager
def open_session(
    sizing: Sizing, *, total: int | None = None, force_sandbox: bool = False,
    announce: Callable[[str], None] = lambda _m: None,
) -> Iterator[Session]:
    """The target (the built-in sandbox started when there is no key), a client sized to the engine, the engine."""
    startup.work_begins()
    with api_target(force_sandbox=force_sandbox, announce=announce) as target:
        client = make_client(target.api_key, target.api_base, pool_size=sizing.ceiling + 4)
        engine = Engine(sizing, RunStats(total=total), classify)
        try:
            yield Session(target, client, engine)
        finally:
            engine.close()
            session_of(client).close()


class InOrder(Generic[T]):
    """Emit results in input order while they complete out of order: item i goes out once 0..i-1 have.

    Output still streams (NDJSON shows each row as soon as everything before it is done) and is the same on
    every run, whatever the completion order of concurrent calls.
    """

    def __init__(self, emit: Callable[[T], None], start: int = 0) -> None:
        self._emit = emit
        self._next = start
        self._waiting: dict[int, T] = {}

    def put(self, index: int, item: T) -> None:
        self._waiting[index] = item
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1
