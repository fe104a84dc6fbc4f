"""stdout that cannot take the data without an OSError: closed before the start (`>&-`), or an encoding that
cannot hold a reference. Labels bought meanwhile are never lost: the run ends cleanly, the rerun re-emits them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.manifests import row, write_manifest
from tests.standalone import sandbox_process, shipctl_env


def test_a_closed_stdout_is_like_dev_null_and_every_row_is_bought_once(tmp_path: Path) -> None:
    """Exit 0, as into /dev/null, but said once on stderr: a script that closed stdout by mistake is told where the
    results are instead of losing them without a word (and the label note does not send it to stdout for URLs)."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(20)])
    with sandbox_process("--latency", "none") as server:
        env = shipctl_env(server.api_base, tmp_path / "state")
        done = subprocess.run(
            ["bash", "-c", f'"{sys.executable}" -m shipctl create "{manifest}" -o ndjson >&-'],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
        assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(20)})
        warnings = [line for line in done.stderr.splitlines() if "stdout is closed" in line]
        assert warnings == [f"warning: stdout is closed: the results are not printed (the journal {manifest}"
                            ".journal.db keeps them; rerun the same command with stdout open to print them, nothing "
                            "is bought twice)"], done.stderr
        assert "label_url field of stdout" not in done.stderr

        # The rerun with stdout open prints every result from the journal, buying nothing.
        again = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson"],
                               env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert len(again.stdout.splitlines()) == 20 and "stdout is closed" not in again.stderr
        assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(20)})


def test_an_encoding_stdout_cannot_hold_stops_like_a_failed_write_and_the_rerun_reemits(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i, reference=f"RÉF-{i}") for i in range(10)])
    with sandbox_process("--latency", "none") as server:
        env = shipctl_env(server.api_base, tmp_path / "state")
        args = [sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "csv"]
        first = subprocess.run(args, env={**env, "PYTHONIOENCODING": "ascii"}, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
        assert first.returncode == 4, first.stderr
        assert "error: cannot write stdout: UnicodeEncodeError" in first.stderr
        assert "Traceback" not in first.stderr and "unexpected" not in first.stderr
        rerun = subprocess.run(args, env={**env, "PYTHONIOENCODING": "utf-8"}, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert sum("RÉF-" in line for line in rerun.stdout.splitlines()) == 10
        assert server.bought() == Counter({f"RÉF-{i}": 1 for i in range(10)})
