"""Benchmark `shipctl report` over a large history: 100,000 bought labels in several journals by default.

A script, not a test:  python benchmarks/bench_report.py [--labels 100000] [--journals 4] [--runs 5] [--keep DIR]

The journals are made with shipctl's own `Journal` (its schema, WAL, 0600) and filled in one transaction each: 90
days of labels across carriers and services, one in 20 refunded (a few still `submitted`), one row in 50 failed.
One label in 100 of each journal after the first is also in the one before it, as a second run adopting a label
leaves it (the report merges those). The claims file names every journal, one claim per label, and indexes them
(`journals`), as `create` leaves it. Then `shipctl report` runs in a fresh child process each time, start-up
included, found through the claims as a user runs it: `-o ndjson > /dev/null` grouped by day, by service and by
month, and over one month. It prints the median and best wall time of `--runs` runs of each, then the same
summaries in this process (`build_report` alone, no start-up).

Every child runs with a bytecode cache of its own (PYTHONPYCACHEPREFIX in the work directory, warmed before
anything is timed), as an installed package has its .pyc files: an environment that sets PYTHONDONTWRITEBYTECODE
would otherwise time shipctl compiling its own modules from source on every start.

Target (issue 16, 2-core box): well under a second for 100,000 labels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shipctl.claims import _connect as connect_claims  # noqa: E402
from shipctl.journal import Journal  # noqa: E402

SERVICES = [("USPS", "GroundAdvantage"), ("USPS", "Priority"), ("UPS", "Ground"), ("UPS", "NextDayAir"),
            ("FedEx", "FEDEX_GROUND"), ("FedEx", "FEDEX_2_DAY")]
CODES = ["ADDRESS.VERIFY.FAILURE", "SHIPMENT.INVALID_PARAMS", "RATE_NOT_FOUND"]


def build(folder: Path, labels: int, journals: int, seed: int = 16) -> list[Path]:
    rng = random.Random(seed)
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    paths = []
    claims: list[tuple[str, ...]] = []
    per = -(-labels // journals)
    for j in range(journals):
        path = folder / f"orders-{j}.csv.journal.db"
        rows: list[tuple[object, ...]] = []
        for i in range(min(per, labels - j * per)):
            ref = f"J{j}-{i:07d}"
            sid = f"shp_{j}_{i}"
            if j and i % 100 == 1:  # adopted from the journal before: the same label, its refund known here
                sid = f"shp_{j - 1}_{i}"
            carrier, service = rng.choice(SERVICES)
            at = start + dt.timedelta(seconds=rng.randrange(90 * 86400))
            refund = None
            if i % 20 == 0:
                refund = "submitted" if i % 60 == 0 else "refunded"
            if i % 50 == 7:
                rows.append((ref, i + 1, "failed", None, None, None, None, None, rng.choice(CODES), None,
                             at.isoformat(timespec="milliseconds"), None))
                continue
            stamp = at.isoformat(timespec="milliseconds")
            rows.append((ref, i + 1, "bought", sid, carrier, service, f"{rng.randrange(350, 9000) / 100:.2f}", "USD",
                         None, refund, stamp, stamp))
            claims.append(("test:acct_bench", ref, "bought", "run", "1", str(path), sid, at.isoformat()))
        journal = Journal(path).open()
        try:
            with journal.db:
                journal.db.execute("BEGIN")
                journal.db.executemany(
                    "INSERT INTO rows (reference, line, state, shipment_id, carrier, service, rate, currency, "
                    "error_code, refund_status, updated_at, bought_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        finally:
            journal.close()
        paths.append(path)
    db = connect_claims(folder / "claims.sqlite3")
    try:
        db.execute("BEGIN")
        db.executemany("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)", claims)
        db.executemany("INSERT INTO journals VALUES (?, 'test:acct_bench', ?, ?)",
                       [(str(path), start.isoformat(), start.isoformat()) for path in paths])
        db.execute("COMMIT")
    finally:
        db.close()
    return paths


def timed(args: list[str], env: dict[str, str], root: Path = ROOT) -> float:
    began = time.perf_counter()
    # Run from `root`: `-m` puts the working directory first on the path, before PYTHONPATH.
    subprocess.run([sys.executable, "-m", "shipctl", "report", *args], env=env, check=True, cwd=root,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--journals", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the journals here and leave them")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = opts.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        build(folder, opts.labels, opts.journals)
        print(f"built {opts.labels:,} rows in {opts.journals} journals in {time.perf_counter() - began:.1f} s")
        time_report(folder, opts.runs)
        in_process(folder, opts.runs)


def time_report(folder: Path, runs: int, root: Path = ROOT) -> None:
    """`shipctl report` (the one in `root`) in fresh child processes over the journals and claims in `folder`."""
    env = {**os.environ, "SHIPCTL_STATE_DIR": str(folder), "PYTHONPATH": str(root),
           "PYTHONPYCACHEPREFIX": str(folder / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = (["-o", "ndjson"], ["-o", "ndjson", "--by", "service"], ["-o", "ndjson", "--by", "month"],
             ["-o", "ndjson", "--since", "2024-04-01", "--until", "2024-04-30"])
    timed(cases[0], env, root)  # warm the bytecode and the page cache: the first run of anything pays for both
    for args in cases:
        times = [timed(args, env, root) for _ in range(runs)]
        print(f"shipctl report {' '.join(args):<45} median {statistics.median(times):.3f} s, "
              f"best {min(times):.3f} s ({runs} runs, start-up included)")
    times = [timed(["--help"], env, root) for _ in range(runs)]
    print(f"{'shipctl report --help (start-up alone)':<60} median {statistics.median(times):.3f} s")


def in_process(folder: Path, runs: int) -> None:
    from shipctl.claims import known_journals
    from shipctl.jobs.report import ReportQuery, build_report

    for name, query in (("--by day", ReportQuery()), ("--by service", ReportQuery(by="service")),
                        ("--by day, table (+ per carrier)", ReportQuery(also=("day", "carrier")))):
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            build_report(query, known_journals(folder))
            times.append(time.perf_counter() - began)
        print(f"{'build_report ' + name + ' (in process)':<60} median {statistics.median(times):.3f} s, "
              f"best {min(times):.3f} s")


if __name__ == "__main__":
    main()
