"""The live display in a real terminal (tmux), and plain progress lines under cron (no terminal)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.manifests import make_manifest
from tests.screen import wait_for

pytestmark = pytest.mark.slow


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EASYPOST_API_KEY", "EASYPOST_API_BASE", "NO_COLOR")}
    env["SHIPCTL_STATE_DIR"] = str(tmp_path / "state")
    env["TERM"] = "xterm-256color"
    return env


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_live_display_draws_bar_throughput_and_cpu_bars_in_a_terminal(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "big.csv", 1500)
    out, done = tmp_path / "out.ndjson", tmp_path / "exit.txt"
    socket = f"shipctl-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket]
    script = (
        f"{sys.executable} -m shipctl create {manifest} --output ndjson > {out}; echo $? > {done}; sleep 120"
    )
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "e2e", "-x", "120", "-y", "45", script],
        check=True, env=clean_env(tmp_path), timeout=30,
    )

    def pane() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "e2e"], capture_output=True, text=True, timeout=30
        ).stdout

    def pane_with(text: str, *, while_running: bool = False) -> Callable[[], str | None]:
        def check() -> str | None:
            still_running = not done.exists()
            screen = pane()
            return screen if text in screen and (still_running or not while_running) else None

        return check

    try:
        running = wait_for(pane_with("cpu0", while_running=True), "the live display")
        assert re.search(r"\d+/1500 +\d+%", running), running  # the bar: done/total and percent
        assert "━" in running
        assert re.search(r"\d+\.\d shipments/s now", running), running  # rolling throughput
        assert re.search(r"\d+ / limit \d+", running), running  # calls in flight against the limit
        assert re.search(r"cpu shipctl", running), running  # this process's CPU
        assert re.search(r"cpu0 .*━.* +\d+%", running), running  # one bar per core

        finished = wait_for(pane_with("Summary:"), "the summary")
        assert "bought" in finished
        assert wait_for(lambda: done.read_text().strip() if done.exists() else None, "the exit code") == "0"
        lines = out.read_text().splitlines()
        assert len(lines) == 1500
        assert all(json.loads(line)["status"] == "bought" for line in lines)  # stdout stayed pure data
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def test_without_a_terminal_plain_lines_appear_and_stdout_is_ndjson(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 300)
    proc = subprocess.run(
        [sys.executable, "-m", "shipctl", "create", str(manifest), "--progress-interval", "0.1"],
        env=clean_env(tmp_path), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    dated = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+/300 done, ")
    progress = [line for line in proc.stderr.splitlines() if dated.match(line)]
    assert progress, proc.stderr  # a cron log shows progress...
    assert all(re.search(r"\d+ failed, \d+\.\d/s, ETA ", line) for line in progress)
    assert "Summary:" in proc.stderr  # ...and ends with the summary
    assert "\x1b[" not in proc.stderr  # no terminal control codes in a log file
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 300 and {r["status"] for r in records} == {"bought"}
