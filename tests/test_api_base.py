"""EASYPOST_API_BASE that is no http(s) URL: a usage error naming the variable, before any call (not a "broken
connection" from requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import TEST_KEY, invoke


@pytest.mark.parametrize("base", ["notaurl", "ftp://api.example.com/v2", "http://:80/v2", "http://127.0.0.1:99999999/v2"])
def test_a_malformed_api_base_is_a_usage_error(base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", base)
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: EASYPOST_API_BASE {base!r} is not an http(s) URL (e.g. https://api.easypost.com/v2, or "
        "http://127.0.0.1:8080/v2 for a sandbox); nothing was sent"
    ]
    assert TEST_KEY not in result.stdout + result.stderr


def test_a_well_formed_api_base_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback: nothing listens, so the run fails reaching it, naming the address it was given.
    monkeypatch.setenv("EASYPOST_API_BASE", "http://127.0.0.1:1/v2")
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1")
    assert result.exit_code != 2
    assert "cannot reach the API at http://127.0.0.1:1" in result.stderr
