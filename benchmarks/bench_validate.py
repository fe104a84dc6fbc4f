"""Benchmark manifest validation on generated CSVs (100k and 1M rows by default): shipctl against pydantic alone.

A script, not a test:  python benchmarks/bench_validate.py [--sizes 100000,1000000] [--keep DIR] [--block 10000]

For each size it prints:

* the CLI as a user runs it, each in a fresh child process (start-up included): `shipctl validate FILE` (the
  validation pass `create` and `rates` run first) and `shipctl validate FILE --output ndjson > /dev/null` (plus
  writing every normalised row). Seconds, rows/s, the child's CPU (user + system, from `wait4`) and its peak RSS,
  read by a small measuring process of its own;
* the ratio issue 12 asks for: shipctl's CPU per row against `ShipmentRow.model_validate` alone on the same rows
  already parsed (the nested dicts of cell text pydantic receives, built here from the CSV, every row's origin and
  parcel given afresh). Measured in this process, in alternating blocks of `--block` rows (shipctl's reader pulls
  a block, then pydantic validates the same block), so a machine whose speed drifts slows both alike; the ratio
  is total over total, with the range of the block ratios. "shipctl" is everything `iter_rows` does: reading,
  decoding, CSV, columns, duplicate references, validation;
* the CLI's own per-row CPU (start-up taken off: a 1-row run's CPU) against the same pydantic figure.

Targets (issue 12, 2-core box): the ratio ≤ 1.3; peak RSS flat from 100k to 1M rows.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shipctl.manifest import ValidRow, iter_rows  # noqa: E402
from shipctl.manifest.columns import CUSTOMS, FROM, ITEM, PARCEL, TARGETS, TO  # noqa: E402
from shipctl.manifest.models import ShipmentRow  # noqa: E402

HEADER = [
    "reference", "to_name", "to_street1", "to_street2", "to_city", "to_state", "to_zip", "to_country", "to_phone",
    "from_name", "from_company", "from_street1", "from_city", "from_state", "from_zip", "from_country",
    "weight", "length", "width", "height", "carrier", "service", "label_format", "insurance",
    "customs_contents_type", "customs_signer", "item_description", "item_quantity", "item_value", "item_weight",
    "item_hs_tariff_number", "item_origin_country",
]
CITIES = [("Boston", "MA", "02108"), ("Austin", "TX", "78701"), ("Seattle", "WA", "98109"),
          ("Chicago", "IL", "60606"), ("Denver", "CO", "80203"), ("Miami", "FL", "33132")]
WEIGHTS = ["12", "8oz", "1.5 lb", "500g", "2kg", "24"]
_GROUP_KEYS = {TO: "to_address", FROM: "from_address", PARCEL: "parcel", CUSTOMS: "customs_info"}


def generate(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            city, state, zip_code = CITIES[i % len(CITIES)]
            international = i % 20 == 0
            row = [
                f"ORD-{i:08d}", f"Customer {i}", f"{100 + i % 900} Main St", "Apt 4" if i % 3 == 0 else "",
                "Toronto" if international else city, "ON" if international else state,
                "M5H 2M9" if international else zip_code, "CA" if international else "US", "5555550100",
                "Northwind Fulfilment", "Northwind Traders Inc", "388 Townsend St", "San Francisco", "CA", "94107",
                "US", WEIGHTS[i % len(WEIGHTS)], "10", "8", "4", "USPS", "Priority", "PDF",
                "100.00" if i % 10 == 0 else "",
            ]
            if international:
                row += ["merchandise", "Steve Brule", "Cotton T-shirt", "2", "18.50", "8", "6109.10", "US"]
            else:
                row += [""] * 8
            writer.writerow(row)


# --- the CLI, as a user runs it ------------------------------------------------------------------------------


@dataclass
class CliRun:
    wall: float
    cpu: float
    rss_mib: float


# Runs the command in a child of a fresh, small process and prints the child's figures as JSON: a child forked
# straight from this one (large after a 1M-row ratio) could report this process's pages as its own peak.
_MEASURE = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
with open(os.devnull, "wb") as devnull:
    proc = subprocess.Popen(sys.argv[1:], stdout=devnull, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_mib": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status),
                  "stderr": err.decode(errors="replace")[-500:]}))
"""


def run_cli(manifest: Path, *extra: str) -> CliRun:
    """`python -m shipctl validate MANIFEST EXTRA…`, stdout to /dev/null: wall, its own CPU, its peak RSS."""
    command = [sys.executable, "-m", "shipctl", "validate", str(manifest), *extra]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    report = json.loads(done.stdout)
    if report["code"] != 0:
        raise SystemExit(f"shipctl validate failed on {manifest}: {report['stderr']}")
    return CliRun(report["wall"], report["cpu"], report["rss_mib"])


# --- the ratio: shipctl's reader against pydantic alone, block by block --------------------------------------


def parsed_rows(manifest: Path) -> Iterator[dict[str, Any]]:
    """The rows as pydantic receives them: cell text, stripped, empty cells left out, grouped into the nested
    request shape (every row's own origin and parcel dicts: nothing cached)."""
    with manifest.open(newline="") as handle:
        reader = csv.reader(handle)
        targets = [TARGETS[name] for name in next(reader)]
        for cells in reader:
            top: dict[str, Any] = {}
            groups: dict[int, dict[str, Any]] = {TO: {}, FROM: {}, PARCEL: {}, CUSTOMS: {}, ITEM: {}}
            for (group, field), cell in zip(targets, cells, strict=True):
                value = cell.strip()
                if value:
                    groups.get(group, top)[field] = value
            item = groups.pop(ITEM)
            if item:
                groups[CUSTOMS]["customs_items"] = [item]
            for group, values in groups.items():
                if values:
                    top[_GROUP_KEYS[group]] = values
            yield top


def same_rows(manifest: Path, count: int = 200) -> None:
    """The parsed rows are what shipctl validates: the first `count` give equal models both ways."""
    for got, data in zip(itertools.islice(iter_rows(manifest), count), parsed_rows(manifest), strict=False):
        assert isinstance(got, ValidRow), got
        assert ShipmentRow.model_validate(data) == got.row, (data, got.row)


def ratio(manifest: Path, block: int) -> tuple[float, float, list[float]]:
    """(shipctl µs/row, pydantic µs/row, each block's ratio), in alternating blocks of `block` rows."""
    same_rows(manifest)
    ours = iter_rows(manifest)
    theirs = parsed_rows(manifest)
    validate = ShipmentRow.model_validate
    ours_total = theirs_total = 0.0
    rows = 0
    ratios: list[float] = []
    while True:
        start = time.process_time()
        n = sum(1 for _ in itertools.islice(ours, block))
        ours_cpu = time.process_time() - start
        batch = list(itertools.islice(theirs, block))
        assert len(batch) == n
        start = time.process_time()
        for data in batch:
            validate(data)
        theirs_cpu = time.process_time() - start
        del batch  # not kept alive through shipctl's next block
        if n == 0:
            break
        ours_total += ours_cpu
        theirs_total += theirs_cpu
        rows += n
        if n == block and theirs_cpu > 0:
            ratios.append(ours_cpu / theirs_cpu)
    return ours_total / rows * 1e6, theirs_total / rows * 1e6, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--block", type=int, default=10_000, help="rows per alternating block of the ratio")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="shipctl-bench-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        one = directory / "manifest-1.csv"
        generate(one, 1)
        startup = statistics.median(run_cli(one).cpu for _ in range(3))
        print(f"start-up: `shipctl validate` on a 1-row file, {startup:.3f} s CPU (median of 3)\n")
        print(f"{'rows':>9}  {'command':<28} {'seconds':>8} {'rows/s':>9} {'CPU s':>7} {'peak RSS':>9}")
        results = []
        for size in sizes:
            manifest = directory / f"manifest-{size}.csv"
            generate(manifest, size)
            for label, extra in (("validate FILE", ()), ("validate FILE -o ndjson", ("--output", "ndjson"))):
                cli = run_cli(manifest, *extra)
                print(f"{size:>9}  {label:<28} {cli.wall:>8.2f} {size / cli.wall:>9,.0f} {cli.cpu:>7.2f}"
                      f" {cli.rss_mib:>6.1f} MiB", flush=True)
                if not extra:
                    plain = cli
            results.append((size, plain, ratio(manifest, args.block)))
        print("\nper row, CPU: shipctl's reader (iter_rows) and the CLI against ShipmentRow.model_validate alone "
              "on the same parsed rows (target ≤ 1.3×)")
        for size, cli, (ours, theirs, blocks) in results:
            cli_row = (cli.cpu - startup) / size * 1e6
            spread = f"blocks {min(blocks):.2f}–{max(blocks):.2f}" if blocks else ""
            print(f"{size:>9}  pydantic {theirs:5.2f} µs  shipctl {ours:5.2f} µs  ratio {ours / theirs:.2f}× "
                  f"({spread})   CLI {cli_row:5.2f} µs ({cli_row / theirs:.2f}×)")


if __name__ == "__main__":
    main()
