"""`shipctl refund --unused --older-than 7d`: labels from real `create` journals, bought on a sandbox clock moved
back, some scanned by the carrier; the refunds checked through the SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from shipctl.errors import UsageError
from shipctl.jobs.refund import parse_age
from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest
from tests.sdk import refund_status, sdk


def _create(tmp_path: Path, name: str, refs: list[str], *extra: str) -> dict[str, str]:
    manifest = write_manifest(tmp_path / name, [row(i, reference=ref) for i, ref in enumerate(refs)])
    bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet", *extra)
    assert bought.exit_code == 0, bought.stderr
    return {r["reference"]: r["shipment_id"] for r in ndjson(bought.stdout)}


@pytest.fixture
def labels(env: Sandbox, tmp_path: Path) -> dict[str, str]:
    """OLD-0..2 bought 8 days ago and never scanned, SCANNED-0 bought 8 days ago and scanned, GONE-0 bought 40 days
    ago (past USPS's 30-day window), NEW-0..1 bought 2 days ago."""
    env.set_clock(-40)
    ids = _create(tmp_path, "gone.csv", ["GONE-0"])
    env.set_clock(-8)
    ids |= _create(tmp_path, "old.csv", ["OLD-0", "OLD-1", "OLD-2", "SCANNED-0"])
    env.scan(ids["SCANNED-0"])
    env.set_clock(-2)
    ids |= _create(tmp_path, "new.csv", ["NEW-0", "NEW-1"])
    env.set_clock(0)
    return ids


def test_only_unscanned_labels_older_than_7_days_are_refunded(env: Sandbox, labels: dict[str, str],
                                                              tmp_path: Path) -> None:
    dry = invoke("refund", "--unused", "--older-than", "7d", "--dry-run", "--output", "ndjson")
    assert dry.exit_code == 0, dry.stderr
    listed = ndjson(dry.stdout)
    assert sorted(r["reference"] for r in listed) == ["OLD-0", "OLD-1", "OLD-2"]
    assert {r["status"] for r in listed} == {"would_refund"}
    assert all(7.9 < r["age_days"] < 8.1 and r["carrier"] == "USPS" for r in listed)
    total = sum(float(r["cost"]) for r in listed)
    assert f"3 unused labels would be refunded (${total:.2f})" in dry.stderr
    assert "1 scanned" in dry.stderr and "2 younger" in dry.stderr and "1 outside window" in dry.stderr
    assert all(refund_status(env, sid) is None for sid in labels.values())  # a dry run refunds nothing

    done = invoke("refund", "--unused", "--older-than", "7d", "--output", "ndjson")
    assert done.exit_code == 0, done.stderr
    records = ndjson(done.stdout)
    assert sorted(r["reference"] for r in records) == ["OLD-0", "OLD-1", "OLD-2"]
    assert {(r["status"], r["refund_status"]) for r in records} == {("submitted", "submitted")}
    refunded = {ref for ref, sid in labels.items() if refund_status(env, sid) is not None}
    assert refunded == {"OLD-0", "OLD-1", "OLD-2"}  # not the scanned, the younger or the too old
    with Journal(tmp_path / "old.csv.journal.db") as journal:
        assert journal.get("OLD-1").refund_status == "submitted"  # type: ignore[union-attr]
        assert journal.get("SCANNED-0").refund_status is None  # type: ignore[union-attr]

    again = invoke("refund", "--unused", "--older-than", "7d", "--output", "ndjson")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == ""
    assert "nothing to refund" in again.stderr

    # A shorter age takes the young ones too, from the journal given.
    young = invoke("refund", "--unused", "--older-than", "1d", "--journal", str(tmp_path / "new.csv.journal.db"),
                   "--output", "ndjson")
    assert young.exit_code == 0, young.stderr
    assert sorted(r["reference"] for r in ndjson(young.stdout)) == ["NEW-0", "NEW-1"]


def test_production_labels_need_the_confirmation(env: Sandbox, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    env.set_clock(-8)
    ids = _create(tmp_path, "prod.csv", ["P-0", "P-1"], "--yes")
    env.set_clock(0)
    refused = invoke("refund", "--unused")  # not a terminal, no --yes: asked, and refused
    assert refused.exit_code == 2, refused.stderr
    assert "production mode: 2 unused labels to refund" in refused.stderr
    assert "nothing was refunded" in refused.stderr
    assert all(refund_status(env, sid, key=PROD_KEY) is None for sid in ids.values())

    allowed = invoke("refund", "--unused", "--yes", "--output", "ndjson")
    assert allowed.exit_code == 0, allowed.stderr
    assert sorted(r["reference"] for r in ndjson(allowed.stdout)) == ["P-0", "P-1"]
    assert all(refund_status(env, sid, key=PROD_KEY) == "submitted" for sid in ids.values())


def test_an_age_under_a_day_is_refused_and_refunds_nothing(env: Sandbox, tmp_path: Path) -> None:
    """Today's labels wait for the carrier's truck: unscanned, not unused. `--older-than 0` took them all."""
    ids = _create(tmp_path, "today.csv", ["T-0", "T-1"])
    for age in ("0", "0d", "23h", "90m"):
        refused = invoke("refund", "--unused", "--older-than", age)
        assert refused.exit_code == 2, refused.stderr
        assert f"--older-than {age}: at least 1d" in refused.stderr
    assert all(refund_status(env, sid) is None for sid in ids.values())


def test_flags_that_do_not_go_together(env: Sandbox) -> None:
    assert invoke("refund", "--dry-run", "shp_x").exit_code == 2
    assert invoke("refund", "--unused", "shp_x").exit_code == 2
    bad = invoke("refund", "--unused", "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr


def test_older_than_without_unused_is_refused_and_refunds_nothing(env: Sandbox, tmp_path: Path) -> None:
    env.set_clock(-8)
    ids = _create(tmp_path, "a.csv", ["A-0", "A-1"])
    env.set_clock(0)
    result = invoke("refund", "--journal", str(tmp_path / "a.csv.journal.db"), "--older-than", "30d")
    assert result.exit_code == 2, result.stderr
    assert "--older-than goes with --unused" in result.stderr
    assert all(refund_status(env, sid) is None for sid in ids.values())


def _adopted(env: Sandbox, tmp_path: Path) -> tuple[dict[str, str], list[Path]]:
    """B-0 and B-1 bought 8 days ago by one manifest, then adopted by a second journal of the same manifest."""
    env.set_clock(-8)
    ids = _create(tmp_path, "a.csv", ["B-0", "B-1"])
    second = tmp_path / "second.journal.db"
    assert _create(tmp_path, "a.csv", ["B-0", "B-1"], "--journal", str(second)) == ids
    env.set_clock(0)
    return ids, [tmp_path / "a.csv.journal.db", second]


def test_a_label_in_two_journals_is_refunded_and_counted_once_and_recorded_in_both(
        env: Sandbox, tmp_path: Path) -> None:
    ids, journals = _adopted(env, tmp_path)
    given = [arg for path in journals for arg in ("--journal", str(path))]
    dry = invoke("refund", "--unused", "--dry-run", *given, "--output", "ndjson")
    assert dry.exit_code == 0, dry.stderr
    listed = ndjson(dry.stdout)
    assert sorted(r["shipment_id"] for r in listed) == sorted(ids.values())
    total = sum(float(r["cost"]) for r in listed)
    assert f"2 unused labels would be refunded (${total:.2f})" in dry.stderr

    done = invoke("refund", "--unused", *given, "--output", "ndjson")
    assert done.exit_code == 0, done.stderr
    records = ndjson(done.stdout)
    assert sorted(r["shipment_id"] for r in records) == sorted(ids.values())
    assert {r["status"] for r in records} == {"submitted"}
    assert f"2 unused labels submitted for refund (${total:.2f})" in done.stderr
    for path in journals:
        with Journal(path) as journal:
            assert {row.refund_status for row in journal.all()} == {"submitted"}, path


def _rewrite_refunds(
        edit: dict[int, dict[str, object]]) -> Callable[[str, str, requests.Response], tuple[int, str, bytes] | None]:
    """A gateway rule changing the `n`th Refund of every `POST /refunds` answer (the refunds are made upstream)."""
    def rule(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method != "POST" or not path.startswith("/v2/refunds"):
            return None
        refunds = answer.json()
        for n, fields in edit.items():
            refunds[n].update(fields)
        return answer.status_code, "application/json", json.dumps(refunds).encode()
    return rule


def test_only_what_the_api_took_back_is_counted_refunded(env: Sandbox, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # One rejected, one answered for another shipment, one not applicable: only one was taken back.
    rule = _rewrite_refunds({1: {"status": "rejected"}, 2: {"shipment_id": "shp_someone_else"},
                             3: {"status": "not_applicable"}})
    with gateway_in_front(env, monkeypatch, rule):  # the journal is bound to the API it bought through
        env.set_clock(-8)
        ids = _create(tmp_path, "a.csv", ["A-0", "A-1", "A-2", "A-3"])
        env.set_clock(0)
        done = invoke("refund", "--unused", "--output", "ndjson")
    assert done.exit_code == 3, done.stderr
    records = {r["reference"]: r for r in ndjson(done.stdout)}
    statuses = {ref: (r["status"], r["error_code"]) for ref, r in records.items()}
    assert statuses == {"A-0": ("submitted", None), "A-1": ("rejected", "REFUND.REJECTED"),
                        "A-2": ("failed", "REFUND.OTHER_SHIPMENT"),
                        "A-3": ("not_applicable", "REFUND.NOT_APPLICABLE")}
    assert f"1 unused label submitted for refund (${float(records['A-0']['cost']):.2f})" in done.stderr
    assert "not refunded: " in done.stderr and "1 rejected" in done.stderr and "1 failed" in done.stderr
    assert "1 not applicable" in done.stderr
    with Journal(tmp_path / "a.csv.journal.db") as journal:
        written = {row.reference: row.refund_status for row in journal.all()}
    # An answer for another shipment is not ours to record; not_applicable is no status the account shows.
    assert written == {"A-0": "submitted", "A-1": "rejected", "A-2": None, "A-3": None}
    assert ids


def test_a_refund_found_on_the_account_is_written_back(env: Sandbox, tmp_path: Path) -> None:
    env.set_clock(-8)
    ids = _create(tmp_path, "a.csv", ["A-0", "A-1"])
    env.set_clock(0)
    sdk(env).shipment.refund(ids["A-0"])  # elsewhere: the journal never hears of it
    done = invoke("refund", "--unused", "--output", "ndjson")
    assert done.exit_code == 0, done.stderr
    assert [r["reference"] for r in ndjson(done.stdout)] == ["A-1"]
    assert "left alone: 1 already submitted" in done.stderr
    with Journal(tmp_path / "a.csv.journal.db") as journal:
        assert {row.reference: row.refund_status for row in journal.all()} == {"A-0": "submitted",
                                                                                "A-1": "submitted"}


def test_labels_whose_tracking_cannot_be_read_exit_3(env: Sandbox, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reading: list[bool] = []

    def broken(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if reading and method == "GET" and path.startswith("/v2/shipments/"):
            return 500, "application/json", b'{"error": {"code": "INTERNAL", "message": "broken", "errors": []}}'
        return None

    with gateway_in_front(env, monkeypatch, broken):  # the journal is bound to the API it bought through
        env.set_clock(-8)
        ids = _create(tmp_path, "a.csv", ["A-0", "A-1"])
        env.set_clock(0)
        reading.append(True)
        result = invoke("refund", "--unused", "--output", "ndjson")
    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    assert "2 labels could not be read" in result.stderr
    assert all(refund_status(env, sid) is None for sid in ids.values())


def test_a_label_without_a_tracking_code_is_reported_not_left_chosen(env: Sandbox, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ids: dict[str, str] = {}

    def no_code(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if ids and method == "GET" and path == f"/v2/shipments/{ids['A-0']}":
            shipment = answer.json()
            shipment["tracking_code"] = None
            return 200, "application/json", json.dumps(shipment).encode()
        return None

    with gateway_in_front(env, monkeypatch, no_code):  # the journal is bound to the API it bought through
        env.set_clock(-8)
        ids.update(_create(tmp_path, "a.csv", ["A-0", "A-1"]))
        env.set_clock(0)
        result = invoke("refund", "--unused", "--output", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert [(r["reference"], r["status"]) for r in ndjson(result.stdout)] == [("A-1", "submitted")]
    assert f"no tracking code; not refunded (refund it by id: shipctl refund {ids['A-0']})" in result.stderr
    assert "left alone: 1 no tracking code" in result.stderr
    assert refund_status(env, ids["A-0"]) is None


@pytest.mark.parametrize("age", ["1_0d", "+7d", "\u0667d", "nan", "inf", "1e3", "7 days", "-1d", "", "99999d"])
def test_ages_other_than_plain_ascii_numbers_are_refused(age: str) -> None:
    with pytest.raises(UsageError):
        parse_age(age)


@pytest.mark.parametrize(("age", "days"), [("7", 7.0), ("7D", 7.0), ("36h", 1.5), ("2w", 14.0), ("1.5 d", 1.5),
                                            ("90m", 90 / 1440), ("0", 0.0)])
def test_plain_ages_are_read(age: str, days: float) -> None:
    assert parse_age(age).total_seconds() == pytest.approx(days * 86400)


def test_an_odd_age_is_a_usage_error_on_the_command_line(env: Sandbox) -> None:
    bad = invoke("refund", "--unused", "--older-than", "1_0d")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr
