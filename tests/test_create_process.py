"""`shipctl create` as a real process: kill -9 and resume, Ctrl-C, pipes, stdin. A standalone sandbox process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.cli import TEST_KEY
from tests.manifests import make_manifest
from tests.standalone import Server, sandbox_process


@pytest.fixture
def server() -> Iterator[Server]:
    with sandbox_process("--latency", "fast", "--seed", "7") as sb:
        yield sb


def shipctl_env(server: Server, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EASYPOST_API_BASE=server.api_base,
        EASYPOST_API_KEY=TEST_KEY,
        SHIPCTL_STATE_DIR=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
    )
    return env


def start_create(args: list[str], env: dict[str, str], stdin: int | IO[bytes] = subprocess.DEVNULL) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "shipctl", "create", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def read_lines(stream: IO[bytes], count: int) -> list[dict[str, Any]]:
    lines = []
    for _ in range(count):
        line = stream.readline()
        assert line, "shipctl ended before producing enough results"
        lines.append(json.loads(line))
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_mid_run_then_rerun_buys_each_row_exactly_once(
    server: Server, tmp_path: Path, sig: signal.Signals
) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 400)
    env = shipctl_env(server, tmp_path)
    proc = start_create([str(manifest), "-o", "ndjson", "--progress", "off"], env)
    early = read_lines(proc.stdout, 25)  # the run is well under way: rows are being bought as we speak
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, err.decode()
        assert b"rerun the same command to resume" in err
    first_run = early + [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert len(first_run) < 400, "the run finished before it could be interrupted"
    assert all(r["status"] == "bought" for r in first_run)

    again = subprocess.run(
        [sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "--progress", "off"],
        env=env, capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stderr.decode()
    second_run = [json.loads(line) for line in again.stdout.splitlines()]
    assert sorted(r["reference"] for r in second_run) == [f"ORD-{i:05d}" for i in range(400)]
    assert all(r["status"] == "bought" for r in second_run)
    ledger = Counter(e["reference"] for e in server.ledger())
    assert ledger == Counter({f"ORD-{i:05d}": 1 for i in range(400)})
    # What the first run reported as bought is exactly what the second reports: no label was lost or replaced.
    by_ref = {r["reference"]: r for r in second_run}
    for r in first_run:
        assert by_ref[r["reference"]]["tracking_code"] == r["tracking_code"]


@pytest.mark.slow
def test_piped_stdout_is_pure_ndjson_while_progress_goes_to_stderr(server: Server, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 120)
    proc = subprocess.run(
        [sys.executable, "-m", "shipctl", "create", str(manifest), "--progress", "plain",
         "--progress-interval", "0.05"],
        env=shipctl_env(server, tmp_path), capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 120
    assert all(json.loads(line)["status"] == "bought" for line in lines)  # piped: NDJSON by default
    assert b" done, " in proc.stderr  # plain progress lines went to stderr, not into the data


@pytest.mark.slow
def test_manifest_from_stdin_resumes(server: Server, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 30)
    env = shipctl_env(server, tmp_path)
    for _ in range(2):
        with manifest.open("rb") as fh:
            proc = subprocess.run(
                [sys.executable, "-m", "shipctl", "create", "-", "-q"],
                stdin=fh, env=env, capture_output=True, timeout=300,
            )
        assert proc.returncode == 0, proc.stderr.decode()
        assert len(proc.stdout.splitlines()) == 30
    assert len(server.ledger()) == 30
    # The same bytes resume the same journal (one per API and content).
    journals = [p.name for p in (tmp_path / "state" / "journals").glob("*.journal.db")]
    assert len(journals) == 1 and journals[0].startswith("stdin-"), journals


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_and_the_rerun_finishes_exactly_once(server: Server, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 400)
    env = shipctl_env(server, tmp_path)
    proc = start_create([str(manifest), "-o", "ndjson", "--progress", "off"], env)
    read_lines(proc.stdout, 10)
    # The rest of stdout is drained meanwhile: a full pipe would block the run's writes, and with them the loop
    # that must hear the second Ctrl-C.
    drained = threading.Thread(target=proc.stdout.read, daemon=True)
    drained.start()
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    first_notice = proc.stderr.readline()  # the first Ctrl-C is acknowledged before the second is sent
    assert b"interrupted: no new rows or purchases will start" in first_notice
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read()
    drained.join(60)
    assert b"second interrupt: stopping now" in err

    again = subprocess.run(
        [sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "--progress", "off"],
        env=env, capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stderr.decode()
    assert len(again.stdout.splitlines()) == 400
    assert Counter(e["reference"] for e in server.ledger()) == Counter({f"ORD-{i:05d}": 1 for i in range(400)})
