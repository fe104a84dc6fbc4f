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
    os.close(slave)
    screen = bytearray()

    def read_screen() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process has gone and no one else holds the terminal
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
        reader.join(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
    text = ANSI.sub("", bytes(screen).decode(errors="replace")).replace("\r\n", "\n")
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
