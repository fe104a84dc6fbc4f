"""The sandbox's tracking history starts when the label was bought, where it was sent from.

A label bought today used to show "Shipping Label Created" a month ago, in Houston, for a parcel shipped from San
Francisco. EasyPost's test codes keep the statuses EasyPost documents for them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shipctl.sandbox import Sandbox
from shipctl.sandbox.tracking import TEST_CODES
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest


def when(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def test_a_label_bought_now_is_tracked_from_now_at_its_origin(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, to_city="Boston", to_state="MA", to_zip="02108")])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    bought = invoke("create", str(manifest), "-o", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr
    code = ndjson(bought.stdout)[0]["tracking_code"]

    result = invoke("track", code, "--history", "-o", "ndjson", "--quiet")
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert result.exit_code == 0, result.stderr
    events = ndjson(result.stdout)
    assert [e["message"] for e in events] == ["Pre-Shipment Info Sent to USPS", "Shipping Label Created"]
    assert all(before - timedelta(seconds=1) <= when(e["datetime"]) <= after for e in events), events
    assert events[1]["location"] == "SAN FRANCISCO, CA 94104"  # the manifest's origin, not Houston
    assert "HOUSTON" not in result.stdout

    summary = ndjson(invoke("track", code, "-o", "ndjson", "--quiet").stdout)[0]
    assert summary["status"] == "pre_transit"
    assert summary["last_location"] == "SAN FRANCISCO, CA 94104"
    assert when(summary["est_delivery_date"]) > when(summary["last_event_at"])


def test_test_codes_keep_their_statuses_and_end_now(env: Sandbox) -> None:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    result = invoke("track", *TEST_CODES, "-o", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert {r["tracking_code"]: r["status"] for r in rows} == TEST_CODES
    for r in rows:
        if r["last_event_at"]:
            assert start <= when(r["last_event_at"]) <= datetime.now(timezone.utc) + timedelta(seconds=1), r
    delivered = next(r for r in rows if r["status"] == "delivered")
    assert delivered["last_location"] == "CHARLESTON, SC 29401"
    assert when(delivered["est_delivery_date"]) <= when(delivered["last_event_at"])

    history = ndjson(invoke("track", "EZ4000000004", "--history", "-o", "ndjson", "--quiet").stdout)
    times = [when(e["datetime"]) for e in history]
    assert times == sorted(times)
    assert times[-1] - times[0] < timedelta(days=4)  # not a month


def test_retrieve_batch_reads_the_trackers_of_the_codes_asked(client: Any) -> None:
    """`tracker.retrieve_batch`, as the SDK calls it: this account's trackers for the codes given, in that order; a
    code never tracked is left out (the call reads, it never creates)."""
    if not hasattr(client.tracker, "retrieve_batch"):  # added to the SDK after 9.0, shipctl's lowest
        pytest.skip("this easypost SDK has no tracker.retrieve_batch")
    made = [client.tracker.create(tracking_code=code, carrier="USPS") for code in ("EZ1000000001", "EZ4000000004")]
    batch = client.tracker.retrieve_batch(tracking_codes=["EZ4000000004", "EZ1000000001", "NEVER-TRACKED-1"])
    assert [t.id for t in batch.trackers] == [made[1].id, made[0].id]
    assert [t.status for t in batch.trackers] == [made[1].status, made[0].status]
    assert client.tracker.all(page_size=10)["trackers"] and len(client.tracker.all(page_size=10)["trackers"]) == 2
