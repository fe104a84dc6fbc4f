#!/usr/bin/env python
"""Engine benchmark (issues 4, 5 and 12): every row of issue 12's table, side by side in one run.

shipctl is run as a user runs it: `python -m shipctl create MANIFEST -o ndjson --progress off` in a child
process, start-up included, against standalone sandbox processes (`shipctl sandbox serve`), each run with a
journal and a state directory of its own. Its CPU is the child's own (user + system, from `wait4`); the
sandbox's is never counted. Baselines, in this process:

* a sequential loop over the SDK (create, then buy the cheapest rate);
* the design this tool started from, faithfully: chunks of 8 rows awaited with `asyncio.gather` under a
  semaphore of 16, every SDK call through `run_in_executor` on a 16-thread pool, on uvloop.

Every child runs with a bytecode cache of its own (PYTHONPYCACHEPREFIX in the work directory, warmed before
anything is timed), as an installed package has its .pyc files: without it, an environment that sets
PYTHONDONTWRITEBYTECODE (as CI and some shells do) times shipctl compiling its own ~80 modules from source on
every start while the SDK, requests and the bare script load theirs from site-packages' caches.

Efficiency = shipments/s ÷ (16 ÷ mean server-side time per shipment), the server-side time being create + buy
as the sandbox reports it in X-Runtime, summed over every call of the measured run (`GET /v2/_sandbox/runtime`);
the figure against a sample of unloaded calls taken beforehand (the sequential loop's) is printed beside it. The
CLI run's phases come from its journal's purchase times: launch to its first label (start-up), its steady state
(the middle 80% of labels, against the same ceiling) and the last label to its exit.
Sections (`--skip` any of them):

* compare   latency fast (all rows) and realistic (`--realistic-rows`, the seed design `--seed-realistic-rows`):
            shipctl, the seed design, the loop, and two bare pools of 16 threads making the same calls and
            nothing else (through the SDK's services; through its requestor, reading plain JSON as shipctl does):
            the second is the bound on any client of this SDK on this machine, printed beside shipctl's figure
* throttle  scattered 429s (`--faults rate_limit=0.01` / `0.05`) against the clean run, fixed 16
* auto      `--concurrency auto` against fixed 16/24/32/40, the sandbox's capacity 40 (`--max-inflight 40`), each
            run `--auto-rounds` times in rotated order and judged by its median
* cpu       CPU per shipment at 16 in flight against the bare loop (latency none)
* startup   a 1-row `create` against a bare script doing the same calls, and against the floor of shipctl's
            stack (benchmarks/stack_floor.py: the same row on typer, pydantic, anyio and SQLite); `shipctl --help`
* display   the live display's cost (live vs off, alternated; in this process, drawn into nothing)

It ends with the table: each figure, its target, and whether it holds. The validation row is
benchmarks/bench_validate.py's.

    python benchmarks/bench_engine.py                  # about 8 minutes on 2 cores
    python benchmarks/bench_engine.py --skip display,compare --rows 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import easypost  # noqa: E402
from easypost.requestor import RequestMethod, Requestor  # noqa: E402

from shipctl.manifest import ShipmentRow, ValidRow, iter_rows  # noqa: E402
from tests.manifests import make_manifest  # noqa: E402
from tests.standalone import sandbox_process  # noqa: E402

KEY = "EZTKbenchmark0000000000000000"
CAP = 16
_API_LINE = re.compile(
    r"retries (\d+), 429 answers (\d+)(?: \(in-flight limit ended at (\d+) of (\d+)\), "
    r"limit started at (\d+), lowest (\d+))?"
)


@dataclass
class Verdict:
    """One row of the closing table."""

    situation: str
    figure: str
    target: str
    holds: bool | None  # None: a figure without a target


VERDICTS: list[Verdict] = []


def verdict(situation: str, figure: str, target: str = "", holds: bool | None = None) -> None:
    VERDICTS.append(Verdict(situation, figure, target, holds))


@dataclass
class CliRun:
    wall: float
    cpu: float
    code: int
    stderr: str = field(repr=False)
    launched: float = 0.0  # the epoch time the child was started (the journal's clock)
    journal: Path | None = None

    def bought_times(self) -> list[float]:
        """When each label was journaled as bought, in seconds after the launch, in order."""
        if self.journal is None:
            return []
        db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)
        try:
            stamps = [row[0] for row in db.execute("SELECT bought_at FROM rows WHERE bought_at IS NOT NULL")]
        finally:
            db.close()
        return sorted(dt.datetime.fromisoformat(s).timestamp() - self.launched for s in stamps)

    @property
    def rate_limited(self) -> int:
        found = _API_LINE.search(self.stderr)
        return int(found.group(2)) if found else 0

    def limit_path(self) -> str:
        found = _API_LINE.search(self.stderr)
        if found is None:
            return "no api line in the summary"
        retries, answers, end, top, start, low = found.groups()
        path = f"retries {retries}, 429s {answers}"
        if end is not None:
            path += f", limit {start} → lowest {low} → end {end} (max {top})"
        return path


@contextlib.contextmanager
def sandbox(*flags: str) -> Iterator[str]:
    with sandbox_process(*flags) as server:
        yield server.api_base


def child_env(api_base: str, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SHIPCTL_FROM", None)
    env.update(EASYPOST_API_BASE=api_base, EASYPOST_API_KEY=KEY, SHIPCTL_STATE_DIR=str(state))
    return env


def timed_child(cmd: list[str], env: dict[str, str], *, stdout: int = subprocess.DEVNULL) -> CliRun:
    """Run `cmd`; its wall time and its own CPU (the child's rusage, nothing else's)."""
    launched, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return CliRun(wall, usage.ru_utime + usage.ru_stime, proc.returncode, err, launched)


def shipctl_create(api_base: str, manifest: Path, work: Path, *, concurrency: str = "16") -> CliRun:
    run_dir = Path(tempfile.mkdtemp(dir=work))
    cmd = [sys.executable, "-m", "shipctl", "create", str(manifest), "--journal", str(run_dir / "run.journal.db"),
           "-o", "ndjson", "--progress", "off", "--concurrency", concurrency]
    run = timed_child(cmd, child_env(api_base, run_dir / "state"))
    assert run.code == 0, (run.code, run.stderr[-2000:])
    run.journal = run_dir / "run.journal.db"
    return run


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


def seed_design(api_base: str, rows: list[ShipmentRow]) -> float:
    """The original design card: chunks of 8 gathered under a semaphore of 16 over a 16-thread pool, uvloop."""
    client = easypost.EasyPostClient(KEY, api_base=api_base)
    pool = ThreadPoolExecutor(max_workers=CAP)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(CAP)

        async def one(row: ShipmentRow) -> None:
            async with semaphore:
                shipment = await loop.run_in_executor(pool, lambda: client.shipment.create(**row.to_easypost()))
                await loop.run_in_executor(pool, lambda: client.shipment.buy(shipment.id, rate=cheapest(shipment)))

        for start in range(0, len(rows), 8):
            await asyncio.gather(*(one(r) for r in rows[start : start + 8]))

    wall = time.perf_counter()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    finally:
        pool.shutdown()
    return time.perf_counter() - wall


def thread_pool(api_base: str, rows: list[ShipmentRow], *, plain: bool) -> float:
    """The bound on any client of this SDK here: 16 threads, each creating and buying its next row and nothing else
    (no journal, no claims, no start-up). `plain` calls the SDK's requestor and reads plain JSON, as shipctl does;
    otherwise its services, which build an EasyPostObject of every rate and address."""
    client = easypost.EasyPostClient(KEY, api_base=api_base)
    client._requests_session.trust_env = False  # as shipctl's client (no per-call scan of the environment)
    pending = iter(rows)
    lock = threading.Lock()

    def worker() -> None:
        requestor = Requestor(client)
        while True:
            with lock:
                row = next(pending, None)
            if row is None:
                return
            if plain:
                made = requestor.request(method=RequestMethod.POST, url="/shipments",
                                         params={"shipment": row.to_easypost()})
                rate = min(made["rates"], key=lambda r: Decimal(r["rate"]))
                requestor.request(method=RequestMethod.POST, url=f"/shipments/{made['id']}/buy",
                                  params={"rate": {"id": rate["id"]}})
            else:
                shipment = client.shipment.create(**row.to_easypost())
                client.shipment.buy(shipment.id, rate=cheapest(shipment))

    threads = [threading.Thread(target=worker) for _ in range(CAP)]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - wall


def served_per_shipment(api_base: str) -> float:
    """Mean server time of a shipment (create + buy) over every call the sandbox answered since it started."""
    import requests

    answer = requests.get(f"{api_base}/_sandbox/runtime", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    answer.raise_for_status()
    served = answer.json()["runtime"]
    calls = ("shipment.create", "shipment.buy")
    return sum(float(served[name]["seconds"]) / int(served[name]["count"]) for name in calls)


def run_phases(run: CliRun, ceiling: float) -> tuple[str, float | None]:
    """Where a CLI run's time went, from its journal's purchase times: launch to the first label (start-up, plus one
    shipment's calls), the steady state (the middle 80% of labels) against the ceiling, and the last label to exit."""
    times = run.bought_times()
    if len(times) < 10:
        return "phases: too few labels to tell", None
    n = len(times)
    first, last = n // 10, (9 * n) // 10 - 1
    low, high = times[first], times[last]
    steady = (last - first) / (high - low) if high > low else 0.0
    return (f"shipctl's phases (from its journal): first label {times[0]:.2f} s after launch; steady state (labels "
            f"10%–90%) {steady:.1f}/s = {steady / ceiling:.2f} of the ceiling; exit {run.wall - times[-1]:.2f} s "
            f"after the last label"), steady / ceiling


def compare(latency: str, manifest: Path, work: Path, count: int, seq_count: int, target: float,
            seed_count: int | None = None) -> None:
    """Each design against a sandbox of its own; its ceiling is 16 ÷ the server time of its own calls (the sandbox
    sums X-Runtime), so a ratio never rests on a sample of a lognormal drawn beforehand. The seed design may run
    fewer rows (`seed_count`): at a third of shipctl's speed, 1,000 realistic rows would take minutes more."""
    rows = load_rows(manifest)[:count]
    seed_rows = rows[:seed_count or count]
    results: dict[str, tuple[float, float]] = {}
    with sandbox("--latency", latency, "--seed", "1") as base:
        probe = RuntimeProbe()
        seq_wall, _ = sequential(base, rows[:seq_count], probe)
        sampled = CAP / probe.per_shipment()
        results["sequential SDK loop"] = (seq_count / seq_wall, 1 / served_per_shipment(base))
    with sandbox("--latency", latency, "--seed", "1") as base:
        seed_wall = seed_design(base, seed_rows)
        results["seed design"] = (len(seed_rows) / seed_wall, CAP / served_per_shipment(base))
    for name, plain in (("SDK services, 16 threads", False), ("SDK requestor, 16 thr.", True)):
        with sandbox("--latency", latency, "--seed", "1") as base:
            pool_wall = thread_pool(base, seed_rows, plain=plain)
            results[name] = (len(seed_rows) / pool_wall, CAP / served_per_shipment(base))
    with sandbox("--latency", latency, "--seed", "1") as base:
        run = shipctl_create(base, manifest, work)
        results["shipctl (the CLI)"] = (count / run.wall, CAP / served_per_shipment(base))
    phases, steady = run_phases(run, results["shipctl (the CLI)"][1])
    print(f"\nlatency {latency}, {count} rows: server time per shipment (create + buy, X-Runtime) "
          f"{CAP / sampled * 1000:.1f} ms over the loop's {seq_count} unloaded calls, "
          f"{CAP / results['shipctl (the CLI)'][1] * 1000:.1f} ms over shipctl's run")
    print(f"{'design':<22} {'shipments/s':>12} {'ceiling/s':>10} {'efficiency':>11} {'vs sample':>10}")
    for name, (rate, ceiling) in results.items():
        print(f"{name:<22} {rate:>12.1f} {ceiling:>10.1f} {rate / ceiling:>11.2f} "
              f"{rate / (sampled if name != 'sequential SDK loop' else sampled / CAP):>10.2f}")
    ours, ceiling = results["shipctl (the CLI)"]
    seed = results["seed design"][0]
    print(f"shipctl ÷ seed design {ours / seed:.2f}×, ÷ sequential {ours / results['sequential SDK loop'][0]:.2f}×")
    print(phases)
    bound_rate, bound_ceiling = results["SDK requestor, 16 thr."]
    bound = bound_rate / bound_ceiling
    print(f"the bound on a client of this SDK here (16 threads making the same calls, nothing else): "
          f"{bound:.2f} of the ceiling; shipctl reaches {ours / ceiling / bound:.2f} of it")
    verdict(f"efficiency, latency {latency}", f"{ours / ceiling:.2f} ({ours / sampled:.2f} vs the sample)",
            f"≥ {target:.2f}", ours / ceiling >= target)
    if steady is not None:
        verdict(f"  of which steady state, {latency}", f"{steady:.2f} (labels 10%–90%)")
    verdict(f"shipctl ÷ seed design, {latency}", f"{ours / seed:.2f}×")
    verdict(f"  bound: SDK requestor, 16 threads, {latency}", f"{bound:.2f} (no journal, no start-up)")


def throttle(manifest: Path, work: Path, rows: int, rounds: int) -> None:
    """Scattered 429s (`--faults rate_limit=P`, answered with Retry-After: 1) against the clean run: fixed 16,
    latency fast, the three alternated for `rounds` rounds so drift on a shared machine hits them alike."""
    situations = {"no 429s": (), "1% 429s": ("--faults", "rate_limit=0.01"), "5% 429s": ("--faults", "rate_limit=0.05")}
    rates: dict[str, list[float]] = {label: [] for label in situations}
    paths: dict[str, list[str]] = {label: [] for label in situations}
    for _ in range(rounds):
        for label, flags in situations.items():
            with sandbox("--latency", "fast", "--seed", "4", *flags) as base:
                run = shipctl_create(base, manifest, work)
            rates[label].append(rows / run.wall)
            paths[label].append(run.limit_path())
    clean = statistics.fmean(rates["no 429s"])
    targets = {"1% 429s": 0.85, "5% 429s": 0.6}
    print(f"\nscattered 429s, fixed 16, latency fast, mean of {rounds} alternated runs:\n"
          f"{'situation':<10} {'shipments/s':>12} {'× clean':>8} {'target':>7}  per run (/s)")
    for label, values in rates.items():
        rate = statistics.fmean(values)
        goal = targets.get(label)
        print(f"{label:<10} {rate:>12.1f} {rate / clean:>8.2f} {f'≥ {goal:.2f}' if goal else '':>7}  "
              + ", ".join(f"{v:.1f}" for v in values))
        for path in paths[label]:
            print(f"{'':<10} {path}")
        if goal is None:
            verdict("no 429s, fixed 16", f"{rate:.1f}/s")
        else:
            verdict(f"{label} at random", f"{rate / clean:.2f}× clean", f"≥ {goal:.2f}×", rate / clean >= goal)


def auto_vs_fixed(manifest: Path, work: Path, rows: int, rounds: int) -> None:
    """`--concurrency auto` against the best of several fixed limits, the sandbox's capacity 40 (429 above it,
    slower near it). A sandbox each: a second run on one sandbox would find every label bought. Each setting runs
    `rounds` times, the order rotated round by round so drift hits them alike, and is judged by its median: the
    best of four single fixed runs against one auto run would favour the fixed side by chance alone."""
    settings = ("16", "24", "32", "40", "auto")
    rates: dict[str, list[float]] = {c: [] for c in settings}
    runs: dict[str, list[CliRun]] = {c: [] for c in settings}
    for turn in range(rounds):
        for concurrency in settings[turn % len(settings):] + settings[:turn % len(settings)]:
            with sandbox("--latency", "fast", "--max-inflight", "40", "--seed", "2") as base:
                run = shipctl_create(base, manifest, work, concurrency=concurrency)
            rates[concurrency].append(rows / run.wall)
            runs[concurrency].append(run)
    median = {c: statistics.median(values) for c, values in rates.items()}
    best = max((k for k in median if k != "auto"), key=lambda k: median[k])
    refused = sum(run.rate_limited for run in runs["auto"])
    share = refused / (2 * rows * rounds + refused)
    print(f"\nsandbox capacity 40 (--max-inflight 40), latency fast, median of {rounds} rotated rounds:")
    for concurrency, values in rates.items():
        print(f"  --concurrency {concurrency:<5} {median[concurrency]:>7.1f}/s  (runs: "
              + ", ".join(f"{v:.1f}" for v in values) + ")")
        if concurrency == "auto":
            for run in runs["auto"]:
                print(f"{'':<22}{run.limit_path()}")
    ratio = median["auto"] / median[best]
    print(f"auto ÷ best fixed ({best}) = {ratio:.2f}×  (target ≥ 0.9), auto ÷ fixed 16 = "
          f"{median['auto'] / median['16']:.2f}×; auto's calls answered 429: {share * 100:.1f}% (target ≤ 2%)")
    verdict("auto vs best fixed, capacity 40", f"{ratio:.2f}× (of {best}, medians)", "≥ 0.90×", ratio >= 0.9)
    verdict("auto's calls answered 429", f"{share * 100:.1f}%", "≤ 2%", share <= 0.02)
    # A wall below the limit: capacity 429s do happen; the limit must come down to it and stay there.
    with sandbox("--latency", "fast", "--max-inflight", "10", "--seed", "2") as base:
        walled = shipctl_create(base, manifest, work, concurrency="16")
    print(f"sandbox capacity 10, fixed 16: {rows / walled.wall:.1f}/s, "
          f"{walled.rate_limited / (2 * rows + walled.rate_limited) * 100:.1f}% of calls answered 429; "
          f"{walled.limit_path()}")


def cpu_per_shipment(work: Path, count: int) -> None:
    manifest = make_manifest(work / "cpu.csv", count)
    one_row = make_manifest(work / "one.csv", 1)
    rows = load_rows(manifest)
    with sandbox("--latency", "none") as base:
        sequential(base, rows[:20])  # warm up imports and connections
        _, bare_cpu = sequential(base, rows)
    with sandbox("--latency", "none") as base:
        many = shipctl_create(base, manifest, work)
        single = shipctl_create(base, one_row, work)
    bare = bare_cpu / count * 1000
    whole = many.cpu / count * 1000
    marginal = (many.cpu - single.cpu) / (count - 1) * 1000
    print(f"\nlatency none, {count} rows, CPU per shipment: bare SDK loop {bare:.2f} ms; shipctl at {CAP} in flight "
          f"{whole:.2f} ms with start-up ({whole / bare:.2f}×), {marginal:.2f} ms without "
          f"({marginal / bare:.2f}×; start-up = the 1-row run's {single.cpu:.2f} s)")
    verdict("CPU per shipment at 16 vs bare loop", f"{marginal / bare:.2f}× ({whole / bare:.2f}× with start-up)",
            "≤ 1.3×", marginal / bare <= 1.3)


BARE_SCRIPT = """
import sys, easypost
from decimal import Decimal
c = easypost.EasyPostClient(sys.argv[1], api_base=sys.argv[2])
s = c.shipment.create(from_address={"name": "A", "street1": "1 Main St", "city": "Boston", "state": "MA",
    "zip": "02110", "country": "US"}, to_address={"name": "B", "street1": "2 Elm St", "city": "Austin",
    "state": "TX", "zip": "73301", "country": "US"}, parcel={"weight": 16})
c.shipment.buy(s.id, rate={"id": min(s.rates, key=lambda r: Decimal(r.rate)).id})
"""


def use_bytecode_cache(work: Path) -> None:
    """Children (and the sandboxes) read and write .pyc files under `work`, whatever the environment says."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")


def warm_bytecode(api_base: str, one_row: Path, work: Path) -> None:
    """One untimed run of each timed program, so the timed ones load cached bytecode as an installed one does."""
    shipctl_create(api_base, one_row, work)
    timed_child([sys.executable, "-c", BARE_SCRIPT, KEY, api_base], dict(os.environ))
    stack_floor(api_base, one_row, work)
    timed_child([sys.executable, "-m", "shipctl", "--help"], dict(os.environ))


def stack_floor(api_base: str, one_row: Path, work: Path) -> CliRun:
    """benchmarks/stack_floor.py: the row's calls on typer, pydantic, anyio and SQLite, and nothing of shipctl's."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    cmd = [sys.executable, str(Path(__file__).with_name("stack_floor.py")), str(one_row),
           "--journal", str(run_dir / "floor.db")]
    run = timed_child(cmd, child_env(api_base, run_dir / "state"))
    assert run.code == 0, run.stderr
    return run


def startup(work: Path, repeats: int) -> None:
    one_row = make_manifest(work / "startup.csv", 1)
    create_cpu: list[float] = []
    bare_cpu: list[float] = []
    floor_cpu: list[float] = []
    help_wall: list[float] = []
    with sandbox("--latency", "none") as base:
        for _ in range(repeats):  # alternated, so drift hits all alike
            create_cpu.append(shipctl_create(base, one_row, work).cpu)
            bare = timed_child([sys.executable, "-c", BARE_SCRIPT, KEY, base], dict(os.environ))
            assert bare.code == 0, bare.stderr
            bare_cpu.append(bare.cpu)
            floor_cpu.append(stack_floor(base, one_row, work).cpu)
            shown = timed_child([sys.executable, "-m", "shipctl", "--help"], dict(os.environ))
            help_wall.append(shown.wall)
    ours, theirs, floor = (statistics.median(cpu) for cpu in (create_cpu, bare_cpu, floor_cpu))
    shown_help = statistics.median(help_wall)
    print(f"\n1-row create, CPU (median of {repeats}): shipctl {ours:.2f} s, bare script {theirs:.2f} s, "
          f"ratio {ours / theirs:.2f}  (target ≤ 2); `shipctl --help` {shown_help:.3f} s wall "
          f"(median; range {min(help_wall):.3f}–{max(help_wall):.3f}; target ≤ 0.2 s)")
    # Pairs, not medians of each, so one noisy moment does not skew one side only.
    print(f"  floor (benchmarks/stack_floor.py: the same row on typer, pydantic, anyio and SQLite, nothing of "
          f"shipctl's): {floor:.2f} s = {floor / theirs:.2f}× the bare script; shipctl = "
          f"{statistics.median(c / f for c, f in zip(create_cpu, floor_cpu, strict=True)):.2f}× the floor")
    verdict("CPU of a 1-row create vs bare script", f"{ours:.2f} s vs {theirs:.2f} s ({ours / theirs:.2f}×)",
            "≤ 2×", ours / theirs <= 2)
    verdict("shipctl --help", f"{shown_help:.3f} s", "≤ 0.2 s", shown_help <= 0.2)


def display_cost(manifest: Path, work: Path, rows: int) -> None:
    """In this process, the live display drawn as on a terminal into nothing, alternated with no display."""
    run = _in_process_create()
    with sandbox("--latency", "fast", "--seed", "3") as base:
        off: list[float] = []
        live: list[float] = []
        for _ in range(2):
            off.append(rows / run(base, manifest, work, "off"))
            live.append(rows / run(base, manifest, work, "live"))
    cost = 1 - statistics.fmean(live) / statistics.fmean(off)
    print(f"\nlive display: off {statistics.fmean(off):.1f}/s, live {statistics.fmean(live):.1f}/s, "
          f"cost {cost * 100:+.1f}%  (target ≤ 3%)")
    verdict("live display's cost", f"{cost * 100:+.1f}%", "≤ 3%", cost <= 0.03)


def _in_process_create() -> Callable[[str, Path, Path, str], float]:
    from rich.console import Console

    from shipctl.cli.create import CreateArgs, execute
    from shipctl.cli.options import RunOptions, parse_sizing
    from shipctl.cli.terminal import Terminal, use
    from shipctl.jobs.purchase import PurchaseOptions
    from shipctl.jobs.validation import ManifestSource

    def run(api_base: str, manifest: Path, work: Path, progress: str) -> float:
        run_dir = Path(tempfile.mkdtemp(dir=work))
        os.environ.update(EASYPOST_API_BASE=api_base, EASYPOST_API_KEY=KEY, SHIPCTL_STATE_DIR=str(run_dir / "state"))
        args = CreateArgs(
            manifest=manifest, manifest_label=str(manifest), source=ManifestSource(manifest),
            purchase=PurchaseOptions(check_references=None), results=None, failed=None, skip_invalid=False,
            rejects=None, journal=run_dir / "run.journal.db", fresh=False, dry_run=False, yes=False, max_cost=None,
            run=RunOptions(output="ndjson", sizing=parse_sizing("16", 64, None, None),
                           progress=progress, progress_interval=10.0, quiet=True,  # type: ignore[arg-type]
                           verbose=False, force_sandbox=False),
        )
        with open(os.devnull, "w") as devnull:
            term = Terminal(stdout=devnull, stderr=devnull,
                            err_console=Console(file=devnull, force_terminal=True, width=120))
            with use(term):
                wall = time.perf_counter()
                execute(args)
                return time.perf_counter() - wall

    return run


def print_verdicts() -> None:
    print("\nissue 12's table, this run (the validation row: benchmarks/bench_validate.py):")
    width = max(len(v.situation) for v in VERDICTS)
    for v in VERDICTS:
        mark = "" if v.holds is None else ("holds" if v.holds else "MISSES")
        print(f"  {v.situation:<{width}}  {v.figure:<28} {v.target:<9} {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seq-rows", type=int, default=100, help="rows of the sequential loop at latency fast")
    # The issue's own setting (1,000 rows): with fewer, start-up and the last rows' tail weigh more than the engine.
    parser.add_argument("--realistic-rows", type=int, default=1000)
    parser.add_argument("--seed-realistic-rows", type=int, default=300)
    parser.add_argument("--cpu-rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs of the scattered-429 section")
    parser.add_argument("--auto-rounds", type=int, default=3, help="rotated rounds of the auto section")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each start-up figure")
    parser.add_argument("--skip", default="", help="comma list of: compare,throttle,auto,cpu,startup,display")
    opts = parser.parse_args()
    skip = set(filter(None, opts.skip.split(",")))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        use_bytecode_cache(work)
        manifest = make_manifest(work / "bench.csv", opts.rows)
        # Before the first timed child: the cache starts empty, and a child compiling every module it imports
        # (shipctl's, the SDK's, pydantic's...) spends a second or more on it (measured: first label at 1.9 s
        # after launch instead of 0.8 s).
        with sandbox("--latency", "none") as base:
            warm_bytecode(base, make_manifest(work / "warm.csv", 1), work)
        print(f"cores: {os.cpu_count()}, rows: {opts.rows}; children's bytecode cached under the work directory")
        if "compare" not in skip:
            compare("fast", manifest, work, opts.rows, opts.seq_rows, 0.90)
            realistic = make_manifest(work / "realistic.csv", opts.realistic_rows)
            compare("realistic", realistic, work, opts.realistic_rows, max(10, opts.seq_rows // 10), 0.95,
                    seed_count=opts.seed_realistic_rows)
        if "throttle" not in skip:
            throttle(manifest, work, opts.rows, opts.rounds)
        if "auto" not in skip:
            auto_vs_fixed(manifest, work, opts.rows, opts.auto_rounds)
        if "cpu" not in skip:
            cpu_per_shipment(work, opts.cpu_rows)
        if "startup" not in skip:
            startup(work, opts.repeats)
        if "display" not in skip:
            display_cost(manifest, work, opts.rows)
    print_verdicts()


if __name__ == "__main__":
    main()
