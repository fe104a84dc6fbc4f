"""Where the CLI's efficiency at latency `fast` goes: the engine alone against 16 plain threads, in this process.

A script, not a test:  python benchmarks/bench_engine_alone.py [--rows 1000] [--rounds 2]

Each design buys `--rows` labels (create, then the cheapest rate) against a standalone sandbox of its own at
latency `fast`, and its efficiency is its rate ÷ (16 ÷ the server time of its own calls, from
`GET /v2/_sandbox/runtime`), as in bench_engine.py. No journal, no claims, no manifest, no start-up:

* 16 threads over the SDK's services (EasyPostObjects), the way a script would;
* 16 threads over shipctl's carrier functions (the API's JSON through the SDK's requestor);
* shipctl's engine (16 in flight, its own worker threads, the event loop) over the same carrier functions;
* the same engine with `--work` ms of CPU per row spent on the event loop between create and buy, standing in for
  what `create` does per row there (journal, claims, verification, output).

The CLI's own figure (bench_engine.py) is lower than the engine's by its start-up and its per-row work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_engine import served_per_shipment  # noqa: E402
from shipctl.carrier.client import make_client  # noqa: E402
from shipctl.carrier.errors import classify  # noqa: E402
from shipctl.carrier.shipments import buy_shipment, create_shipment  # noqa: E402
from shipctl.engine.runner import Engine, run_async  # noqa: E402
from shipctl.engine.sizing import size_pools  # noqa: E402
from shipctl.engine.stats import RunStats  # noqa: E402
from tests.standalone import sandbox_process  # noqa: E402

KEY = "EZTKbenchmark0000000000000000"
CAP = 16


def params(i: int) -> dict[str, Any]:
    return {"from_address": {"name": "A", "street1": "1 Main St", "city": "Boston", "state": "MA", "zip": "02110",
                             "country": "US"},
            "to_address": {"name": "B", "street1": "2 Elm St", "city": "Austin", "state": "TX", "zip": "73301",
                           "country": "US"},
            "parcel": {"weight": 16}, "reference": f"R{i}"}


def efficiency(api_base: str, rows: int, wall: float) -> tuple[float, float]:
    return rows / wall, rows / wall / (CAP / served_per_shipment(api_base))


def threads(client: Any, rows: int, sdk_objects: bool) -> float:
    numbers: Iterator[int] = iter(range(rows))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(numbers, None)
            if i is None:
                return
            if sdk_objects:
                made = client.shipment.create(**params(i))
                client.shipment.buy(made.id, rate={"id": min(made.rates, key=lambda r: float(r.rate)).id})
            else:
                shipment = create_shipment(client, params(i))
                buy_shipment(client, shipment.id, str(min(shipment.rates, key=lambda r: r.amount).id))

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(CAP)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - start


def engine(client: Any, rows: int, work_ms: float) -> float:
    runner = Engine(size_pools(concurrency=CAP), RunStats(total=rows), classify)

    async def handle(i: int) -> None:
        shipment = await runner.call(create_shipment, client, params(i))
        spent = time.thread_time()
        while time.thread_time() - spent < work_ms / 1000:
            pass
        await runner.call(buy_shipment, client, shipment.id, str(min(shipment.rates, key=lambda r: r.amount).id))

    async def main() -> None:
        await runner.run(range(rows), handle)

    start = time.perf_counter()
    try:
        run_async(main)
    finally:
        runner.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=float, default=1.0, help="ms of CPU per row on the loop, last design")
    opts = parser.parse_args()
    designs: dict[str, Callable[[Any], float]] = {
        "16 threads, SDK objects": lambda c: threads(c, opts.rows, True),
        "16 threads, carrier JSON": lambda c: threads(c, opts.rows, False),
        "engine, carrier JSON": lambda c: engine(c, opts.rows, 0.0),
        f"engine + {opts.work:g} ms loop work a row": lambda c: engine(c, opts.rows, opts.work),
    }
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in designs}
    for _ in range(opts.rounds):  # alternated, so drift on a shared machine hits every design alike
        for name, run in designs.items():
            with sandbox_process("--latency", "fast", "--seed", "1") as server:
                client = make_client(KEY, server.api_base, pool_size=CAP + 4)
                found[name].append(efficiency(server.api_base, opts.rows, run(client)))
    print(f"latency fast, {opts.rows} rows, 16 in flight, in this process (no start-up, no journal); "
          f"median of {opts.rounds}")
    print(f"{'design':<32} {'shipments/s':>12} {'efficiency':>11}")
    for name, values in found.items():
        print(f"{name:<32} {statistics.median(v[0] for v in values):>12.1f} "
              f"{statistics.median(v[1] for v in values):>11.2f}")


if __name__ == "__main__":
    main()
