"""Inputs that would hold the process for good are refused at once: an endless or huge `--from` file, a
concurrency no API serves, a manifest argument that is a stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest


def test_an_endless_from_file_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    """`--from /dev/zero` was read whole into memory (7 GB in 15 s); an address file is read up to 64 KiB."""
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    done = invoke("validate", str(manifest), "--from", "/dev/zero")
    assert done.exit_code == 2
    assert "larger than 64 KiB, not an address" in done.stderr
    big = tmp_path / "big.json"
    big.write_text('{"name": "' + "x" * (70 << 10) + '"}')
    assert "larger than 64 KiB" in invoke("validate", str(manifest), "--from", str(big)).stderr


@pytest.mark.parametrize("flags", [("--concurrency", "1000000"), ("--concurrency", "auto", "--max-concurrency", "5000"),
                                   ("--workers", "100000")])
def test_a_concurrency_no_api_serves_is_refused_before_anything(env: Sandbox, tmp_path: Path,
                                                                flags: tuple[str, ...]) -> None:
    """A million in flight sized a connection pool and threads to match and held the run for good, calling nothing."""
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    done = invoke("create", str(manifest), *flags)
    assert done.exit_code == 2
    assert "must be at most 1024" in done.stderr
    assert env.ledger() == []
    assert invoke("create", str(manifest), "--concurrency", "1024", "-q").exit_code == 0


def test_a_header_of_many_unknown_columns_is_one_short_warning(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    lines = manifest.read_text().splitlines()
    extra = [f"c{i}" for i in range(5000)]
    manifest.write_text(",".join([lines[0], *extra]) + "\n" + ",".join([lines[1], *([""] * 5000)]) + "\n")
    done = invoke("validate", str(manifest))
    assert done.exit_code == 0, done.stderr
    [warning] = [line for line in done.stderr.splitlines() if "unknown columns ignored" in line]
    assert warning.endswith("c19 and 4,980 more") and len(warning) < 300


def test_sigterm_while_stdin_is_read_is_an_interruption_that_leaves_no_spool(tmp_path: Path) -> None:
    """`timeout` or systemd stopping a run before its engine starts: exit 130 and the partial copy of stdin removed,
    as Ctrl-C does (it was a death by signal, leaving gigabytes in the state directory)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    state = tmp_path / "state"
    state.mkdir()
    env = {**os.environ, "SHIPCTL_STATE_DIR": str(state)}
    env.pop("EASYPOST_API_KEY", None)
    run = subprocess.Popen([sys.executable, "-m", "shipctl", "create", "-"], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert run.stdin is not None and run.stderr is not None
    run.stdin.write(b"reference,to_name\n" * 20000)  # more than one 64 KiB block of the copy
    run.stdin.flush()  # and kept open: the copy waits for more
    deadline, tick = time.monotonic() + 60, threading.Event()
    while not [p for p in state.glob("shipctl-stdin-*.manifest") if p.stat().st_size]:
        assert time.monotonic() < deadline and run.poll() is None, "the copy of stdin never began"
        tick.wait(0.01)  # a bounded poll of the state directory, not a synchronising sleep
    run.send_signal(signal.SIGTERM)
    code = run.wait(timeout=60)
    run.stdin.close()
    assert code == 130, run.stderr.read()
    assert "interrupted" in run.stderr.read().decode()
    assert list(state.glob("shipctl-*.manifest")) == []


def test_the_engine_leaves_the_processs_signal_handling_as_it_found_it() -> None:
    """Its Ctrl-C/SIGTERM receiver left SIG_DFL behind: a SIGTERM while the summary was written then killed the
    process outright, leaving the manifest's private copy (customers' addresses) in the state directory."""
    import signal

    import anyio

    from shipctl.engine.runner import run_async

    def ours(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    async def job() -> int:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM):
            return 7

    before = signal.signal(signal.SIGTERM, ours)
    try:
        assert run_async(job, uvloop=False) == 7
        assert signal.getsignal(signal.SIGTERM) is ours
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)
