"""The track job without the CLI: a headless host, a session on the built-in sandbox, rows collected in a list.

The built-in sandbox keeps its objects in a SQLite file under the state directory and reads every object back
from that file; a second `Store` on the same file stands in for the carrier, moving a parcel on between rounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipctl.carrier import trackers
from shipctl.engine.failures import CallFailure
from shipctl.engine.runner import RetryPolicy
from shipctl.engine.sizing import size_pools
from shipctl.exit_codes import ExitCode
from shipctl.jobs import Headless, Session, open_session
from shipctl.jobs.track import HISTORY_COLUMNS, INVALID_CODE, TRACK_COLUMNS, CodeState, Tracking, TrackInputs
from shipctl.paths import state_dir
from shipctl.sandbox.store import Store
from shipctl.sandbox.tracking import TEST_CODES

DELIVERED_AT = "2099-01-01T00:00:00Z"


@pytest.fixture
def session(no_key: Path) -> Iterator[Session]:
    """A session on the built-in sandbox (no key is set), its state file under the test's state directory."""
    with open_session(size_pools(concurrency=4), force_sandbox=True) as s:
        yield s


def sandbox_file() -> Path:
    return state_dir() / "sandbox.sqlite3"


def tracker_id(state: CodeState) -> str:
    assert state.tracking is not None, "only a tracked code is watched"
    return state.tracking.id


def deliver(tracker: str) -> None:
    """The carrier scans the parcel as delivered: one more event, and the tracker's status moves on."""
    store = Store(sandbox_file())
    try:
        moved = dict(store.get(tracker) or {})
        scan = {**moved["tracking_details"][-1], "status": "delivered", "message": "Delivered",
                "datetime": DELIVERED_AT}
        moved.update(status="delivered", tracking_details=[*moved["tracking_details"], scan])
        store.put("tracker", moved)
    finally:
        store.close()


class Collected:
    """The sink and round hook a renderer would give the job; rounds as the rows each one handed out."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.rounds: list[list[dict[str, Any]]] = []
        self._mark = 0

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def end_round(self) -> None:
        self.rounds.append(self.rows[self._mark:])
        self._mark = len(self.rows)


def test_first_pass_in_input_order_with_invalid_codes_counted_as_failed(session: Session) -> None:
    codes = [*reversed(TEST_CODES), "not a code!", " EZ1000 000001 "]
    host, out = Headless(), Collected()
    outcome = Tracking(TrackInputs(tuple(codes)), session, host, out.write).run()

    assert [r["tracking_code"] for r in out.rows] == [*reversed(TEST_CODES), "notacode!", "EZ1000000001"]
    assert all(list(r) == list(TRACK_COLUMNS) for r in out.rows)
    assert {r["tracking_code"]: r["status"] for r in out.rows[:7]} == TEST_CODES
    assert out.rows[7]["error_code"] == INVALID_CODE and out.rows[7]["status"] is None
    assert out.rows[8]["status"] == "pre_transit"  # spaces removed, as pasted from a label
    assert (outcome.codes, outcome.tracked, outcome.failed) == (9, 8, 1)
    assert (session.stats.done, session.stats.succeeded, session.stats.failed) == (9, 8, 1)
    assert dict(outcome.statuses)["pre_transit"] == 2
    assert outcome.exit_code == ExitCode.PARTIAL
    assert not outcome.watched and outcome.polls == 0
    assert host.notices == []


def test_a_poll_round_hands_out_only_the_code_whose_status_changed(session: Session) -> None:
    codes = ("EZ3000000003", "EZ4000000004", "EZ2000000002")
    out = Collected()
    job = Tracking(TrackInputs(codes, watch=True, interval=0.01), session, Headless(), out.write,
                   end_round=out.end_round)

    async def drive() -> None:
        await job.first_pass()
        assert sorted(job.pending) == [0, 2]  # the delivered code is never polled
        assert await job.poll_round() == []  # nothing moved yet
        deliver(tracker_id(job.pending[0]))
        news = await job.poll_round()
        assert [s.code for s in news] == ["EZ3000000003"]

    session.run(drive)
    first, quiet, news = out.rounds
    assert [(r["tracking_code"], r["status"]) for r in first] == [
        ("EZ3000000003", "out_for_delivery"), ("EZ4000000004", "delivered"), ("EZ2000000002", "in_transit")]
    assert quiet == []
    assert [(r["tracking_code"], r["status"], r["last_event"], r["last_event_at"]) for r in news] == [
        ("EZ3000000003", "delivered", "Delivered", DELIVERED_AT)]
    assert list(job.pending) == [2]  # final now, so no longer watched
    outcome = job.outcome()
    assert (outcome.tracked, outcome.failed, outcome.polls, outcome.not_final) == (3, 0, 2, 1)
    assert dict(outcome.statuses) == {"delivered": 2, "in_transit": 1}
    assert outcome.exit_code == ExitCode.OK


def test_history_hands_out_each_event_once(session: Session) -> None:
    out = Collected()
    job = Tracking(TrackInputs(("EZ2000000002",), history=True, watch=True, interval=0.01), session, Headless(),
                   out.write, end_round=out.end_round)

    async def drive() -> None:
        await job.first_pass()
        deliver(tracker_id(job.pending[0]))
        await job.poll_round()

    session.run(drive)
    first, news = out.rounds
    assert len(first) == 5 and all(list(r) == list(HISTORY_COLUMNS) for r in first)
    assert [e["datetime"] for e in first] == sorted(e["datetime"] for e in first)
    assert [(e["status"], e["message"], e["datetime"]) for e in news] == [("delivered", "Delivered", DELIVERED_AT)]


def test_a_code_lost_while_watched_moves_from_tracked_to_failed(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure is a warning and the code is polled again; a lasting one is news, and a failure."""
    real_retrieve = trackers.retrieve_tracker
    failures = [CallFailure("SERVICE.UNAVAILABLE", "try later", transient=True),
                CallFailure("NOT_FOUND", "The requested resource could not be found.")]
    lost_id: list[str] = []

    def retrieve(client: Any, tracker: str) -> trackers.Tracking:
        if tracker in lost_id:
            raise failures.pop(0)
        return real_retrieve(client, tracker)

    monkeypatch.setattr(trackers, "retrieve_tracker", retrieve)
    session.engine.retry = RetryPolicy(max_attempts=1)  # the engine's own retries would hide the transient one
    host, out = Headless(), Collected()
    job = Tracking(TrackInputs(("EZ2000000002", "EZ1000000001"), watch=True, interval=0.01), session, host,
                   out.write, end_round=out.end_round)

    async def drive() -> None:
        await job.first_pass()
        lost_id.append(tracker_id(job.pending[1]))
        await job.poll_round()
        assert sorted(job.pending) == [0, 1]  # still watched after the transient failure
        await job.poll_round()

    session.run(drive)
    assert host.notices == ["warning: EZ1000000001: SERVICE.UNAVAILABLE: try later (will poll again)"]
    assert out.rounds[1] == []
    [lost] = out.rounds[2]
    assert lost["tracking_code"] == "EZ1000000001" and lost["error_code"] == "NOT_FOUND"
    assert lost["status"] == "pre_transit"  # the last status seen, beside why the code is no longer watched
    assert list(job.pending) == [0]
    outcome = job.outcome()
    assert (outcome.tracked, outcome.failed, session.stats.done) == (1, 1, 2)
    assert outcome.statuses == (("in_transit", 1),)
    assert outcome.exit_code == ExitCode.PARTIAL


def test_watch_gives_up_at_the_timeout(session: Session) -> None:
    host, out = Headless(), Collected()
    job = Tracking(TrackInputs(("EZ2000000002", "EZ4000000004"), watch=True, interval=0.02, timeout=1.0),
                   session, host, out.write, end_round=out.end_round)
    outcome = job.run()

    assert outcome.timed_out and outcome.exit_code == ExitCode.PARTIAL
    assert outcome.polls >= 1 and outcome.not_final == 1
    assert len(out.rows) == 2  # nothing changed, so nothing was handed out again
    assert len(out.rounds) == 1 + outcome.polls
    assert any("1 code not final yet; next poll in" in n for n in host.notices)
