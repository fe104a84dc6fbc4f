"""Benchmark `shipctl validate FILE --output ndjson > /dev/null` on generated 10k, 100k and 1M row CSVs.

A script, not a test:  python benchmarks/bench_validate.py [--sizes 10000,100000,1000000] [--keep DIR]

Each size runs in a fresh child process (via a tiny runner that execs nothing else), so the peak RSS
reported is that one `shipctl validate` process's, read with getrusage(RUSAGE_CHILDREN) in a separate
measuring process per size. Targets (2-core box): 100k rows in <= 3 s; peak RSS <= 150 MB and flat.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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

# Runs one command in a child and prints its wall time and the child's peak RSS as JSON.
_MEASURE = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE).returncode
elapsed = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "seconds": elapsed, "rss_mib": rss_kib / 1024}))
"""


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


def measure(manifest: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "shipctl", "validate", str(manifest), "--output", "ndjson"]
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, "/dev/null", *command], capture_output=True, text=True, check=True
    )
    report: dict[str, float] = json.loads(result.stdout)
    if report["rc"] != 0:
        raise SystemExit(f"shipctl validate exited {report['rc']} on {manifest}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="shipctl-bench-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        print(f"{'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak RSS MiB':>13}")
        for size in sizes:
            manifest = directory / f"manifest-{size}.csv"
            started = time.perf_counter()
            generate(manifest, size)
            generated = time.perf_counter() - started
            report = measure(manifest)
            rate = size / report["seconds"]
            print(f"{size:>10} {report['seconds']:>8.2f} {rate:>10,.0f} {report['rss_mib']:>13.1f}"
                  f"   (generated in {generated:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
