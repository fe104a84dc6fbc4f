"""`shipctl report`: labels bought by real `create` runs against the sandbox, some refunded by `shipctl refund`,
reported from their journals and checked against the sandbox's own ledger to the cent."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
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
    assert Decimal(total["median"]) == (paid[4] + paid[5]) / 2
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
    with Journal(copy) as j:
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
