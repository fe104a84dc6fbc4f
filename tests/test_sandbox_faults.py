"""Fault injection: SDK exception classes, Retry-After, seeded reproducibility, commit-then-drop, in-flight cap."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import easypost
import pytest
import requests
from easypost.errors import (
    EasyPostError,
    HttpError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import shipment_params
from shipctl.sandbox.faults import FaultPlan, FaultSpec
from tests.standalone import sandbox_process


@contextmanager
def sdk(sb: Sandbox) -> Iterator[easypost.EasyPostClient]:
    c = easypost.EasyPostClient("EZTKfaults", api_base=sb.api_base)
    try:
        yield c
    finally:
        c._requests_session.close()


def _outcomes(faults: str, seed: int, n: int = 60) -> list[str]:
    out: list[str] = []
    with start_sandbox(faults=faults, seed=seed) as sb, sdk(sb) as c:
        for _ in range(n):
            try:
                c.shipment.create(**shipment_params())
                out.append("ok")
            except EasyPostError as exc:
                out.append(type(exc).__name__)
    return out


def test_fault_spec_parsing() -> None:
    spec = FaultSpec.parse("rate_limit=0.05,server_error=0.03,commit_then_drop=0.01,drop=0.01")
    assert (spec.rate_limit, spec.server_error, spec.commit_then_drop, spec.drop) == (0.05, 0.03, 0.01, 0.01)
    assert FaultSpec.parse(None).total == 0 and FaultSpec.parse("").total == 0
    for bad in ("nope=0.1", "rate_limit", "rate_limit=x", "drop=1.5", "drop=0.6,rate_limit=0.6"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)


def test_same_seed_same_fault_sequence() -> None:
    spec = "rate_limit=0.2,server_error=0.2"
    first = _outcomes(spec, seed=7)
    assert first == _outcomes(spec, seed=7)
    assert first != _outcomes(spec, seed=8)
    assert {"ok", "RateLimitError"} <= set(first)
    assert {"InternalServerError", "ServiceUnavailableError"} & set(first)


def test_fault_plan_is_deterministic_per_seed() -> None:
    spec = FaultSpec.parse("rate_limit=0.1,server_error=0.1,commit_then_drop=0.1,drop=0.1")
    a = [FaultPlan(spec, "none", 42).draw(True) for _ in range(1)]
    plan1, plan2 = FaultPlan(spec, "none", 42), FaultPlan(spec, "none", 42)
    assert [plan1.draw(True) for _ in range(200)] == [plan2.draw(True) for _ in range(200)]
    assert a[0] == FaultPlan(spec, "none", 42).draw(True)
    non_buy = FaultPlan(spec, "none", 1)
    assert "commit_then_drop" not in {non_buy.draw(False) for _ in range(500)}


def test_rate_limit_is_429_with_retry_after(sandbox: Sandbox) -> None:
    with start_sandbox(faults="rate_limit=1", seed=1) as sb, sdk(sb) as c:
        with pytest.raises(RateLimitError) as exc:
            c.shipment.create(**shipment_params())
        assert exc.value.http_status == 429
        assert json.loads(exc.value.http_body)["error"]["code"]
        with requests.Session() as s:
            r = s.post(sb.api_base + "/shipments", json={}, headers={"Authorization": "Bearer EZTKx"}, timeout=5)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"


def test_server_errors_map_to_sdk_classes() -> None:
    seen: set[type] = set()
    with start_sandbox(faults="server_error=1", seed=3) as sb, sdk(sb) as c:
        for _ in range(20):
            with pytest.raises((InternalServerError, ServiceUnavailableError)) as exc:
                c.shipment.retrieve("shp_" + "1" * 32)
            seen.add(type(exc.value))
            assert json.loads(exc.value.http_body)["error"]["message"]
    assert seen == {InternalServerError, ServiceUnavailableError}


def test_drop_closes_the_connection_without_an_answer() -> None:
    with start_sandbox(faults="drop=1", seed=1) as sb, sdk(sb) as c, pytest.raises(HttpError):
        c.shipment.create(**shipment_params())


def test_commit_then_drop_buys_but_never_answers() -> None:
    with start_sandbox(faults="commit_then_drop=1", seed=1) as sb, sdk(sb) as c:
        shp = c.shipment.create(**shipment_params("ctd"))  # not a buy: passes
        with pytest.raises(HttpError):
            c.shipment.buy(shp.id, rate=shp.lowest_rate())
        assert [e["shipment_id"] for e in sb.ledger()] == [shp.id]
        # The reconciliation a client must do: retrieve shows the label; buying again is refused.
        seen = c.shipment.retrieve(shp.id)
        assert seen.postage_label is not None and seen.tracking_code
        with pytest.raises(EasyPostError):
            c.shipment.buy(shp.id, rate=shp.lowest_rate())
        assert len(sb.ledger()) == 1


def test_max_inflight_answers_429_above_the_cap() -> None:
    # Realistic latency (a buy ~0.7 s): the eight calls overlap even when a loaded machine starts their threads
    # far apart.
    with start_sandbox(latency="realistic", max_inflight=2, seed=5) as sb:
        codes: list[int] = []
        retry_after: set[str] = set()
        lock = threading.Lock()
        barrier = threading.Barrier(8, timeout=60)

        def call() -> None:
            with requests.Session() as s:
                barrier.wait()
                r = s.post(sb.api_base + "/shipments/shp_x/buy", json={"rate": {"id": "rate_x"}},
                           headers={"Authorization": "Bearer EZTKx"}, timeout=10)
            with lock:
                codes.append(r.status_code)
                if r.status_code == 429:
                    retry_after.add(r.headers.get("Retry-After", ""))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert codes.count(429) >= 1 and codes.count(404) >= 1
    assert retry_after == {"1"}


def test_latency_profile_slows_requests_but_not_each_other() -> None:
    """Sixteen retrieves sent at once to a sandbox process with the realistic profile (~70 ms each).

    Each answer carries its server-side time (X-Runtime, the injected delay included). Every request was served
    within the span from the first send to the last answer, so the sum of the server-side times divided by that
    span is a lower bound on how many requests the server had in flight together at some moment: a server that
    served them one after another cannot exceed 1, however slow or loaded the machine.
    """
    count = 16
    auth = {"Authorization": "Bearer EZTKx"}
    sent = [0.0] * count
    answered = [0.0] * count
    runtimes = [0.0] * count
    statuses = [0] * count
    with sandbox_process("--latency", "realistic", "--seed", "11") as server:
        sessions = [requests.Session() for _ in range(count)]
        try:
            for s in sessions:  # connected beforehand (the ledger has no delay), so only the retrieves are timed
                s.get(server.api_base + "/_sandbox/ledger", headers=auth, timeout=10).raise_for_status()
            barrier = threading.Barrier(count)

            def retrieve(i: int) -> None:
                barrier.wait(timeout=60)
                sent[i] = time.perf_counter()
                r = sessions[i].get(server.api_base + "/shipments/shp_nope", headers=auth, timeout=30)
                answered[i] = time.perf_counter()
                statuses[i] = r.status_code
                runtimes[i] = float(r.headers["X-Runtime"])

            threads = [threading.Thread(target=retrieve, args=(i,)) for i in range(count)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        finally:
            for s in sessions:
                s.close()
    assert statuses == [404] * count
    # Slowed: the delay is the server's own (a retrieve takes ~0.1 ms without a profile).
    assert min(runtimes) > 0.015, runtimes
    # Not each other: at some moment at least 2 requests were being served at once (expected ~7; at most 1 if
    # serial; 2 leaves room for a loaded machine that starts the sixteen threads far apart).
    span = max(answered) - min(sent)
    assert sum(runtimes) / span >= 2, (sum(runtimes), span)


def test_capacity_slows_the_server_as_load_nears_it() -> None:
    from shipctl.sandbox.faults import capacity_slowdown

    steps = [capacity_slowdown(n, 40) for n in range(0, 41)]
    assert steps[0] == 1.0 and steps[40] == 2.0
    assert all(steps[i] <= steps[i + 1] for i in range(40))  # never faster under more load
    assert steps[20] < 1.1 < steps[30] < 1.5  # little cost at half the capacity, a real one near it
    assert capacity_slowdown(100, 40) == 2.0  # above N the server answers 429 instead of slowing further
    assert capacity_slowdown(30, None) == 1.0  # no capacity, no slowdown


def test_a_request_at_the_capacity_is_served_slower_than_the_same_request_without_one() -> None:
    """Same seed, so the same drawn delay; the only difference is the capacity of 1, which the lone request fills
    (×2). X-Runtime carries the server-side time, the injected delay included."""

    def runtime(max_inflight: int | None) -> float:
        with start_sandbox(latency="realistic", seed=11, max_inflight=max_inflight) as sb:
            r = requests.get(sb.api_base + "/shipments/shp_x", headers={"Authorization": "Bearer EZTKx"}, timeout=10)
            assert r.status_code == 404
            return float(r.headers["X-Runtime"])

    free, full = runtime(None), runtime(1)
    assert 1.6 < full / free < 2.6, (free, full)
