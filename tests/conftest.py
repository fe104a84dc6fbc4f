"""Shared fixtures: a running in-process sandbox, a real EasyPost SDK client pointed at it, and `env`: shipctl
pointed at it (the CLI tests' helpers are in tests/cli.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import easypost
import pytest

from shipctl.sandbox import Sandbox, start_sandbox

# One key for the SDK fixture and the CLI helpers: a key names its account, and an account sees only its own objects.
from tests.cli import TEST_KEY, point_at


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own config file, profile, SHIPCTL_<KEY> defaults, keychain or state never reach a test."""
    from shipctl.config import CONFIG_ENV, PROFILE_ENV, SETTINGS

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path_factory.getbasetemp() / "no-config" / "config.toml"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    # Journals, claims and caches of a test that names no state directory stay its own, never the developer's
    # (~/.local/state/shipctl) nor shared with a test running beside it on another worker.
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    # The reference check's quiet wait is 5 s by default: every production-key buy would wait it. A second still
    # exercises it (and the wide look past it) against first looks that take milliseconds here.
    monkeypatch.setenv("SHIPCTL_REFERENCE_QUIET", "1")
    for name in (PROFILE_ENV, *(s.env for s in SETTINGS.values() if s.env and s.env != "SHIPCTL_FROM")):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_leftover_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test started and left running (it failed midway, or a wait timed out) is killed and its pipes
    closed after it: one failure must not leave a process behind to fail a later test on the same worker with a
    ResourceWarning, or to hold its files."""
    started: list[subprocess.Popen[Any]] = []
    original = subprocess.Popen.__init__

    def tracked(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(subprocess.Popen, "__init__", tracked)
    yield
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox on 127.0.0.1, latency none, no faults, in-memory state."""
    with start_sandbox(latency="none") as sb:
        yield sb


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[easypost.EasyPostClient]:
    """The official SDK, unchanged, talking to the sandbox over loopback HTTP."""
    c = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
    try:
        yield c
    finally:
        c._requests_session.close()


@pytest.fixture
def env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """shipctl (in-process or a subprocess) talks to `sandbox` with the test key; state under tmp_path/state."""
    point_at(monkeypatch, sandbox, tmp_path / "state")
    return sandbox


@pytest.fixture
def no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key and no API base: shipctl uses its built-in sandbox, its state under tmp_path/state."""
    for name in ("EASYPOST_API_KEY", "EASYPOST_API_BASE", "SHIPCTL_FROM"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(state))
    return state
