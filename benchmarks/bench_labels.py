"""Benchmark `shipctl labels`: the time and size of a 500-label print file, PNG labels and PDF labels.

A script, not a test:  python benchmarks/bench_labels.py [--rows 500] [--latency none|fast]

A standalone sandbox in its own process; `create` buys `--rows` labels per label format (PNG, then PDF); then
`shipctl labels` runs as a user would (a fresh process each, start-up included): the first run fetches every
label (one shipment read and one file per label), the second finds them all in the cache (still one shipment
read per label: a label refunded since is never printed), then the ZPL file (converted by the API the first
time). Prints the wall time, the time the command reports, the file's size and its page count.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pypdf import PdfReader  # noqa: E402

from tests.manifests import row, write_manifest  # noqa: E402
from tests.standalone import sandbox_process, shipctl_env  # noqa: E402

_REPORTED = re.compile(r"\), (\d+(?:\.\d+)?) s$", re.M)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def shipctl(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the shipctl process, its stderr)."""
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "shipctl", *args], env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"shipctl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return elapsed, _children_cpu() - cpu, done.stderr


def measure(label: str, args: list[str], out: Path, env: dict[str, str]) -> None:
    wall, cpu, stderr = shipctl(args, env)
    reported = _REPORTED.search(stderr)
    size = out.stat().st_size
    pages = len(PdfReader(out).pages) if out.suffix == ".pdf" else out.read_text().count("^XZ")
    print(f"  {label:<30} {wall:6.2f} s wall ({reported.group(1) if reported else '?'} s reported), "
          f"{cpu:5.2f} s CPU, {pages} pages, {size / 1024 / 1024:.2f} MiB ({size / pages / 1024:.1f} KiB a page)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--latency", default="none", choices=("none", "fast", "realistic"))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sandbox_process("--port", "0", "--latency", opts.latency) as server:
        folder = Path(tmp)
        env = shipctl_env(server.api_base, folder / "state")
        for fmt in ("PNG", "PDF"):
            manifest = write_manifest(folder / f"{fmt}.csv",
                                      [row(i, reference=f"{fmt}-{i:05d}", label_format=fmt) for i in range(opts.rows)])
            bought, _, _ = shipctl(["create", str(manifest), "--quiet", "-o", "ndjson"], env)
            print(f"{fmt} labels: {opts.rows} bought in {bought:.1f} s; latency {opts.latency}")
            for run in ("first run, fetching", "second run, from the cache"):
                out = folder / f"{fmt}-{run.split()[0]}.pdf"
                measure(f"PDF, {run}", ["labels", str(manifest), "--out", str(out)], out, env)
            out = folder / f"{fmt}.zpl"
            measure("ZPL, first run (converted)", ["labels", str(manifest), "--out", str(out)], out, env)
            letter = folder / f"{fmt}-letter.pdf"
            measure("PDF on letter sheets, cached", ["labels", str(manifest), "--out", str(letter), "--page",
                                                     "letter"], letter, env)


if __name__ == "__main__":
    main()
