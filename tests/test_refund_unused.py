"""`shipctl refund --unused --older-than 7d`: labels from real `create` journals, bought on a sandbox clock moved
back, some scanned by the carrier; the refunds checked through the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.manifests import row, write_manifest
from tests.sdk import refund_status


def _create(tmp_path: Path, name: str, refs: list[str], *extra: str) -> dict[str, str]:
    manifest = write_manifest(tmp_path / name, [row(i, reference=ref) for i, ref in enumerate(refs)])
    bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet", *extra)
    assert bought.exit_code == 0, bought.stderr
    return {r["reference"]: r["shipment_id"] for r in ndjson(bought.stdout)}


@pytest.fixture
def labels(env: Sandbox, tmp_path: Path) -> dict[str, str]:
    """OLD-0..2 bought 8 days ago and never scanned, SCANNED-0 bought 8 days ago and scanned, GONE-0 bought 40 days
    ago (past USPS's 30-day window), NEW-0..1 bought today."""
    env.set_clock(-40)
    ids = _create(tmp_path, "gone.csv", ["GONE-0"])
    env.set_clock(-8)
    ids |= _create(tmp_path, "old.csv", ["OLD-0", "OLD-1", "OLD-2", "SCANNED-0"])
    env.scan(ids["SCANNED-0"])
    env.set_clock(0)
    ids |= _create(tmp_path, "new.csv", ["NEW-0", "NEW-1"])
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
    young = invoke("refund", "--unused", "--older-than", "0d", "--journal", str(tmp_path / "new.csv.journal.db"),
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


def test_flags_that_do_not_go_together(env: Sandbox) -> None:
    assert invoke("refund", "--dry-run", "shp_x").exit_code == 2
    assert invoke("refund", "--unused", "shp_x").exit_code == 2
    bad = invoke("refund", "--unused", "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr
