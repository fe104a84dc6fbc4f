"""The production confirmation, answered by a person at a real terminal.

shipctl asks only when stdin and stderr are terminals, so each test runs the real `shipctl` with a pseudo-terminal
as its controlling terminal, stdin and stderr (stdout stays a pipe, as in `shipctl create … > results`), waits for
the question on the terminal and types the answer. Ctrl-C is typed too: the terminal driver turns it into SIGINT
for the foreground process, as it does for a person. Production mode is an `EZAK` key against a standalone
sandbox; its ledger and its shipments' refund status are the truth.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import easypost
import pytest

from tests.cli import PROD_KEY
from tests.manifests import row, write_manifest
from tests.sdk import shipments
from tests.standalone import Server, sandbox_process, shipctl_env

# Run as `python -c` with the terminal on fd 0, in a new session: take the terminal as the controlling one (so the
# driver's Ctrl-C reaches this process), then become `python -m shipctl ARGS`, keeping the pid.
_ON_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'shipctl', *sys.argv[1:]])"
)


class OnTerminal:
    """`shipctl ARGS` with a pseudo-terminal as controlling terminal, stdin and stderr; stdout a pipe."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # wide: no wrapped question
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ON_TERMINAL, *args],
            stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env, start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.screen = bytearray()
        self.stdout = b""
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._read_terminal, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_terminal(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the process has gone and the terminal has no other user
                chunk = b""
            with self._changed:
                if not chunk:
                    self._closed = True
                    self._changed.notify_all()
                    return
                self.screen += chunk
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for(self, pattern: bytes, timeout: float = 120) -> None:
        """Until `pattern` (a regex) is on the terminal; fails if the process left the terminal without it."""
        wanted = re.compile(pattern)
        with self._changed:
            self._changed.wait_for(lambda: wanted.search(self.screen) is not None or self._closed, timeout)
            assert wanted.search(self.screen), f"never asked {pattern!r}; the terminal shows:\n{self.text()}"

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self, timeout: float = 60) -> int:
        """The exit code, once the process has ended and both streams are read to their end."""
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:  # a test that failed midway: leave no shipctl behind
            self.proc.kill()
            self.proc.wait(timeout=60)
        for thread in self._threads:
            thread.join(60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        os.close(self.master)

    def text(self) -> str:
        return bytes(self.screen).decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


Terminal = Callable[[list[str], dict[str, str]], OnTerminal]


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """Start `shipctl ARGS` on a terminal; whatever a test leaves running is killed and closed after it."""
    started: list[OnTerminal] = []

    def start(args: list[str], env: dict[str, str]) -> OnTerminal:
        started.append(OnTerminal(args, env))
        return started[-1]

    try:
        yield start
    finally:
        for run in started:
            run.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with sandbox_process("--seed", "5") as sb:
        yield sb


@pytest.fixture
def production(server: Server, tmp_path: Path) -> dict[str, str]:
    env = shipctl_env(server.api_base, tmp_path / "state", key=PROD_KEY)
    env.pop("SHIPCTL_DEBUG", None)
    env["TERM"] = "xterm"  # whatever the test runner has (CI may have none): the pty is a plain terminal
    return env


def refs(count: int) -> Counter[str]:
    return Counter({f"ORD-{i:05d}": 1 for i in range(count)})


BUY_QUESTION = rb"Buy 3 labels for [^\r\n?]*\?"


@pytest.mark.slow
def test_yes_at_the_prompt_buys_every_row_once(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    run = terminal(["create", str(manifest)], production)
    run.wait_for(BUY_QUESTION)
    assert server.ledger() == []  # quoted, not bought, while the question waits
    run.type(b"y\n")
    assert run.finish() == 0, run.text()
    assert server.bought() == refs(3)
    assert sorted((r["reference"], r["status"], r["purchase"]) for r in run.records()) == [
        (f"ORD-{i:05d}", "bought", "new") for i in range(3)
    ]
    assert PROD_KEY not in run.text()


@pytest.mark.slow
def test_no_at_the_prompt_buys_nothing_and_exits_2(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    run = terminal(["create", str(manifest)], production)
    run.wait_for(BUY_QUESTION)
    run.type(b"n\n")
    assert run.finish() == 2, run.text()
    assert server.ledger() == []
    assert not [r for r in run.records() if r["status"] == "bought"]
    assert "nothing was bought" in run.text()


@pytest.mark.slow
def test_ctrl_c_at_the_prompt_buys_nothing_exits_130_and_a_confirmed_rerun_buys_each_row_once(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    run = terminal(["create", str(manifest)], production)
    run.wait_for(BUY_QUESTION)
    run.type(b"\x03")  # Ctrl-C: the terminal driver sends SIGINT
    assert run.finish() == 130, run.text()
    assert server.ledger() == []
    assert not [r for r in run.records() if r["status"] == "bought"]
    assert "Traceback" not in run.text()

    again = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "--yes", "-q"],
                           env=production, capture_output=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert again.returncode == 0, again.stderr.decode()
    assert server.bought() == refs(3)


def bought_in_production(server: Server, count: int) -> list[str]:
    return shipments(server, count, key=PROD_KEY)


def refund_statuses(server: Server, ids: list[str]) -> list[str | None]:
    client = easypost.EasyPostClient(PROD_KEY, api_base=server.api_base)
    try:
        return [client.shipment.retrieve(i).refund_status for i in ids]
    finally:
        client._requests_session.close()


REFUND_QUESTION = rb"Refund 2 [^\r\n?]*labels[^\r\n?]*\?"


@pytest.mark.slow
def test_yes_at_the_refund_prompt_refunds(
    terminal: Terminal, server: Server, production: dict[str, str]
) -> None:
    ids = bought_in_production(server, 2)
    run = terminal(["refund", *ids], production)
    run.wait_for(REFUND_QUESTION)
    assert refund_statuses(server, ids) == [None, None]  # nothing asked before the answer
    run.type(b"y\n")
    assert run.finish() == 0, run.text()
    assert refund_statuses(server, ids) == ["submitted", "submitted"]
    assert [(r["shipment_id"], r["status"]) for r in run.records()] == [(i, "submitted") for i in ids]


@pytest.mark.slow
def test_no_at_the_refund_prompt_refunds_nothing_and_exits_2(
    terminal: Terminal, server: Server, production: dict[str, str]
) -> None:
    ids = bought_in_production(server, 2)
    run = terminal(["refund", *ids], production)
    run.wait_for(REFUND_QUESTION)
    run.type(b"n\n")
    assert run.finish() == 2, run.text()
    assert refund_statuses(server, ids) == [None, None]
    assert run.records() == []
    assert "nothing was refunded" in run.text()


@pytest.mark.slow
def test_ctrl_c_at_the_refund_prompt_leaves_at_once_exits_130_and_refunds_nothing(
    terminal: Terminal, server: Server, production: dict[str, str]
) -> None:
    ids = bought_in_production(server, 2)
    run = terminal(["refund", *ids], production)
    run.wait_for(REFUND_QUESTION)
    run.type(b"\x03")
    # No Enter follows: the process must leave on the Ctrl-C alone (create does, in well under a second).
    assert run.finish(timeout=15) == 130, run.text()
    assert refund_statuses(server, ids) == [None, None]
    assert run.records() == []
    assert "Traceback" not in run.text()
