"""The close job without the CLI: labels bought by a real `create`, a `Headless` host, the real SDK over HTTP to the
sandbox, and the sandbox read back through the SDK (its forms, each shipment's `scan_form`) as the truth."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from shipctl.claims import bought_since
from shipctl.closings import Closings
from shipctl.errors import UsageError
from shipctl.jobs import Headless
from shipctl.jobs.close import scope_for
from shipctl.jobs.close_inputs import DEFAULT_WINDOW, PickupWindow, day_bounds
from shipctl.paths import state_dir
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke
from tests.close_day import buy, day_rows, form_of, pickups, run_close, scan_forms, today
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest
from tests.sdk import sdk
from tests.test_sandbox_forms import pdf_pages


def _ids(bought: list[dict[str, object]]) -> list[str]:
    return [str(r["shipment_id"]) for r in bought]


def _groups(bought: list[dict[str, object]], forms: dict[str, str | None]) -> dict[str | None, set[str]]:
    by_form: dict[str | None, set[str]] = {}
    for record in bought:
        by_form.setdefault(forms[str(record["shipment_id"])], set()).add(str(record["reference"]))
    return by_form


def test_two_origins_and_two_carriers_make_four_forms_and_the_rerun_none(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=3))

    outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert outcome.exit_code == 0 and outcome.forms == Counter(created=4) and outcome.left_out == 0
    made = scan_forms(env)
    assert len(made) == 4
    forms = form_of(env, _ids(bought))
    by_form = _groups(bought, forms)
    assert None not in by_form and len(by_form) == 4
    # Each form holds exactly one origin and one carrier: the rows 4k+j (j = 0..3) share theirs.
    expected = [{f"ORD-{i:05d}" for i in range(12) if i % 4 == j} for j in range(4)]
    assert sorted(map(sorted, by_form.values())) == sorted(map(sorted, expected))
    assert [r["status"] for r in records] == ["created"] * 4
    assert [r["group"] for r in records] == [1, 2, 3, 4]
    assert {r["form_id"] for r in records} == {f.id for f in made}
    codes = {str(r["shipment_id"]): str(r["tracking_code"]) for r in bought}
    for record in records:
        assert record["shipments"] == 3 and set(record["shipment_ids"]) <= set(forms)
        pdf = Path(str(record["form_file"]))
        assert pdf.parent == tmp_path / "forms"
        text = "\n".join(line for _size, lines in pdf_pages(pdf.read_bytes()) for line in lines)
        assert all(codes[sid] in text for sid in record["shipment_ids"])  # that form's file, listing its parcels

    again, rerun = run_close(today(forms_dir=tmp_path / "forms"))
    assert len(scan_forms(env)) == 4  # the rerun made none
    assert again.exit_code == 0 and again.forms == Counter(already_closed=4)
    assert again.excluded == Counter()  # each label is counted once, with its form
    assert {r["form_id"] for r in rerun} == {r["form_id"] for r in records}
    assert form_of(env, _ids(bought)) == forms


def test_refunded_labels_never_go_on_a_form(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=2))
    refunded = [str(bought[0]["shipment_id"]), str(bought[5]["shipment_id"])]
    client = sdk(env)
    for sid in refunded:
        client.shipment.refund(sid)
    client._requests_session.close()

    outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert outcome.exit_code == 0 and outcome.forms["created"] == 4
    assert outcome.excluded == Counter({"refunded (never put on a form)": 2})
    forms = form_of(env, _ids(bought))
    assert [forms[sid] for sid in refunded] == [None, None]
    assert sum(1 for form in forms.values() if form) == 6
    assert not set(refunded) & {sid for r in records for sid in r["shipment_ids"]}


def test_a_label_refunded_after_its_form_is_named_with_the_form_and_exit_3(env: Sandbox, tmp_path: Path) -> None:
    """The form cannot change, so the driver would take a void label's parcel: the clerk is told which parcel
    (reference, tracking code) on which form, and it is not called "never put on a form"."""
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=2))
    first, _ = run_close(today(forms_dir=tmp_path / "forms"))
    assert first.exit_code == 0
    void = bought[5]
    client = sdk(env)
    client.shipment.refund(str(void["shipment_id"]))
    client._requests_session.close()
    form_id = form_of(env, [str(void["shipment_id"])])[str(void["shipment_id"])]

    host = Headless()
    outcome, _records = run_close(today(forms_dir=tmp_path / "forms"), host)

    assert outcome.exit_code == 3 and outcome.void_on_form == 1
    assert outcome.forms == Counter(already_closed=4) and outcome.excluded == Counter()
    assert [n for n in host.notices if "refunded" in n] == [
        f"warning: form {form_id} holds 1 refunded label: ORD-00005 ({void['tracking_code']}); a form cannot be "
        "changed, so pull its parcel before the pickup or tell the driver"]
    assert len(scan_forms(env)) == 4


def test_dry_run_shows_the_groups_and_creates_nothing(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=2))

    outcome, records = run_close(today(dry_run=True, forms_dir=tmp_path / "forms"))

    assert scan_forms(env) == []
    assert set(form_of(env, _ids(bought)).values()) == {None}
    assert [r["status"] for r in records] == ["would_create"] * 4
    assert sorted(r["carrier"] for r in records) == ["UPS", "UPS", "USPS", "USPS"]
    assert {r["origin"] for r in records} == {"417 MONTGOMERY ST, SAN FRANCISCO CA 94104",
                                              "1 MARKET ST, SAN FRANCISCO CA 94105"}
    assert outcome.exit_code == 0 and not (tmp_path / "forms").exists()


def test_only_the_given_journal_is_closed(env: Sandbox, tmp_path: Path) -> None:
    first = buy(tmp_path / "morning.csv", day_rows(per_group=1))
    second = buy(tmp_path / "evening.csv", day_rows(per_group=1, start=100))

    outcome, records = run_close(today(journals=(tmp_path / "evening.csv.journal.db",)))

    assert outcome.forms["created"] == 4 and len(records) == 4
    assert set(form_of(env, _ids(first)).values()) == {None}
    assert None not in form_of(env, _ids(second)).values()


def test_labels_of_another_day_are_left_for_that_day(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=1))

    outcome, records = run_close(today(day=dt.date.today() - dt.timedelta(days=1)))

    assert records == [] and scan_forms(env) == []
    assert outcome.forms == Counter()
    assert set(form_of(env, _ids(bought)).values()) == {None}


def test_the_claims_name_the_day_by_local_midnight(env: Sandbox, tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    account = sdk(env).user.retrieve_me().id
    start, end = day_bounds(dt.date.today())
    assert start.tzinfo is not None and (end - start) >= dt.timedelta(hours=23)
    scope = scope_for("test", account)
    assert len(bought_since(state_dir(), scope, start)) == 4
    assert bought_since(state_dir(), scope, end) == []
    assert bought_since(state_dir(), scope_for("production", account), start) == []


# -- never twice: what a run that died left behind ----------------------------------------------------------


def _account(env: Sandbox) -> str:
    client = sdk(env)
    try:
        return str(client.user.retrieve_me().id)
    finally:
        client._requests_session.close()


def test_a_form_made_before_a_crash_is_adopted_not_made_again(env: Sandbox, tmp_path: Path) -> None:
    """A run killed between `scan_form.create` and its commit: the journal holds the pending attempt, the API the
    form. The rerun adopts that form for those shipments and makes the other three groups' forms only."""
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=2))
    group = [str(bought[i]["shipment_id"]) for i in (0, 4)]  # ORD-0 and ORD-4: one origin, one carrier
    with Closings(state_dir(), scope_for("test", _account(env))).open() as journal:
        journal.intend("whatever the dead run called it", group)
    client = sdk(env)
    dead_runs_form = client.scan_form.create(shipments=[{"id": sid} for sid in group]).id
    client._requests_session.close()

    outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert outcome.forms == Counter(adopted=1, created=3)
    assert outcome.excluded == Counter()  # the adopted form's labels are counted with it, not again
    forms = scan_forms(env)
    assert len(forms) == 4
    adopted = [r for r in records if r["status"] == "adopted"]
    assert [r["form_id"] for r in adopted] == [dead_runs_form]
    assert sorted(adopted[0]["shipment_ids"]) == sorted(group)
    assert Path(str(adopted[0]["form_file"])).read_bytes().startswith(b"%PDF")
    with Closings(state_dir(), scope_for("test", _account(env))).open() as journal:
        assert journal.pending() == []
        assert [a.form_id for a in journal.created_for(group)] == [dead_runs_form]


def test_an_attempt_that_never_landed_is_abandoned_and_its_group_closed(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=1))
    with Closings(state_dir(), scope_for("test", _account(env))).open() as journal:
        journal.intend("a group", [str(bought[0]["shipment_id"])])

    outcome, _records = run_close(today())

    assert outcome.forms == Counter(created=4)
    assert len(scan_forms(env)) == 4
    with Closings(state_dir(), scope_for("test", _account(env))).open() as journal:
        assert journal.pending() == []


def test_a_lost_answer_to_create_adopts_the_form_it_made(env: Sandbox, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox commits the form, the answer is lost on the way (a gateway drops it): the job reads the
    shipments, finds the form, and records it; it never sends a second create for them."""
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=1))
    creates: list[str] = []

    def drop_first_create(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/scan_forms"):
            creates.append(path)
            if len(creates) == 1:
                raise TimeoutError("the answer was lost")
        return None

    with gateway_in_front(env, monkeypatch, drop_first_create):
        outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert len(creates) == 4  # one per group: the lost one was settled by reading, not by sending again
    assert outcome.forms == Counter(created=4) and len(scan_forms(env)) == 4
    assert None not in form_of(env, _ids(bought)).values()
    assert all(Path(str(r["form_file"])).is_file() for r in records)


def test_the_journal_records_the_exact_shipments_before_the_call(env: Sandbox, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    seen: list[list[str]] = []
    scope = scope_for("test", _account(env))

    def look_at_the_journal(method: str, path: str) -> None:
        if method == "POST" and path.startswith("/v2/scan_forms"):
            with Closings(state_dir(), scope).open(lock=False) as journal:
                seen.extend(list(a.shipment_ids) for a in journal.pending())

    with gateway_in_front(env, monkeypatch, lambda *_a: None, hold=lambda m, p: look_at_the_journal(m, p)):
        _outcome, records = run_close(today())

    # Every form's exact shipments were pending in the journal by the time its create reached the API.
    assert len(records) == 4
    assert {tuple(sorted(ids)) for ids in seen} >= {tuple(sorted(r["shipment_ids"])) for r in records}


# -- pickups ----------------------------------------------------------------------------------------------


def _window() -> PickupWindow:
    return PickupWindow.parse(DEFAULT_WINDOW)


def test_pickup_books_one_pickup_per_form_at_its_cheapest_rate_and_the_rerun_none(env: Sandbox,
                                                                                  tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=2))

    outcome, records = run_close(today(pickup=_window()))

    assert outcome.exit_code == 0 and outcome.pickups == Counter(booked=4)
    booked = pickups(env)
    assert len(booked) == 4 and {p.status for p in booked} == {"scheduled"}
    assert {p.reference for p in booked} == {r["form_id"] for r in records}  # one per form, found by its form
    assert {r["pickup_id"] for r in records} == {p.id for p in booked}
    assert all(r["pickup_confirmation"] for r in records)
    # Each form's carrier's cheapest pickup: USPS collects free, UPS's future-day pickup is its cheaper one.
    assert sorted((r["carrier"], r["pickup_rate"]) for r in records) == [
        ("UPS", "6.95"), ("UPS", "6.95"), ("USPS", "0.00"), ("USPS", "0.00")]

    again, rerun = run_close(today(pickup=_window()))
    assert again.pickups == Counter(booked_earlier=4)
    assert len(pickups(env)) == 4
    assert {r["pickup_confirmation"] for r in rerun} == {r["pickup_confirmation"] for r in records}


def test_a_later_pickup_run_books_the_forms_an_earlier_run_made(env: Sandbox, tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    first, _ = run_close(today())
    assert first.forms == Counter(created=4) and pickups(env) == []

    later, records = run_close(today(pickup=_window()))

    assert later.forms == Counter(already_closed=4) and later.pickups == Counter(booked=4)
    assert len(scan_forms(env)) == 4 and len(pickups(env)) == 4
    assert {r["pickup_status"] for r in records} == {"booked"}


def test_production_pickups_need_a_yes_and_are_quoted_once(env: Sandbox, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    write_manifest(tmp_path / "orders.csv", day_rows(per_group=1))
    bought = invoke("create", str(tmp_path / "orders.csv"), "--yes", "-o", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr

    declined = Headless(approve_all=False)
    outcome, records = run_close(today(pickup=_window()), declined)

    assert outcome.exit_code == 2 and outcome.refused and "no pickup was booked" in outcome.refused
    [asked] = declined.asked
    assert (asked.verb, asked.noun, asked.count, asked.mode, asked.totals) == (
        "book", "pickups", 4, "production", {"USD": Decimal("13.90")})
    assert {r["pickup_status"] for r in records} == {"not_booked"}
    assert len(scan_forms(env, key=PROD_KEY)) == 4  # the forms are made; they cost nothing
    assert {p.status for p in pickups(env, key=PROD_KEY)} == {"unknown"}  # quoted, never bought

    approved = Headless(approve_all=True)
    again, _ = run_close(today(pickup=_window()), approved)
    assert again.exit_code == 0 and again.pickups == Counter(booked=4)
    assert len(approved.asked) == 1
    quoted = pickups(env, key=PROD_KEY)
    assert len(quoted) == 4 and {p.status for p in quoted} == {"scheduled"}  # the same four, now bought


def test_a_lost_answer_to_a_pickup_buy_is_settled_by_reading_it(env: Sandbox, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    buys: list[str] = []

    def drop_first_buy(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/pickups/") and path.endswith("/buy"):
            buys.append(path)
            if len(buys) == 1:
                raise TimeoutError("the answer was lost")
        return None

    with gateway_in_front(env, monkeypatch, drop_first_buy):
        outcome, records = run_close(today(pickup=_window()))

    assert len(buys) == 4  # the lost one was read back, found scheduled, and not bought again
    assert outcome.pickups == Counter(booked=4)
    assert {p.status for p in pickups(env)} == {"scheduled"} and len(pickups(env)) == 4
    assert all(r["pickup_confirmation"] for r in records)


# -- a group the API refuses --------------------------------------------------------------------------------


def test_a_refused_shipment_is_left_out_and_the_rest_of_its_group_closed_on_one_form(env: Sandbox,
                                                                                     tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=3))
    env.form_refusals.add("ORD-00004")  # the carrier refuses it; it shares its group with ORD-00000 and ORD-00008
    offender = str(bought[4]["shipment_id"])

    outcome, records = run_close(today())

    assert outcome.exit_code == 3 and outcome.left_out == 1 and outcome.forms == Counter(created=4)
    forms = form_of(env, _ids(bought))
    assert forms[offender] is None
    assert forms[str(bought[0]["shipment_id"])] == forms[str(bought[8]["shipment_id"])] is not None  # one form
    assert len(scan_forms(env)) == 4 and len({f for f in forms.values() if f}) == 4
    [left] = [r for r in records if r["status"] == "left_out"]
    assert left["shipment_ids"] == [offender] and left["error_code"] == "SCAN_FORM.CREATE.FAILURE"
    # Named by what finds the parcel, with the carrier's reason for it once.
    assert (left["reference"], left["tracking_code"]) == ("ORD-00004", bought[4]["tracking_code"])
    assert left["error_message"] == "refused by the carrier for a scan form"
    group = [r for r in records if r["group"] == left["group"]]
    assert [r["status"] for r in group] == ["created", "left_out"]  # its group's form, then what was left out
    assert group[0]["shipments"] == 2

    again, rerun = run_close(today())
    assert again.exit_code == 3 and again.forms == Counter(already_closed=4)
    assert [r["shipment_ids"] for r in rerun if r["status"] == "left_out"] == [[offender]]
    assert len(scan_forms(env)) == 4


def test_a_refusal_that_names_no_shipment_is_halved_until_the_offender_is_found(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal that does not say which shipment (a gateway strips the names): the group is halved, each
    accepted half is a form, and the halving goes on in the refused half down to the one shipment."""
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=4))
    env.form_refusals.add("ORD-00005")  # in the group of ORD-1, 5, 9, 13
    anonymous = json.dumps({"error": {"code": "SCAN_FORM.CREATE.FAILURE", "message": "Unable to create manifest.",
                                      "errors": []}}).encode()
    sent: list[int] = []

    def unnamed(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/scan_forms"):
            sent.append(answer.status_code)
            if answer.status_code == 422:
                return 422, "application/json", anonymous
        return None

    with gateway_in_front(env, monkeypatch, unnamed):
        outcome, records = run_close(today())

    assert outcome.exit_code == 3 and outcome.left_out == 1
    forms = form_of(env, _ids(bought))
    group = [str(bought[i]["shipment_id"]) for i in (1, 5, 9, 13)]
    assert forms[group[1]] is None
    assert all(forms[sid] for sid in group if sid != group[1])
    assert len({forms[sid] for sid in group if sid != group[1]}) == 2  # the good half, and the good quarter
    assert len(scan_forms(env)) == 5
    # That group: refused whole, then a half refused and a half accepted, then the same in the refused half.
    assert sorted(sent) == [200] * 5 + [422] * 3
    [left] = [r for r in records if r["status"] == "left_out"]
    assert left["shipment_ids"] == [group[1]] and left["error_message"] == "Unable to create manifest."


def test_a_form_still_being_made_is_read_until_it_is_ready(env: Sandbox, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """EasyPost may answer `creating` with no file yet (a gateway makes the first answer say so): the job reads the
    form again until it is `created`, then saves its PDF."""
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    rewritten: list[str] = []

    def still_creating(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/scan_forms") and not rewritten:
            form = answer.json()
            rewritten.append(form["id"])
            form.update(status="creating", form_url=None, tracking_codes=[])
            return 200, "application/json", json.dumps(form).encode()
        return None

    with gateway_in_front(env, monkeypatch, still_creating):
        outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert outcome.exit_code == 0 and outcome.forms == Counter(created=4)
    [late] = [r for r in records if r["form_id"] == rewritten[0]]
    assert Path(str(late["form_file"])).read_bytes().startswith(b"%PDF")


def test_dry_run_with_pickup_books_nothing(env: Sandbox, tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    outcome, records = run_close(today(dry_run=True, pickup=_window()))
    assert {r["pickup_status"] for r in records} == {"would_book"} and len(records) == 4
    assert pickups(env) == [] and scan_forms(env) == [] and outcome.exit_code == 0


def test_a_journal_of_another_api_is_refused_and_nothing_closed(env: Sandbox, tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    journal = tmp_path / "orders.csv.journal.db"
    db = sqlite3.connect(journal)
    db.execute("UPDATE meta SET value = 'https://elsewhere.example/v2 (test key)' WHERE key = 'target'")
    db.commit()
    db.close()

    with pytest.raises(UsageError, match=re.escape("records purchases made against https://elsewhere.example/v2")):
        run_close(today(journals=(journal,)))
    assert scan_forms(env) == []


def test_a_group_with_no_clear_answer_stays_pending_and_the_rerun_settles_it(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every create is cut off unanswered (nothing reaches the API): after its sends the group is reported
    `failed` (exit 3), its attempt stays pending, and the next run finds it never landed and closes the group."""
    bought = buy(tmp_path / "orders.csv", [row(0, carrier="USPS"), row(4, carrier="USPS")])
    cut_off: list[str] = []

    def cut(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/scan_forms"):
            cut_off.append(path)
            raise TimeoutError("cut off")
        return None

    with gateway_in_front(env, monkeypatch, lambda *_a: None, hold=cut):
        outcome, records = run_close(today())

    assert len(cut_off) == 3  # sent again only after reading that no form holds the shipments
    assert outcome.exit_code == 3 and scan_forms(env) == []
    [failed] = records
    assert failed["status"] == "failed" and failed["error_code"] == "SCAN_FORM.UNKNOWN"
    with Closings(state_dir(), scope_for("test", _account(env))).open(lock=False) as journal:
        assert [sorted(a.shipment_ids) for a in journal.pending()] == [sorted(_ids(bought))]

    monkeypatch.setenv("EASYPOST_API_BASE", env.api_base)
    again, rerun = run_close(today())
    assert again.exit_code == 0 and again.forms == Counter(created=1)
    assert [r["status"] for r in rerun] == ["created"] and len(scan_forms(env)) == 1
    with Closings(state_dir(), scope_for("test", _account(env))).open(lock=False) as journal:
        assert journal.pending() == []


def test_a_resend_refused_as_already_on_a_form_adopts_the_form_the_lost_send_made(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first create lands but its answer is lost, and the read that follows does not show the form yet (the
    API marks the shipments a moment later; a gateway hides it until the next create): the resend is refused as
    "already on a scan form". The job reads the shipments again and records the form its first send made."""
    bought = buy(tmp_path / "orders.csv", [row(0, carrier="USPS"), row(4, carrier="USPS")])
    creates: list[int] = []
    lagging: list[bool] = [False]

    def lost_then_lagging(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/scan_forms"):
            creates.append(answer.status_code)
            lagging[0] = len(creates) == 1
            if len(creates) == 1:
                raise TimeoutError("the answer was lost")
        if method == "GET" and path.startswith("/v2/shipments/") and lagging[0]:
            shipment = answer.json()
            shipment["scan_form"] = None
            return 200, "application/json", json.dumps(shipment).encode()
        return None

    with gateway_in_front(env, monkeypatch, lost_then_lagging):
        outcome, records = run_close(today(forms_dir=tmp_path / "forms"))

    assert creates == [200, 422]  # the resend was refused: the shipments were on the first send's form
    [made] = scan_forms(env)
    assert set(form_of(env, _ids(bought)).values()) == {made.id}
    assert outcome.exit_code == 0 and outcome.left_out == 0 and outcome.forms == Counter(created=1)
    [record] = records
    assert (record["status"], record["form_id"]) == ("created", made.id)
    assert sorted(record["shipment_ids"]) == sorted(_ids(bought))
    assert Path(str(record["form_file"])).read_bytes().startswith(b"%PDF")
    with Closings(state_dir(), scope_for("test", _account(env))).open(lock=False) as journal:
        assert journal.pending() == []
        assert [a.form_id for a in journal.created_for(_ids(bought))] == [made.id]

    monkeypatch.setenv("EASYPOST_API_BASE", env.api_base)
    again, rerun = run_close(today(forms_dir=tmp_path / "forms"))
    assert again.forms == Counter(already_closed=1) and [r["form_id"] for r in rerun] == [made.id]
    assert len(scan_forms(env)) == 1


def test_origins_differ_by_street2_or_city_but_not_by_sender_case_or_spacing(env: Sandbox, tmp_path: Path) -> None:
    """One form per place a driver collects from: another suite or another city makes another form; another
    sender name or company at the same dock does not (brands sharing a dock share one form and one pickup), nor
    the same address spelt in other case and spacing (and ZIP+4)."""
    rows = [
        row(0, carrier="USPS"),
        row(1, carrier="USPS", from_name="  acme   FULFILMENT ", from_street1="417  montgomery ST",
            from_city="san francisco", from_zip="94104-1234"),
        row(2, carrier="USPS", from_name="Bolt Parcels"),
        row(3, carrier="USPS", from_company="Acme Returns"),
        row(4, carrier="USPS", from_street2="Floor 2"),
        row(5, carrier="USPS", from_city="South San Francisco"),
    ]
    bought = buy(tmp_path / "orders.csv", rows)

    outcome, records = run_close(today())

    assert outcome.exit_code == 0 and outcome.forms == Counter(created=3)
    forms = form_of(env, _ids(bought))
    by_form = sorted(sorted(refs) for refs in _groups(bought, forms).values())
    assert by_form == [["ORD-00000", "ORD-00001", "ORD-00002", "ORD-00003"], ["ORD-00004"], ["ORD-00005"]]
    assert len(scan_forms(env)) == 3 and len({r["form_id"] for r in records}) == 3


def test_a_pickup_buy_refused_after_an_unclear_round_stays_buying_and_the_rerun_buys_that_pickup(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first buy is cut off unanswered, the second refused: the refusal proves nothing about the first (a
    dead run's or a slow one may still book it), so the journal keeps the pickup `buying` and the rerun reads
    that same pickup and buys it, rather than creating and booking a second pickup for the form."""
    buy(tmp_path / "orders.csv", [row(0, carrier="USPS"), row(4, carrier="USPS")])
    buys: list[str] = []
    refusal = json.dumps({"error": {"code": "PICKUP.UNAVAILABLE", "message": "Try again later.",
                                    "errors": []}}).encode()

    def cut_then_refuse(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.startswith("/v2/pickups/") and path.endswith("/buy"):
            buys.append(path)
            if len(buys) == 1:
                raise TimeoutError("cut off")
            return 422, "application/json", refusal
        return None

    with gateway_in_front(env, monkeypatch, lambda *_a: None, hold=cut_then_refuse):
        outcome, records = run_close(today(pickup=_window()))

    assert len(buys) == 2 and outcome.pickups == Counter(failed=1)
    [record] = records
    [quoted] = pickups(env)
    assert record["pickup_status"] == "failed" and quoted.status == "unknown"
    with Closings(state_dir(), scope_for("test", _account(env))).open(lock=False) as journal:
        row_ = journal.pickup(str(record["form_id"]))
        assert row_ is not None and (row_.state, row_.pickup_id) == ("buying", quoted.id)

    monkeypatch.setenv("EASYPOST_API_BASE", env.api_base)
    again, rerun = run_close(today(pickup=_window()))
    assert again.pickups == Counter(booked=1)
    [booked] = pickups(env)  # the same pickup, bought: no second one was made for the form
    assert booked.id == quoted.id and booked.status == "scheduled"
    assert [r["pickup_id"] for r in rerun] == [quoted.id]
