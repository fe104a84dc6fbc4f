#!/usr/bin/env python
"""Chaos soak: `shipctl create` never buys a label twice and never loses a row, under faults and kill -9.

    python benchmarks/soak_chaos.py                           # 10,000 rows, 3 kills (about 20 minutes)
    python benchmarks/soak_chaos.py --rows 300 --kills 2      # a quick check
    python benchmarks/soak_chaos.py --rows 2000 --keep soak/  # keep the manifest, journal, results and logs

It generates an N-row manifest (tests/manifests.py), starts a standalone sandbox (`shipctl sandbox serve`)
that injects 429s, 5xx answers, dropped connections and buys committed then dropped, and runs

    python -m shipctl create MANIFEST --output ndjson --results results.ndjson --quiet

against it as a child process. The child is killed with SIGKILL `--kills` times, each time when its stdout
has reached k/(kills+1) of the rows (a rerun re-emits the rows already done, so the count is the job's
progress), then the same command is rerun until it exits 0 or 3 (at most `--max-runs` runs in all).

Then it checks, from the sandbox's ledger (`GET /v2/_sandbox/ledger`), the journal (read-only) and the final
run's results file:

* duplicates: references bought more than once in the ledger — must be 0;
* lost: manifest references neither bought in the ledger nor reported as a definite failure by the final run
  (`failed` with an API error code; `BUY_UNCONFIRMED` and `INTERNAL_ERROR` do not count) — must be 0;
* the shipment ids bought are the same set in the ledger, in the journal (state `bought`) and in the results;
* the final run exited 0 or 3, and wrote one result per manifest row.

It prints the figures, the exit code of every run, and PASS or FAIL; the exit status is 1 on FAIL.

The default faults (5% of calls answered 429 at random, 3% 5xx, 1% committed then dropped) ran 10,000 rows at
114.1 rows/s on a 2-core machine, 0.84x of the same run without faults (`--faults ""`: 135.8 rows/s).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.manifests import make_manifest  # noqa: E402

KEY = "EZTKsoakchaos00000000000000000"
FAULTS = "rate_limit=0.05,server_error=0.03,commit_then_drop=0.01,drop=0.01"
FINISHED = (0, 3)  # OK, PARTIAL: the run got to the end
# Failed rows whose outcome is not known: the buy may have gone through (rerun to reconcile), or shipctl broke
# before it could tell. Neither is a definite failure; every other error code is the API refusing the row.
NOT_DEFINITE = ("BUY_UNCONFIRMED", "INTERNAL_ERROR")


@dataclass
class Run:
    """One `shipctl create` child: how it ended and how far it got."""

    index: int
    kill_at: int | None
    lines: int = 0
    killed: bool = False
    timed_out: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    ledger_after: int | None = None

    def describe(self) -> str:
        if self.killed:
            ended = f"SIGKILL at {self.lines} rows out"
            if self.ledger_after is not None:
                ended += f" (ledger {self.ledger_after})"
        elif self.timed_out:
            ended = f"timed out, killed at {self.lines} rows out"
        else:
            ended = f"exit {self.returncode}, {self.lines} rows out"
        return f"run {self.index}: {ended}, {self.seconds:.1f} s"


@dataclass
class Checks:
    failures: list[str] = field(default_factory=list)

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


@contextlib.contextmanager
def sandbox(workdir: Path, opts: argparse.Namespace) -> Iterator[str]:
    """A standalone sandbox process; yields its API base (`http://127.0.0.1:PORT/v2`)."""
    cmd = [sys.executable, "-m", "shipctl", "sandbox", "serve", "--port", "0", "--latency", opts.latency,
           "--seed", str(opts.seed)]
    if opts.faults:
        cmd += ["--faults", opts.faults]
    if opts.max_inflight is not None:
        cmd += ["--max-inflight", str(opts.max_inflight)]
    with (workdir / "sandbox.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                text=True)
    assert proc.stdout is not None
    try:
        base = proc.stdout.readline().strip()
        if not base.startswith("http"):
            raise SystemExit(f"the sandbox did not start (exit {proc.wait()}); see {workdir / 'sandbox.log'}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def fetch_ledger(base: str) -> list[dict[str, Any]]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        conn.request("GET", f"{parts.path}/_sandbox/ledger", headers={"Authorization": f"Bearer {KEY}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {base}/_sandbox/ledger answered {response.status}: {body[:200]!r}")
    finally:
        conn.close()
    ledger: list[dict[str, Any]] = json.loads(body)["ledger"]
    return ledger


def count_lines(run: Run, proc: subprocess.Popen[bytes], sink: IO[bytes]) -> None:
    """Copy the child's stdout to `sink`, counting result lines; SIGKILL the child at `run.kill_at`."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.write(line)
        run.lines += 1
        if run.kill_at is not None and not run.killed and run.lines >= run.kill_at:
            proc.send_signal(signal.SIGKILL)
            run.killed = True


def run_create(index: int, cmd: list[str], env: dict[str, str], workdir: Path, kill_at: int | None,
               timeout: float) -> Run:
    run = Run(index, kill_at)
    start = time.perf_counter()
    with (workdir / f"run-{index}.stdout.ndjson").open("wb") as sink, \
            (workdir / f"run-{index}.stderr.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                                stdin=subprocess.DEVNULL)
        reader = threading.Thread(target=count_lines, args=(run, proc, sink), daemon=True)
        reader.start()
        try:
            run.returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
        finally:
            if proc.poll() is None:  # timed out, or this script was interrupted: leave no child behind
                proc.kill()
                run.returncode = proc.wait()
        reader.join()
        assert proc.stdout is not None
        proc.stdout.close()
    run.seconds = time.perf_counter() - start
    return run


def read_manifest_references(manifest: Path) -> list[str]:
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [r["reference"] for r in csv.DictReader(fh)]


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_journal(path: Path) -> list[tuple[str, str, str | None]]:
    """(reference, state, shipment_id) of every journal row; opened read-only, after every writer has exited."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return list(db.execute("SELECT reference, state, shipment_id FROM rows"))
    finally:
        db.close()


def sample(items: Collection[str], n: int = 5) -> str:
    return ", ".join(sorted(items)[:n]) + (" …" if len(items) > n else "")


def soak(workdir: Path, opts: argparse.Namespace) -> bool:
    manifest = make_manifest(workdir / "manifest.csv", opts.rows)
    results_path = workdir / "results.ndjson"
    journal_path = manifest.with_name(manifest.name + ".journal.db")
    references = read_manifest_references(manifest)
    cmd = [sys.executable, "-m", "shipctl", "create", str(manifest), "--output", "ndjson",
           "--results", str(results_path), "--quiet"]
    kill_points = [k * opts.rows // (opts.kills + 1) for k in range(1, opts.kills + 1)]
    print(f"rows {opts.rows}, kills {opts.kills} at {kill_points} rows out, faults {opts.faults or 'none'}, "
          f"latency {opts.latency}, seed {opts.seed}"
          + (f", max in flight {opts.max_inflight}" if opts.max_inflight is not None else "")
          + f"\nwork dir {workdir}")

    runs: list[Run] = []
    with sandbox(workdir, opts) as base:
        env = {**os.environ, "EASYPOST_API_BASE": base, "EASYPOST_API_KEY": KEY,
               "SHIPCTL_STATE_DIR": str(workdir / "state")}
        start = time.perf_counter()
        while len(runs) < opts.max_runs:
            kills_done = sum(r.killed for r in runs)
            kill_at = kill_points[kills_done] if kills_done < len(kill_points) else None
            run = run_create(len(runs) + 1, cmd, env, workdir, kill_at, opts.run_timeout)
            if run.killed:
                run.ledger_after = len(fetch_ledger(base))
            runs.append(run)
            print(run.describe(), flush=True)
            if not run.killed and not run.timed_out and run.returncode in FINISHED:
                break
        elapsed = time.perf_counter() - start
        ledger = fetch_ledger(base)
    (workdir / "ledger.json").write_text(json.dumps(ledger, indent=1))

    results = read_results(results_path)
    journal = read_journal(journal_path) if journal_path.exists() else []
    final = runs[-1]

    bought_count = Counter(str(e["reference"]) for e in ledger)
    duplicates = {ref: n for ref, n in bought_count.items() if n > 1}
    ledger_ids = {str(e["shipment_id"]) for e in ledger}
    journal_ids = {str(sid) for _, state, sid in journal if state == "bought"}
    results_bought = [r for r in results if r["status"] == "bought"]
    results_ids = {str(r["shipment_id"]) for r in results_bought}
    definite_failures = {r["reference"] for r in results
                         if r["status"] == "failed" and r["error_code"] not in NOT_DEFINITE}
    lost = set(references) - set(bought_count) - definite_failures
    strangers = set(bought_count) - set(references)
    statuses = Counter(r["status"] for r in results)
    errors = Counter(r["error_code"] for r in results if r["status"] != "bought" or r["error_code"])
    done = len(results_bought) + len(definite_failures)

    print(f"\nledger purchases          {len(ledger)}")
    print(f"distinct references       {len(bought_count)}")
    print(f"duplicates                {len(duplicates)}" + (f"  ({sample(duplicates)})" if duplicates else ""))
    print(f"lost                      {len(lost)}" + (f"  ({sample(lost)})" if lost else ""))
    print(f"journal rows bought       {len(journal_ids)} (of {len(journal)} journal rows)")
    print(f"results rows bought       {len(results_bought)} (of {len(results)} results rows: "
          + ", ".join(f"{status} {n}" for status, n in statuses.most_common()) + ")")
    if errors:
        print("error codes               " + ", ".join(f"{code} ×{n}" for code, n in errors.most_common()))
    same = ledger_ids == journal_ids == results_ids
    print(f"ledger = journal = results {'yes' if same else 'NO'}")
    if not same:
        for name, a, b in (("ledger", ledger_ids, journal_ids), ("journal", journal_ids, results_ids),
                           ("results", results_ids, ledger_ids)):
            if a - b:
                other = {"ledger": "journal", "journal": "results", "results": "ledger"}[name]
                print(f"  in the {name}, not the {other}: {len(a - b)} ({sample(a - b)})")
    print(f"elapsed                   {elapsed:.1f} s over {len(runs)} runs (create runs only)")
    print(f"throughput                {done / elapsed:.1f} rows/s ({done} rows bought or definitely failed)")
    print("exit codes                " + ", ".join("SIGKILL" if r.killed else str(r.returncode) for r in runs))

    checks = Checks()
    checks.expect(not duplicates, f"{len(duplicates)} references bought more than once")
    checks.expect(not lost, f"{len(lost)} references lost")
    checks.expect(not strangers, f"{len(strangers)} ledger references not in the manifest")
    checks.expect(same, "the ledger, the journal and the results disagree on the shipments bought")
    checks.expect(not final.killed and final.returncode in FINISHED,
                  f"the last run did not finish (exit {final.returncode}) within {opts.max_runs} runs")
    checks.expect(sorted(r["reference"] for r in results) == sorted(references),
                  f"the final results have {len(results)} rows, not one per manifest row ({len(references)})")
    checks.expect(sum(r.killed for r in runs) == opts.kills,
                  f"only {sum(r.killed for r in runs)} of {opts.kills} kills happened")
    if checks.failures:
        print("FAIL: " + "; ".join(checks.failures))
        return False
    print(f"PASS: {len(ledger)} labels for {opts.rows} rows, none twice, none lost, "
          f"{opts.kills} kills, {len(runs)} runs")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="manifest rows (default 10000)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs, spread over the job (default 3)")
    parser.add_argument("--faults", default=FAULTS, help=f"sandbox fault spec ('' for none; default {FAULTS})")
    parser.add_argument("--latency", choices=("none", "fast", "realistic"), default="fast")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-inflight", type=int, default=None, help="sandbox: 429 above N requests in flight")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="give up after this many create runs (default: kills + 5)")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="seconds before one run is killed")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR (new or empty) and keep its files")
    opts = parser.parse_args()
    if opts.rows < 1 or opts.kills < 0:
        parser.error("--rows must be at least 1 and --kills at least 0")
    if opts.max_runs is None:
        opts.max_runs = opts.kills + 5
    if opts.max_runs <= opts.kills:
        parser.error("--max-runs must be more than --kills")

    if opts.keep is None:
        workdir = Path(tempfile.mkdtemp(prefix="soak-chaos-"))
    else:
        workdir = opts.keep.resolve()
        if workdir.exists() and any(workdir.iterdir()):
            parser.error(f"--keep {opts.keep}: not empty (an old journal would turn the soak into a resume)")
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        ok = soak(workdir, opts)
    finally:
        if opts.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
