"""The progress display: live frames on a terminal, plain lines for cron, nothing when off.

Synchronisation is always "poll the buffer until the text appears, with a deadline" — never a bare sleep.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from collections.abc import Callable

import pytest
from rich.console import Console

from shipctl.cli.live_view import LiveView
from shipctl.cli.progress import (
    LIVE_REFRESH_PER_SECOND,
    RollingRate,
    eta_seconds,
    format_duration,
    open_progress,
    plain_line,
    resolve_mode,
)
from shipctl.engine.stats import RunStats

WIDTH = 120
DEADLINE = 10.0
PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+/1000 done, \d+ failed, \d+\.\d/s, ETA (\d+:\d\d:\d\d|unknown)"
    r"(, \d+ retries)?(, \d+ rate-limited \(limit \d+/\d+\))?$"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=True, width=WIDTH, color_system="standard", legacy_windows=False)


def cron(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=False, width=WIDTH)


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    done = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        done.wait(0.01)  # a bounded poll of the buffer, not a synchronising sleep


def text_of(buffer: io.StringIO) -> str:
    return ANSI.sub("", buffer.getvalue())


def progress_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "shipctl-progress"]


# --- one frame, deterministic ---------------------------------------------------------------------------


def test_frame_shows_bar_throughput_inflight_health_and_cpu() -> None:
    now = [100.0]
    stats = RunStats(total=1000, started_at=time.monotonic() - 12.0)
    stats.done, stats.failed, stats.retries, stats.rate_limited = 340, 2, 3, 1
    stats.inflight, stats.limit, stats.max_limit = 7, 8, 16
    view = LiveView(stats, clock=lambda: now[0], cpu=lambda: (87.5, [61.0, 40.0]))
    view()  # the first sample of the rolling window
    now[0] += 5.0
    stats.done = 480  # 140 rows in 5 s
    buffer = io.StringIO()
    terminal(buffer).print(view())
    out = text_of(buffer)

    assert "━" in out  # bars are drawn
    assert "480/1000" in out
    assert " 48%" in out
    assert "0:00:12" in out  # elapsed
    assert "ETA 0:00:19" in out  # 520 left at 28/s
    assert "28.0 shipments/s now" in out  # rolling over the last 5 s
    assert re.search(r"\d+\.\d/s overall", out)
    assert "7 / limit 8 (max 16)" in out
    assert "throttled by 429" in out  # the AIMD halving is visible
    assert "retries 3" in out and "429s 1" in out and "failed 2" in out
    assert "87.5%" in out and "2 cores" in out  # this process
    assert re.search(r"cpu0 .*━.* 61%", out) and re.search(r"cpu1 .*━.* 40%", out)  # one bar per core


def test_frame_without_a_total_is_indeterminate() -> None:
    stats = RunStats(total=None)
    stats.done = 25
    buffer = io.StringIO()
    terminal(buffer).print(LiveView(stats, cpu=lambda: (0.0, [0.0] * 8))())
    out = text_of(buffer)
    assert "25 done" in out
    assert "ETA" in out and "-:--:--" in out
    assert all(f"cpu{i}" in out for i in range(8))
    assert "throttled" not in out


def test_finished_frame_has_no_eta() -> None:
    stats = RunStats(total=10, started_at=0.0, finished_at=2.0)
    stats.done = stats.succeeded = 10
    buffer = io.StringIO()
    terminal(buffer).print(LiveView(stats, cpu=lambda: (0.0, [0.0]))())
    out = text_of(buffer)
    assert "10/10 100%" in out
    assert "ETA" not in out
    assert "5.0 shipments/s overall" in out


def test_rolling_rate_forgets_beyond_the_window() -> None:
    rate = RollingRate(window=5.0)
    assert rate.sample(0.0, 0) is None
    assert rate.sample(1.0, 100) == pytest.approx(100.0)
    for t in range(2, 11):
        rate.sample(float(t), 100)  # a stall
    assert rate.sample(11.0, 100) == pytest.approx(0.0)  # the burst has left the window


def test_eta_and_duration() -> None:
    stats = RunStats(total=100)
    stats.done = 40
    assert eta_seconds(stats, 6.0) == pytest.approx(10.0)
    assert eta_seconds(stats, 0.0) is None
    assert eta_seconds(RunStats(total=None), 5.0) is None
    stats.done = 100
    assert eta_seconds(stats, 0.0) == 0.0
    assert format_duration(23.4) == "0:00:23"
    assert format_duration(3723) == "1:02:03"


def test_plain_line_format() -> None:
    stats = RunStats(total=1000)
    stats.done, stats.failed = 340, 2
    line = plain_line(stats, 28.1)
    assert PLAIN_LINE.match(line), line
    assert line.endswith(" 340/1000 done, 2 failed, 28.1/s, ETA 0:00:23")
    stats.retries, stats.rate_limited, stats.limit = 4, 1, 8
    assert plain_line(stats, 28.1).endswith("ETA 0:00:23, 4 retries, 1 rate-limited (limit 8/16)")
    unknown = RunStats(total=None)
    unknown.done = 7
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 7 done, 0 failed, 0\.0/s$", plain_line(unknown, 0.0))


# --- the context manager --------------------------------------------------------------------------------


def test_live_display_draws_and_follows_the_counters() -> None:
    buffer = io.StringIO()
    stats = RunStats(total=1000)
    stdout_before = sys.stdout
    with open_progress(stats, mode="live", console=terminal(buffer)):
        assert sys.stdout is stdout_before  # stdout (data) is never captured by the display
        stats.done = stats.succeeded = 340
        stats.inflight = 16
        wait_for(lambda: "340/1000" in text_of(buffer), "the bar")
        out = text_of(buffer)
        assert "━" in out
        assert "shipments/s" in out and "/s overall" in out
        assert "16 / limit 16 (max 16)" in out
        assert "cpu shipctl" in out and "cpu0" in out  # real psutil figures

        stats.rate_limited, stats.limit, stats.inflight = 1, 8, 8  # a 429 halves the limit
        wait_for(lambda: "8 / limit 8 (max 16) throttled by 429" in text_of(buffer), "the halving")

        stats.done = stats.succeeded = 1000
        stats.inflight = 0
        wait_for(lambda: "1000/1000 100%" in text_of(buffer), "the full bar")
        mark = len(buffer.getvalue())
    # The last frame is left on screen, drawn as finished although the caller sets finished_at only later.
    last = ANSI.sub("", buffer.getvalue()[mark:])
    assert "1000/1000 100%" in last
    assert "ETA" not in last and "shipments/s overall" in last


def test_live_display_refreshes_at_most_ten_times_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIVE_REFRESH_PER_SECOND <= 10
    frames: list[float] = []
    original = LiveView.__call__

    def counting(self: LiveView) -> object:
        frames.append(time.monotonic())
        return original(self)

    monkeypatch.setattr(LiveView, "__call__", counting)
    with open_progress(RunStats(total=10), mode="live", console=terminal(io.StringIO())):
        wait_for(lambda: len(frames) >= 6, "six frames")
    # Frame 0 is built when the display is set up; the rest come from the refresh thread.
    refreshes = frames[1:6]
    assert refreshes[-1] - refreshes[0] >= 4 / 10


def test_plain_lines_appear_at_the_interval_and_stop_with_the_block() -> None:
    buffer = io.StringIO()
    stats = RunStats(total=1000)
    with open_progress(stats, mode="plain", interval=0.05, console=cron(buffer)):
        stats.done = stats.succeeded = 340
        stats.failed = 2
        wait_for(lambda: buffer.getvalue().count("\n") >= 3, "three plain lines")
    after_exit = buffer.getvalue()
    assert not progress_threads()  # the timer thread is gone: nothing more can be printed
    assert "\x1b[" not in after_exit  # no terminal codes in a cron log
    lines = after_exit.splitlines()
    assert len(lines) >= 3
    for line in lines:
        assert PLAIN_LINE.match(line), line
    assert any("340/1000 done, 2 failed" in line for line in lines)
    assert buffer.getvalue() == after_exit


def test_plain_exit_is_prompt_even_with_a_long_interval() -> None:
    buffer = io.StringIO()
    started = time.monotonic()
    with open_progress(RunStats(total=5), mode="plain", interval=3600, console=cron(buffer)):
        assert progress_threads()
    assert time.monotonic() - started < 5
    assert not progress_threads()
    assert buffer.getvalue() == ""


def test_auto_is_live_on_a_terminal_and_plain_otherwise() -> None:
    assert resolve_mode("auto", terminal(io.StringIO())) == "live"
    assert resolve_mode("auto", cron(io.StringIO())) == "plain"
    assert resolve_mode("off", terminal(io.StringIO())) == "off"

    buffer = io.StringIO()
    stats = RunStats(total=1000)
    with open_progress(stats, mode="auto", interval=0.05, console=cron(buffer)):
        wait_for(lambda: "\n" in buffer.getvalue(), "a plain line")
    assert PLAIN_LINE.match(buffer.getvalue().splitlines()[0])


def test_off_prints_nothing_and_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    buffer = io.StringIO()
    threads_before = threading.active_count()
    stats = RunStats(total=10)
    with open_progress(stats, mode="off", interval=0.01, console=terminal(buffer)):
        assert threading.active_count() == threads_before
        stats.done = 10
    assert buffer.getvalue() == ""
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_the_default_console_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    stats = RunStats(total=1000)
    with open_progress(stats, mode="plain", interval=0.05):
        stats.done = 1
        wait_for(lambda: "1/1000 done" in capsys.readouterr().err, "a line on stderr")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("mode", "interval"), [("loud", 1.0), ("plain", 0.0), ("plain", -1.0)])
def test_bad_arguments_are_refused(mode: str, interval: float) -> None:
    with (
        pytest.raises(ValueError),
        open_progress(RunStats(), mode=mode, interval=interval, console=cron(io.StringIO())),  # type: ignore[arg-type]
    ):
        pass


def test_suspended_display_draws_nothing_until_resumed() -> None:
    buffer = io.StringIO()
    stats = RunStats(total=10)
    with open_progress(stats, mode="plain", interval=0.02, console=cron(buffer)) as display:
        wait_for(lambda: buffer.getvalue().count("\n") >= 1, "a first plain line")
        with display.suspended():
            quiet_from = buffer.getvalue()
            # An observation window of ten intervals: a question to a person must not be drawn over.
            threading.Event().wait(0.2)
            assert buffer.getvalue() == quiet_from
        wait_for(lambda: buffer.getvalue() != quiet_from, "lines again after the pause")

    live_buffer = io.StringIO()
    with open_progress(stats, mode="live", console=terminal(live_buffer)) as display:
        live = display._live
        assert live is not None and live.is_started
        with display.suspended():
            assert not live.is_started
        assert live.is_started


def test_the_in_flight_line_shows_the_limits_path() -> None:
    """A cut by capacity 429s shows how low the limit went; `auto` climbing without 429s is not 'throttled'."""

    def flight_line(stats: RunStats) -> str:
        buffer = io.StringIO()
        terminal(buffer).print(LiveView(stats, cpu=lambda: (0.0, [0.0]))())
        return next(line for line in text_of(buffer).splitlines() if "in flight" in line)

    cut = RunStats(total=100, inflight=6, limit=8, max_limit=16, limit_start=16, limit_low=4, rate_limited=9)
    assert "6 / limit 8 (max 16) throttled by 429, lowest 4" in flight_line(cut)
    probing = RunStats(total=100, inflight=20, limit=24, max_limit=64, limit_start=16, limit_low=16)
    line = flight_line(probing)
    assert "24 (max 64) probing up from 16" in line and "throttled" not in line
    assert plain_line(cut, 1.0).endswith("9 rate-limited (limit 8/16, lowest 4)")
