"""`shipctl track`: the real SDK over real HTTP to the sandbox; stdout and stderr asserted separately."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import easypost
import pytest

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.tracking import TEST_CODES
from tests.cli import TEST_KEY, invoke, ndjson, point_at


def buy_label(sb: Sandbox) -> dict[str, str]:
    client = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
    try:
        shipment = client.shipment.create(
            to_address={"name": "A", "street1": "350 5th Ave", "city": "New York", "state": "NY", "zip": "10118",
                        "country": "US"},
            from_address={"name": "B", "street1": "417 Montgomery St", "city": "San Francisco", "state": "CA",
                          "zip": "94104", "country": "US"},
            parcel={"weight": 12},
        )
        bought = client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
        return {"tracking_code": bought.tracking_code, "carrier": bought.selected_rate.carrier}
    finally:
        client._requests_session.close()


@pytest.mark.parametrize(("code", "status"), sorted(TEST_CODES.items()))
def test_each_test_code_alone(env: Sandbox, code: str, status: str) -> None:
    result = invoke("track", code, "--output", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    [row] = ndjson(result.stdout)
    assert row["tracking_code"] == code
    assert row["status"] == status
    assert row["carrier"] == "USPS"
    assert row["error_code"] is None
    if status != "unknown":
        assert row["last_event"] and row["last_event_at"]
    assert "1 code: 1 tracked" in result.stderr


def test_all_test_codes_at_once_from_stdin_in_input_order(env: Sandbox) -> None:
    codes = list(reversed(TEST_CODES))
    result = invoke("track", "-", "--output", "ndjson", "--quiet", input="\n".join(codes) + "\n\n")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert [r["tracking_code"] for r in rows] == codes
    assert {r["tracking_code"]: r["status"] for r in rows} == TEST_CODES
    assert "7 codes: 7 tracked" in result.stderr
    assert "1 delivered" in result.stderr


def test_history_lists_every_event_oldest_first(env: Sandbox) -> None:
    result = invoke("track", "EZ4000000004", "--history", "--output", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    events = ndjson(result.stdout)
    assert len(events) == 7
    assert [e["datetime"] for e in events] == sorted(e["datetime"] for e in events)
    assert events[0]["status"] == "pre_transit"
    assert events[-1]["status"] == "delivered"
    assert events[-1]["message"].startswith("Delivered")
    assert events[-1]["location"] == "CHARLESTON, SC 29401"
    assert set(events[0]) == {"tracking_code", "carrier", "datetime", "status", "status_detail", "message",
                              "location", "error_code", "error_message"}


def test_tracks_a_label_bought_in_the_sandbox(env: Sandbox) -> None:
    label = buy_label(env)
    result = invoke("track", label["tracking_code"], "--output", "csv", "--quiet")
    assert result.exit_code == 0, result.stderr
    header, line = result.stdout.splitlines()
    assert header.split(",")[:3] == ["tracking_code", "carrier", "status"]
    assert line.startswith(f"{label['tracking_code']},{label['carrier']},pre_transit,")


def test_malformed_codes_are_per_code_errors_and_exit_3(env: Sandbox) -> None:
    result = invoke("track", "EZ4000000004", "not-a-code!", "ab", "--output", "json", "--quiet")
    assert result.exit_code == 3
    rows = json.loads(result.stdout)
    assert [r["tracking_code"] for r in rows] == ["EZ4000000004", "not-a-code!", "ab"]
    assert rows[0]["status"] == "delivered" and rows[0]["error_code"] is None
    assert all(r["error_code"] == "TRACKING_CODE.INVALID" and r["status"] is None for r in rows[1:])
    assert "3 codes: 1 tracked, 2 failed" in result.stderr


def test_table_is_the_default_format_only_when_asked_on_a_pipe(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    piped = invoke("track", "EZ1000000001", "--quiet")
    assert ndjson(piped.stdout)[0]["status"] == "pre_transit"  # not a terminal: NDJSON
    table = invoke("track", "EZ1000000001", "--output", "table", "--quiet")
    assert table.exit_code == 0
    assert "tracking_code" in table.stdout.splitlines()[0]
    assert "EZ1000000001" in table.stdout


def test_watch_ends_once_every_code_is_final(env: Sandbox) -> None:
    result = invoke("track", "EZ4000000004", "EZ5000000005", "EZ6000000006", "--watch", "--interval", "0.01",
                    "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in ndjson(result.stdout)] == ["delivered", "return_to_sender", "failure"]
    assert "0 polls" in result.stderr


def test_watch_prints_changes_as_they_happen_and_stops_when_final(
    env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan arrives between polls (the sandbox's tracker is moved on, as a carrier would); the watch prints
    only that change, then ends because the code became final."""
    import shipctl.carrier.trackers as trackers

    real_retrieve = trackers.retrieve_tracker
    polls: list[str] = []

    def retrieve_after_a_scan(client: Any, tracker_id: str) -> trackers.Tracking:
        if not polls:
            tracker = dict(env.store.get(tracker_id) or {})
            delivered = {**tracker["tracking_details"][-1], "status": "delivered", "message": "Delivered",
                         "datetime": "2099-01-01T00:00:00Z"}
            tracker.update(status="delivered", tracking_details=[*tracker["tracking_details"], delivered])
            env.store.put("tracker", tracker)
        polls.append(tracker_id)
        return real_retrieve(client, tracker_id)

    monkeypatch.setattr(trackers, "retrieve_tracker", retrieve_after_a_scan)
    result = invoke("track", "EZ4000000004", "EZ3000000003", "--watch", "--interval", "0.01", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert [(r["tracking_code"], r["status"]) for r in rows] == [
        ("EZ4000000004", "delivered"),
        ("EZ3000000003", "out_for_delivery"),
        ("EZ3000000003", "delivered"),  # the change, printed once
    ]
    assert rows[-1]["last_event"] == "Delivered"
    assert len(polls) == 1  # the delivered code was never polled; the other once
    assert "1 polls" in result.stderr


def test_watch_gives_up_at_the_timeout_with_exit_3(env: Sandbox) -> None:
    result = invoke("track", "EZ2000000002", "EZ4000000004", "--watch", "--interval", "0.02", "--timeout", "0.2",
                    "--output", "ndjson")
    assert result.exit_code == 3
    assert len(ndjson(result.stdout)) == 2  # nothing changed, so nothing was printed again
    assert "--timeout reached with 1 code not final" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give tracking codes"),
        (("EZ1000000001", "--interval", "5"), "go with --watch"),
        (("EZ1000000001", "--watch", "--interval", "0"), "--interval must be positive"),
        (("EZ1000000001", "--output", "xml"), "--output must be"),
        (("-", "-"), "only once"),
    ],
)
def test_usage_errors_exit_2(env: Sandbox, args: tuple[str, ...], message: str) -> None:
    result = invoke("track", *args, input="EZ1000000001\n")
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_empty_stdin_is_a_usage_error(env: Sandbox) -> None:
    result = invoke("track", "-", input="\n  \n")
    assert result.exit_code == 2
    assert "no tracking codes on stdin" in result.stderr


def test_transient_errors_are_retried_through_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with start_sandbox(latency="none", faults="server_error=0.3", seed=7) as flaky:
        point_at(monkeypatch, flaky, tmp_path)
        codes = list(TEST_CODES) * 3
        result = invoke("track", "-", "--output", "ndjson", "--quiet", input="\n".join(codes))
    assert result.exit_code == 0, result.stderr
    assert {r["tracking_code"]: r["status"] for r in ndjson(result.stdout)} == TEST_CODES


@pytest.mark.slow
def test_track_dash_composes_in_a_shell_pipeline(env: Sandbox, tmp_path: Path) -> None:
    """`<ndjson of bought labels> | <pick the tracking codes> | shipctl track -` in a real shell."""
    labels = [buy_label(env)["tracking_code"] for _ in range(3)]
    bought = tmp_path / "bought.ndjson"
    bought.write_text("".join(json.dumps({"tracking_code": c}) + "\n" for c in labels))
    python = shlex.quote(sys.executable)
    script = "import json, sys\nfor line in sys.stdin: print(json.loads(line)['tracking_code'])"
    pick = f"{python} -c {shlex.quote(script)}"
    pipeline = f"cat {shlex.quote(str(bought))} | {pick} | {python} -m shipctl track - --quiet"
    done = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr
    rows = ndjson(done.stdout)  # NDJSON, because stdout is a pipe
    assert [r["tracking_code"] for r in rows] == labels
    assert all(r["status"] == "pre_transit" and r["carrier"] for r in rows)
    assert "3 codes: 3 tracked" in done.stderr


def test_many_codes_take_about_as_long_as_the_slowest_few(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 labels tracked with EasyPost's recorded tracker latency (~75 ms a call): one by one that is ~5 s;
    through the engine (16 in flight) it is four waves."""
    import time

    state = tmp_path / "sandbox.sqlite3"
    with start_sandbox(latency="none", state_path=state) as fast:  # buy the labels quickly...
        codes = [buy_label(fast)["tracking_code"] for _ in range(64)]
    with start_sandbox(latency="realistic", seed=3, state_path=state) as slow:  # ...then track them slowly
        point_at(monkeypatch, slow, tmp_path)
        started = time.monotonic()
        result = invoke("track", "-", "--output", "ndjson", "--quiet", input="\n".join(codes))
        elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)
    assert [r["tracking_code"] for r in rows] == codes
    assert {r["status"] for r in rows} == {"pre_transit"}
    assert elapsed < 2.5, f"64 codes took {elapsed:.2f} s: not concurrent"
