"""Duplicate-reference detection in bounded memory.

A manifest may hold millions of rows, and a set of every reference seen would grow with it. Instead:

* a fixed 2 MiB Bloom filter answers "certainly new" for almost every reference in a few bit tests;
* references are kept exactly (with the line they were first seen on) in a temporary SQLite table that
  SQLite spills to a private temp file beyond a small page cache; new ones are written in batches;
* only when the filter says "maybe seen" (a real duplicate, or a false positive at well under 1% up to
  a few million rows) is the table asked.

Memory is the filter, the cache and one batch, whatever the manifest's size; the answer is always exact.
"""

from __future__ import annotations

import sqlite3

_BITS = 1 << 24  # 2 MiB
_MASK = _BITS - 1
_BATCH = 4096


class ReferenceSet:
    def __init__(self) -> None:
        self._bloom = bytearray(_BITS >> 3)
        self._pending: list[tuple[str, int]] = []
        self._db: sqlite3.Connection | None = None

    def add(self, reference: str, line: int) -> int | None:
        """Record `reference` first seen on `line`; when it was already there, return that first line."""
        h = hash(reference)
        bloom = self._bloom
        i1, i2, i3 = h & _MASK, (h >> 24) & _MASK, ((h >> 48) ^ (h << 8)) & _MASK
        if (bloom[i1 >> 3] >> (i1 & 7)) & (bloom[i2 >> 3] >> (i2 & 7)) & (bloom[i3 >> 3] >> (i3 & 7)) & 1:
            first = self._lookup(reference)
            if first is not None:
                return first
        bloom[i1 >> 3] |= 1 << (i1 & 7)
        bloom[i2 >> 3] |= 1 << (i2 & 7)
        bloom[i3 >> 3] |= 1 << (i3 & 7)
        self._pending.append((reference, line))
        if len(self._pending) >= _BATCH:
            self._flush()
        return None

    def _lookup(self, reference: str) -> int | None:
        for ref, line in self._pending:
            if ref == reference:
                return line
        if self._db is None:
            return None
        row = self._db.execute("SELECT line FROM seen WHERE ref = ?", (reference,)).fetchone()
        return None if row is None else int(row[0])

    def _flush(self) -> None:
        if self._db is None:
            # "" is a private temporary database: pages beyond the cache go to a temp file, deleted on close.
            self._db = sqlite3.connect("")
            self._db.execute("PRAGMA cache_size = -2048")  # KiB
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("CREATE TABLE seen (ref TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        self._pending.sort()
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", self._pending)
        self._pending.clear()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
