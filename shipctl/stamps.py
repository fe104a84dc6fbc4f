"""The time a row of shipctl's SQLite files records: now, in UTC, to the millisecond.

`utc_millis()` writes exactly what `datetime.now(timezone.utc).isoformat(timespec="milliseconds")` writes
(`2026-12-03T04:05:06.789+00:00`: the system clock, floored to the millisecond) for a fifth of its CPU: the journal
and the claims stamp every write with it, six times a row.
"""

from __future__ import annotations

import time

# (second, its text up to the seconds): formatted once a second, not once a write. One tuple, replaced whole, so a
# thread reading it never sees one second's number with another's text.
_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{milli:03d}+00:00" for milli in range(1000))


def utc_millis() -> str:
    global _second
    millis = time.time_ns() // 1_000_000
    second, milli = divmod(millis, 1000)
    cached = _second
    if cached[0] != second:
        t = time.gmtime(second)
        cached = _second = (
            second,
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}",
        )
    return cached[1] + _MILLIS[milli]
