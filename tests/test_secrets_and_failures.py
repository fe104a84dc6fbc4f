"""The API key never leaks, and a dead API or a refused key stops a run instead of failing every row."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import make_manifest

SECRET = "EZTKsecretsecretsecret0123456789"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secret_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("EASYPOST_API_BASE", sandbox.api_base)
    monkeypatch.setenv("EASYPOST_API_KEY", SECRET)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    return sandbox


def test_the_key_is_not_in_output_or_journal(secret_env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 5)
    result = invoke("create", str(manifest), "-o", "ndjson", "--verbose", "--labels-dir", str(tmp_path / "l"))
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 5
    assert SECRET not in result.stdout and SECRET not in result.stderr
    journal = tmp_path / "orders.csv.journal.db"
    with sqlite3.connect(journal) as db:  # checkpoint, so the WAL's content is in the file we read
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = b"".join(p.read_bytes() for p in tmp_path.glob("orders.csv.journal.db*"))
    assert SECRET.encode() not in data
    assert b"shp_" in data  # the check reads a real journal


def test_an_unreachable_api_stops_the_run_with_exit_1_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", f"http://127.0.0.1:{_closed_port()}/v2")
    monkeypatch.setenv("EASYPOST_API_KEY", SECRET)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    manifest = make_manifest(tmp_path / "orders.csv", 200)
    result = invoke("--debug", "create", str(manifest), "-o", "ndjson", "--concurrency", "2")
    assert result.exit_code == 1
    assert "answered no call" in result.stderr and "CONNECTION" in result.stderr
    assert len(ndjson(result.stdout)) < 200  # stopped early instead of failing every row
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_a_refused_key_stops_the_run(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", sandbox.api_base)
    monkeypatch.setenv("EASYPOST_API_KEY", "EZTKrevoked0000000000000000000")  # the sandbox answers 401
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    manifest = make_manifest(tmp_path / "orders.csv", 100)
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 1
    assert "answered no call" in result.stderr and "APIKEY.INACTIVE" in result.stderr
    assert len(ndjson(result.stdout)) < 100
    assert sandbox.ledger() == []


def test_a_key_written_into_the_api_url_is_not_kept_in_the_journal(secret_env: Sandbox, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal names the API it bought from; a URL carrying the key as its password is named without it."""
    monkeypatch.setenv("EASYPOST_API_BASE", secret_env.api_base.replace("://", f"://user:{SECRET}@"))
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert SECRET not in result.stdout and SECRET not in result.stderr
    journal = tmp_path / "orders.csv.journal.db"
    with sqlite3.connect(journal) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        [(target,)] = db.execute("SELECT value FROM meta WHERE key = 'target'").fetchall()
    assert target == f"{secret_env.api_base} (test key)"
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("orders.csv.journal.db*"))
