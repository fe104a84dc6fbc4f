"""Duplicate-reference detection in bounded memory.

A manifest may hold millions of rows, and a set of every reference seen would grow with it. Instead:

* the last `_BATCH` new references are kept exactly in a dict (reference → first line): a manifest of up to that
  many rows (65,536) needs nothing else (about 0.3 µs a reference);
* older ones go, sorted, in batches to a temporary SQLite table that SQLite spills to a private temp file beyond
  a small page cache, many rows to a statement (about 0.5 µs a reference, and 0.4 µs for the filter below);
* once there is a table, a fixed 16 MiB filter (one byte per slot, two slots per reference) answers "certainly
  new" for almost every reference with two index tests; only when it says "maybe seen" (a real duplicate, or a
  false positive: about 0.5% at a million references) are the dict and the table asked.

Memory is at most the filter, the dict (about 9 MB) and SQLite's cache, whatever the manifest's size: about 25 MB
more than a run that needs no table. The answer is always exact. (A plain dict of every reference costs about
0.3 µs a reference but 120 MB per million.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

_SLOTS = 1 << 24  # 16 MiB
_MASK = _SLOTS - 1
_ROWS_PER_INSERT = 499  # 998 parameters: under the 999 that SQLite before 3.32 allows a statement
_BATCH = 1 << 16  # references held exactly (about 9 MB) before a batch goes to SQLite


class ReferenceSet:
    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._filter: bytearray | None = None  # made with the table: a short manifest never pays for either
        self._db: sqlite3.Connection | None = None

    def add(self, reference: str, line: int) -> int | None:
        """Record `reference` first seen on `line`; when it was already there, return that first line."""
        pending = self._pending
        seen = self._filter
        if seen is None:
            first = pending.get(reference)
            if first is not None:
                return first
        else:
            h = hash(reference)
            a, b = h & _MASK, (h >> 24) & _MASK
            if seen[a] and seen[b]:
                first = self._lookup(reference)
                if first is not None:
                    return first
            else:
                seen[a] = seen[b] = 1
        pending[reference] = line
        if len(pending) >= _BATCH:
            self._flush()
        return None

    def _lookup(self, reference: str) -> int | None:
        first = self._pending.get(reference)
        if first is not None or self._db is None:
            return first
        row = self._db.execute("SELECT line FROM seen WHERE ref = ?", (reference,)).fetchone()
        return None if row is None else int(row[0])

    def _flush(self) -> None:
        if self._db is None:
            import sqlite3  # only a manifest longer than one batch needs the table

            # "" is a private temporary database: pages beyond the cache go to a temp file, deleted on close.
            self._db = sqlite3.connect("")
            self._db.execute("PRAGMA cache_size = -2048")  # KiB
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("CREATE TABLE seen (ref TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
            self._filter = _filter_of(self._pending)
        refs = sorted(self._pending)  # in key order: SQLite appends to its B-tree instead of seeking
        params: list[str | int] = [""] * (2 * len(refs))
        params[0::2] = refs
        params[1::2] = map(self._pending.__getitem__, refs)
        self._pending.clear()
        # Many rows per statement: one row per `execute` costs twice as much, in binding and stepping.
        step = 2 * _ROWS_PER_INSERT
        whole = len(params) - len(params) % step
        insert_many = "INSERT INTO seen VALUES " + ",".join(["(?, ?)"] * _ROWS_PER_INSERT)
        with self._db:
            self._db.executemany(insert_many, [params[i : i + step] for i in range(0, whole, step)])
            rest = zip(params[whole::2], params[whole + 1 :: 2], strict=True)
            self._db.executemany("INSERT INTO seen VALUES (?, ?)", rest)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._filter = None


def _filter_of(references: dict[str, int]) -> bytearray:
    """The filter with both slots of each of `references` set (those added before there was a filter)."""
    seen = bytearray(_SLOTS)
    for reference in references:
        h = hash(reference)
        seen[h & _MASK] = seen[(h >> 24) & _MASK] = 1
    return seen
