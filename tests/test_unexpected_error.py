"""A bug (an exception nobody expected) reaches the user as one line and exit 1; `--debug` shows its traceback.

No input makes shipctl crash on purpose, so a bug is planted: `shipctl` runs as `python -c`, with the manifest
reader (`shipctl.manifest`, a stable module) replaced by one that raises RuntimeError, then enters through
`python -m shipctl`'s own entry point. The error's text carries the API key, which must never be printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipctl.cli.app import debug_first
from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest

# Both names the reader goes by are replaced before any command module is imported, however they import it.
_PLANTED_BUG = """
import os, runpy, sys
import shipctl.manifest, shipctl.manifest.reader

def iter_rows(*args, **kwargs):
    raise RuntimeError("reader exploded near " + os.environ["EASYPOST_API_KEY"])
    yield

shipctl.manifest.iter_rows = shipctl.manifest.reader.iter_rows = iter_rows
sys.argv = ["shipctl", *sys.argv[1:]]
runpy.run_module("shipctl", run_name="__main__", alter_sys=True)
"""


def crash(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SHIPCTL_DEBUG"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", _PLANTED_BUG, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, env=environ, check=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: unexpected")]


@pytest.mark.parametrize("command", ["validate", "create"])
def test_a_bug_is_one_line_on_stderr_and_exit_1(env: Sandbox, tmp_path: Path, command: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    done = crash([command, str(manifest)])
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == error_lines(done.stderr), done.stderr  # that line and nothing else
    [line] = error_lines(done.stderr)
    assert "RuntimeError" in line and "reader exploded" in line  # the planted bug, not some other failure
    assert "--debug" in line  # says how to see more
    assert "Traceback" not in done.stderr
    assert os.environ["EASYPOST_API_KEY"] not in done.stderr
    assert done.stdout == ""
    assert env.ledger() == []


@pytest.mark.parametrize("how", ["--debug", "SHIPCTL_DEBUG=1"])
def test_debug_adds_the_traceback_with_the_key_scrubbed(env: Sandbox, tmp_path: Path, how: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    if how == "--debug":
        done = crash(["--debug", "validate", str(manifest)])
    else:
        done = crash(["validate", str(manifest)], SHIPCTL_DEBUG="1")
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "RuntimeError: reader exploded near" in done.stderr  # the traceback is the planted bug's
    assert len(error_lines(done.stderr)) == 1
    assert os.environ["EASYPOST_API_KEY"] not in done.stderr  # scrubbed from the traceback and the line


def _planted_bug(*args: object, **kwargs: object) -> object:
    raise RuntimeError("reader exploded")
    yield


def test_debug_in_one_invocation_does_not_stay_on_for_the_next_in_the_same_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Start with no SHIPCTL_DEBUG, and make sure whatever an invocation leaves in os.environ is undone afterwards.
    monkeypatch.setenv("SHIPCTL_DEBUG", "0")
    monkeypatch.delenv("SHIPCTL_DEBUG")
    monkeypatch.setattr("shipctl.manifest.iter_rows", _planted_bug)
    monkeypatch.setattr("shipctl.manifest.reader.iter_rows", _planted_bug)
    manifest = make_manifest(tmp_path / "orders.csv", 1)

    debugged = invoke("--debug", "validate", str(manifest))
    assert debugged.exit_code == 1
    assert "Traceback (most recent call last)" in debugged.stderr

    plain = invoke("validate", str(manifest))
    assert plain.exit_code == 1
    assert "error: unexpected RuntimeError" in plain.stderr
    assert "Traceback" not in plain.stderr  # the earlier --debug must not carry over


def test_debug_after_the_command_works_as_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """People add --debug where the trouble is: `shipctl validate x.csv --debug` was "No such option", exit 2."""
    monkeypatch.delenv("SHIPCTL_DEBUG", raising=False)
    monkeypatch.setattr("shipctl.manifest.iter_rows", _planted_bug)
    monkeypatch.setattr("shipctl.manifest.reader.iter_rows", _planted_bug)
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    debugged = invoke("validate", str(manifest), "--debug")
    assert debugged.exit_code == 1
    assert "Traceback (most recent call last)" in debugged.stderr
    # After `--`, it is an argument like any other (here the manifest's path, read by the planted bug), not the flag.
    literal = invoke("validate", "--", "--debug")
    assert literal.exit_code == 1 and "error: unexpected RuntimeError" in literal.stderr
    assert "Traceback" not in literal.stderr


def test_debug_first_moves_only_the_flag() -> None:
    assert debug_first(["create", "x.csv", "--debug", "-o", "ndjson"]) == ["--debug", "create", "x.csv", "-o", "ndjson"]
    assert debug_first(["create", "--", "--debug"]) == ["create", "--", "--debug"]
    assert debug_first(["validate", "x.csv"]) == ["validate", "x.csv"]
