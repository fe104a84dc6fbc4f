"""A state directory that cannot be written: one line naming it and the way out, exit 2, nothing bought.

Before, a read-only one surfaced as SQLite's "unexpected OperationalError: unable to open database file" (exit 1)
and one that could not be made as "unexpected OSError" or, from `create`, as a manifest that "cannot be read".
Both kinds are real: a path under a regular file (for root too), and a read-only tmpfs mounted in a private mount
namespace (`unshare -rm`, no root needed where user namespaces are allowed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.manifests import make_manifest


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _commands(manifest: Path) -> list[list[str]]:
    """The commands that keep something in the state directory: create's manifest copy and claims, rates' quote
    cache, the journals refund and report look up."""
    return [
        ["create", str(manifest), "-q", "--yes"],
        ["rates", str(manifest)],
        ["refund", "shp_0123456789abcdef", "--yes"],
        ["report"],
    ]


def _run(args: list[str], state: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "SHIPCTL_STATE_DIR": str(state)}
    return subprocess.run([*(prefix or []), sys.executable, "-m", "shipctl", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=environ, timeout=120, check=False)


def _assert_refused(proc: subprocess.CompletedProcess[str], state: Path, why: str) -> None:
    err = proc.stderr
    assert proc.returncode == 2, err
    assert f"the state directory {state} cannot be written ({why})" in err, err
    assert "set SHIPCTL_STATE_DIR to a folder you can write to" in err
    assert "Traceback" not in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_state_directory_that_cannot_be_made_is_named(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = blocker / "state"
    for args in _commands(manifest):
        _assert_refused(_run(args, state), state, f"{blocker} is a file, not a folder")
    assert env.ledger() == []
    assert not (tmp_path / "orders.csv.journal.db").exists()


@pytest.mark.skipif(not _namespaces_work(), reason="unshare -rm (user + mount namespaces) unavailable")
def test_a_read_only_state_directory_is_named(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    state = tmp_path / "read-only"
    state.mkdir()
    mount = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"', "sh", str(state)]
    for args in _commands(manifest):
        _assert_refused(_run(args, state, prefix=mount), state, "Read-only file system")
    assert env.ledger() == []
    assert not (tmp_path / "orders.csv.journal.db").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="mode bits do not stop root")
def test_a_state_directory_without_write_permission_is_named(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    state = tmp_path / "state-0555"
    state.mkdir(mode=0o555)
    try:
        for args in _commands(manifest):
            _assert_refused(_run(args, state), state, "Permission denied")
    finally:
        state.chmod(0o755)
    assert env.ledger() == []
