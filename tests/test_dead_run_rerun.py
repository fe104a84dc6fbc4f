"""A run SIGKILLed while its buy is held on the way to the API; the buy lands; the plain rerun buys nothing twice.

Deterministic, as in test_dead_run_in_flight.py: a gateway holds `POST .../buy` until the test has killed the
real `shipctl create` and seen it exit, then lets the buy through and waits until the API has answered it (the
purchase is committed) before the same command is run again. The sandbox's ledger is the truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shipctl.sandbox import Sandbox
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest


class HeldThenLanded:
    """Holds every buy until `release`; counts the buys that reached the gateway and the ones the API answered."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.held = 0
        self.answered = 0
        self.changed = threading.Condition()

    def hold(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy"):
            with self.changed:
                self.held += 1
            self.arrived.set()
            assert self.release.wait(120), "the test never released the held buy"
        return None

    def rule(self, method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy"):
            with self.changed:
                self.answered += 1
                self.changed.notify_all()
        return None

    def wait_landed(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.answered >= count, 60), "the released buy never landed"


@pytest.fixture
def gate(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldThenLanded]:
    buys = HeldThenLanded()
    with gateway_in_front(env, monkeypatch, buys.rule, hold=buys.hold):
        try:
            yield buys
        finally:
            buys.release.set()


@pytest.mark.slow
def test_a_buy_that_lands_after_its_run_was_killed_is_adopted_by_the_plain_rerun(
    env: Sandbox, gate: HeldThenLanded, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(4)])
    command = [sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "--progress", "off"]
    # One call at a time: exactly one buy is in flight when the run dies.
    doomed = subprocess.Popen([*command, "--concurrency", "1"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    assert gate.arrived.wait(120), "no buy reached the gateway"
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=60) == -signal.SIGKILL
    assert gate.held == 1
    assert env.ledger() == []  # nothing bought yet: the buy is still held

    gate.release.set()
    gate.wait_landed(1)  # the dead run's buy is committed now
    [landed] = env.ledger()

    rerun = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                           env=dict(os.environ), check=False)
    assert rerun.returncode == 0, rerun.stderr
    records = {r["reference"]: r for r in map(json.loads, rerun.stdout.splitlines())}
    assert sorted(records) == [f"ORD-{i:05d}" for i in range(4)]
    assert all(r["status"] == "bought" and r["error_code"] is None for r in records.values())
    assert Counter(e["reference"] for e in env.ledger()) == Counter({f"ORD-{i:05d}": 1 for i in range(4)})
    adopted = records[landed["reference"]]
    assert adopted["shipment_id"] == landed["shipment_id"]  # the dead run's label, recorded, not replaced
    assert adopted["purchase"] != "new"  # and not counted as this run's spend
    assert [r["purchase"] for ref, r in records.items() if ref != landed["reference"]] == ["new"] * 3
