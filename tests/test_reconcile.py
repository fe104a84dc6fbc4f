"""`shipctl reconcile`: real `create` journals against the sandbox account, over the real SDK and HTTP."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from shipctl.jobs.reconcile import parse_day
from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY, invoke, ndjson
from tests.manifests import make_manifest, row, write_manifest
from tests.sdk import sdk, shipments


def _create(tmp_path: Path, name: str, count: int, prefix: str = "ORD") -> Path:
    manifest = (make_manifest(tmp_path / name, count) if prefix == "ORD" else
                write_manifest(tmp_path / name, [row(i, reference=f"{prefix}-{i}") for i in range(count)]))
    bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr
    return tmp_path / f"{name}.journal.db"


def test_a_clean_account_exits_0_and_prints_nothing(env: Sandbox, tmp_path: Path) -> None:
    _create(tmp_path, "a.csv", 3)
    _create(tmp_path, "b.csv", 2, prefix="B")
    result = invoke("reconcile", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "5 labels on the account, 5 journal rows: everything matches" in result.stderr


def test_a_label_bought_outside_any_journal_is_reported_with_its_cost(env: Sandbox, tmp_path: Path) -> None:
    _create(tmp_path, "orders.csv", 3)
    [outside] = shipments(env, 1)  # straight through the SDK: no journal on this machine knows it
    result = invoke("reconcile", "--output", "ndjson")
    assert result.exit_code == 3, result.stderr
    [record] = ndjson(result.stdout)
    [entry] = [e for e in env.ledger() if e["shipment_id"] == outside]
    assert record["status"] == "not_in_journal"
    assert record["shipment_id"] == outside
    assert Decimal(record["cost"]) == Decimal(entry["amount"])
    assert record["created_at"] and record["journal"] is None
    assert "1 not in journal" in result.stderr

    # A range that ends before it was bought does not see it.
    before = invoke("reconcile", "--until", "2020-01-01", "--since", "2019-01-01", "--output", "ndjson")
    assert before.exit_code == 0, before.stderr


def test_a_refund_made_elsewhere_is_a_changed_refund_status(env: Sandbox, tmp_path: Path) -> None:
    journal = _create(tmp_path, "orders.csv", 2)
    result = invoke("refund", "--journal", str(journal), "--reference", "ORD-00000", "--quiet")
    assert result.exit_code == 0, result.stderr
    from shipctl.journal import Journal

    with Journal(journal) as j:
        sid = j.get("ORD-00001").shipment_id  # type: ignore[union-attr]
    client = sdk(env)
    client.shipment.refund(sid)  # through the SDK: the journal never hears of it
    out = invoke("reconcile", "--journal", str(journal), "--output", "ndjson")
    assert out.exit_code == 3, out.stderr
    [record] = ndjson(out.stdout)
    assert (record["status"], record["reference"], record["shipment_id"]) == ("refund_changed", "ORD-00001", sid)
    assert (record["journal_refund_status"], record["refund_status"]) == (None, "submitted")
    assert record["journal"] == str(journal.resolve())


def test_journal_rows_a_wiped_sandbox_does_not_know(no_key: Path, tmp_path: Path) -> None:
    """The built-in sandbox's state wiped: the journals name labels the account has never heard of."""
    _create(tmp_path, "orders.csv", 2)
    clean = invoke("reconcile", "--output", "ndjson")
    assert clean.exit_code == 0, clean.stderr
    for leftover in no_key.glob("sandbox.sqlite3*"):
        leftover.unlink()
    result = invoke("reconcile", "--output", "ndjson")
    assert result.exit_code == 3, result.stderr
    records = ndjson(result.stdout)
    assert sorted(r["reference"] for r in records) == ["ORD-00000", "ORD-00001"]
    assert {r["status"] for r in records} == {"unknown_to_account"}
    assert all(r["shipment_id"].startswith("shp_") and r["cost"] for r in records)


def test_a_gone_journal_is_skipped_with_a_note(env: Sandbox, tmp_path: Path) -> None:
    journal = _create(tmp_path, "orders.csv", 1)
    for leftover in tmp_path.glob("orders.csv.journal.db*"):
        leftover.unlink()
    result = invoke("reconcile", "--output", "ndjson")
    assert f"journal {journal.resolve()} is gone; skipped" in result.stderr
    assert result.exit_code == 3  # its label is now bought outside any journal
    assert [r["status"] for r in ndjson(result.stdout)] == ["not_in_journal"]


def test_a_missing_journal_given_is_a_usage_error(env: Sandbox, tmp_path: Path) -> None:
    result = invoke("reconcile", "--journal", str(tmp_path / "nope.journal.db"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("page_size", [2])
def test_pages_are_all_read_at_most_five_list_calls_a_second(env: Sandbox, tmp_path: Path,
                                                             page_size: int) -> None:
    import datetime as dt

    from shipctl.engine.sizing import size_pools
    from shipctl.jobs.host import Headless
    from shipctl.jobs.reconcile import ReconcileInputs, ReconcileJob
    from shipctl.jobs.session import open_session

    ids = shipments(env, 9)
    now = dt.datetime.now(dt.timezone.utc)
    seen: list[dict[str, object]] = []
    inputs = ReconcileInputs(since=now - dt.timedelta(days=1), until=now + dt.timedelta(minutes=1),
                             state_directory=tmp_path / "state", page_size=page_size)
    with open_session(size_pools(concurrency=4)) as session:
        started = time.monotonic()
        outcome = ReconcileJob(inputs, session, Headless(), seen.append).run()
        elapsed = time.monotonic() - started
    assert sorted(str(r["shipment_id"]) for r in seen) == sorted(ids)  # every page, each label once
    assert outcome.list_calls == 5
    assert elapsed >= 4 / 5  # five list calls: the last one at least 0.8 s after the first


def test_a_refund_recorded_in_one_of_two_journals_naming_a_label_is_a_mismatch(env: Sandbox,
                                                                               tmp_path: Path) -> None:
    journal = _create(tmp_path, "orders.csv", 1)
    second = tmp_path / "second.journal.db"
    adopted = invoke("create", str(tmp_path / "orders.csv"), "--journal", str(second), "--quiet")
    assert adopted.exit_code == 0, adopted.stderr
    # A refund through the first journal only: the second still counts the label bought.
    refunded = invoke("refund", "--journal", str(journal), "--quiet")
    assert refunded.exit_code == 0, refunded.stderr
    # The journal with the refund last: comparing only the last row naming the label would see no mismatch.
    result = invoke("reconcile", "--journal", str(second), "--journal", str(journal), "--output", "ndjson")
    assert result.exit_code == 3, result.stderr
    [record] = ndjson(result.stdout)
    assert (record["status"], record["journal"]) == ("refund_changed", str(second.resolve()))
    assert (record["journal_refund_status"], record["refund_status"]) == (None, "submitted")
    assert "1 labels on the account, 2 journal rows: 1 refund changed" in result.stderr


def test_a_basic_iso_until_day_takes_the_whole_day(env: Sandbox, tmp_path: Path) -> None:
    import datetime as dt

    _create(tmp_path, "orders.csv", 1)
    today = dt.datetime.now(dt.timezone.utc).date()
    since = (today - dt.timedelta(days=1)).isoformat()
    for until in (today.isoformat(), today.strftime("%Y%m%d")):
        result = invoke("reconcile", "--since", since, "--until", until, "--output", "ndjson")
        assert result.exit_code == 0, result.stderr
        assert "1 labels on the account, 1 journal rows: everything matches" in result.stderr, until


def test_today_and_yesterday_are_days_as_report_and_close_take_them(env: Sandbox, tmp_path: Path) -> None:
    """`--since yesterday --until today` covers a label bought now; `--until yesterday` ends before it."""
    _create(tmp_path, "orders.csv", 1)
    shipments(env, 1)  # bought outside any journal: a mismatch only a range holding now can see
    seen = invoke("reconcile", "--since", "yesterday", "--until", "today", "--output", "ndjson")
    assert seen.exit_code == 3, seen.stderr
    assert [r["status"] for r in ndjson(seen.stdout)] == ["not_in_journal"]
    before = invoke("reconcile", "--since", "yesterday", "--until", "Yesterday", "--output", "ndjson")
    assert before.exit_code == 0, before.stderr
    assert ndjson(before.stdout) == []
    wrong = invoke("reconcile", "--since", "tomorrow")
    assert wrong.exit_code == 2 and "today, yesterday" in wrong.stderr
    future = invoke("reconcile", "--since", "2099-01-01")  # no --until given: the message does not blame it
    assert future.exit_code == 2 and "--since 2099-01-01 is in the future" in future.stderr


def test_journals_of_other_accounts_are_one_line_and_none_under_quiet(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine shared by accounts (a 3PL's clients) has journals of each: they are counted in one line, not a
    line per journal on every run, and `-q` leaves only the result line."""
    for i, key in enumerate(("EZTKotheraccount1", "EZTKotheraccount2", "EZTKotheraccount3")):
        monkeypatch.setenv("EASYPOST_API_KEY", key)
        _create(tmp_path, f"other{i}.csv", 1, prefix=f"O{i}")
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    _create(tmp_path, "mine.csv", 2)

    result = invoke("reconcile", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert "3 journals of other accounts or APIs skipped" in result.stderr
    assert not [line for line in result.stderr.splitlines() if "records purchases" in line], result.stderr

    quiet = invoke("reconcile", "--output", "ndjson", "-q")
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr.strip().splitlines() == ["2 labels on the account, 2 journal rows: everything matches"]


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process in UTC+14, where the local date is ahead of UTC's most of the day."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_day_alone_is_the_local_day_as_report_and_close_take_it(far_east: None) -> None:
    """`2026-12-05` runs from local midnight to the last instant before the next: read as UTC midnight, the
    person's own today was "in the future" for 14 hours of it."""
    start = parse_day("2026-12-05", "--since")
    assert start == dt.datetime(2026, 12, 4, 10, tzinfo=dt.timezone.utc)  # 00:00 at UTC+14
    assert parse_day("20261205", "--until", end=True) == start + dt.timedelta(days=1, microseconds=-1)
    assert parse_day("2026-12-05T00:00:00", "--since") == dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)


def test_the_local_today_is_not_in_the_future(env: Sandbox, tmp_path: Path, far_east: None) -> None:
    _create(tmp_path, "orders.csv", 1)
    today = dt.datetime.now().astimezone().date().isoformat()
    result = invoke("reconcile", "--since", today, "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert "1 labels on the account, 1 journal rows: everything matches" in result.stderr
