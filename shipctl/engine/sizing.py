"""Pool sizing from the design card, with the user's overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_CONCURRENCY = 16
DEFAULT_CHUNK_SIZE = 8
DEFAULT_MAX_CONCURRENCY = 64
MAX_DEFAULT_WORKERS = 40


@dataclass(frozen=True)
class Sizing:
    concurrency: int
    """The starting in-flight limit (and its ceiling unless `auto`)."""
    ceiling: int
    """Highest in-flight limit the engine may reach: `concurrency`, or `max_concurrency` under auto."""
    workers: int
    chunk_size: int
    auto: bool

    def describe(self) -> str:
        mode = f"auto up to {self.ceiling}" if self.auto else "fixed"
        return (
            f"in-flight limit {self.concurrency} ({mode}), {self.workers} worker threads, "
            f"chunks of {self.chunk_size}"
        )


def size_pools(
    *,
    concurrency: int | None = None,
    auto: bool = False,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    workers: int | None = None,
    chunk_size: int | None = None,
    cores: int | None = None,
) -> Sizing:
    start = concurrency or DEFAULT_CONCURRENCY
    ceiling = max(max_concurrency, start) if auto else start
    if workers is None:
        n = cores or os.cpu_count() or 1
        # A pool smaller than the in-flight ceiling would silently cap throughput below the limiter.
        workers = max(min(MAX_DEFAULT_WORKERS, 2 * n), ceiling)
    return Sizing(
        concurrency=start,
        ceiling=ceiling,
        workers=max(1, workers),
        chunk_size=max(1, chunk_size or DEFAULT_CHUNK_SIZE),
        auto=auto,
    )
