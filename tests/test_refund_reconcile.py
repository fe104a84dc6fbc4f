"""`shipctl refund` when a refund request's answer is lost: it re-reads the shipment instead of guessing.

A gateway in front of the sandbox decides, per refund request in arrival order, what becomes of it: passed
through, forwarded and committed but its answer lost (the connection closed unanswered, or a proxy's HTML error
page in its place), or lost before it reached the API. The real `shipctl refund` runs as a subprocess; the
sandbox's own record of each shipment (read with the SDK) is the truth.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any, Literal

import easypost
import pytest
import requests

from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY
from tests.gateway import ThreadedServer
from tests.sdk import shipments

Fate = Literal["pass", "commit_then_drop", "commit_then_502", "lost"]
_PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class RefundGate(ThreadedServer):
    """A reverse proxy that passes everything but refund requests, whose fates are taken from `fates` in arrival
    order (then "pass"). Counts the refund requests it saw and the ones it forwarded to the API."""

    def __init__(self, upstream: str, fates: list[Fate]) -> None:
        self.fates = list(fates)
        self.seen = 0
        self.forwarded = 0
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fate: Fate = "pass"
                if self.command == "POST" and self.path.split("?")[0].endswith("/refund"):
                    with lock:
                        outer.seen += 1
                        fate = outer.fates.pop(0) if outer.fates else "pass"
                if fate == "lost":
                    self._send(502, "text/html", _PROXY_PAGE)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=30)
                if self.command == "POST" and self.path.split("?")[0].endswith("/refund"):
                    with lock:
                        outer.forwarded += 1
                if fate == "commit_then_drop":
                    self.close_connection = True  # committed upstream; the client gets no answer at all
                    return
                if fate == "commit_then_502":
                    self._send(502, "text/html", _PROXY_PAGE)
                    return
                self._send(answer.status_code, answer.headers.get("Content-Type", "application/json"), answer.content)

            def _send(self, status: int, content_type: str, page: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = _proxy

        super().__init__(Handler)


@pytest.fixture
def gate(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[RefundGate]:
    proxy = RefundGate(env.api_base.removesuffix("/v2"), [])
    monkeypatch.setenv("EASYPOST_API_BASE", proxy.api_base)
    try:
        yield proxy
    finally:
        proxy.close()


def bought(sb: Sandbox, count: int) -> list[str]:
    """Labels bought with the SDK straight from the sandbox (not through the gateway)."""
    return shipments(sb, count)


def refund_status(sb: Sandbox, shipment_id: str) -> str | None:
    client = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
    try:
        return client.shipment.retrieve(shipment_id).refund_status  # type: ignore[no-any-return]
    finally:
        client._requests_session.close()


def refund(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run([sys.executable, "-m", "shipctl", "refund", *args, "-o", "ndjson", "--progress", "off"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, env=dict(os.environ),
                          check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr


@pytest.mark.parametrize("lost_answer", ["commit_then_drop", "commit_then_502"])
def test_a_refund_whose_answer_is_lost_after_commit_is_reported_as_submitted_and_never_asked_twice(
    env: Sandbox, gate: RefundGate, lost_answer: Fate
) -> None:
    [sid] = bought(env, 1)
    gate.fates = [lost_answer]
    code, rows, err = refund(sid)
    assert code == 0, err
    assert [(r["shipment_id"], r["status"], r["refund_status"], r["error_code"]) for r in rows] == [
        (sid, "submitted", "submitted", None)
    ]
    assert refund_status(env, sid) == "submitted"
    assert (gate.seen, gate.forwarded) == (1, 1)  # settled by reading the shipment, not by asking again

    code, rows, err = refund(sid)
    assert code == 0, err
    assert [r["status"] for r in rows] == ["already_submitted"]
    assert gate.seen == 1  # the second run did not request a second refund


def test_a_refund_lost_before_it_reached_the_api_is_asked_again_and_refunded_once(
    env: Sandbox, gate: RefundGate
) -> None:
    [sid] = bought(env, 1)
    gate.fates = ["lost"]
    code, rows, err = refund(sid)
    assert code == 0, err
    assert [(r["status"], r["refund_status"]) for r in rows] == [("submitted", "submitted")]
    assert refund_status(env, sid) == "submitted"
    assert (gate.seen, gate.forwarded) == (2, 1)  # the re-read showed nothing had happened: asked once more


@pytest.mark.slow
def test_a_refund_never_answered_fails_without_refunding_and_a_later_run_refunds_it(
    env: Sandbox, gate: RefundGate
) -> None:
    ids = bought(env, 2)
    gate.fates = ["lost"] * 100
    code, rows, err = refund(*ids)
    assert code == 3, err
    assert [(r["shipment_id"], r["status"], r["refund_status"]) for r in rows] == [
        (sid, "failed", None) for sid in ids
    ]
    assert all(r["error_code"] and r["error_message"] for r in rows)
    assert [refund_status(env, sid) for sid in ids] == [None, None]
    assert gate.forwarded == 0
    assert 2 * 2 <= gate.seen <= 2 * 6, gate.seen  # each shipment asked again after a re-read, but not for ever

    gate.fates = []
    code, rows, err = refund(*ids)
    assert code == 0, err
    assert [r["status"] for r in rows] == ["submitted", "submitted"]
    assert [refund_status(env, sid) for sid in ids] == ["submitted", "submitted"]
