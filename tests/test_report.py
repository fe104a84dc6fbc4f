"""`shipctl report`: labels bought by real `create` runs against the sandbox, some refunded by `shipctl refund`,
reported from their journals and checked against the sandbox's own ledger to the cent."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sqlite3
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.journals import old_schema
from tests.manifests import row, write_manifest
from tests.screen import on_screen

REFUNDED = {"A-00001", "B-00002"}


def _local_day(iso: str) -> str:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().date().isoformat()


@pytest.fixture
def bought(env: Sandbox, tmp_path: Path) -> dict[str, Any]:
    """Three journals of labels across carriers, two labels refunded: what the sandbox charged, net of refunds."""
    journals = []
    for prefix, carriers in (("A", ["USPS", "UPS"]), ("B", ["FedEx", "USPS"]), ("C", ["UPS"])):
        rows = [row(i, reference=f"{prefix}-{i:05d}", carrier=carriers[i % len(carriers)]) for i in range(4)]
        manifest = write_manifest(tmp_path / f"{prefix}.csv", rows)
        done = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
        assert done.exit_code == 0, done.stderr
        journals.append(tmp_path / f"{prefix}.csv.journal.db")
    for ref in sorted(REFUNDED):
        journal = journals[0] if ref.startswith("A") else journals[1]
        done = invoke("refund", "--journal", str(journal), "--reference", ref, "--output", "ndjson", "--quiet")
        assert done.exit_code == 0, done.stderr
    ledger = env.ledger()
    assert len(ledger) == 12
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    refunded: dict[str, Decimal] = defaultdict(Decimal)
    for entry in ledger:
        amount = Decimal(entry["amount"])
        if entry["reference"] in REFUNDED:
            refunded[entry["carrier"]] += amount
            continue
        spend[("carrier", entry["carrier"])] += amount
        spend[("day", _local_day(entry["time"]))] += amount
    return {"journals": journals, "spend": spend, "refunded": refunded, "ledger": ledger}


def _report(*args: str) -> list[dict[str, Any]]:
    done = invoke("report", *args, "--output", "ndjson")
    assert done.exit_code == 0, done.stderr
    return ndjson(done.stdout)


def test_spend_per_carrier_and_day_matches_the_ledger_to_the_cent(bought: dict[str, Any]) -> None:
    spend = bought["spend"]
    by_carrier = [r for r in _report("--by", "carrier") if r["section"] == "group"]
    assert {r["group"]: Decimal(r["spend"]) for r in by_carrier} == {
        k: v for (by, k), v in spend.items() if by == "carrier"}
    assert {r["group"]: Decimal(r["refunded"]) for r in by_carrier if r["refunds"]} == bought["refunded"]
    assert sum(r["labels"] for r in by_carrier) == 12
    assert sum(r["refunds"] for r in by_carrier) == 2
    # A refund asked for is `submitted` in the sandbox: pending until the carrier confirms it.
    assert sum(r["refunds_pending"] for r in by_carrier) == 2

    by_day = [r for r in _report() if r["section"] == "group"]  # --by day is the default
    assert {r["group"]: Decimal(r["spend"]) for r in by_day} == {k: v for (by, k), v in spend.items() if by == "day"}
    [total] = [r for r in _report() if r["section"] == "total"]
    paid = sorted(Decimal(e["amount"]) for e in bought["ledger"] if e["reference"] not in REFUNDED)
    assert Decimal(total["spend"]) == sum(paid)
    assert Decimal(total["median"]) == ((paid[4] + paid[5]) / 2).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(total["average"]) == (sum(paid, Decimal(0)) / 10).quantize(Decimal("0.01"))


def test_journals_come_from_the_claims_file_or_are_given(bought: dict[str, Any]) -> None:
    from shipctl.claims import known_journals

    state = Path(os.environ["SHIPCTL_STATE_DIR"])
    assert sorted(known_journals(state)) == sorted(p.absolute() for p in bought["journals"])
    one = _report("--journal", str(bought["journals"][2]), "--by", "carrier")
    assert [(r["group"], r["labels"]) for r in one if r["section"] == "group"] == [("UPS", 4)]


def test_a_label_adopted_into_a_second_journal_counts_once(bought: dict[str, Any], tmp_path: Path) -> None:
    first = bought["journals"][2]
    copy = tmp_path / "copy.journal.db"
    with Journal(first) as src:
        rows = list(src.all())
        meta = {key: src.meta(key) or "" for key in ("target", "mode")}
    with Journal(copy) as j:
        # An adopting run binds the same API and key mode: the copy's labels are test money too.
        for key in ("target", "mode"):
            j.set_meta(key, meta[key])
        j.plan((r.reference, r.line or 0, r.digest or "") for r in rows)
        for r in rows:
            j.update(r.reference, state=r.state, shipment_id=r.shipment_id, carrier=r.carrier, service=r.service,
                     rate=r.rate, currency=r.currency)
    both = _report("--journal", str(first), "--journal", str(copy), "--by", "carrier")
    alone = _report("--journal", str(first), "--by", "carrier")
    assert both == alone


def test_csv_and_json_parse(bought: dict[str, Any]) -> None:
    done = invoke("report", "--by", "carrier", "-o", "csv")
    assert done.exit_code == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["group"] for r in rows if r["section"] == "group"} == {"USPS", "UPS", "FedEx"}
    [total] = [r for r in rows if r["section"] == "total"]
    assert Decimal(total["spend"]) == sum(bought["spend"][("carrier", c)] for c in ("USPS", "UPS", "FedEx"))
    done = invoke("report", "--by", "service", "-o", "json")
    assert done.exit_code == 0, done.stderr
    records = json.loads(done.stdout)
    assert sum(r["labels"] for r in records if r["section"] == "group") == 12
    assert all(r["group"].split(" ")[0] in ("USPS", "UPS", "FedEx") for r in records if r["section"] == "group")


def test_since_until_and_by(bought: dict[str, Any]) -> None:
    today = dt.date.today()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert [r for r in _report("--since", tomorrow) if r["section"] == "group"] == []
    kept = [r for r in _report("--since", "yesterday", "--until", tomorrow) if r["section"] == "group"]
    assert sum(r["labels"] for r in kept) == 12
    assert [r for r in _report("--until", "2000-01-01") if r["section"] == "group"] == []
    monday = (today - dt.timedelta(days=today.weekday())).isoformat()
    by_week = [r for r in _report("--by", "week") if r["section"] == "group"]
    # Labels bought just before midnight may fall on another day (and so week, or month) than the others.
    assert monday in {r["group"] for r in by_week}
    by_month = [r for r in _report("--by", "month") if r["section"] == "group"]
    assert today.isoformat()[:7] in {r["group"] for r in by_month}
    bad = invoke("report", "--since", "2024-05-02", "--until", "2024-05-01")
    assert bad.exit_code == 2
    assert "--since 2024-05-02 is after --until 2024-05-01" in bad.stderr
    assert invoke("report", "--since", "someday").exit_code == 2


def test_failed_rows_by_reason(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0, reference="F-0"), row(1, reference="F-1", carrier="NoSuchCarrier")]
    manifest = write_manifest(tmp_path / "f.csv", rows)
    invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    records = _report("--journal", str(tmp_path / "f.csv.journal.db"))
    failed = [r for r in records if r["section"] == "failed"]
    with Journal(tmp_path / "f.csv.journal.db") as j:
        codes = Counter(r.error_code for r in j.all() if r.state == "failed")
    assert codes, "the manifest was meant to fail a row"
    assert {r["group"]: r["failed"] for r in failed} == dict(codes)
    [total] = [r for r in records if r["section"] == "total"]
    assert total["failed"] == sum(codes.values())


def test_a_gone_journal_is_skipped_with_a_note(bought: dict[str, Any]) -> None:
    gone = bought["journals"][1]
    for suffix in ("", "-wal", "-shm"):
        Path(str(gone) + suffix).unlink(missing_ok=True)
    done = invoke("report", "--by", "carrier", "-o", "ndjson")
    assert done.exit_code == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(notes) == 1 and str(gone.absolute()) in notes[0]
    assert sum(r["labels"] for r in ndjson(done.stdout) if r["section"] == "group") == 8


@pytest.mark.parametrize("given", ["a manifest", "not sqlite", "gone", "a folder"])
def test_a_given_journal_that_cannot_be_read_is_an_error(bought: dict[str, Any], tmp_path: Path, given: str) -> None:
    """Found journals are skipped with a note (above); one the user named is what they asked about: an error."""
    path = {"a manifest": tmp_path / "A.csv", "not sqlite": Path("/proc/version"), "gone": tmp_path / "gone.db",
            "a folder": tmp_path}[given]
    if given == "not sqlite" and not path.is_file():
        pytest.skip("no /proc/version")
    done = invoke("report", "--journal", str(bought["journals"][0]), "--journal", str(path), "-o", "ndjson")
    assert done.exit_code == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    why = {"a manifest": "is not a shipctl journal: it is not an SQLite database",
           "not sqlite": "is not a shipctl journal (no such table", "gone": "does not exist",
           "a folder": "is not a file"}[given]
    assert line.startswith(f"error: journal {path.absolute()} {why}"), line


def test_the_charts_render_on_a_terminal(bought: dict[str, Any]) -> None:
    seen = on_screen(["report"], 100)
    assert seen.code == 0, seen.stderr
    assert "Labels by day" in seen.stdout and "Spend per day" in seen.stdout
    assert "Spend per carrier" in seen.stdout
    chart = seen.stdout[seen.stdout.index("Spend per carrier"):]
    bars = {line.split()[0]: line.count("█") for line in chart.splitlines()[1:] if "█" in line}
    assert set(bars) == {"USPS", "UPS", "FedEx"}
    spend = {c: bought["spend"][("carrier", c)] for c in bars}
    biggest = max(spend, key=lambda c: spend[c])
    assert bars[biggest] == max(bars.values()) and bars[biggest] >= 40  # the largest spans the room there is
    assert all(bars[c] <= bars[biggest] * spend[c] / spend[biggest] + 1 for c in bars)


def test_journals_whose_labels_a_later_run_adopted_are_still_found(env: Sandbox, tmp_path: Path) -> None:
    """A second run adopting the first's labels leaves the claims naming one journal: the journal index names both,
    so `report` and `reconcile` read both (a label counted once)."""
    from shipctl.claims import known_journals

    manifest = write_manifest(tmp_path / "orders.csv", [row(i, reference=f"AD-{i}") for i in range(3)])
    first, second = tmp_path / "orders.csv.journal.db", tmp_path / "second.journal.db"
    assert invoke("create", str(manifest), "--output", "ndjson", "--quiet").exit_code == 0
    adopted = invoke("create", str(manifest), "--journal", str(second), "--output", "ndjson", "--quiet")
    assert adopted.exit_code == 0, adopted.stderr
    assert {r["purchase"] for r in ndjson(adopted.stdout)} == {"found"}  # adopted, not bought again
    state = Path(os.environ["SHIPCTL_STATE_DIR"])
    db = sqlite3.connect(state / "claims.sqlite3")
    try:
        named = {journal for (journal,) in db.execute("SELECT DISTINCT journal FROM claims")}
    finally:
        db.close()
    assert len(named) == 1  # what the claims alone would find

    assert sorted(known_journals(state)) == sorted([first.absolute(), second.absolute()])
    done = invoke("report", "--by", "carrier", "-o", "ndjson")
    assert done.exit_code == 0, done.stderr
    assert "2 journals read" in done.stderr
    assert sum(r["labels"] for r in ndjson(done.stdout) if r["section"] == "group") == 3
    checked = invoke("reconcile", "--output", "ndjson")
    assert checked.exit_code == 0, checked.stderr
    assert "3 labels on the account, 6 journal rows: everything matches" in checked.stderr


def test_a_claims_file_older_than_the_journal_index_still_names_its_journals(bought: dict[str, Any]) -> None:
    from shipctl.claims import known_journals

    state = Path(os.environ["SHIPCTL_STATE_DIR"])
    db = sqlite3.connect(state / "claims.sqlite3")
    try:
        db.execute("DROP TABLE journals")
        db.commit()
    finally:
        db.close()
    assert sorted(known_journals(state)) == sorted(p.absolute() for p in bought["journals"])


def test_a_label_refunded_the_next_day_stays_on_its_purchase_day(env: Sandbox, tmp_path: Path) -> None:
    """The refund moves the row's `updated_at` to its own day; the report counts the label on the day it was bought
    (`bought_at`), as a refund netted out of that day."""
    manifest = write_manifest(tmp_path / "d.csv", [row(i, reference=f"D-{i}") for i in range(2)])
    assert invoke("create", str(manifest), "--output", "ndjson", "--quiet").exit_code == 0
    journal = tmp_path / "d.csv.journal.db"
    # Bought yesterday: the journal's times moved back a day, as a run yesterday would have left them.
    yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    stamp = yesterday.isoformat(timespec="milliseconds")
    db = sqlite3.connect(journal)
    try:
        db.execute("UPDATE rows SET bought_at = ?, updated_at = ? WHERE state = 'bought'", (stamp, stamp))
        db.commit()
    finally:
        db.close()
    refunded = invoke("refund", "--journal", str(journal), "--reference", "D-0", "--output", "ndjson", "--quiet")
    assert refunded.exit_code == 0, refunded.stderr
    with Journal(journal) as j:
        d0 = j.get("D-0")
        assert d0 is not None and d0.refund_status == "submitted"
        assert d0.updated_at is not None and _local_day(d0.updated_at) == dt.date.today().isoformat()
    records = _report("--journal", str(journal))
    groups = [r for r in records if r["section"] == "group"]
    assert [(r["group"], r["labels"], r["refunds"]) for r in groups] == [(yesterday.astimezone().date().isoformat(),
                                                                         2, 1)]
    since_today = _report("--journal", str(journal), "--since", "today")
    assert [r for r in since_today if r["section"] == "group"] == []


def test_a_journal_older_than_bought_at_is_read_by_its_last_change(env: Sandbox, tmp_path: Path) -> None:
    """Read-only, a journal written before `bought_at` is not migrated: its rows' time is `updated_at`."""
    old = _old_journal(tmp_path / "old.journal.db", bought_at=False)
    records = _report("--journal", str(old), "--since", "2024-03-02", "--until", "2024-03-02")
    [total] = [r for r in records if r["section"] == "total"]
    assert (total["labels"], Decimal(total["spend"])) == (1, Decimal("2.20"))


def test_a_label_in_two_journals_is_on_its_first_purchase_day_with_the_refund_the_second_knows(
        env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(i, reference=f"M-{i}") for i in range(2)])
    first, second = tmp_path / "m.csv.journal.db", tmp_path / "second.journal.db"
    assert invoke("create", str(manifest), "--output", "ndjson", "--quiet").exit_code == 0
    yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    stamp = yesterday.isoformat(timespec="milliseconds")
    db = sqlite3.connect(first)
    try:  # the first run bought M-0 yesterday
        db.execute("UPDATE rows SET bought_at = ?, updated_at = ? WHERE reference = 'M-0'", (stamp, stamp))
        db.commit()
    finally:
        db.close()
    assert invoke("create", str(manifest), "--journal", str(second), "--quiet").exit_code == 0  # adopts both today
    refunded = invoke("refund", "--journal", str(second), "--reference", "M-0", "--output", "ndjson", "--quiet")
    assert refunded.exit_code == 0, refunded.stderr
    groups = [(r["group"], r["labels"], r["refunds"]) for r in _report() if r["section"] == "group"]
    today = dt.date.today().isoformat()
    assert groups == [(yesterday.astimezone().date().isoformat(), 1, 1), (today, 1, 0)]
    assert [(r["group"], r["labels"]) for r in _report("--since", "today") if r["section"] == "group"] == [(today, 1)]


def _sandbox_prices(env: Sandbox, journal: Path) -> dict[str, dict[str, Decimal]]:
    """Each bought label's selected rate as the sandbox itself says it (read through the SDK, not the journal)."""
    from tests.sdk import sdk

    db = sqlite3.connect(journal)
    try:
        ids = dict(db.execute("SELECT reference, shipment_id FROM rows WHERE state = 'bought'").fetchall())
    finally:
        db.close()
    client = sdk(env)
    try:
        out = {}
        for ref, sid in ids.items():
            rate = client.shipment.retrieve(sid).selected_rate
            out[ref] = {"carrier": rate.carrier, "rate": Decimal(rate.rate), "retail": Decimal(rate.retail_rate),
                        "list": Decimal(rate.list_rate)}
        return out
    finally:
        client._requests_session.close()


def test_savings_against_retail_and_list_are_the_sandboxs_own_to_the_cent(env: Sandbox, tmp_path: Path) -> None:
    carriers = ["USPS", "UPS", "FedEx"]
    rows = [row(i, reference=f"S-{i}", carrier=carriers[i % 3]) for i in range(7)]
    manifest = write_manifest(tmp_path / "s.csv", rows)
    done = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert done.exit_code == 0, done.stderr
    journal = tmp_path / "s.csv.journal.db"
    refunded = invoke("refund", "--journal", str(journal), "--reference", "S-1", "--output", "ndjson", "--quiet")
    assert refunded.exit_code == 0, refunded.stderr
    prices = _sandbox_prices(env, journal)
    assert len(prices) == 7
    paid = {ref: p for ref, p in prices.items() if ref != "S-1"}  # a refunded label is not spend: it saves nothing
    assert all(p["retail"] > p["rate"] for p in paid.values())  # else the test could not tell savings from none

    def expected(labels: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "retail_labels": len(labels), "list_labels": len(labels),
            "retail": sum(p["retail"] for p in labels), "list": sum(p["list"] for p in labels),
            "savings_vs_retail": sum(p["retail"] - p["rate"] for p in labels),
            "savings_vs_list": sum(p["list"] - p["rate"] for p in labels),
        }

    def got(record: dict[str, Any]) -> dict[str, Any]:
        return {k: record[k] if k.endswith("_labels") else Decimal(record[k]) for k in (
            "retail_labels", "list_labels", "retail", "list", "savings_vs_retail", "savings_vs_list")}

    records = _report("--journal", str(journal), "--by", "carrier")
    groups = {r["group"]: got(r) for r in records if r["section"] == "group"}
    assert groups == {c: expected([p for p in paid.values() if p["carrier"] == c]) for c in carriers}
    [total] = [r for r in records if r["section"] == "total"]
    assert got(total) == expected(list(paid.values()))

    # A label whose journaled rate carried no retail or list price (as one journaled before those columns) is left
    # out of both sides: the savings are over the others, never that label counted as saving nothing.
    db = sqlite3.connect(journal)
    try:
        db.execute("UPDATE rows SET retail_rate = NULL, list_rate = '' WHERE reference = 'S-0'")
        db.commit()
    finally:
        db.close()
    [total] = [r for r in _report("--journal", str(journal)) if r["section"] == "total"]
    assert got(total) == expected([p for ref, p in paid.items() if ref != "S-0"])
    assert Decimal(total["spend"]) == sum(p["rate"] for p in paid.values())  # the spend still counts it

    seen = on_screen(["report", "--journal", str(journal), "--by", "carrier"], 120)
    assert seen.code == 0, seen.stderr
    header = next(line for line in seen.stdout.splitlines() if "labels" in line and "spend" in line)
    assert "saved" in header
    savings = expected([p for ref, p in paid.items() if ref != "S-0"])
    line = next(line for line in seen.stdout.splitlines() if line.startswith("Saved "))
    assert f"${savings['savings_vs_retail']:,.2f} against retail (5 of 6 paid labels)" in line
    assert f"${savings['savings_vs_list']:,.2f} against list (5 of 6 paid labels)" in line


def test_a_journal_without_the_price_columns_reports_no_savings_not_zero(env: Sandbox, tmp_path: Path) -> None:
    """Read-only, an old journal is not migrated: its report has no savings (null), nor a savings column or line.
    Opened by shipctl it gains the columns, but its rows keep no price: still null."""
    old = _old_journal(tmp_path / "old.journal.db", bought_at=True)

    def check() -> None:
        records = _report("--journal", str(old), "--by", "carrier")
        assert [r["section"] for r in records] == ["group", "total"]
        for r in records:
            assert Decimal(r["spend"]) == Decimal("10.00")
            assert (r["retail_labels"], r["list_labels"]) == (0, 0)
            assert (r["retail"], r["list"], r["savings_vs_retail"], r["savings_vs_list"]) == (None,) * 4
        done = invoke("report", "--journal", str(old), "-o", "csv")
        assert done.exit_code == 0, done.stderr
        [total] = [r for r in csv.DictReader(io.StringIO(done.stdout)) if r["section"] == "total"]
        assert total["savings_vs_retail"] == "" and total["retail_labels"] == "0"
        seen = on_screen(["report", "--journal", str(old)], 120)
        assert seen.code == 0, seen.stderr
        assert "saved" not in seen.stdout and "Saved" not in seen.stdout

    check()
    with Journal(old):  # migrated in place, as any shipctl command that opens it does
        pass
    db = sqlite3.connect(old)
    try:
        columns = {str(c[1]) for c in db.execute("PRAGMA table_info(rows)")}
    finally:
        db.close()
    assert {"retail_rate", "list_rate"} <= columns
    check()


def test_a_rate_carries_retail_and_list_only_in_its_own_currency() -> None:
    from shipctl.carrier.shipments import rate_from

    answer = {"id": "rate_1", "carrier": "USPS", "service": "Priority", "rate": "7.42", "currency": "USD",
              "retail_rate": "9.90", "retail_currency": "USD", "list_rate": "8.34", "list_currency": "USD"}
    rate = rate_from(answer)
    assert (rate.retail_rate, rate.list_rate) == ("9.90", "8.34")
    assert (rate_from({**answer, "retail_rate": None, "list_rate": ""}).retail_rate,
            rate_from({**answer, "retail_rate": None, "list_rate": ""}).list_rate) == (None, None)
    bare = {k: v for k, v in answer.items() if not k.startswith(("retail", "list"))}
    assert (rate_from(bare).retail_rate, rate_from(bare).list_rate) == (None, None)
    other = rate_from({**answer, "retail_currency": "CAD"})
    assert (other.retail_rate, other.list_rate) == (None, "8.34")  # a price in another currency is no yardstick


def test_the_saved_column_gives_way_to_the_group_names_on_a_narrow_terminal() -> None:
    """Nine figure columns of millions leave a 100-column terminal no room for the names: the `saved` column goes
    (the line under the table still says it), the names stay."""
    from rich.console import Console

    from shipctl.cli.report import _render
    from shipctl.jobs.report import Report, _group

    big = [30_000, 140_000_000_00, 29_000, 1_700, 8_000_000_00, 2_800_000_00, 0, 29_000, 180_000_000_00,
           140_000_000_00 - 40_000_00, 29_000, 150_000_000_00, 140_000_000_00 - 40_000_00]
    groups = [_group("carrier", name, "USD", big, (4_600, 1)) for name in ("FedEx", "UPS", "USPS")]
    totals = [_group("total", "total", "USD", [v * 3 for v in big], (4_600, 1))]
    for width, column in ((100, False), (140, True)):
        console = Console(width=width, record=True)
        _render(console, Report("carrier", groups=groups, totals=totals), width)
        text = console.export_text()
        assert all(name in text for name in ("FedEx", "UPS", "USPS", "total USD")), text
        assert ("saved" in text) is column, text
        assert "Saved $120,120,000.00 against retail (87,000 of 87,000 paid labels)" in text.replace("\n", " ")


def _old_journal(path: Path, *, bought_at: bool) -> Path:
    """A journal as an older shipctl wrote it (no price columns; no `bought_at` either, unless asked): two bought
    USPS labels, on 2024-03-01 (7.80) and 2024-03-02 (2.20)."""
    db = sqlite3.connect(path)
    try:
        db.executescript(old_schema(bought_at=bought_at))
        db.executemany(
            "INSERT INTO rows (reference, line, state, shipment_id, carrier, service, rate, currency, updated_at) "
            "VALUES (?, ?, 'bought', ?, 'USPS', 'Priority', ?, 'USD', ?)",
            [("O-1", 1, "shp_o1", "7.80", "2024-03-01T15:00:00.000+00:00"),
             ("O-2", 2, "shp_o2", "2.20", "2024-03-02T15:00:00.000+00:00")],
        )
        db.commit()
    finally:
        db.close()
    return path


def test_a_median_between_two_labels_is_in_whole_cents_as_the_average_is() -> None:
    """$7.80 and $7.81 in the middle: the median is $7.81 (half up, as the average rounds), never $7.805."""
    from shipctl.jobs.report import _group

    group = _group("day", "2026-12-03", "USD", (2, 1561, 2, 0, 0, 0, 0), (1561, 2))
    assert group.median == Decimal("7.81")
    assert group.average == Decimal("7.81")
    assert _group("day", "2026-12-03", "USD", (3, 2341, 3, 0, 0, 0, 0), (780, 1)).median == Decimal("7.80")
