"""The HTTP side: a threaded HTTP/1.1 keep-alive server, faults, latency, auth, and the `Sandbox` handle.

One thread per connection (stdlib `ThreadingHTTPServer`), so a request sleeping through its latency never
holds up another. TCP_NODELAY on every accepted socket. Each response goes out in one write.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from shipctl.sandbox.api import Request, SandboxApi, match
from shipctl.sandbox.faults import FaultPlan, FaultSpec, Latency
from shipctl.sandbox.model import ApiError
from shipctl.sandbox.store import Store

RETRY_AFTER_SECONDS = 1

_FAULT_ERRORS: dict[str, ApiError] = {
    "rate_limit": ApiError(429, "RATE_LIMITED", "You have exceeded the rate limit. Please retry later."),
    "server_error_500": ApiError(500, "INTERNAL_SERVER_ERROR",
                                 "We're sorry, something went wrong. If the problem persists please contact support."),
    "server_error_503": ApiError(503, "SERVICE_UNAVAILABLE",
                                 "The service is temporarily unavailable. Please retry later."),
}
_UNAUTHORIZED = ApiError(401, "APIKEY.REQUIRED",
                         "This request requires an API key. Please provide it in the Authorization header.")
# A key containing "revoked" is refused, so clients can be tested against a key EasyPost no longer accepts.
_INACTIVE = ApiError(401, "APIKEY.INACTIVE", "The API key provided is inactive or has been revoked.")
_INFLIGHT = ApiError(429, "RATE_LIMITED", "Too many concurrent requests. Please retry later.")


class _Date:
    """`Date` header, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._value = formatdate(now, usegmt=True)
            self._second = now
        return self._value


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: SandboxApi, plan: FaultPlan,
                 max_inflight: int | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)
        self.api = api
        self.plan = plan
        self.max_inflight = max_inflight
        self.inflight = 0
        self.inflight_lock = threading.Lock()
        self.stopping = threading.Event()
        self.date = _Date()
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._conns_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True,
                                  name="sandbox-conn")
        with self._conns_lock:
            self._conns.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: S110 - a client vanishing mid-request is normal here
            pass
        finally:
            self.shutdown_request(request)
            with self._conns_lock:
                self._conns.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:  # keep stderr quiet
        pass

    def close_connections(self, timeout: float = 5.0) -> None:
        """Wake every handler blocked on a keep-alive read, and wait for the handler threads to end."""
        self.stopping.set()
        with self._conns_lock:
            conns = list(self._conns)
            threads = list(self._conn_threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shipctl-sandbox"
    sys_version = ""
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ responses

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Date: {self.server.date.get()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"X-Ep-Request-Uuid: {uuid.uuid4().hex}",
        ]
        if extra:
            head.extend(f"{k}: {v}" for k, v in extra.items())
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, separators=(",", ":")).encode(), extra=extra)

    def _send_error(self, err: ApiError, extra: dict[str, str] | None = None) -> None:
        self._send_json(err.status, err.body(), extra)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path, _, qs = self.path.partition("?")
        server = self.server
        if path.startswith("/labels/") and method == "GET":
            found = server.api.label_file(path[len("/labels/"):])
            if found is None:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
            else:
                self._send(200, found[1], found[0])
            return
        if path == "/v2/_sandbox/ledger" and method == "GET":
            self._send_json(200, {"ledger": server.api.store.ledger_copy()})
            return
        route = match(method, path)
        endpoint = route[0] if route else "unknown"
        with server.inflight_lock:
            server.inflight += 1
            over = server.max_inflight is not None and server.inflight > server.max_inflight
        try:
            if over:
                self._send_error(_INFLIGHT, {"Retry-After": str(RETRY_AFTER_SECONDS)})
                return
            self._serve_api(method, path, qs, raw, endpoint, route[1] if route else ())
        finally:
            with server.inflight_lock:
                server.inflight -= 1

    def _serve_api(self, method: str, path: str, qs: str, raw: bytes, endpoint: str,
                   params: tuple[str, ...]) -> None:
        server = self.server
        fault = server.plan.draw(endpoint == "shipment.buy")
        if fault == "drop":
            self.close_connection = True
            return
        if fault in _FAULT_ERRORS:
            extra = {"Retry-After": str(RETRY_AFTER_SECONDS)} if fault == "rate_limit" else None
            self._send_error(_FAULT_ERRORS[fault], extra)
            return
        auth = self.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._send_error(_UNAUTHORIZED)
            return
        if "revoked" in key:
            self._send_error(_INACTIVE)
            return
        delay = server.plan.delay(endpoint)
        started = time.perf_counter()
        if delay > 0 and server.stopping.wait(delay):
            self.close_connection = True
            return
        if endpoint == "unknown":
            status, payload = 404, ApiError(404, "NOT_FOUND", "The requested resource could not be found.").body()
        else:
            try:
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise ValueError("body is not a JSON object")
            except ValueError:
                err = ApiError(400, "BAD_REQUEST", "The request body could not be parsed as JSON.")
                self._send_error(err)
                return
            host = self.headers.get("Host") or f"127.0.0.1:{server.server_address[1]}"
            req = Request(method, path, dict(parse_qsl(qs)), body,
                          "production" if key.startswith("EZAK") else "test", f"http://{host}")
            req.params = params
            try:
                status, payload = server.api.handle(endpoint, req)
            except ApiError as exc:
                status, payload = exc.status, exc.body()
            except Exception:  # a sandbox bug: answer like EasyPost would, never kill the connection
                status, payload = 500, _FAULT_ERRORS["server_error_500"].body()
        if fault == "commit_then_drop" and status < 300:
            self.close_connection = True
            return
        runtime = time.perf_counter() - started  # `started` precedes the injected sleep: it is included once
        self._send_json(status, payload, {"X-Runtime": f"{runtime:.6f}"})


class Sandbox:
    """A running sandbox: `api_base`, `ledger()`, `close()`."""

    def __init__(self, *, latency: Latency = "none", faults: str | None = None, seed: int | None = None,
                 max_inflight: int | None = None, state_path: Path | None = None,
                 ledger_path: Path | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if max_inflight is not None and max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.plan = FaultPlan(FaultSpec.parse(faults), latency, seed)
        self.store = Store(state_path, ledger_path)
        try:
            self.api = SandboxApi(self.store)
            self._server = SandboxHTTPServer((host, port), self.api, self.plan, max_inflight)
        except BaseException:
            self.store.close()
            raise
        self.host = host
        self.port: int = self._server.server_address[1]
        wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - wildcard bind -> dialable URL
        url_host = wildcards.get(host, host)
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self.url = f"http://{url_host}:{self.port}"
        self.api_base = f"{self.url}/v2"
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> Sandbox:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="sandbox-server")
        self._thread.start()
        return self

    def ledger(self) -> list[dict[str, Any]]:
        return self.store.ledger_copy()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.store.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def start_sandbox(*, latency: Latency = "none", faults: str | None = None, seed: int | None = None,
                  max_inflight: int | None = None, state_path: Path | None = None,
                  ledger_path: Path | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[Sandbox]:
    """Run a sandbox on a background thread for the duration of the `with` block."""
    sb = Sandbox(latency=latency, faults=faults, seed=seed, max_inflight=max_inflight, state_path=state_path,
                 ledger_path=ledger_path, host=host, port=port)
    sb.start()
    try:
        yield sb
    finally:
        sb.close()
