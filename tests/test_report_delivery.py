"""`shipctl report --delivery`: labels bought by real `create` runs against the sandbox, delivered on the sandbox's
moved clock (within their delivery days, and late), scanned in transit or never; tracking calls counted by a
reverse proxy in front of the sandbox (tests/gateway.py)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipctl.engine.sizing import size_pools
from shipctl.jobs import Headless, open_session
from shipctl.jobs.report_delivery import (
    FILE_NAME,
    DeliveryJob,
    DeliveryQuery,
    TrackingCache,
    business_days,
)
from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest

REFS = ["ONTIME-0", "ONTIME-1", "LATE-0", "TRANSIT-0", "UNSCANNED-0", "UNSCANNED-1"]


class Calls:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def rule(self, method: str, path: str, answer: Any) -> None:
        self.seen[f"{method} {path.split('?')[0].removeprefix('/v2')}"] += 1
        return None

    @property
    def trackers(self) -> int:
        return sum(n for call, n in self.seen.items() if "/trackers" in call)


@pytest.fixture
def calls(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    counter = Calls()
    with gateway_in_front(env, monkeypatch, counter.rule):
        yield counter


@pytest.fixture
def bought(env: Sandbox, calls: Calls, tmp_path: Path) -> dict[str, str]:
    """Through the gateway (the journals are bound to the API they bought from). Six labels bought now: two
    delivered a day later, one 20 days later, one scanned in transit, two never scanned. Every delivery_days the
    sandbox gives is between 1 and 13 business days."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(i, reference=ref) for i, ref in enumerate(REFS)])
    done = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert done.exit_code == 0, done.stderr
    ids = {r["reference"]: r["shipment_id"] for r in ndjson(done.stdout)}
    with Journal(tmp_path / "orders.csv.journal.db") as journal:
        days = {ref: journal.get(ref).delivery_days for ref in REFS}  # type: ignore[union-attr]
    assert all(d is not None and 1 <= d <= 13 for d in days.values()), days
    env.set_clock(1)
    env.scan(ids["ONTIME-0"], status="delivered")
    env.scan(ids["ONTIME-1"], status="delivered")
    env.scan(ids["TRANSIT-0"], status="in_transit")
    env.set_clock(20)
    env.scan(ids["LATE-0"], status="delivered")
    env.set_clock(0)
    return ids


def _delivery(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["section"] == "delivery"]


def test_counts_match_and_a_second_run_within_the_ttl_tracks_nothing(
    env: Sandbox, bought: dict[str, str], calls: Calls
) -> None:
    first = invoke("report", "--delivery", "-o", "json")
    assert first.exit_code == 0, first.stderr
    import json

    records = json.loads(first.stdout)
    assert {r["section"] for r in records} >= {"group", "total", "delivery"}  # the spend report is still there
    delivery = _delivery(records)
    total = delivery[-1]
    assert (total["by"], total["group"]) == ("total", "total")
    assert {k: total[k] for k in ("labels", "delivered", "on_time", "late", "in_transit", "not_scanned", "other",
                                  "untracked")} == {
        "labels": 6, "delivered": 3, "on_time": 2, "late": 1, "in_transit": 1, "not_scanned": 2, "other": 0,
        "untracked": 0}
    assert total["median_days"] == pytest.approx(1.0, abs=0.1)
    assert total["average_days"] == pytest.approx((1 + 1 + 20) / 3, abs=0.1)
    groups = delivery[:-1]
    assert groups and all(r["by"] == "service" and r["carrier"] for r in groups)
    assert sum(r["labels"] for r in groups) == 6 and sum(r["on_time"] for r in groups) == 2
    assert calls.trackers == 6  # one tracker per code, through the engine
    assert "6 codes tracked, 0 from the tracking cache" in first.stderr

    before = calls.trackers
    second = invoke("report", "--delivery", "-o", "ndjson")
    assert second.exit_code == 0, second.stderr
    assert calls.trackers == before  # within the TTL: no tracker call at all
    assert "0 codes tracked, 6 from the tracking cache" in second.stderr
    assert _delivery(ndjson(second.stdout))[-1] == total

    cache = Path(os.environ["SHIPCTL_STATE_DIR"]) / FILE_NAME
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    csv = invoke("report", "--delivery", "-o", "csv")
    assert csv.exit_code == 0, csv.stderr
    header, *lines = csv.stdout.splitlines()
    assert header.startswith("section,by,group,") and "on_time" in header and "median_days" in header
    assert sum(line.startswith("delivery,") for line in lines) == len(delivery)


def test_past_the_ttl_only_codes_not_final_are_tracked_again(
    env: Sandbox, bought: dict[str, str], calls: Calls, tmp_path: Path
) -> None:
    clock = [1_000_000_000.0]
    journals = [tmp_path / "orders.csv.journal.db"]

    def run() -> dict[str, Any]:
        with TrackingCache(tmp_path / "t.sqlite3", now=lambda: clock[0]).open() as cache, \
                open_session(size_pools(concurrency=4)) as session:
            return DeliveryJob(DeliveryQuery(), journals, session, Headless(), cache).run().total.record("total")

    first = run()
    assert calls.trackers == 6
    clock[0] += 9 * 60
    assert run() == first and calls.trackers == 6
    clock[0] += 2 * 60  # 11 minutes on: the three not delivered are asked again, the delivered ones never
    env.scan(bought["UNSCANNED-0"], status="in_transit")
    again = run()
    assert calls.trackers == 9
    assert (again["in_transit"], again["not_scanned"], again["delivered"]) == (2, 1, 3)


def test_refunded_labels_and_since_are_left_out(env: Sandbox, bought: dict[str, str], tmp_path: Path) -> None:
    refunded = invoke("refund", "--journal", str(tmp_path / "orders.csv.journal.db"), "-r", "UNSCANNED-1",
                      "-o", "ndjson")
    assert refunded.exit_code == 0, refunded.stderr
    result = invoke("report", "--delivery", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert _delivery(ndjson(result.stdout))[-1]["labels"] == 5
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    later = invoke("report", "--delivery", "--since", tomorrow, "-o", "ndjson")
    assert later.exit_code == 0, later.stderr
    assert _delivery(ndjson(later.stdout))[-1]["labels"] == 0


def test_business_days() -> None:
    friday = dt.date(2024, 5, 3)
    assert business_days(friday, friday) == 0
    assert business_days(friday, dt.date(2024, 5, 4)) == 0  # Saturday
    assert business_days(friday, dt.date(2024, 5, 6)) == 1  # Monday
    assert business_days(friday, dt.date(2024, 5, 17)) == 10
    assert business_days(dt.date(2024, 5, 6), dt.date(2024, 5, 10)) == 4


def test_report_without_delivery_loads_no_sdk(env: Sandbox, bought: dict[str, str], calls: Calls) -> None:
    before = sum(calls.seen.values())
    code = ("import runpy, sys\nsys.argv = ['shipctl', 'report', '-o', 'json']\n"
            "try:\n    runpy.run_module('shipctl', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('easypost' in sys.modules, 'shipctl.jobs.report_delivery' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] == "False False"
    assert sum(calls.seen.values()) == before
