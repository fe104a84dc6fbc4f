"""`labels --only-new` never hands one label to two runs, and a label is recorded as printed only when it is.

Two real `shipctl labels --only-new` processes are started together against one sandbox. Deterministic without
sleeps: a gateway holds every shipment read (the first API call on a label, made after a run has chosen what it
prints) until the first process has exited, or until one label is read twice — a second run printing it too,
which is the bug. A run killed with its claims held leaves them to the next run; a dead run's print file is
recorded only when it is under its name; `/dev/null` keeps nothing, so nothing written there is recorded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from shipctl.printing.printed import PrintedLog
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest
from tests.standalone import start

_READ = re.compile(r"^/v2/shipments/(shp_[0-9A-Za-z]+)$")


class ReadsHeld:
    """Once `armed`, holds each shipment read until `release`; a shipment read a second time releases them all."""

    def __init__(self) -> None:
        self.armed = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.read_twice = False
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def hold(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        match = _READ.match(path)
        if not (self.armed and method == "GET" and match):
            return None
        with self._lock:
            again = match[1] in self._seen
            self._seen.add(match[1])
        if again:
            self.read_twice = True
            self.release.set()
        self.arrived.set()
        assert self.release.wait(120), "the test never released the held reads"
        return None


@pytest.fixture
def gate(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadsHeld]:
    reads = ReadsHeld()
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=reads.hold):
        try:
            yield reads
        finally:
            reads.release.set()


def _bought(tmp_path: Path, count: int) -> Path:
    orders = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(count)])
    created = invoke("create", str(orders), "-q", "-o", "ndjson")
    assert created.exit_code == 0, created.stderr
    return orders


def _only_new(orders: Path, out: Path) -> subprocess.Popen[bytes]:
    return start(["labels", str(orders), "--out", str(out), "--only-new", "-o", "ndjson", "--progress", "off"],
                 dict(os.environ))


@pytest.mark.slow
def test_two_only_new_runs_at_once_print_each_label_once(gate: ReadsHeld, tmp_path: Path) -> None:
    orders = _bought(tmp_path, 6)
    gate.armed = True
    runs = [_only_new(orders, tmp_path / f"{name}.pdf") for name in ("a", "b")]
    with ThreadPoolExecutor(2) as pool:
        outputs = [pool.submit(run.communicate, timeout=120) for run in runs]
        wait(outputs, return_when=FIRST_COMPLETED)
        gate.release.set()  # the first run has ended: the other may go on
        results = [output.result() for output in outputs]

    assert not gate.read_twice, "both runs read the same label to print it"
    printed: list[set[str]] = []
    for run, (stdout, stderr) in zip(runs, results, strict=True):
        assert run.returncode == 0, stderr.decode()
        printed.append({r["shipment_id"] for r in ndjson(stdout.decode()) if r["status"] == "printed"})
    assert not printed[0] & printed[1]
    assert len(printed[0] | printed[1]) == 6
    loser = results[[len(p) for p in printed].index(0)]
    assert {r["status"] for r in ndjson(loser[0].decode())} == {"printing_elsewhere"}
    assert b"6 being printed by another run" in loser[1]


@pytest.mark.slow
def test_the_claims_of_a_killed_run_go_to_the_next_run(gate: ReadsHeld, tmp_path: Path) -> None:
    orders = _bought(tmp_path, 3)
    gate.armed = True
    doomed = _only_new(orders, tmp_path / "doomed.pdf")
    assert gate.arrived.wait(120), "the run never read a label"  # it has claimed all three
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=60) == -signal.SIGKILL
    gate.armed = False
    gate.release.set()

    rerun = invoke("labels", str(orders), "--out", str(tmp_path / "rerun.pdf"), "--only-new", "-o", "ndjson")
    assert rerun.exit_code == 0, rerun.stderr
    assert [r["status"] for r in ndjson(rerun.stdout)] == ["printed"] * 3
    assert not (tmp_path / "doomed.pdf").exists()


_DIES_WRITING = """
import os, sys
from pathlib import Path
from shipctl.printing.printed import PrintedLog
log = PrintedLog(Path(sys.argv[1])).open()
log.claim(["shp_1", "shp_2"])
out = Path(sys.argv[2])
if sys.argv[3:] == ["relative"]:  # `--out noted.pdf`, as typed, from the file's folder
    os.chdir(out.parent)
    out = Path(out.name)
log.writing([("shp_1", "R1", None), ("shp_2", "R2", None)], out, os.stat(out))
os._exit(9)  # killed between noting its file and recording it
"""


@pytest.mark.parametrize(("in_place", "relative"), [(True, False), (False, False), (True, True)])
def test_a_dead_runs_file_counts_as_printed_only_if_it_is_under_its_name(tmp_path: Path, in_place: bool,
                                                                         relative: bool) -> None:
    """Settled by the next run, from another folder (this test's) even when the dead run named its file relative."""
    folder, out = tmp_path / "label-files", tmp_path / "noted.pdf"
    out.write_bytes(b"%PDF-1.7 the dead run's file")
    dead = subprocess.run([sys.executable, "-c", _DIES_WRITING, str(folder), str(out),
                           *(["relative"] if relative else [])], check=False)
    assert dead.returncode == 9
    if not in_place:
        out.unlink()
        out.write_bytes(b"%PDF-1.7 another file since")  # the rename never happened; someone else's file is there
    with PrintedLog(folder) as log:
        claimed = log.claim(["shp_1", "shp_2", "shp_3"])
    assert claimed.elsewhere == {}  # the dead run's claims are let go
    assert claimed.printed == ({"shp_1", "shp_2"} if in_place else set())


def test_labels_written_to_dev_null_are_not_recorded_as_printed(env: Sandbox, tmp_path: Path) -> None:
    orders = _bought(tmp_path, 3)
    nowhere = invoke("labels", str(orders), "--out", os.devnull, "--format", "pdf")
    assert nowhere.exit_code == 0, nowhere.stderr
    assert "not recorded as printed" in nowhere.stderr
    then = invoke("labels", str(orders), "--out", str(tmp_path / "real.pdf"), "--only-new", "-o", "ndjson")
    assert [r["status"] for r in ndjson(then.stdout)] == ["printed"] * 3
