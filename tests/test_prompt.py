"""The production confirmation, answered by a person at a real terminal.

shipctl asks only when stderr is a terminal and a person can answer: on stdin when it is a terminal, else on the
controlling terminal (`/dev/tty`) when stdin is a pipe (`cat orders.csv | shipctl create -`). So each test runs the
real `shipctl` in a session of its own with a pseudo-terminal as its controlling terminal and stderr, and as its
stdin unless the test pipes the manifest in (stdout stays a pipe, as in `shipctl create … > results`), waits for
the question on the terminal and types the answer. Ctrl-C is typed too: the terminal driver turns it into SIGINT
for the foreground process, as it does for a person. Without a controlling terminal (the session `setsid` or cron
gives) nothing may be asked. Production mode is an `EZAK` key against a standalone sandbox; its ledger and its
shipments' refund status are the truth.
"""

from __future__ import annotations

import fcntl
import io
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

from shipctl.cli.terminal import Terminal as CliTerminal
from tests.cli import PROD_KEY
from tests.manifests import row, write_manifest
from tests.sdk import shipments
from tests.standalone import Server, sandbox_process, shipctl_env

# Run as `python -c` in a new session: take the terminal open on fd argv[1] as the controlling one (so the driver's
# Ctrl-C reaches this process, and /dev/tty is this terminal), then become `python -m shipctl ARGS`, keeping the pid.
# The fd stays open, as a shell keeps its terminal open while a pipeline runs.
_ON_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(int(sys.argv[1]), termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'shipctl', *sys.argv[2:]])"
)


class OnTerminal:
    """`shipctl ARGS` in a session of its own, stdout a pipe. By default a pseudo-terminal is its controlling
    terminal, stdin and stderr. `stdin` bytes are piped in instead (the pipe closed after them), `stderr_on_terminal`
    False makes stderr a pipe too, and `controlling` False starts it with no controlling terminal at all (as
    `setsid` does): the pseudo-terminal is then only what stdin and stderr are connected to."""

    def __init__(self, args: list[str], env: dict[str, str], *, stdin: bytes | None = None,
                 stderr_on_terminal: bool = True, controlling: bool = True) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # wide: no wrapped question
        command = ([sys.executable, "-c", _ON_TERMINAL, str(slave), *args] if controlling
                   else [sys.executable, "-m", "shipctl", *args])
        self.proc = subprocess.Popen(
            command, stdin=slave if stdin is None else subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=slave if stderr_on_terminal else subprocess.PIPE, env=env, start_new_session=True,
            pass_fds=(slave,) if controlling else (),
        )
        os.close(slave)
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)  # a few rows: well within the pipe's buffer
            self.proc.stdin.close()
        self.master = master
        self.screen = bytearray()
        self.stdout = b""
        self.stderr = b""
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._read_terminal, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        if not stderr_on_terminal:
            self._threads.append(threading.Thread(target=self._read_stderr, daemon=True))
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

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

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
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        os.close(self.master)

    def text(self) -> str:
        return bytes(self.screen).decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


Terminal = Callable[..., OnTerminal]


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """Start `shipctl ARGS` on a terminal (`OnTerminal`'s options as keywords); whatever a test leaves running is
    killed and closed after it."""
    started: list[OnTerminal] = []

    def start(args: list[str], env: dict[str, str], **options: Any) -> OnTerminal:
        started.append(OnTerminal(args, env, **options))
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


# -- the manifest on stdin: the question on the controlling terminal ------------------------------------------------

def piped_manifest(tmp_path: Path, count: int = 3) -> bytes:
    return write_manifest(tmp_path / "orders.csv", [row(i) for i in range(count)]).read_bytes()


@pytest.mark.slow
def test_a_piped_manifest_is_asked_about_on_the_controlling_terminal_and_yes_buys_every_row_once(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    """`cat orders.csv | shipctl create -` at a terminal: stdin is the manifest, so the question is written to and
    answered on /dev/tty, as sudo asks for a password."""
    run = terminal(["create", "-"], production, stdin=piped_manifest(tmp_path))
    run.wait_for(BUY_QUESTION)
    assert server.ledger() == []  # quoted, not bought, while the question waits
    run.type(b"y\n")
    assert run.finish() == 0, run.text()
    assert server.bought() == refs(3)
    assert sorted((r["reference"], r["status"], r["purchase"]) for r in run.records()) == [
        (f"ORD-{i:05d}", "bought", "new") for i in range(3)
    ]
    assert "refusing" not in run.text()


@pytest.mark.slow
@pytest.mark.parametrize("answer", [b"n\n", b"\x04"], ids=["no", "ctrl-d"])
def test_no_or_end_of_input_on_the_controlling_terminal_buys_nothing_and_exits_2(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path, answer: bytes
) -> None:
    run = terminal(["create", "-"], production, stdin=piped_manifest(tmp_path))
    run.wait_for(BUY_QUESTION)
    run.type(answer)
    assert run.finish() == 2, run.text()
    assert server.ledger() == []
    assert not [r for r in run.records() if r["status"] == "bought"]
    assert "nothing was bought" in run.text()


@pytest.mark.slow
def test_ctrl_c_at_the_controlling_terminal_question_buys_nothing_and_exits_130(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    run = terminal(["create", "-"], production, stdin=piped_manifest(tmp_path))
    run.wait_for(BUY_QUESTION)
    run.type(b"\x03")
    assert run.finish() == 130, run.text()
    assert server.ledger() == []
    assert "Traceback" not in run.text()


@pytest.mark.slow
def test_a_piped_manifest_without_a_controlling_terminal_is_refused_as_before_and_told_why(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    """A session with no controlling terminal (`setsid`, cron, CI): stderr is a terminal someone may read later, but
    nobody can answer; the run is refused, exit 2, and the message says why."""
    run = terminal(["create", "-"], production, stdin=piped_manifest(tmp_path), controlling=False)
    assert run.finish() == 2, run.text()
    assert server.ledger() == []
    assert not re.search(BUY_QUESTION, run.screen)
    assert ("refusing to buy 3 labels ($" in run.text() and "without confirmation (stdin holds the manifest and there"
            " is no controlling terminal to ask on); rerun with --yes to buy" in run.text()), run.text()


@pytest.mark.slow
def test_a_piped_manifest_with_stderr_not_a_terminal_is_refused_without_asking_on_the_terminal(
    terminal: Terminal, server: Server, production: dict[str, str], tmp_path: Path
) -> None:
    """`cat orders.csv | shipctl create - 2> log`: the controlling terminal is there, but the messages (the total the
    question is about) go to a file nobody is watching, so nothing is asked on the terminal."""
    run = terminal(["create", "-"], production, stdin=piped_manifest(tmp_path), stderr_on_terminal=False)
    assert run.finish() == 2, run.stderr.decode()
    assert server.ledger() == []
    assert run.text() == ""  # not a word on the terminal
    stderr = run.stderr.decode()
    assert "without confirmation; rerun with --yes to buy" in stderr and "nothing was bought" in stderr


@pytest.mark.slow
def test_ids_piped_to_refund_are_asked_about_on_the_controlling_terminal(
    terminal: Terminal, server: Server, production: dict[str, str]
) -> None:
    ids = bought_in_production(server, 2)
    run = terminal(["refund", "-"], production, stdin="\n".join(ids).encode() + b"\n")
    run.wait_for(REFUND_QUESTION)
    assert refund_statuses(server, ids) == [None, None]
    run.type(b"y\n")
    assert run.finish() == 0, run.text()
    assert refund_statuses(server, ids) == ["submitted", "submitted"]
    assert [(r["shipment_id"], r["status"]) for r in run.records()] == [(i, "submitted") for i in ids]


def test_a_question_nobody_can_answer_is_a_no_and_reads_nothing_from_stdin() -> None:
    """`confirm` called when no channel is left (the terminal gone since `can_ask`) says no at once: stdin, which
    may hold the manifest, never answers."""
    data = io.StringIO("y\nyes\n")
    term = CliTerminal(stdin=data, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
    assert term.confirm("Buy 3 labels for $20.26?") is False
    assert data.tell() == 0
