"""Plain helpers the CLI tests share: keys, running a command in-process, NDJSON, pointing shipctl at a sandbox.

The fixtures built on them (`env`) are in conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipctl.cli.app import app
from shipctl.sandbox import Sandbox

TEST_KEY = "EZTK0123456789abcdef0123456789"
PROD_KEY = "EZAK0123456789abcdef0123456789"


def invoke(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def point_at(monkeypatch: pytest.MonkeyPatch, sb: Sandbox, state_dir: Path) -> None:
    """Run shipctl against this sandbox with the test key, its state (locks, spooled stdin) under `state_dir`."""
    monkeypatch.setenv("EASYPOST_API_BASE", sb.api_base)
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(state_dir))
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)  # a developer's own default origin must not leak in
