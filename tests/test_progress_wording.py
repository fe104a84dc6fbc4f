"""Progress as a person or a log reads it: the live display's last frame, its width, its CPU figure, the plain
lines' date, and the production prompt's time kept out of the run's speed."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from shipctl.cli.live_view import LiveView
from shipctl.cli.terminal import Terminal, use
from shipctl.engine.stats import RunStats
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke
from tests.manifests import make_manifest, row, write_manifest
from tests.screen import wait_for

DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EASYPOST_API_KEY", "EASYPOST_API_BASE", "NO_COLOR")}
    env["SHIPCTL_STATE_DIR"] = str(tmp_path / "state")
    env["TERM"] = "xterm-256color"
    return env


@pytest.mark.slow
def test_live_progress_to_a_file_ends_its_last_frame_before_the_summary(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 40)
    log = tmp_path / "progress.log"
    with log.open("w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "shipctl", "create", str(manifest), "--progress", "live", "-o", "ndjson"],
            env=clean_env(tmp_path), stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, timeout=300,
        )
    assert proc.returncode == 0
    lines = log.read_text().splitlines()
    assert [line for line in lines if "Summary:" in line] == [
        next(line for line in lines if line.startswith("Summary: 40 shipments"))
    ]  # before: "cpu1   0%Summary: 40 shipments in …"
    frame = lines[: lines.index(next(line for line in lines if line.startswith("Summary:")))]
    cpu = next(line for line in frame if line.startswith("cpu shipctl"))
    # The last frame shows the run's average, not the idle instant after the last row ("0.0%").
    assert float(re.search(r"(\d+\.\d)% \(of", cpu).group(1)) > 0.0, cpu  # type: ignore[union-attr]
    assert "ETA" not in "\n".join(frame)  # a finished run has no ETA


def test_plain_progress_lines_carry_the_date(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(150)])
    result = invoke("create", str(manifest), "--progress", "plain", "--progress-interval", "0.01", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if "/150 done" in line]
    assert progress, result.stderr
    today = time.strftime("%Y-%m-%d")
    assert all(DATED.match(line) and line[:4].isdigit() for line in progress), progress
    assert any(line.startswith(today) or line.startswith(str(int(today[:4]))) for line in progress)


def test_time_at_the_production_prompt_is_not_the_runs(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clerk takes ten minutes to answer: the summary's time and speed are the run's own, not the clerk's."""
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(5)])
    real = time.monotonic
    away = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + away[0])

    def answer_ten_minutes_later(_question: str) -> str:
        away[0] += 600.0  # the clock moves on, as it would while a person reads the estimate
        return "y"

    with use(Terminal(interactive=True, answer=answer_ten_minutes_later)):
        result = invoke("create", str(manifest), "-o", "ndjson", "--progress", "plain")
    assert result.exit_code == 0, result.stderr
    summary = re.search(r"Summary: 5 shipments in (\S+) s, (\d+\.\d)/s overall", result.stderr)
    assert summary, result.stderr
    assert float(summary.group(1)) < 60  # before: "in 600.4 s, 0.0/s overall"
    assert float(summary.group(2)) > 0.1


def test_stats_stand_still_while_paused() -> None:
    stats = RunStats(total=10)
    stats.done = 5
    stats.pause()
    frozen = stats.elapsed()
    stats.paused_since = (stats.paused_since or 0.0) - 100.0  # as if the question had waited 100 s
    assert stats.elapsed() == pytest.approx(frozen, abs=0.5)
    stats.resume()
    assert stats.paused_seconds >= 100.0
    assert stats.elapsed() < 5.0


def test_a_frame_80_columns_wide_keeps_the_eta_and_shrinks_the_bars() -> None:
    stats = RunStats(total=10000, done=4800, succeeded=4800, inflight=7, limit=8, max_limit=16, rate_limited=1)
    now = [0.0]
    view = LiveView(stats, clock=lambda: now[0], cpu=lambda: (87.5, [61.0, 40.0, 12.0, 99.0]), width=lambda: 80)
    view()
    now[0], stats.done = 1.0, 4900
    buffer = io.StringIO()
    Console(file=buffer, width=80, force_terminal=False).print(view())
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert re.search(r"4900/10000 +49% \d:\d\d:\d\d  ETA 0:00:51$", text.splitlines()[0].rstrip()), text
    assert "throttled by 429" in text  # the longest figure is whole too
    wide = io.StringIO()
    Console(file=wide, width=140).print(LiveView(stats, cpu=lambda: (1.0, [1.0]), width=lambda: 140)())
    assert wide.getvalue().index("4900/10000") == len("shipments   ") + 40 + 1  # room enough: 40-cell bars
    assert text.index("4900/10000") < len("shipments   ") + 40 + 1  # at 80 columns the bars gave way


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_live_display_at_80_columns_shows_the_eta(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "big.csv", 1500)
    out, done = tmp_path / "out.ndjson", tmp_path / "exit.txt"
    tmux = ["tmux", "-L", f"shipctl-{uuid.uuid4().hex[:8]}"]
    script = f"{sys.executable} -m shipctl create {manifest} --output ndjson > {out}; echo $? > {done}; sleep 120"
    subprocess.run([*tmux, "new-session", "-d", "-s", "e2e", "-x", "80", "-y", "30", script],
                   check=True, env=clean_env(tmp_path), timeout=30)

    def running_frame() -> str | None:
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "e2e"], capture_output=True, text=True,
                                timeout=30).stdout
        return screen if "/1500" in screen and "ETA" in screen and not done.exists() else None

    try:
        screen = wait_for(running_frame, "a frame of the live display")
        bar_line = next(line for line in screen.splitlines() if line.startswith("shipments"))
        assert re.search(r"\d+/1500 +\d+% \d:\d\d:\d\d  ETA (\d:\d\d:\d\d|-:--:--)$", bar_line.rstrip()), bar_line
        assert "━" in bar_line  # the bar is still there, only shorter
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
