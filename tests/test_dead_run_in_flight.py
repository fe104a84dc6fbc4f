"""A run killed while its buy is held on the way to the API: the buy lands after the run is dead.

Deterministic: a gateway holds `POST .../buy` until the test has sent SIGKILL to the real `shipctl create`
process and seen it exit; only then is the buy forwarded and committed. The sandbox's ledger is the truth.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipctl.sandbox import Sandbox
from tests.gateway import Gateway, gateway_in_front
from tests.manifests import row, write_manifest


class HeldBuys:
    """Holds every buy at the gateway until released; says when the first one arrived."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy"):
            self.arrived.set()
            assert self.release.wait(120), "the test never released the held buy"
        return None


@pytest.fixture
def held(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HeldBuys, Gateway]]:
    buys = HeldBuys()
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=buys) as proxy:
        try:
            yield buys, proxy
        finally:
            buys.release.set()


def create(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shipctl", "create", *args, "-o", "ndjson", "--progress", "off"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, env=dict(os.environ),
                          check=False)


def start_quiet_create(manifest: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "shipctl", "create", str(manifest), "-q", "-o", "ndjson"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_with_buy_in_flight(arrived: threading.Event, manifest: Path) -> None:
    """Start `create`, and SIGKILL it once its buy is held at the gateway (`arrived`)."""
    proc = start_quiet_create(manifest)
    assert arrived.wait(120), "no buy reached the gateway"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def records(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_an_edited_rerun_waits_for_a_dead_runs_buy_then_adopts_it(
    env: Sandbox, held: tuple[HeldBuys, Gateway], tmp_path: Path
) -> None:
    buys, _ = held
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    kill_with_buy_in_flight(buys.arrived, manifest)

    # The clerk fixes the weight and reruns at once, while the dead run's buy is still on its way.
    write_manifest(manifest, [row(0, weight=31)])
    waiting = create(str(manifest))
    assert [r["error_code"] for r in records(waiting)] == ["PREVIOUS_BUY_UNSETTLED"]
    assert env.ledger() == []  # nothing bought in its place

    buys.release.set()  # the dead run's buy lands now
    buys.arrived.clear()
    landed = create(str(manifest))
    assert [(r["status"], r["error_code"]) for r in records(landed)] == [("bought", "EDITED_AFTER_PURCHASE")]
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1})


@pytest.mark.slow
def test_a_failed_takeover_keeps_the_dead_runs_shipment_on_record(
    env: Sandbox, held: tuple[HeldBuys, Gateway], tmp_path: Path
) -> None:
    buys, _ = held
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    kill_with_buy_in_flight(buys.arrived, manifest)

    # The rerun takes the dead run's claim over and fails the row without buying (a carrier no rate matches)...
    failed = tmp_path / "failed.csv"
    refused = create(str(manifest), "--carriers", "DHL", "--failed", str(failed))
    assert [r["error_code"] for r in records(refused)] == ["NO_MATCHING_RATE"]
    buys.release.set()  # ...then the dead run's buy lands
    # The failed row, fed back as a new manifest, finds that label instead of buying another.
    again = create(str(failed))
    assert again.returncode == 0, again.stderr
    assert [r["purchase"] for r in records(again)] == ["found"]
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1})


@pytest.mark.slow
def test_ctrl_c_starts_no_new_purchase(env: Sandbox, held: tuple[HeldBuys, Gateway], tmp_path: Path) -> None:
    """After Ctrl-C only the buy already sent completes; rows created meanwhile are left for the rerun."""
    buys, _ = held
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(6)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "--progress", "off",
         "--concurrency", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                                                                                      "PYTHONUNBUFFERED": "1"},
    )
    assert buys.arrived.wait(120), "no buy reached the gateway"
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    for line in proc.stderr:  # the run has heard it before the held buy is let through
        if b"no new rows or purchases will start" in line:
            break
    buys.release.set()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert len(env.ledger()) == 1  # the one buy that was in flight
    again = create(str(manifest))
    assert again.returncode == 0, again.stderr
    assert Counter(e["reference"] for e in env.ledger()) == Counter({f"ORD-{i:05d}": 1 for i in range(6)})
    del out


class RefuseThenHold:
    """The first buy is answered 503 without reaching the API; the second is held until released."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []
        self.second = threading.Event()
        self.release = threading.Event()

    def __call__(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if not (method == "POST" and path.endswith("/buy")):
            return None
        self.sent_at.append(time.time())
        if len(self.sent_at) == 1:
            body = json.dumps({"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy", "errors": []}})
            return 503, "application/json", body.encode()
        self.second.set()
        assert self.release.wait(120), "the test never released the held buy"
        return None


@pytest.mark.slow
def test_every_send_of_a_buy_is_stamped_in_the_claims(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taker times its wait from the last send, so a retried buy must restamp, not keep its first time."""
    gate = RefuseThenHold()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=gate):
        proc = start_quiet_create(manifest)
        try:
            assert gate.second.wait(120), "the buy was not retried"
            claims = sqlite3.connect(tmp_path / "state" / "claims.sqlite3")
            (stamped,) = claims.execute("SELECT buy_sent_at FROM claim_shipments").fetchone()
            claims.close()
            assert stamped >= gate.sent_at[1] - 0.5 > gate.sent_at[0]  # the second send's time, not the first's
        finally:
            gate.release.set()
            assert proc.wait(timeout=120) == 0
    assert len(env.ledger()) == 1


class DeadRunsBuyLandsFirst:
    """Buy 1 (the run to be killed) is held; when buy 2 (the taker's) comes, buy 1 is let through and lands, and
    buy 2 is answered with a gateway's error page without reaching the API: its outcome is unknown to the taker."""

    def __init__(self) -> None:
        self.buys = 0
        self.first_arrived = threading.Event()
        self.first_release = threading.Event()
        self.first_landed = threading.Event()

    def hold(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if not (method == "POST" and path.endswith("/buy")):
            return None
        self.buys += 1
        if self.buys == 1:
            self.first_arrived.set()
            assert self.first_release.wait(120)
            return None
        self.first_release.set()
        assert self.first_landed.wait(120)
        return 504, "text/html", b"<html>gateway timeout</html>"

    def rule(self, method: str, path: str, answer: Any) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy"):
            self.first_landed.set()
        return None


@pytest.mark.slow
def test_a_label_a_dead_run_bought_is_not_reported_as_this_runs_spend(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = DeadRunsBuyLandsFirst()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, gate.rule, hold=gate.hold):
        kill_with_buy_in_flight(gate.first_arrived, manifest)
        taker = create(str(write_manifest(tmp_path / "copy.csv", [row(0)])))  # reuses the dead run's shipment
    assert taker.returncode == 0, taker.stderr
    assert [r["purchase"] for r in records(taker)] == ["found"]  # the dead run's purchase, not this run's
    assert len(env.ledger()) == 1


class HeldCreateAnswer:
    """Forwards the first `POST /shipments` (so the shipment exists) and holds its answer until released."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.committed = threading.Event()
        self.release = threading.Event()

    def __call__(self, method: str, path: str, answer: Any) -> None:
        if method == "POST" and path.rstrip("/").endswith("/shipments") and not self.committed.is_set():
            self.made.append(answer.json()["id"])
            self.committed.set()
            assert self.release.wait(120), "the test never released the held answer"


@pytest.mark.slow
def test_a_shipment_made_as_the_run_was_killed_is_bought_by_its_rerun(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run is killed after its create reached the API and before it could record the shipment. The rerun's
    first look finds that shipment, unknown to the claims; the claims say the dead run had a create out, so it is
    that run's: the rerun buys it, rather than holding the row for 15 minutes as another machine's."""
    answer = HeldCreateAnswer()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, answer):
        try:
            proc = subprocess.Popen([sys.executable, "-m", "shipctl", "create", str(manifest), "-q", "-o", "ndjson",
                                     "--check-references"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert answer.committed.wait(120), "no create reached the gateway"
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            answer.release.set()  # the answer goes nowhere: its reader is dead
        rerun = create(str(manifest), "--check-references")
    assert rerun.returncode == 0, rerun.stderr
    (record,) = records(rerun)
    assert (record["status"], record["purchase"]) == ("bought", "new")
    assert answer.made == [record["shipment_id"]]  # the dead run's shipment, and no second one was bought
    assert Counter(e["shipment_id"] for e in env.ledger()) == Counter({record["shipment_id"]: 1})
