"""shipctl with its stdout on a screen of a given width (a pseudo-terminal), and reading back the tables it draws.

stderr stays a pipe, as under `shipctl … 2> log`, so the two streams are read apart.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
END = b"<<end of screen 5c1e>>"


@dataclass
class Seen:
    code: int
    stdout: str
    """What the screen shows, without colours; the terminal's CRLF read back as LF."""
    stderr: str


def on_screen(args: list[str], columns: int, *, env: dict[str, str] | None = None, timeout: float = 300) -> Seen:
    """`python -m shipctl ARGS` with stdout on a pseudo-terminal `columns` wide; stdin empty, stderr a pipe."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = dict(os.environ if env is None else env)
    environ.pop("COLUMNS", None)  # the width comes from the terminal itself
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipctl", *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=environ,
    )
    screen = bytearray()

    def read_screen() -> None:
        # Read until our own end mark, never until EIO: Linux may report the hang-up of a closed terminal
        # while the last of the child's output is still on its way to the master (CI once saw a table cut
        # mid-character). The parent keeps the slave open, so there is no hang-up to race with.
        while END not in screen:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    try:
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=timeout)
        # Everything the child wrote is in the terminal's queue before it exits; our mark goes in after it.
        os.write(slave, END)
        reader.join(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(slave)
        os.close(master)
    shown = bytes(screen)
    assert END in shown, "the screen's end mark never came back"
    shown = shown[: shown.index(END)]
    text = ANSI.sub("", shown.decode(errors="replace")).replace("\r\n", "\n")
    return Seen(code, text, stderr)


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a table as drawn, each cell's folded lines joined again with a space: what a person reads."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "┃" in line)
    header = [h.strip() for h in lines[start].split("┃")]
    rows: list[list[list[str]]] = []
    for line in lines[start + 2:]:
        if "│" not in line:
            break
        parts = [p.strip() for p in line.split("│")]
        if parts[0] or not rows:
            rows.append([[p] if p else [] for p in parts])
        else:  # a continuation line: a folded cell goes on under its column
            for cell, part in zip(rows[-1], parts, strict=True):
                if part:
                    cell.append(part)
    return [dict(zip(header, (" ".join(cell) for cell in row), strict=True)) for row in rows]


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def wait_for(predicate: Callable[[], str | None], what: str, timeout: float = 90.0) -> str:
    """Poll (the only way to observe a terminal) until `predicate` returns text; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found is not None:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")
