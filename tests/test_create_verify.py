"""`create --verify off|warn|strict`: EasyPost's verification inside `shipment.create`, judged by the sandbox's
ledger (what was bought), its shipments (what was verified) and the claims (what was given up)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import easypost

from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY, invoke, ndjson
from tests.manifests import row, write_manifest
from tests.standalone import shipctl_env, start
from tests.test_verify_cli import BAD, CORRECTED, GOOD, address_manifest


def _bought(sandbox: Sandbox) -> set[str]:
    return {str(entry["reference"]) for entry in sandbox.ledger()}


def _to_verifications(sandbox: Sandbox, shipment_ids: list[str]) -> list[dict[str, object]]:
    client = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
    try:
        return [client.shipment.retrieve(i).to_address.verifications.to_dict() for i in shipment_ids]
    finally:
        client._requests_session.close()


def test_strict_buys_none_of_the_bad_rows_and_all_of_the_good(sandbox: Sandbox, tmp_path: Path) -> None:
    env = shipctl_env(sandbox.api_base, tmp_path / "state")
    proc = start(["create", str(address_manifest(tmp_path)), "--verify", "strict", "-o", "ndjson"], env)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err.decode()
    assert _bought(sandbox) == {*GOOD, *CORRECTED}
    records = {r["reference"]: r for r in ndjson(out.decode())}
    for ref, (codes, reason) in BAD.items():
        record = records[ref]
        assert (record["status"], record["error_code"], record["shipment_id"]) == (
            "failed", "ADDRESS.VERIFY.FAILURE", None)  # refused before any shipment existed
        assert record["address_verification"] == f"failed: {codes} ({record['error_message'].split('(', 1)[1]}"
        assert codes in record["error_message"] and reason in record["error_message"]
    assert records["FIX-CITY"]["address_verification"] == "corrected: city: Austn → AUSTIN"
    assert records["GOOD-NY"]["address_verification"] == "verified"
    with sqlite3.connect(tmp_path / "state" / "claims.sqlite3") as db:
        states = dict(db.execute("SELECT reference, state FROM claims").fetchall())
    assert {ref: states[ref] for ref in BAD} == dict.fromkeys(BAD, "released")  # free for a fixed rerun


def test_warn_buys_every_row_and_reports_the_failures(env: Sandbox, tmp_path: Path) -> None:
    result = invoke("create", str(address_manifest(tmp_path)), "-o", "ndjson")  # warn is the default
    assert result.exit_code == 0, result.stderr
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    assert _bought(env) == {*GOOD, *CORRECTED, *BAD}
    failed = {ref for ref, r in records.items() if (r["address_verification"] or "").startswith("failed: ")}
    assert failed == set(BAD)
    assert all(records[ref]["status"] == "bought" for ref in BAD)
    assert "E.HOUSE_NUMBER.MISSING" in records["BAD-NUMBER"]["address_verification"]
    assert "reference BAD-ZIP: the destination failed verification (E.ADDRESS.NOT_FOUND,E.ZIP.INVALID" in result.stderr
    assert "3 rows' destinations failed verification and were not stopped (--verify warn)" in result.stderr
    verified = _to_verifications(env, [records[ref]["shipment_id"] for ref in (*GOOD, *BAD)])
    assert all("delivery" in v for v in verified)
    rerun = invoke("create", str(tmp_path / "orders.csv"), "-o", "ndjson", "--verify", "off")
    again = {r["reference"]: r["address_verification"] for r in ndjson(rerun.stdout)}
    assert again == {ref: r["address_verification"] for ref, r in records.items()}  # journaled with the label
    assert len(env.ledger()) == len(records)


def test_off_sends_no_verification(env: Sandbox, tmp_path: Path) -> None:
    result = invoke("create", str(address_manifest(tmp_path)), "--verify", "off", "-o", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    records = ndjson(result.stdout)
    assert _bought(env) == {*GOOD, *CORRECTED, *BAD}
    assert all(r["address_verification"] is None for r in records)
    # The sandbox verifies whenever the key is there (even `verify: false`), as EasyPost does: none was sent.
    assert _to_verifications(env, [r["shipment_id"] for r in records]) == [{}] * len(records)


def test_strict_leaves_international_rows_unverified(env: Sandbox, tmp_path: Path) -> None:
    berlin = {"to_street1": "Unter den Linden 77", "to_city": "Berlin", "to_state": "", "to_zip": "10117",
              "to_country": "DE", "customs_contents_type": "merchandise", "customs_signer": "Steve Brule",
              "item_description": "T-shirt", "item_quantity": 2, "item_value": "23.50", "item_weight": 8,
              "item_origin_country": "US", "item_hs_tariff_number": "6109.10"}
    manifest = write_manifest(tmp_path / "mixed.csv", [row(0, reference="US-1"), row(1, reference="DE-1", **berlin)])
    result = invoke("create", str(manifest), "--verify", "strict", "-o", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    records = {r["reference"]: r for r in ndjson(result.stdout)}
    assert (records["US-1"]["address_verification"], records["DE-1"]["address_verification"]) == ("verified", None)
    assert _to_verifications(env, [records["DE-1"]["shipment_id"]]) == [{}]
    assert _bought(env) == {"US-1", "DE-1"}
