"""The sandbox's HTTP/1.1 layer over raw sockets: pipelining, framing errors, connection handling, latency."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import shipment_params

AUTH = "Authorization: Bearer EZTKhttp\r\n"


@contextmanager
def connect(sb: Sandbox) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as sock:
        yield sock


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from `sock` (bytes past it stay in `buf`)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    start = len(head) + 4
    end = start + int(headers.get("content-length", "0"))
    while len(buf) < end:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    body = bytes(buf[start:end])
    del buf[:end]
    return status, headers, body


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def post_shipment(reference: str, extra: str = "") -> bytes:
    body = json.dumps({"shipment": shipment_params(reference)}).encode()
    return (f"POST /v2/shipments HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order(sandbox: Sandbox) -> None:
    with connect(sandbox) as sock:
        sock.sendall(post_shipment("p1") + post_shipment("p2") + b"GET /v2/shipments/nope HTTP/1.1\r\n"
                     + AUTH.encode() + b"\r\n")
        buf = bytearray()
        answers = [read_response(sock, buf) for _ in range(3)]
    assert [a[0] for a in answers] == [201, 201, 404]
    assert [json.loads(a[2])["reference"] for a in answers[:2]] == ["p1", "p2"]
    assert all("connection" not in a[1] for a in answers)


def test_a_request_split_across_writes_is_reassembled(sandbox: Sandbox) -> None:
    raw = post_shipment("split")
    with connect(sandbox) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(raw), 7):
            sock.sendall(raw[i:i + 7])
        status, _, body = read_response(sock, bytearray())
    assert status == 201 and json.loads(body)["reference"] == "split"


def test_chunked_body_is_refused_with_411_and_closed(sandbox: Sandbox) -> None:
    with connect(sandbox) as sock:
        sock.sendall(b"POST /v2/shipments HTTP/1.1\r\nHost: x\r\n" + AUTH.encode()
                     + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        status, headers, _ = read_response(sock, bytearray())
        assert status == 411 and headers["connection"] == "close"
        assert closed_by_server(sock)


def test_malformed_requests_get_400_and_are_closed(sandbox: Sandbox) -> None:
    for raw in (b"NONSENSE\r\n\r\n", b"GET /v2/shipments HTTP/1.1\r\nno colon here\r\n\r\n",
                b"POST /v2/shipments HTTP/1.1\r\nContent-Length: ten\r\n\r\n"):
        with connect(sandbox) as sock:
            sock.sendall(raw)
            status, headers, _ = read_response(sock, bytearray())
            assert status == 400 and headers["connection"] == "close", raw
            assert closed_by_server(sock)


def test_connection_close_and_http_1_0_close_after_the_answer(sandbox: Sandbox) -> None:
    for raw in (post_shipment("close", "Connection: close\r\n"),
                b"GET /v2/shipments HTTP/1.0\r\n" + AUTH.encode() + b"\r\n"):
        with connect(sandbox) as sock:
            sock.sendall(raw)
            status, headers, _ = read_response(sock, bytearray())
            assert status in (200, 201) and headers["connection"] == "close"
            assert closed_by_server(sock)


def test_expect_100_continue(sandbox: Sandbox) -> None:
    raw = post_shipment("expect", "Expect: 100-continue\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    with connect(sandbox) as sock:
        sock.sendall(head + b"\r\n\r\n")
        buf = bytearray()
        assert read_response(sock, buf)[0] == 100
        sock.sendall(body)
        status, _, answer = read_response(sock, buf)
    assert status == 201 and json.loads(answer)["reference"] == "expect"


def test_latency_is_in_x_runtime_and_a_slow_request_does_not_hold_up_another() -> None:
    with start_sandbox(latency="realistic", seed=2) as sb:
        results: dict[str, float] = {}

        def label(name: str) -> None:  # label conversion sleeps ~1.4 s (realistic); 404 after the sleep
            with connect(sb) as sock:
                # Timed from before the send: the server's clock starts once the request is in, which can be
                # before this thread runs again after `sendall` on a loaded machine (CI saw 3 ms of that).
                t0 = time.perf_counter()
                sock.sendall(b"GET /v2/shipments/shp_nope/label?file_format=PDF HTTP/1.1\r\n" + AUTH.encode()
                             + b"\r\n")
                status, headers, _ = read_response(sock, bytearray())
                results[name] = time.perf_counter() - t0
                assert status == 404
                results[name + ".runtime"] = float(headers["x-runtime"])

        slow = threading.Thread(target=label, args=("slow",))
        slow.start()
        # The slow request is in the server (counted in flight, asleep) before the cheap one is sent: a condition
        # waited for, not a guess at how long a thread takes to start.
        deadline = time.monotonic() + 30
        while sb._server.inflight < 1:
            assert time.monotonic() < deadline, "the slow request never reached the sandbox"
            time.sleep(0.001)
        with connect(sb) as sock:  # a cheap request while the slow one sleeps
            sock.sendall(b"GET /v2/_sandbox/ledger HTTP/1.1\r\n\r\n")
            assert read_response(sock, bytearray())[0] == 200
            answered_first = "slow" not in results  # the slow one still asleep: it did not hold this one up
        slow.join()
    assert answered_first
    assert results["slow"] > 0.3
    assert results["slow.runtime"] > 0.3 and results["slow.runtime"] <= results["slow"]


def test_close_ends_idle_and_sleeping_connections() -> None:
    sb = Sandbox(latency="realistic", seed=3).start()
    idle = socket.create_connection(("127.0.0.1", sb.port), timeout=10)
    sleeping = socket.create_connection(("127.0.0.1", sb.port), timeout=10)
    try:
        sleeping.sendall(b"GET /v2/shipments/shp_nope/label HTTP/1.1\r\n" + AUTH.encode() + b"\r\n")
        deadline = time.monotonic() + 30
        while sb._server.inflight < 1:  # asleep in the server: a condition waited for, not a guess
            assert time.monotonic() < deadline, "the request never reached the sandbox"
            time.sleep(0.001)
        t0 = time.perf_counter()
        sb.close()
        assert time.perf_counter() - t0 < 1.0  # the label's realistic delay is ~1.4 s: not waited for
        assert closed_by_server(idle) and closed_by_server(sleeping)
    finally:
        idle.close()
        sleeping.close()


def test_the_runtime_view_sums_the_server_time_of_every_answer_per_endpoint() -> None:
    import easypost
    import requests

    seen: dict[str, float] = {}

    def hook(*, http_status: int, path: str, headers: Any, **_: Any) -> None:
        name = "shipment.buy" if path.endswith("/buy") else "shipment.create"
        seen[name] = seen.get(name, 0.0) + float(headers["X-Runtime"])

    with start_sandbox(latency="fast", seed=3) as sb:
        client = easypost.EasyPostClient("EZTKruntime0000000000000000", api_base=sb.api_base)
        client.subscribe_to_response_hook(hook)
        shipments = [client.shipment.create(**shipment_params()) for _ in range(2)]
        client.shipment.buy(shipments[0].id, rate={"id": shipments[0].rates[0].id})
        served = requests.get(f"{sb.api_base}/_sandbox/runtime", timeout=10).json()["runtime"]
    assert served["shipment.create"]["count"] == 2 and served["shipment.buy"]["count"] == 1
    for name, total in seen.items():
        assert abs(served[name]["seconds"] - total) < 1e-4


@pytest.mark.parametrize("days", [-8, 0, 8])
def test_the_date_header_and_created_at_keep_the_sandboxs_clock(days: int) -> None:
    """A client ages a shipment by the answer's Date against its `created_at`: a shifted clock shifts both."""
    import datetime as dt

    from shipctl.carrier.client import make_client
    from shipctl.carrier.shipments import create_shipment, retrieve_shipment

    with start_sandbox(clock_offset_days=days) as sb:
        client = make_client("EZTKclock", sb.api_base, pool_size=1)
        try:
            made = create_shipment(client, shipment_params("clock-1"))
            seen = retrieve_shipment(client, made.id)
        finally:
            client._requests_session.close()
    assert seen.seen_at is not None and seen.created_at is not None
    assert abs((seen.seen_at - seen.created_at).total_seconds()) < 60
    shifted = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    assert abs((seen.seen_at - shifted).total_seconds()) < 60
