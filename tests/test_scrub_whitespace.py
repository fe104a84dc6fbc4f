"""A key with whitespace around it is sent trimmed, so the trimmed form is what must be redacted (defect 14).

A real shipctl process talks to a small HTTP server that, like a careless API or proxy, echoes the credential
it received in its error message; the key must appear nowhere in what shipctl prints.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway import ThreadedServer
from tests.manifests import row, write_manifest

KEY_BODY = "mysecretkeyvalue123"  # not EZAK/EZTK-shaped: only the key itself can tell it apart


class EchoingServer(ThreadedServer):
    """Answers every request with `status` and an EasyPost-shaped error quoting the Authorization credential."""

    def __init__(self, status: int) -> None:
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                credential = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                body = json.dumps({"error": {
                    "code": "APIKEY.INVALID",
                    "message": f"the API key {credential} is not valid",
                    "errors": [{"field": "api_key", "message": f"got {credential}"}],
                }}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        super().__init__(Handler)


@pytest.fixture(params=[422, 500])
def echoing(request: pytest.FixtureRequest) -> Iterator[EchoingServer]:
    server = EchoingServer(request.param)
    try:
        yield server
    finally:
        server.close()


def run(args: list[str], server: EchoingServer, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EASYPOST_", "SHIPCTL_"))}
    env.update(
        EASYPOST_API_BASE=server.api_base,
        EASYPOST_API_KEY=f"  {KEY_BODY}  ",
        SHIPCTL_STATE_DIR=str(tmp_path / "state"),
        SHIPCTL_DEBUG="1",  # the traceback too must be scrubbed
    )
    return subprocess.run(
        [sys.executable, "-m", "shipctl", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env,
    )


def test_rates_never_prints_a_trimmed_key_the_server_echoes(echoing: EchoingServer, tmp_path: Path) -> None:
    result = run(["rates", "--to", "10001", "--from", "94105", "--weight", "1"], echoing, tmp_path)
    assert echoing.requests > 0  # the server was asked, and answered with the key in its message
    assert result.returncode != 0
    assert "[redacted]" in result.stdout + result.stderr  # the message itself is still shown
    assert KEY_BODY not in result.stdout
    assert KEY_BODY not in result.stderr


def test_create_never_prints_a_trimmed_key_the_server_echoes(echoing: EchoingServer, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = run(["create", str(manifest), "-o", "ndjson"], echoing, tmp_path)
    assert echoing.requests > 0
    assert result.returncode != 0
    assert KEY_BODY not in result.stdout
    assert KEY_BODY not in result.stderr
