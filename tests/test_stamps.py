"""`stamps.utc_millis`: the journal's and the claims' row times, written as `datetime` writes them."""

from __future__ import annotations

import datetime as dt

import pytest

from shipctl import stamps


def _as_datetime_writes(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns // 10**9, tz=dt.timezone.utc).replace(microsecond=ns // 1000 % 10**6)
    return moment.isoformat(timespec="milliseconds")


@pytest.mark.parametrize("ns", [
    1_796_000_000_000_000_000,  # a whole second
    1_796_000_000_999_999_999,  # its last nanosecond: floored, never rounded up into the next second
    1_796_000_001_000_000_000,  # the next second: its text is made anew
    1_796_000_001_012_345_678,
    1_798_761_599_999_000_000,  # the last millisecond of 2026
    1_798_761_600_000_000_000,  # the first of 2027
])
def test_the_text_is_what_datetime_writes(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    monkeypatch.setattr(stamps.time, "time_ns", lambda: ns)
    assert stamps.utc_millis() == _as_datetime_writes(ns)


def test_it_reads_the_system_clock_as_datetime_now_does() -> None:
    for _ in range(1000):
        before = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        ours = stamps.utc_millis()
        after = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        assert before <= ours <= after
