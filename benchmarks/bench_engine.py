#!/usr/bin/env python
"""Engine benchmark (issues 4 and 5): throughput, efficiency, AIMD auto-scaling, CPU per shipment, display cost.

Against standalone sandbox processes (`shipctl sandbox serve`), measured side by side in one run:

1. shipctl's engine: the whole `create` path in this process (validation, journal, output, engine), stdout to
   /dev/null; 2. a plain sequential loop over the SDK; 3. the reference design this tool started from: chunks of
   8 awaited with `asyncio.gather` under a semaphore of 16 (SDK calls via `asyncio.to_thread`).

Efficiency = achieved shipments/s ÷ (in-flight cap ÷ mean server-side time per shipment), the server-side
time being create + buy as the sandbox reports it in X-Runtime. Then `--concurrency auto` vs a fixed 16 against
a sandbox limited to 40 in-flight requests, scattered 429s (`--faults rate_limit=0.01` and `0.05`) against the
clean run (issue 12), shipctl's CPU time per shipment vs a bare SDK loop at latency
none, and the live display's cost (live vs off, alternated).

    python benchmarks/bench_engine.py            # 1,000 rows; the sequential loop runs on 100 (it is slow)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import easypost  # noqa: E402
from rich.console import Console  # noqa: E402

import shipctl.cli.create as create_cli  # noqa: E402
from shipctl.cli.create import CreateArgs, execute  # noqa: E402
from shipctl.cli.options import RunOptions, parse_sizing  # noqa: E402
from shipctl.cli.terminal import Terminal, use  # noqa: E402
from shipctl.engine.stats import RunStats  # noqa: E402
from shipctl.exit_codes import ExitCode  # noqa: E402
from shipctl.jobs.purchase import PurchaseOptions  # noqa: E402
from shipctl.jobs.validation import ManifestSource  # noqa: E402
from shipctl.manifest import ShipmentRow, ValidRow, iter_rows  # noqa: E402
from tests.manifests import make_manifest  # noqa: E402
from tests.standalone import sandbox_process  # noqa: E402

KEY = "EZTKbenchmark0000000000000000"
CAP = 16
#: The RunStats of each `shipctl_create` run, in order (the limit's path, 429s, retries).
LAST_STATS: list[RunStats] = []
_run_job = create_cli._run


def _recording_run(*args: Any, **kwargs: Any) -> Any:
    result = _run_job(*args, **kwargs)
    LAST_STATS.append(result[2])
    return result


create_cli._run = _recording_run


def limit_path(stats: RunStats) -> str:
    return (f"429s {stats.rate_limited}, retries {stats.retries}, calls ok {stats.calls_ok}, "
            f"limit {getattr(stats, 'limit_start', '?')} → low {getattr(stats, 'limit_low', '?')} → "
            f"end {stats.limit} (max {stats.max_limit})")


@contextlib.contextmanager
def sandbox(*flags: str) -> Iterator[str]:
    with sandbox_process(*flags) as server:
        yield server.api_base


def load_rows(path: Path) -> list[ShipmentRow]:
    return [item.row for item in iter_rows(path) if isinstance(item, ValidRow)]


class RuntimeProbe:
    """Collect X-Runtime per endpoint from the SDK's response hook."""

    def __init__(self) -> None:
        self.create: list[float] = []
        self.buy: list[float] = []

    def __call__(self, *, http_status: int, method: Any, path: str, headers: Any, **_: Any) -> None:
        value = headers.get("X-Runtime") if headers is not None else None
        if value is None or http_status >= 300:
            return
        (self.buy if path.endswith("/buy") else self.create).append(float(value))

    def per_shipment(self) -> float:
        return statistics.fmean(self.create) + statistics.fmean(self.buy)


def cheapest(shipment: Any) -> dict[str, str]:
    rate = min(shipment.rates, key=lambda r: Decimal(r.rate))
    return {"id": rate.id}


def sequential(api_base: str, rows: list[ShipmentRow], probe: RuntimeProbe | None = None) -> tuple[float, float]:
    client = easypost.EasyPostClient(KEY, api_base=api_base)
    if probe:
        client.subscribe_to_response_hook(probe)
    wall, cpu = time.perf_counter(), time.process_time()
    for row in rows:
        shipment = client.shipment.create(**row.to_easypost())
        client.shipment.buy(shipment.id, rate=cheapest(shipment))
    return time.perf_counter() - wall, time.process_time() - cpu


def chunk_gather(api_base: str, rows: list[ShipmentRow]) -> float:
    client = easypost.EasyPostClient(KEY, api_base=api_base)

    async def main() -> None:
        semaphore = asyncio.Semaphore(CAP)

        async def one(row: ShipmentRow) -> None:
            async with semaphore:
                shipment = await asyncio.to_thread(client.shipment.create, **row.to_easypost())
                await asyncio.to_thread(client.shipment.buy, shipment.id, rate=cheapest(shipment))

        for start in range(0, len(rows), 8):
            await asyncio.gather(*(one(r) for r in rows[start : start + 8]))

    wall = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - wall


def shipctl_create(api_base: str, manifest: Path, workdir: Path, *, concurrency: str = "16",
                   progress: str = "off") -> tuple[float, float, ExitCode]:
    os.environ["EASYPOST_API_BASE"] = api_base
    os.environ["EASYPOST_API_KEY"] = KEY
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    journal = run_dir / "run.journal.db"
    # A state directory (claims) of its own: claims left by an earlier run of the same manifest would make every
    # row look up the shipments they name (404 on a fresh sandbox) before it starts.
    os.environ["SHIPCTL_STATE_DIR"] = str(run_dir / "state")
    args = CreateArgs(
        manifest=manifest, manifest_label=str(manifest), source=ManifestSource(manifest),
        purchase=PurchaseOptions(check_references=None), results=None, failed=None, skip_invalid=False, rejects=None,
        journal=journal, fresh=False, dry_run=False, yes=False, max_cost=None,
        run=RunOptions(
            output="ndjson", sizing=parse_sizing(concurrency, 64, None, None), progress=progress,  # type: ignore[arg-type]
            progress_interval=10.0, quiet=True, verbose=False, force_sandbox=False,
        ),
    )
    with open(os.devnull, "w") as devnull:
        term = Terminal(stdout=devnull, stderr=devnull)
        # Drawn as on a terminal, into nothing: the figures are printed by this script, not by shipctl.
        term.err = Console(file=devnull, force_terminal=True, width=120)
        with use(term):
            wall, cpu = time.perf_counter(), time.process_time()
            code = execute(args)
            return time.perf_counter() - wall, time.process_time() - cpu, code


def throttle(manifest: Path, work: Path, rows: int, rounds: int) -> None:
    """Scattered 429s (`--faults rate_limit=P`; the sandbox answers them with Retry-After: 1, as EasyPost sends
    one) against the same sandbox without faults: shipments/s and the ratio to the clean run, fixed 16, latency
    fast. The three alternate for `rounds` rounds so drift on a shared machine hits them alike; means shown."""
    situations = {"no 429s": (), "1% 429s": ("--faults", "rate_limit=0.01"), "5% 429s": ("--faults", "rate_limit=0.05")}
    rates: dict[str, list[float]] = {label: [] for label in situations}
    paths: dict[str, list[str]] = {label: [] for label in situations}
    for _ in range(rounds):
        for label, flags in situations.items():
            with sandbox("--latency", "fast", "--seed", "4", *flags) as base:
                wall, _, code = shipctl_create(base, manifest, work)
                assert code == ExitCode.OK, (label, code)
            rates[label].append(rows / wall)
            paths[label].append(limit_path(LAST_STATS[-1]))
    clean = statistics.fmean(rates["no 429s"])
    targets = {"1% 429s": 0.85, "5% 429s": 0.6}
    print(f"\nscattered 429s, fixed 16, latency fast, mean of {rounds} alternated runs:\n"
          f"{'situation':<10} {'shipments/s':>12} {'× clean':>8} {'target':>7}  per run (/s)")
    for label, values in rates.items():
        rate = statistics.fmean(values)
        target = f"≥ {targets[label]:.2f}" if label in targets else ""
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"{label:<10} {rate:>12.1f} {rate / clean:>8.2f} {target:>7}  {each}")
        for path in paths[label]:
            print(f"{'':<10} {path}")


def auto_vs_fixed(manifest: Path, work: Path, rows: int) -> None:
    # A sandbox each: the second run on one sandbox would find every label bought by the first.
    with sandbox("--latency", "fast", "--max-inflight", "40", "--seed", "2") as base:
        fixed_wall, _, fixed_code = shipctl_create(base, manifest, work, concurrency="16")
    with sandbox("--latency", "fast", "--max-inflight", "40", "--seed", "2") as base:
        auto_wall, _, auto_code = shipctl_create(base, manifest, work, concurrency="auto")
        auto = LAST_STATS[-1]
    print(f"\nsandbox --max-inflight 40: fixed 16 {rows / fixed_wall:.1f}/s (exit {int(fixed_code)}), "
          f"auto {rows / auto_wall:.1f}/s (exit {int(auto_code)}); "
          f"auto ÷ fixed = {fixed_wall / auto_wall:.2f}×  (target ≥ 2×, exit 0 = no failed rows)")
    print(f"  auto: {limit_path(auto)}")
    # A wall below the limit, so that capacity 429s do happen: the limit must come down to it and stay there.
    with sandbox("--latency", "fast", "--max-inflight", "10", "--seed", "2") as base:
        wall, _, code = shipctl_create(base, manifest, work, concurrency="16")
        walled = LAST_STATS[-1]
    share = walled.rate_limited / max(1, walled.rate_limited + walled.calls_ok)
    print(f"sandbox --max-inflight 10, fixed 16: {rows / wall:.1f}/s (exit {int(code)}), "
          f"{share * 100:.1f}% of calls answered 429; {limit_path(walled)}")


def cpu_per_shipment(work: Path, count: int) -> None:
    cpu_manifest = make_manifest(work / "cpu.csv", count)
    cpu_rows = load_rows(cpu_manifest)
    with sandbox("--latency", "none") as base:
        sequential(base, cpu_rows[:20])  # warm up imports and connections
        _, bare_cpu = sequential(base, cpu_rows)
        _, ship_cpu, code = shipctl_create(base, cpu_manifest, work)
        assert code == ExitCode.OK, code
        # The same with one call in flight: what shipctl adds per row, without the thread pool's GIL
        # hand-offs (which the design card's 16-thread pool pays at latency none).
        _, one_cpu, code = shipctl_create(base, cpu_manifest, work, concurrency="1")
        assert code == ExitCode.OK, code
    bare = bare_cpu / count * 1000
    ours = ship_cpu / count * 1000
    one = one_cpu / count * 1000
    print(f"\nlatency none, CPU per shipment: bare SDK loop {bare:.2f} ms, shipctl {ours:.2f} ms, "
          f"ratio {ours / bare:.2f}  (target ≤ 1.3; shipctl's figure includes validation, journal, output)")
    print(f"  shipctl --concurrency 1: {one:.2f} ms, ratio {one / bare:.2f}")


def display_cost(manifest: Path, work: Path, rows: int) -> None:
    with sandbox("--latency", "fast", "--seed", "3") as base:
        off: list[float] = []
        live: list[float] = []
        for _ in range(2):  # alternate, so drift on a shared machine hits both alike
            off.append(rows / shipctl_create(base, manifest, work, progress="off")[0])
            live.append(rows / shipctl_create(base, manifest, work, progress="live")[0])
    cost = 1 - statistics.fmean(live) / statistics.fmean(off)
    print(f"\nlive display: off {statistics.fmean(off):.1f}/s, live {statistics.fmean(live):.1f}/s, "
          f"cost {cost * 100:+.1f}%  (target ≤ 3%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seq-rows", type=int, default=100)
    parser.add_argument("--cpu-rows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs of the scattered-429 section")
    parser.add_argument("--skip", default="", help="comma list of: compare,throttle,auto,cpu,display")
    opts = parser.parse_args()
    skip = set(filter(None, opts.skip.split(",")))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = make_manifest(work / "bench.csv", opts.rows)
        rows = load_rows(manifest)
        print(f"cores: {os.cpu_count()}, rows: {opts.rows} (sequential on {opts.seq_rows})")

        if "compare" not in skip:
            with sandbox("--latency", "fast", "--seed", "1") as base:
                probe = RuntimeProbe()
                seq_wall, _ = sequential(base, rows[: opts.seq_rows], probe)
                server_time = probe.per_shipment()
                ideal = CAP / server_time
                gather_wall = chunk_gather(base, rows)
                engine_wall, _, code = shipctl_create(base, manifest, work)
                assert code == ExitCode.OK, code
            results = {
                "shipctl engine": opts.rows / engine_wall,
                "chunk-gather (reference)": opts.rows / gather_wall,
                "sequential SDK loop": opts.seq_rows / seq_wall,
            }
            print(f"\nlatency fast: mean server-side time per shipment {server_time * 1000:.1f} ms "
                  f"(create + buy, from X-Runtime); ideal at cap {CAP}: {ideal:.1f} shipments/s")
            print(f"{'design':<26} {'shipments/s':>12} {'efficiency':>11}")
            for name, rate in results.items():
                print(f"{name:<26} {rate:>12.1f} {rate / ideal:>11.2f}")
            eng = results["shipctl engine"]
            print(f"engine ÷ chunk-gather: {eng / results['chunk-gather (reference)']:.2f}×  (target ≥ 2.5×)")
            print(f"engine ÷ sequential:   {eng / results['sequential SDK loop']:.2f}×  (target ≥ 12×)")
            print(f"engine efficiency:     {eng / ideal:.2f}   (target ≥ 0.90)")

        if "throttle" not in skip:
            throttle(manifest, work, opts.rows, opts.rounds)

        if "auto" not in skip:
            auto_vs_fixed(manifest, work, opts.rows)

        if "cpu" not in skip:
            cpu_per_shipment(work, opts.cpu_rows)

        if "display" not in skip:
            display_cost(manifest, work, opts.rows)


if __name__ == "__main__":
    main()
