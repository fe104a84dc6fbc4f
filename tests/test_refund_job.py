"""The refund job without the CLI: a `Headless` host, a real session on the sandbox, the real SDK over HTTP.

Labels are bought first with the SDK straight from the sandbox. Where a test needs to see (or spoil) what goes
over the wire, a gateway (tests/gateway.py) sits between the job and the sandbox: it counts the refund requests
that reached the API -- the sandbox keeps no refund log of its own, and would refuse a second one -- and can
lose an answer after the sandbox committed the refund, or answer in the API's place without forwarding.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.engine.sizing import size_pools
from shipctl.engine.stats import RunStats
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.jobs import Headless, Spend, open_session
from shipctl.jobs.refund import _RECONCILE_ATTEMPTS, REFUND_FIELDS, RefundInputs, RefundJob, RefundOutcome
from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY
from tests.gateway import Gateway, gateway_in_front
from tests.sdk import refund_status, sdk, shipments

Answer = tuple[int, str, bytes]
_PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def refund_by_sdk(sb: Sandbox, shipment_id: str) -> None:
    client = sdk(sb)
    try:
        client.shipment.refund(shipment_id)
    finally:
        client._requests_session.close()


def run_job(inputs: RefundInputs, host: Headless, records: list[dict[str, Any]]) -> tuple[RefundOutcome, RunStats]:
    """The job as a script would run it: its own session (whatever the environment points at), results kept."""
    with open_session(size_pools(concurrency=4)) as session:
        outcome = RefundJob(inputs, session, host, records.append).run()
    return outcome, session.stats


def by_ids(*ids: str) -> RefundInputs:
    return RefundInputs(shipment_ids=ids)


def _is_refund(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0].endswith("/refund")


def _is_shipment_read(method: str, path: str) -> bool:
    return method == "GET" and path.split("?")[0].startswith("/v2/shipments/shp_")


class Wire:
    """Counts what passes the gateway and decides the fate of refund requests and answers.

    `before_refund(n, path)` may answer the n-th refund request (from 1) in the API's place -- nothing forwarded --
    and `after_refund(path)` may replace (or, raising TimeoutError, drop) the answer to one the API has committed.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refunds_seen = 0
        self.refunds_forwarded = 0
        self.reads: list[str] = []
        self.before_refund: Callable[[int, str], Answer | None] = lambda _n, _path: None
        self.after_refund: Callable[[str], Answer | None] = lambda _path: None
        self.on_read: Callable[[requests.Response], Answer | None] = lambda _answer: None

    def hold(self, method: str, path: str) -> Answer | None:
        if not _is_refund(method, path):
            return None
        with self.lock:
            self.refunds_seen += 1
            n = self.refunds_seen
        return self.before_refund(n, path)

    def rule(self, method: str, path: str, answer: requests.Response) -> Answer | None:
        if _is_shipment_read(method, path):
            with self.lock:
                self.reads.append(path.split("?")[0].rsplit("/", 1)[-1])
            return self.on_read(answer)
        if not _is_refund(method, path):
            return None
        with self.lock:
            self.refunds_forwarded += 1
        return self.after_refund(path)


@pytest.fixture
def wire(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Wire, Gateway]]:
    watch = Wire()
    with gateway_in_front(env, monkeypatch, watch.rule, hold=watch.hold) as proxy:
        yield watch, proxy


def _drop() -> Answer:
    # BaseHTTPRequestHandler closes the connection on a TimeoutError and sends nothing: an answer lost in transit.
    raise TimeoutError("the answer was lost")


LOST_ANSWERS: dict[str, Callable[[], Answer]] = {
    "dropped": _drop,
    "proxy_error_page": lambda: (502, "text/html", _PROXY_PAGE),
    "gateway_timeout": lambda: (504, "application/json",
                                b'{"error": {"code": "GATEWAY_TIMEOUT", "message": "upstream timed out"}}'),
}


# -- by shipment id ------------------------------------------------------------------------------------------


def test_ids_are_refunded_in_input_order_and_counted(env: Sandbox) -> None:
    good = shipments(env, 3)
    [unbought] = shipments(env, 1, buy=False)
    host, records = Headless(), []
    outcome, stats = run_job(by_ids(good[0], "shp_doesnotexist", good[1], unbought, "bad/id", good[2]), host, records)

    assert [tuple(r) for r in records] == [REFUND_FIELDS] * 6
    assert [(r["shipment_id"], r["status"], r["error_code"]) for r in records] == [
        (good[0], "submitted", None),
        ("shp_doesnotexist", "failed", "NOT_FOUND"),
        (good[1], "submitted", None),
        (unbought, "not_bought", "SHIPMENT.NOT_BOUGHT"),
        ("bad/id", "failed", "SHIPMENT.INVALID_ID"),
        (good[2], "submitted", None),
    ]
    assert all(r["refund_status"] == "submitted" and r["tracking_code"] and r["carrier"] == "USPS"
               for r in records if r["status"] == "submitted")
    assert (outcome.shipments, outcome.failed, outcome.exit_code) == (6, 3, ExitCode.PARTIAL)
    assert outcome.statuses == {"submitted": 3, "failed": 2, "not_bought": 1}
    assert (stats.total, stats.done, stats.succeeded, stats.failed, stats.skipped) == (6, 6, 3, 3, 0)
    assert stats.finished_at is not None
    assert host.asked == []  # test mode: nothing real to void, nobody asked
    assert [refund_status(env, i) for i in good] == ["submitted"] * 3
    assert refund_status(env, unbought) is None

    again: list[dict[str, Any]] = []
    outcome, stats = run_job(by_ids(*good), Headless(), again)
    assert [r["status"] for r in again] == ["already_submitted"] * 3
    assert (outcome.exit_code, stats.succeeded) == (ExitCode.OK, 3)


def test_nothing_to_refund_runs_nothing(env: Sandbox) -> None:
    host, records = Headless(), []
    outcome, stats = run_job(by_ids(), host, records)
    assert (outcome.shipments, outcome.exit_code, records, stats.done) == (0, ExitCode.OK, [], 0)
    assert host.notices == ["nothing to refund"]


# -- from a journal --------------------------------------------------------------------------------------------


def _journal(path: Path, identity: str, rows: dict[str, tuple[str, str | None]]) -> Path:
    """A journal as a `create` run leaves it: reference -> (state, shipment id), bound to `identity`."""
    with Journal(path) as journal:
        journal.set_meta("target", identity)
        journal.plan((ref, line, f"digest-{ref}") for line, ref in enumerate(rows, start=1))
        for ref, (state, shipment_id) in rows.items():
            journal.update(ref, state=state, shipment_id=shipment_id)
    return path


def _identity() -> str:
    with open_session(size_pools(concurrency=1)) as session:
        return session.target.identity


def test_a_journal_refunds_what_was_bought_and_records_it(env: Sandbox, tmp_path: Path) -> None:
    bought, crashed_after_buy = shipments(env, 2)
    [never_bought] = shipments(env, 1, buy=False)
    path = _journal(tmp_path / "orders.journal.db", _identity(), {
        "ORD-1": ("bought", bought),
        "ORD-2": ("created", crashed_after_buy),  # bought, but the run died before journaling it
        "ORD-3": ("created", never_bought),
        "ORD-4": ("planned", None),
        "ORD-5": ("failed", None),
    })
    host, records = Headless(), []
    outcome, stats = run_job(RefundInputs(journal=path), host, records)

    assert [(r["reference"], r["status"]) for r in records] == [
        ("ORD-1", "submitted"), ("ORD-2", "submitted"), ("ORD-3", "skipped")
    ]
    assert "2 journal rows were never bought; nothing to refund for them" in host.notices
    assert (outcome.exit_code, stats.succeeded, stats.skipped, stats.failed) == (ExitCode.OK, 2, 1, 0)
    with Journal(path) as journal:
        assert {r.reference: r.refund_status for r in journal.all()} == {
            "ORD-1": "submitted", "ORD-2": "submitted", "ORD-3": None, "ORD-4": None, "ORD-5": None
        }
    assert refund_status(env, crashed_after_buy) == "submitted"

    named: list[dict[str, Any]] = []
    outcome, _ = run_job(RefundInputs(journal=path, references=("ORD-3", "ORD-1", "ORD-4")), Headless(), named)
    assert [(r["reference"], r["status"], r["error_code"]) for r in named] == [
        ("ORD-3", "not_bought", "SHIPMENT.NOT_BOUGHT"),  # asked for by name: a failure, not a skip
        ("ORD-1", "already_submitted", None),
        ("ORD-4", "not_bought", "SHIPMENT.NOT_BOUGHT"),
    ]
    assert named[2]["error_message"] == "the journal has no shipment for this row"
    assert outcome.exit_code == ExitCode.PARTIAL


def test_a_journal_from_elsewhere_or_without_the_reference_refunds_nothing(env: Sandbox, tmp_path: Path) -> None:
    [sid] = shipments(env, 1)
    other_api = "https://api.example.test/v2 (test key)"
    elsewhere = _journal(tmp_path / "other.journal.db", other_api, {"ORD-1": ("bought", sid)})
    with pytest.raises(UsageError, match=re.escape(f"records purchases made against {other_api}")):
        run_job(RefundInputs(journal=elsewhere), Headless(), [])

    here = _journal(tmp_path / "orders.journal.db", _identity(), {"ORD-1": ("bought", sid)})
    with pytest.raises(UsageError, match=r"not in journal .*: NOPE; nothing was refunded"):
        run_job(RefundInputs(journal=here, references=("ORD-1", "NOPE")), Headless(), [])

    missing = tmp_path / "missing.journal.db"
    with pytest.raises(UsageError, match="does not exist"):
        run_job(RefundInputs(journal=missing), Headless(), [])
    assert not missing.exists()  # never created by looking for it
    assert refund_status(env, sid) is None


# -- the money question ----------------------------------------------------------------------------------------


def _without_mode(answer: requests.Response) -> Answer | None:
    """The shipment as an API that does not say its mode would send it."""
    body = answer.json()
    if not isinstance(body, dict) or "mode" not in body:
        return None
    del body["mode"]
    return answer.status_code, "application/json", json.dumps(body).encode()


def test_an_unknown_mode_is_asked_about_and_a_refusal_refunds_nothing(
    env: Sandbox, wire: tuple[Wire, Gateway]
) -> None:
    watch, _ = wire
    watch.on_read = _without_mode
    ids = shipments(env, 2)
    refused, records = Headless(approve_all=False), []
    with pytest.raises(ShipctlError, match="nothing was refunded") as raised:
        run_job(by_ids(*ids), refused, records)
    assert raised.value.exit_code == ExitCode.USAGE
    assert refused.asked == [Spend("refund", 2)]
    assert records == []  # nothing reported: the sink was never called
    assert watch.refunds_seen == 0
    assert [refund_status(env, i) for i in ids] == [None, None]

    approved = Headless(approve_all=True)
    outcome, _ = run_job(by_ids(*ids), approved, records)
    assert approved.asked == [Spend("refund", 2)]
    assert [r["status"] for r in records] == ["submitted", "submitted"]
    assert outcome.exit_code == ExitCode.OK
    assert (watch.refunds_seen, watch.refunds_forwarded) == (2, 2)


def test_production_is_asked_about_but_labels_already_refunded_are_not(
    env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    ids = shipments(env, 3, key=PROD_KEY)
    client = sdk(env, PROD_KEY)
    try:
        client.shipment.refund(ids[0])
    finally:
        client._requests_session.close()

    host, records = Headless(approve_all=True), []
    outcome, _ = run_job(by_ids(*ids), host, records)
    assert host.asked == [Spend("refund", 2)]  # the one already submitted voids nothing more
    assert [r["status"] for r in records] == ["already_submitted", "submitted", "submitted"]
    assert outcome.exit_code == ExitCode.OK

    again = Headless()
    run_job(by_ids(*ids), again, [])
    assert again.asked == []  # nothing left to void: no question


# -- the reconcile loop ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lost", sorted(LOST_ANSWERS))
def test_a_refund_whose_answer_is_lost_is_reported_from_a_re_read_and_never_asked_twice(
    env: Sandbox, wire: tuple[Wire, Gateway], lost: str
) -> None:
    watch, proxy = wire
    [sid, other] = shipments(env, 2)
    lose = LOST_ANSWERS[lost]
    watch.after_refund = lambda path: lose() if f"/{sid}/" in path else None
    records: list[dict[str, Any]] = []
    with open_session(size_pools(concurrency=4)) as session:
        outcome = RefundJob(by_ids(sid, other), session, Headless(), records.append).run()

    assert [(r["shipment_id"], r["status"], r["refund_status"], r["error_code"]) for r in records] == [
        (sid, "submitted", "submitted", None),  # our own refund, seen on the re-read: not "already_submitted"
        (other, "submitted", "submitted", None),
    ]
    assert (outcome.exit_code, session.stats.failed, session.stats.succeeded) == (ExitCode.OK, 0, 2)
    assert (watch.refunds_seen, watch.refunds_forwarded) == (2, 2)  # one refund request per shipment, no more
    assert watch.reads.count(sid) == 2  # the first pass, then the re-read that settled it
    assert watch.reads.count(other) == 1
    assert proxy.fired == (0 if lost == "dropped" else 1)
    assert refund_status(env, sid) == "submitted"


def test_a_refund_lost_before_it_reached_the_api_is_asked_again_once(
    env: Sandbox, wire: tuple[Wire, Gateway]
) -> None:
    watch, _ = wire
    [sid] = shipments(env, 1)
    watch.before_refund = lambda n, _path: (502, "text/html", _PROXY_PAGE) if n == 1 else None
    records: list[dict[str, Any]] = []
    outcome, stats = run_job(by_ids(sid), Headless(), records)
    assert [(r["status"], r["refund_status"]) for r in records] == [("submitted", "submitted")]
    assert (watch.refunds_seen, watch.refunds_forwarded) == (2, 1)  # the re-read showed no refund: asked again
    assert (outcome.exit_code, stats.succeeded) == (ExitCode.OK, 1)


def test_a_refund_never_answered_fails_after_the_attempts_and_refunds_nothing(
    env: Sandbox, wire: tuple[Wire, Gateway]
) -> None:
    watch, _ = wire
    [sid] = shipments(env, 1)
    watch.before_refund = lambda _n, _path: (503, "application/json",
                                             b'{"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy"}}')
    records: list[dict[str, Any]] = []
    outcome, stats = run_job(by_ids(sid), Headless(), records)
    assert [(r["status"], r["refund_status"], r["error_code"]) for r in records] == [
        ("failed", None, "REFUND.UNKNOWN")
    ]
    assert "run refund again" in records[0]["error_message"]
    assert (watch.refunds_seen, watch.refunds_forwarded) == (_RECONCILE_ATTEMPTS, 0)
    assert watch.reads.count(sid) == 1 + _RECONCILE_ATTEMPTS  # each unclear answer checked by a re-read
    assert (outcome.exit_code, stats.failed) == (ExitCode.PARTIAL, 1)
    assert refund_status(env, sid) is None


def test_a_refund_requested_meanwhile_elsewhere_is_reported_as_already_submitted(
    env: Sandbox, wire: tuple[Wire, Gateway]
) -> None:
    watch, _ = wire
    [sid] = shipments(env, 1)

    def someone_else_first(n: int, path: str) -> Answer | None:
        if n == 1:  # between our read and our refund, another client voids the label: ours is refused (422)
            refund_by_sdk(env, sid)
        return None

    watch.before_refund = someone_else_first
    records: list[dict[str, Any]] = []
    outcome, stats = run_job(by_ids(sid), Headless(), records)
    assert [(r["status"], r["refund_status"], r["error_code"]) for r in records] == [
        ("already_submitted", "submitted", None)
    ]
    assert (watch.refunds_seen, watch.refunds_forwarded) == (1, 1)
    assert (outcome.exit_code, stats.succeeded) == (ExitCode.OK, 1)
