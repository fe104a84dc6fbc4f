"""A reverse proxy in front of a sandbox, for tests of what lies between shipctl and the API."""

from __future__ import annotations

import contextlib
import http.server
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from shipctl.sandbox import Sandbox

Rule = Callable[[str, str, "requests.Response"], "tuple[int, str, bytes] | None"]
Hold = Callable[[str, str], "tuple[int, str, bytes] | None"]
"""Called with (method, path) before a request is forwarded; it may block, to hold the request at the gateway,
or answer it instead, without forwarding it (status, content type, body)."""


class ThreadedServer:
    """An HTTP server on 127.0.0.1 serving `handler` from threads until `close()`; `api_base` is its /v2 URL."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Gateway(ThreadedServer):
    """A reverse proxy in front of the sandbox: every request is forwarded (so a buy is committed), then `rule`
    may replace the answer -- as a load balancer's error page or a misbehaving middlebox would."""

    def __init__(self, upstream: str, rule: Rule, hold: Hold | None = None) -> None:
        self.rule = rule
        self.fired = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                instead = hold(self.command, self.path) if hold is not None else None
                if instead is not None:
                    self._send(*instead)
                    return
                answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=30)
                replaced = outer.rule(self.command, self.path, answer)
                if replaced is not None:
                    outer.fired += 1
                    status, content_type, page = replaced
                else:
                    status, page = answer.status_code, answer.content
                    content_type = answer.headers.get("Content-Type", "application/json")
                self._send(status, content_type, page)

            def _send(self, status: int, content_type: str, page: bytes) -> None:
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = _forward

        super().__init__(Handler)


@contextlib.contextmanager
def gateway_in_front(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch, rule: Rule, hold: Hold | None = None
) -> Iterator[Gateway]:
    proxy = Gateway(sb.api_base.removesuffix("/v2"), rule, hold)
    monkeypatch.setenv("EASYPOST_API_BASE", proxy.api_base)
    try:
        yield proxy
    finally:
        proxy.close()


def without_mode(value: Any) -> Any:
    """An API answer with every `mode` key removed, however deep: what an API that never names its mode sends."""
    if isinstance(value, dict):
        return {k: without_mode(v) for k, v in value.items() if k != "mode"}
    if isinstance(value, list):
        return [without_mode(v) for v in value]
    return value
