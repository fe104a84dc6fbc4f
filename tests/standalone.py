"""A standalone sandbox in its own process, and shipctl processes pointed at it: for tests of two runs at once."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import requests

from tests.cli import TEST_KEY


class Server:
    def __init__(self, proc: subprocess.Popen[str], api_base: str) -> None:
        self.proc = proc
        self.api_base = api_base

    def ledger(self) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.api_base}/_sandbox/ledger", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30
        )
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["ledger"]
        return entries

    def bought(self) -> Counter[str]:
        return Counter(str(e["reference"]) for e in self.ledger())


@contextlib.contextmanager
def sandbox_process(*args: str) -> Iterator[Server]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipctl", "sandbox", "serve", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as waiting:  # a server that never says where it listens fails, not hangs
            waiting.register(proc.stdout, selectors.EVENT_READ)
            if not waiting.select(60):
                raise AssertionError("the sandbox printed no URL within 60 s")
        api_base = proc.stdout.readline().strip()
        assert api_base.startswith("http://127.0.0.1:"), api_base
        yield Server(proc, api_base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # fail this test, and leave no server behind to trouble the next one
            proc.kill()
            proc.wait()
            raise AssertionError("the sandbox was still running 30 s after SIGTERM") from None
        finally:
            proc.stdout.close()


def shipctl_env(api_base: str, state: Path, key: str = TEST_KEY) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SHIPCTL_FROM", None)
    env.update(EASYPOST_API_BASE=api_base, EASYPOST_API_KEY=key, SHIPCTL_STATE_DIR=str(state), PYTHONUNBUFFERED="1")
    return env


def start(args: list[str], env: dict[str, str], stdin: int | IO[bytes] = subprocess.DEVNULL,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shipctl", *args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
    )
