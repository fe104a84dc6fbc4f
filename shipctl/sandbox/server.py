"""The HTTP side: an asyncio HTTP/1.1 keep-alive server, faults, latency, auth, and the `Sandbox` handle.

One event loop (uvloop where it is installed) on its own thread serves every connection through an
`asyncio.Protocol`; no thread per connection, so busy clients do not convoy on the GIL. The API logic
(`SandboxApi.handle`) is synchronous and quick, ~0.1 ms in memory and ~1 ms with the SQLite write-through of
a state file: it runs inline on the loop. Rendering a PNG label file takes ~17 ms, so label files are rendered
in a small thread pool. Injected latency is `await asyncio.sleep`, so a slow request never holds up
another. TCP_NODELAY on every connection; each response goes out in one write.

HTTP/1.1 as the SDK (requests/urllib3) and http.client speak it: keep-alive, pipelined requests answered in
order, Content-Length bodies (`Expect: 100-continue` honoured). A chunked body gets 411 and a malformed
request 400, then the connection is closed; `Connection: close` and HTTP/1.0 close after the answer.

Keys: by default any non-empty Bearer key is accepted and names its account (`model.account_for_key`). With an
`access_key`, every request -- the API, the ledger and the label files alike -- must carry exactly that key
(compared in constant time), and all of them act for one fixed account, `model.DEFAULT_ACCOUNT`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

from shipctl import startup
from shipctl.sandbox.api import Request, SandboxApi, match
from shipctl.sandbox.faults import Fault, FaultPlan, FaultSpec, FormRefusals, Latency, capacity_slowdown
from shipctl.sandbox.model import DEFAULT_ACCOUNT, ApiError, account_for_key
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
_NOT_FOUND = ApiError(404, "NOT_FOUND", "The requested resource could not be found.")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_MAX_HEAD = 64 * 1024  # request line + headers
_MAX_BODY = 16 * 1024 * 1024  # the API's bodies are a few kB of JSON
_READ_PAUSE = 256 * 1024  # stop reading a connection that pipelines this much while its answer waits
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_VERSION = re.compile(r"HTTP/\d+\.\d+\Z")
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_JSON = "application/json; charset=utf-8"


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows, or uvloop not installed: the stdlib loop
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.setblocking(False)
    return sock


class _Date:
    """`Date` header, formatted at most once a second, on the sandbox's clock (`offset`: its `--shift-clock`), the
    clock its objects' `created_at` are dated by: a client judging an age by the two must see them agree."""

    def __init__(self, offset: Callable[[], float] = lambda: 0.0) -> None:
        self._second = -1
        self._value = ""
        self._offset = offset

    def get(self) -> str:
        now = int(time.time() + self._offset())
        if now != self._second:
            self._value = formatdate(now, usegmt=True)
            self._second = now
        return self._value


def _bearer(req: _Request) -> str:
    """The Bearer credential of a request, trimmed; "" when there is none."""
    scheme, _, key = req.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


class _Request:
    """A parsed request head, then its body."""

    __slots__ = ("body", "body_start", "continued", "headers", "keep_alive", "length", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], keep_alive: bool, body_start: int,
                 length: int) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # lower-case names
        self.keep_alive = keep_alive
        self.body_start = body_start
        self.length = length
        self.continued = False  # "100 Continue" sent
        self.body = b""


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _head_end(buf: bytearray) -> re.Match[bytes] | None:
    """Where the buffered request head ends, or None while it is still coming in."""
    if not buf:
        return None
    if buf[0] in (13, 10):  # stray line ends between requests are allowed (RFC 9112 §2.2)
        del buf[:len(buf) - len(buf.lstrip(b"\r\n"))]
    found = _HEAD_END.search(buf)
    # Checked before the head is complete too, so a client cannot make the buffer grow without bound.
    if (len(buf) if found is None else found.start()) > _MAX_HEAD:
        raise _BadRequest(431, "Request header fields too large.")
    return found


def _parse_request_line(line: str) -> tuple[str, str, str]:
    """(method, target, version) of a request line; a well-formed line for another HTTP version gets 505."""
    parts = line.split(" ")
    if len(parts) != 3:
        raise _BadRequest(400, "Malformed request line.")
    method, target, version = parts
    if not method.isalpha() or not target.startswith("/"):
        raise _BadRequest(400, "Malformed request line.")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if _VERSION.match(version):
            raise _BadRequest(505, "HTTP version not supported.")
        raise _BadRequest(400, "Malformed request line.")
    return method, target, version


def _parse_headers(lines: list[str]) -> dict[str, str]:
    """Header lines by lower-case name; a repeated header's values joined with ", " (RFC 9110 §5.3)."""
    headers: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\r")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name or "\t" in name:
            raise _BadRequest(400, "Malformed header line.")
        name = name.lower()
        value = value.strip()
        if name in headers:
            if name == "content-length":
                # Identical copies are harmless; differing ones leave the body's length ambiguous (RFC 9112 §6.3).
                if headers[name] != value:
                    raise _BadRequest(400, "Conflicting Content-Length headers.")
                continue
            value = f"{headers[name]}, {value}"
        headers[name] = value
    return headers


def _body_length(headers: dict[str, str]) -> int:
    """The body's size from Content-Length (0 without one); chunked bodies are refused."""
    if "transfer-encoding" in headers:
        raise _BadRequest(411, "Chunked request bodies are not supported: send a Content-Length.")
    cl = headers.get("content-length")
    if cl is None:
        return 0
    if not (cl.isascii() and cl.isdigit()):
        raise _BadRequest(400, "Malformed Content-Length.")
    length = int(cl)
    if length > _MAX_BODY:
        raise _BadRequest(413, "Request body too large.")
    return length


class _Server:
    """What every connection shares: the API, the fault plan, the in-flight count, the live connections."""

    def __init__(self, api: SandboxApi, plan: FaultPlan, max_inflight: int | None, port: int,
                 access_key: str | None = None) -> None:
        self.api = api
        self.plan = plan
        self.max_inflight = max_inflight
        self.port = port
        self.access_key = None if access_key is None else access_key.encode("utf-8")
        self.inflight = 0
        # Server time served per endpoint (answers only, X-Runtime summed): a benchmark's ceiling is 16 ÷ the time
        # the server actually took for the calls of the run it measures, not for a sample taken beforehand.
        self.runtime: dict[str, list[float]] = {}
        self.date = _Date(lambda: api.clock_offset)
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.files = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-label")

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Cancel requests still sleeping or rendering, close every connection, wait for them to go."""
        self.stopping = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for conn in list(self.connections):
            conn.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:  # a client not reading our last answer
            await asyncio.sleep(0.005)
        for conn in list(self.connections):
            conn.abort()
        while self.connections and time.monotonic() < deadline + timeout:
            await asyncio.sleep(0.005)


class _Connection(asyncio.Protocol):
    """One client connection: buffers bytes, parses requests in order, answers each in one write."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: _Request | None = None  # parsed head waiting for its body
        self.busy = False  # a request is being answered by a task; later ones wait in `buf`
        self.closing = False
        self.eof = False
        self.paused_reading = False
        self.paused_writing = False

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.stopping:
            self.close()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # A request still sleeping through its latency goes on and is served (a buy is committed), like a
        # server whose client gave up waiting; only its answer is lost.
        self.closing = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.buf += data
        if self.busy or self.paused_writing:
            if len(self.buf) > _READ_PAUSE and not self.paused_reading and self.transport is not None:
                self.paused_reading = True
                self.transport.pause_reading()
            return
        self._serve_buffered()

    def eof_received(self) -> bool:
        self.eof = True
        if self.busy or self.paused_writing:
            return True  # keep the write side open for the answer; closed once it is sent
        self.closing = True
        return False

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        if not self.busy and not self.closing:
            self._serve_buffered()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ parsing

    def _serve_buffered(self) -> None:
        try:
            while not (self.closing or self.busy or self.paused_writing):
                req = self._next_request()
                if req is None:
                    break
                self._dispatch(req)
        except _BadRequest as exc:
            self._send_error(None, ApiError(exc.status, "BAD_REQUEST", exc.message), close=True)
            return
        except Exception:  # a sandbox bug must not take the loop down: drop this connection only
            self.abort()
            return
        if self.closing or self.busy or self.paused_writing:
            return
        if self.eof:
            self.close()
        elif self.paused_reading and self.transport is not None:
            self.paused_reading = False
            self.transport.resume_reading()

    def _next_request(self) -> _Request | None:
        req = self.pending
        if req is None:
            req = self._parse_head()
            if req is None:
                return None
        end = req.body_start + req.length
        if len(self.buf) < end:
            self.pending = req
            if not req.continued and req.headers.get("expect", "").lower() == "100-continue":
                req.continued = True
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        self.pending = None
        req.body = bytes(self.buf[req.body_start:end])
        del self.buf[:end]
        return req

    def _parse_head(self) -> _Request | None:
        found = _head_end(self.buf)
        if found is None:
            return None
        lines = self.buf[:found.start()].decode("latin-1").split("\n")
        method, target, version = _parse_request_line(lines[0].rstrip("\r"))
        headers = _parse_headers(lines[1:])
        length = _body_length(headers)
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = version == "HTTP/1.1" and "close" not in tokens
        return _Request(method, target, headers, keep_alive, found.end(), length)

    # ------------------------------------------------------------------ responses

    def _send(self, req: _Request | None, status: int, body: bytes, content_type: str = _JSON,
              extra: dict[str, str] | None = None, *, close: bool = False) -> None:
        if self.closing or self.transport is None:
            return  # the client is gone (or the server stopping): the answer has nowhere to go
        close = close or req is None or not req.keep_alive
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Date: {self.server.date.get()}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"X-Ep-Request-Uuid: {uuid.uuid4().hex}\r\n")
        if extra:
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        if close:
            head += "Connection: close\r\n"
        self.transport.write((head + "\r\n").encode("latin-1") + body)
        if close:
            self.close()

    def _send_json(self, req: _Request | None, status: int, payload: Any, extra: dict[str, str] | None = None,
                   *, close: bool = False) -> None:
        self._send(req, status, json.dumps(payload, separators=(",", ":")).encode(), extra=extra, close=close)

    def _send_error(self, req: _Request | None, err: ApiError, extra: dict[str, str] | None = None, *,
                    close: bool = False) -> None:
        self._send_json(req, err.status, err.body(), extra, close=close)

    # ------------------------------------------------------------------ dispatch

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Answer the current request from a task; the connection's later requests wait for it."""
        self.busy = True
        task = asyncio.get_running_loop().create_task(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def _done(self) -> None:
        self.busy = False
        if not self.closing:
            self._serve_buffered()

    def _refusal(self, req: _Request) -> ApiError | None:
        """Why a sandbox with an access key refuses this request, or None when it carries that key."""
        expected = self.server.access_key
        assert expected is not None
        key = _bearer(req)
        if not key:
            return _UNAUTHORIZED
        # The header was decoded as latin-1: encoding it back gives the bytes sent, which for the right key are
        # its UTF-8 bytes.
        if not hmac.compare_digest(key.encode("latin-1"), expected):
            return _INACTIVE
        return None

    def _caller(self, req: _Request) -> tuple[str, str] | ApiError:
        """(key, account) of the request, or why it is refused: no key, or (without an access key) a revoked one."""
        key = _bearer(req)
        if not key:
            return _UNAUTHORIZED
        if self.server.access_key is not None:
            return key, DEFAULT_ACCOUNT  # checked before anything else by _refusal
        if "revoked" in key:
            return _INACTIVE
        return key, account_for_key(key)

    def _own_view(self, req: _Request, path: str) -> bool:
        """The sandbox's own views, not EasyPost's API: the ledger of labels bought, and the server time served per
        endpoint (benchmarks divide by it)."""
        server = self.server
        if path == "/v2/_sandbox/ledger":
            self._send_json(req, 200, {"ledger": server.api.store.ledger_copy()})
            return True
        if path == "/v2/_sandbox/runtime":
            served = {name: {"count": int(c), "seconds": round(t, 6)} for name, (c, t) in server.runtime.items()}
            self._send_json(req, 200, {"runtime": served})
            return True
        return False

    def _dispatch(self, req: _Request) -> None:
        server = self.server
        method = req.method
        path, _, qs = req.target.partition("?")
        if method not in _METHODS:
            self._send_error(req, ApiError(501, "NOT_IMPLEMENTED", f"Unsupported method {method!r}."), close=True)
            return
        if server.access_key is not None:
            # Before anything else, so that without the key nothing is served, counted or drawn from the faults.
            refusal = self._refusal(req)
            if refusal is not None:
                self._send_error(req, refusal)
                return
        if path.startswith("/labels/") and method == "GET":
            self._start(self._label_file(req, path[len("/labels/"):]))
            return
        if path.startswith("/v2/_sandbox/") and method == "GET" and self._own_view(req, path):
            return
        route = match(method, path)
        endpoint = route[0] if route else "unknown"
        params = route[1] if route else ()
        server.inflight += 1
        handed_off = False
        try:
            if server.max_inflight is not None and server.inflight > server.max_inflight:
                self._send_error(req, _INFLIGHT, {"Retry-After": str(RETRY_AFTER_SECONDS)})
                return
            fault = server.plan.draw(endpoint == "shipment.buy")  # in arrival order: this loop is one thread
            if fault == "drop":
                self.close()
                return
            if fault in _FAULT_ERRORS:
                extra = {"Retry-After": str(RETRY_AFTER_SECONDS)} if fault == "rate_limit" else None
                self._send_error(req, _FAULT_ERRORS[fault], extra)
                return
            caller = self._caller(req)
            if isinstance(caller, ApiError):
                self._send_error(req, caller)
                return
            key, account = caller
            delay = server.plan.delay(endpoint) * capacity_slowdown(server.inflight, server.max_inflight)
            started = time.perf_counter()
            if delay > 0:
                self._start(self._after_delay(delay, started, req, path, qs, endpoint, params, fault, key, account))
                handed_off = True
                return
            self._answer(started, req, path, qs, endpoint, params, fault, key, account)
        finally:
            if not handed_off:
                server.inflight -= 1

    async def _after_delay(self, delay: float, started: float, req: _Request, path: str, qs: str, endpoint: str,
                           params: tuple[str, ...], fault: Fault | None, key: str, account: str) -> None:
        try:
            await asyncio.sleep(delay)
            self._answer(started, req, path, qs, endpoint, params, fault, key, account)
        except asyncio.CancelledError:  # the server is stopping: close without an answer, nothing done
            self.abort()
            raise
        except Exception:
            self.abort()
        finally:
            self.server.inflight -= 1
        self._done()

    async def _label_file(self, req: _Request, name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(self.server.files, self.server.api.label_file, name)
            if found is None:
                self._send(req, 404, b"not found\n", "text/plain; charset=utf-8")
            else:
                self._send(req, 200, found[1], found[0])
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            self.abort()
        self._done()

    def _answer(self, started: float, req: _Request, path: str, qs: str, endpoint: str, params: tuple[str, ...],
                fault: Fault | None, key: str, account: str) -> None:
        server = self.server
        if endpoint == "unknown":
            status, payload = 404, _NOT_FOUND.body()
        else:
            try:
                body = json.loads(req.body) if req.body else {}
                if not isinstance(body, dict):
                    raise ValueError("body is not a JSON object")
            except ValueError:
                self._send_error(req, ApiError(400, "BAD_REQUEST", "The request body could not be parsed as JSON."))
                return
            host = req.headers.get("host") or f"127.0.0.1:{server.port}"
            api_req = Request(req.method, path, dict(parse_qsl(qs)), body,
                              "production" if key.startswith("EZAK") else "test", f"http://{host}", account)
            api_req.params = params
            try:
                status, payload = server.api.handle(endpoint, api_req)
            except ApiError as exc:
                status, payload = exc.status, exc.body()
            except Exception:  # a sandbox bug: answer like EasyPost would, never kill the connection
                status, payload = 500, _FAULT_ERRORS["server_error_500"].body()
        if fault == "commit_then_drop" and status < 300:
            self.close()
            return
        runtime = time.perf_counter() - started  # `started` precedes the injected sleep: it is included once
        served = server.runtime.setdefault(endpoint, [0.0, 0.0])
        served[0] += 1
        served[1] += runtime
        self._send_json(req, status, payload, {"X-Runtime": f"{runtime:.6f}"})


class Sandbox:
    """A running sandbox: `api_base`, `ledger()`, `close()`; for tests, `set_clock()` and `scan()`."""

    def __init__(self, *, latency: Latency = "none", faults: str | None = None, seed: int | None = None,
                 max_inflight: int | None = None, state_path: Path | None = None,
                 ledger_path: Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 access_key: str | None = None, refuse_forms: Iterable[str] = (),
                 clock_offset_days: float = 0.0) -> None:
        startup.work_begins()  # `sandbox serve` runs for hours: never with the collector paused
        if max_inflight is not None and max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        if access_key is not None and not access_key.strip():
            raise ValueError("access_key must not be empty")
        if access_key is not None and access_key != access_key.strip():
            raise ValueError("access_key must not start or end with whitespace")
        self.plan = FaultPlan(FaultSpec.parse(faults), latency, seed)
        # Shipments refused on any SCAN form, by reference or id; more can be added while it runs.
        self.form_refusals = FormRefusals(refuse_forms)
        self.store = Store(state_path, ledger_path)
        try:
            self.api = SandboxApi(self.store, self.form_refusals)
            self.set_clock(clock_offset_days)
            self._sock = _listen(host, port)
        except BaseException:
            self.store.close()
            raise
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - wildcard bind -> dialable URL
        url_host = wildcards.get(host, host)
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self.url = f"http://{url_host}:{self.port}"
        self.api_base = f"{self.url}/v2"
        self._server = _Server(self.api, self.plan, max_inflight, self.port, access_key)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._closed = False

    def start(self) -> Sandbox:
        """Serve on a background thread with its own event loop; returns once the server is listening."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="sandbox-server")
        self._thread.start()
        ready.wait()
        if self._failure is not None:
            self._thread.join()
            self.close()
            raise self._failure
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = _new_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:
            self._failure = exc
        finally:
            ready.set()
            self._server.files.shutdown(wait=True)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # keep stderr quiet, like a quiet server
        self._stop = asyncio.Event()
        server = await loop.create_server(lambda: _Connection(self._server), sock=self._sock)
        ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            await self._server.shutdown()
            await server.wait_closed()

    def ledger(self) -> list[dict[str, Any]]:
        return self.store.ledger_copy()

    def set_clock(self, offset_days: float) -> None:
        """Run the sandbox's clock `offset_days` from the real one from the next request on (negative: in the
        past), so a label can be bought "8 days ago" and a later one today."""
        self.api.clock_offset = float(offset_days) * 86400.0

    def scan(self, label: str, status: str = "in_transit") -> dict[str, Any]:
        """The carrier scans a bought label (shipment id or tracking code): its tracking moves on to `status`, the
        scan's event dated now on the sandbox's clock (`set_clock`)."""
        return self.api.scan(label, status)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is not None and loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
            thread.join()
        else:
            self._server.files.shutdown(wait=True)
        self._sock.close()
        self.store.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def start_sandbox(*, latency: Latency = "none", faults: str | None = None, seed: int | None = None,
                  max_inflight: int | None = None, state_path: Path | None = None,
                  ledger_path: Path | None = None, host: str = "127.0.0.1", port: int = 0,
                  access_key: str | None = None, refuse_forms: Iterable[str] = (),
                  clock_offset_days: float = 0.0) -> Iterator[Sandbox]:
    """Run a sandbox on a background thread for the duration of the `with` block."""
    sb = Sandbox(latency=latency, faults=faults, seed=seed, max_inflight=max_inflight, state_path=state_path,
                 ledger_path=ledger_path, host=host, port=port, access_key=access_key, refuse_forms=refuse_forms,
                 clock_offset_days=clock_offset_days)
    sb.start()
    try:
        yield sb
    finally:
        sb.close()
