"""Benchmark the sandbox: its own process, 16 concurrent keep-alive clients, POST /shipments + GET /shipments/{id}.

    python benchmarks/bench_sandbox.py [--clients 16] [--seconds 10] [--client requests|http.client]

Starts `shipctl sandbox serve --latency none` as a subprocess, reads its URL from the first stdout line,
then each client thread loops create -> retrieve on one persistent connection. Prints requests/s and the
p50/p99 latency under load, plus the p50/p99 of a single client alone (the sandbox's own added time, with no
queueing behind other clients), and the server process's CPU time per request (user + system: the figure
least moved by other work on a shared machine). The issue's target: >= 1,500 req/s and <= 5 ms at p99.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import psutil
import requests

from shipctl.sandbox.examples import shipment_params

HEADERS = {"Authorization": "Bearer EZTKbench", "Content-Type": "application/json"}


class Client(Protocol):
    def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...
    def get(self, path: str) -> tuple[int, bytes]: ...
    def close(self) -> None: ...


class RequestsClient:
    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        r = self.session.post(self.base + path, data=body, headers=HEADERS, timeout=30)
        return r.status_code, r.content

    def get(self, path: str) -> tuple[int, bytes]:
        r = self.session.get(self.base + path, headers=HEADERS, timeout=30)
        return r.status_code, r.content

    def close(self) -> None:
        self.session.close()


class HttpClientClient:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.prefix = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def _call(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        self.conn.request(method, self.prefix + path, body=body, headers=HEADERS)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return self._call("POST", path, body)

    def get(self, path: str) -> tuple[int, bytes]:
        return self._call("GET", path, None)

    def close(self) -> None:
        self.conn.close()


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipctl", "sandbox", "serve", "--latency", "none", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=30):
        proc.kill()
        raise SystemExit("sandbox did not print its URL within 30 s")
    sel.close()
    return proc, proc.stdout.readline().strip()


def run(base: str, clients: int, seconds: float, kind: str) -> dict[str, Any]:
    body = json.dumps({"shipment": shipment_params("bench")}).encode()
    make = RequestsClient if kind == "requests" else HttpClientClient
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        c: Client = make(base)
        lat = latencies[i]
        try:
            c.post("/shipments", body)  # warm the connection
            start.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                status, data = c.post("/shipments", body)
                t1 = time.perf_counter()
                lat.append(t1 - t0)
                if status != 201:
                    errors[i] += 1
                    continue
                shp_id = json.loads(data)["id"]
                t1 = time.perf_counter()
                status, _ = c.get(f"/shipments/{shp_id}")
                lat.append(time.perf_counter() - t1)
                if status != 200:
                    errors[i] += 1
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    every = sorted(x for lat in latencies for x in lat)
    q = statistics.quantiles(every, n=100)
    return {"clients": clients, "requests": len(every), "errors": sum(errors), "seconds": round(elapsed, 2),
            "req_per_s": round(len(every) / elapsed), "p50_ms": round(q[49] * 1000, 2),
            "p99_ms": round(q[98] * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--client", choices=("requests", "http.client"), default="requests")
    args = ap.parse_args()
    proc, base = start_server()
    try:
        server = psutil.Process(proc.pid)
        alone = run(base, 1, min(3.0, args.seconds), args.client)
        cpu0 = server.cpu_times()
        loaded = run(base, args.clients, args.seconds, args.client)
        cpu1 = server.cpu_times()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"sandbox at {base}, client={args.client}, cpus={os.cpu_count()}")
    print(f"1 client alone : {alone['req_per_s']:>6} req/s  p50 {alone['p50_ms']:.2f} ms  p99 {alone['p99_ms']:.2f} ms")
    print(f"{loaded['clients']} clients     : {loaded['req_per_s']:>6} req/s  p50 {loaded['p50_ms']:.2f} ms  "
          f"p99 {loaded['p99_ms']:.2f} ms  ({loaded['requests']} requests, {loaded['errors']} errors, "
          f"{loaded['seconds']} s)")
    cpu_us = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / max(1, loaded["requests"]) * 1e6
    print(f"server CPU     : {cpu_us:.0f} us per request under load (user {cpu1.user - cpu0.user:.2f} s, "
          f"system {cpu1.system - cpu0.system:.2f} s)")
    print("throughput >= 1500 req/s:", "met" if loaded["req_per_s"] >= 1500 else "NOT met")
    print("added p99 <= 5 ms (1 client, no queueing):", "met" if alone["p99_ms"] <= 5.0 else "NOT met")
    print("p99 <= 5 ms with 16 clients saturating:", "met" if loaded["p99_ms"] <= 5.0 else "NOT met")


if __name__ == "__main__":
    main()
