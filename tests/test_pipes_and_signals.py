"""`shipctl create` stopped from outside while it buys: its stdout closed by `| head`, or SIGTERM.

Real processes throughout: a standalone sandbox process, `shipctl` run by a real shell pipe or as a subprocess,
and the sandbox's ledger as the truth about what was bought.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.manifests import make_manifest
from tests.standalone import Server, sandbox_process, shipctl_env, start

ROWS = 300
"""Enough rows that their NDJSON (~150 KB) cannot all sit in a pipe's buffer: `head` must cut the run short."""


@pytest.fixture
def server() -> Iterator[Server]:
    with sandbox_process("--latency", "fast", "--seed", "3") as sb:
        yield sb


def every_row_once(count: int) -> Counter[str]:
    return Counter({f"ORD-{i:05d}": 1 for i in range(count)})


def records(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def shipctl_line(*args: str) -> str:
    """The shell words that run `shipctl ARGS` (this interpreter's, so the test runs the code under test)."""
    return shlex.join([sys.executable, "-m", "shipctl", *args])


def rerun(manifest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest)], env=env,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.slow
def test_head_closing_stdout_exits_130_without_a_traceback_and_the_rerun_buys_each_row_once(
    server: Server, tmp_path: Path
) -> None:
    manifest = make_manifest(tmp_path / "big.csv", ROWS)
    env = shipctl_env(server.api_base, tmp_path / "state")
    env.pop("PYTHONUNBUFFERED")  # as in a user's shell: shipctl itself must push each row down the pipe
    stderr_file = tmp_path / "stderr.txt"
    script = (
        f"{shipctl_line('create', str(manifest))} 2>{shlex.quote(str(stderr_file))} | head -n 3; "
        'echo "shipctl exited ${PIPESTATUS[0]}"'
    )
    piped = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=300,
                           stdin=subprocess.DEVNULL, check=False)
    stderr = stderr_file.read_text()
    lines = piped.stdout.decode().splitlines()
    assert lines[-1] == "shipctl exited 130", stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert "rerun" in stderr  # it says how to finish the job
    seen = [json.loads(line) for line in lines[:-1]]
    assert len(seen) == 3 and all(r["status"] == "bought" for r in seen)
    first = server.bought()
    assert set(first.values()) == {1}
    assert sum(first.values()) < ROWS, "the run bought the whole manifest although its reader had gone"

    again = rerun(manifest, env)
    assert again.returncode == 0, again.stderr.decode()
    finished = records(again.stdout)
    assert sorted(r["reference"] for r in finished) == sorted(every_row_once(ROWS))
    assert all(r["status"] == "bought" for r in finished)
    assert server.bought() == every_row_once(ROWS)
    by_ref = {r["reference"]: r for r in finished}
    for r in seen:  # what `head` printed is the label the rerun reports, not a second one
        assert by_ref[r["reference"]]["tracking_code"] == r["tracking_code"]
        assert by_ref[r["reference"]]["purchase"] == "resumed"


@pytest.mark.slow
def test_sigterm_mid_run_exits_130_reports_every_purchase_and_the_rerun_buys_each_row_once(
    server: Server, tmp_path: Path
) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    env = shipctl_env(server.api_base, tmp_path / "state")
    proc = start(["create", str(manifest), "-o", "ndjson", "--progress", "off"], env)
    assert proc.stdout is not None
    early = []
    for _ in range(20):  # the run is under way: rows are being bought as the signal arrives
        line = proc.stdout.readline()
        assert line, "shipctl ended before 20 rows were bought"
        early.append(json.loads(line))
    proc.send_signal(signal.SIGTERM)
    # The rest through the same buffered reader: communicate() would read the pipe beneath it and lose the lines
    # readline() had already buffered. (stderr carries a few lines only, with progress off: it cannot fill.)
    rest = proc.stdout.read()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert b"rerun" in err
    first_run = early + records(rest)
    assert len(first_run) < ROWS, "the run finished before SIGTERM could stop it"
    assert all(r["status"] == "bought" for r in first_run)
    # Every purchase the run made (including buys in flight when the signal came) is one it reported.
    assert server.bought() == Counter(r["reference"] for r in first_run)

    again = rerun(manifest, env)
    assert again.returncode == 0, again.stderr.decode()
    second_run = records(again.stdout)
    assert sorted(r["reference"] for r in second_run) == sorted(every_row_once(ROWS))
    assert server.bought() == every_row_once(ROWS)
    by_ref = {r["reference"]: r for r in second_run}
    for r in first_run:
        assert by_ref[r["reference"]]["tracking_code"] == r["tracking_code"]


def test_stderr_closed_or_its_reader_gone_the_run_buys_every_row_once(server: Server, tmp_path: Path) -> None:
    """stderr is for a person: started with it closed (`2>&-`), or its reader gone mid-run (`2>&1 | head -1`), the
    run still buys every row exactly once, writes every result, and ends 0; messages nobody reads are dropped."""
    manifest = make_manifest(tmp_path / "orders.csv", 40)
    env = shipctl_env(server.api_base, tmp_path / "state")
    # Closed: the shell closes fd 2 before shipctl starts.
    closed = subprocess.run(
        ["sh", "-c", f"exec {shlex.quote(sys.executable)} -m shipctl create {shlex.quote(str(manifest))} "
                     f"--journal {shlex.quote(str(tmp_path / 'closed.journal.db'))} --progress plain "
                     "--progress-interval 0.01 -o ndjson 2>&-"],
        env=env, capture_output=True, timeout=120,
    )
    assert closed.returncode == 0, closed.stderr
    assert Counter(r["status"] for r in records(closed.stdout)) == {"bought": 40}
    # Gone: its reader closes the pipe before the run's first message.
    proc = start(["create", str(manifest), "--journal", str(tmp_path / "gone.journal.db"), "--progress", "plain",
                  "--progress-interval", "0.01", "-o", "ndjson"], env)
    assert proc.stderr is not None and proc.stdout is not None
    proc.stderr.close()
    out = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert Counter(r["status"] for r in records(out)) == {"bought": 40}
    assert server.bought() == every_row_once(40)  # the second run found the first's labels: none bought twice
