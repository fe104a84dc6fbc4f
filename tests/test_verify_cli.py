"""`shipctl verify`: a manifest of known-bad and known-good addresses through the sandbox's verification, the
real SDK over HTTP; exit codes from a real process; `--fix` read back by `validate`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import easypost
import pytest

from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY, invoke, ndjson
from tests.manifests import row, write_manifest
from tests.standalone import shipctl_env, start

GOOD = ("GOOD-NY", "GOOD-CHI")
CORRECTED = ("FIX-CITY", "FIX-STATE")
BAD = {
    "BAD-ZIP": ("E.ADDRESS.NOT_FOUND,E.ZIP.INVALID", "zip: ZIP code 78701 does not belong to state CA"),
    "BAD-NUMBER": ("E.HOUSE_NUMBER.MISSING", "street1: House number is missing"),
    "BAD-STATE": ("E.ADDRESS.NOT_FOUND", "address: Address not found"),
}


def address_rows() -> list[dict[str, Any]]:
    """Good rows, correctable rows and bad rows (a ZIP outside its state, no house number, an unknown state)."""
    return [
        row(0, reference="GOOD-NY"),
        row(2, reference="FIX-CITY", to_city="Austn"),
        row(1, reference="GOOD-CHI", to_name="Chicago, Dock 4"),  # a quoted cell, copied as it is by --fix
        row(2, reference="BAD-ZIP", to_street1="1 Main St", to_city="Los Angeles", to_state="CA"),
        row(2, reference="FIX-STATE", to_state="CA"),
        row(4, reference="BAD-NUMBER", to_street1="Harbor Drive"),
        row(5, reference="BAD-STATE", to_street1="12 Wake Rd", to_city="Honolulu", to_state="UM", to_zip="96898"),
    ]


def address_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "orders.csv", address_rows())


def _addresses_made(sandbox: Sandbox) -> int:
    client = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
    try:
        return len(client.address.all(page_size=100)["addresses"])
    finally:
        client._requests_session.close()


def test_verify_reports_exactly_the_bad_rows_with_easyposts_reasons(env: Sandbox, tmp_path: Path) -> None:
    result = invoke("verify", str(address_manifest(tmp_path)), "-o", "ndjson")
    assert result.exit_code == 3, result.stderr
    records = ndjson(result.stdout)
    origin, *destinations = records
    assert (origin["address"], origin["status"], origin["line"]) == ("from", "verified", 2)  # one origin, once
    assert [r["reference"] for r in destinations] == [r["reference"] for r in address_rows()]  # input order
    by_ref = {r["reference"]: r for r in destinations}
    failed = {ref: (r["error_code"], r["error_message"]) for ref, r in by_ref.items() if r["status"] == "failed"}
    assert set(failed) == set(BAD)
    for ref, (codes, reason) in BAD.items():
        assert failed[ref][0] == codes and reason in failed[ref][1]
    assert {ref: r["changes"] for ref, r in by_ref.items() if r["status"] == "corrected"} == {
        "FIX-CITY": "city: Austn → AUSTIN", "FIX-STATE": "state: CA → TX"}
    assert all(by_ref[ref]["status"] == "verified" for ref in GOOD)
    assert all(isinstance(by_ref[ref]["residential"], bool) for ref in (*GOOD, *CORRECTED))
    assert by_ref["GOOD-NY"]["zip"].startswith("10118-")  # EasyPost's spelling, ZIP+4 included
    assert "7 rows, 8 addresses: 3 verified, 2 corrected, 3 failed" in result.stderr


def test_fix_writes_a_manifest_validate_accepts_with_only_the_corrected_cells_changed(
    env: Sandbox, tmp_path: Path
) -> None:
    manifest = address_manifest(tmp_path)
    fixed = tmp_path / "fixed.csv"
    result = invoke("verify", str(manifest), "--fix", str(fixed), "-o", "ndjson")
    assert result.exit_code == 3, result.stderr
    assert f"--fix: {fixed} written: 2 cells corrected in 2 of 7 rows; 3 addresses still fail" in result.stderr
    before, after = manifest.read_bytes(), fixed.read_bytes()
    old_lines, new_lines = before.split(b"\r\n"), after.split(b"\r\n")
    assert len(old_lines) == len(new_lines)
    differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert differing == [2, 5]  # the FIX-CITY and FIX-STATE lines; the header and every other line byte for byte
    old_rows = list(csv.DictReader(io.StringIO(before.decode())))
    new_rows = list(csv.DictReader(io.StringIO(after.decode())))
    pairs = zip(old_rows, new_rows, strict=True)
    cells = {(o["reference"], k, o[k], n[k]) for o, n in pairs for k in o if o[k] != n[k]}
    assert cells == {("FIX-CITY", "to_city", "Austn", "AUSTIN"), ("FIX-STATE", "to_state", "CA", "TX")}
    assert invoke("validate", str(fixed)).exit_code == 0
    again = invoke("verify", str(fixed), "-o", "ndjson")
    statuses = {r["reference"]: r["status"] for r in ndjson(again.stdout) if r["address"] == "to"}
    assert statuses["FIX-CITY"] == statuses["FIX-STATE"] == "verified"


def test_exit_codes_from_a_real_process(sandbox: Sandbox, tmp_path: Path) -> None:
    env = shipctl_env(sandbox.api_base, tmp_path / "state")
    bad = start(["verify", str(address_manifest(tmp_path)), "-o", "json"], env)
    out, err = bad.communicate(timeout=120)
    assert bad.returncode == 3, err.decode()
    assert len(json.loads(out)) == 8
    good = write_manifest(tmp_path / "good.csv", [row(0), row(1), row(3)])
    ok = start(["verify", str(good), "-o", "csv"], env)
    out, err = ok.communicate(timeout=120)
    assert ok.returncode == 0, err.decode()
    header, *lines = out.decode().splitlines()
    assert header.startswith("line,reference,address,status,changes,error_code") and len(lines) == 4


def test_an_invalid_manifest_is_the_validation_report_and_no_call(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "bad.csv", [row(0), row(1, to_state="ZZ", weight="heavy")])
    result = invoke("verify", str(manifest))
    assert result.exit_code == 2
    assert "row 3, column to_state" in result.stderr and "nothing was verified" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _addresses_made(env) == 0


def test_fix_is_refused_before_any_call(env: Sandbox, tmp_path: Path) -> None:
    manifest = address_manifest(tmp_path)
    under_a_file = manifest / "fixed.csv"
    result = invoke("verify", str(manifest), "--fix", str(under_a_file))
    assert result.exit_code == 2 and f"cannot write --fix {under_a_file}" in result.stderr
    same = invoke("verify", str(manifest), "--fix", str(manifest))
    assert same.exit_code == 2
    as_json = tmp_path / "orders.ndjson"
    as_json.write_text("".join(json.dumps(r) + "\n" for r in address_rows()))
    refused = invoke("verify", str(as_json), "--fix", str(tmp_path / "f.ndjson"))
    assert refused.exit_code == 2 and "CSV manifests only" in refused.stderr
    assert _addresses_made(env) == 0


def test_a_json_manifest_verifies_without_fix(env: Sandbox, tmp_path: Path) -> None:
    manifest = tmp_path / "orders.json"
    manifest.write_text(json.dumps(address_rows()))
    result = invoke("verify", str(manifest), "-o", "ndjson", "--quiet")
    assert result.exit_code == 3
    failed = {r["reference"] for r in ndjson(result.stdout) if r["status"] == "failed"}
    assert failed == set(BAD)


def test_stdin_and_an_unreachable_api(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = address_manifest(tmp_path).read_text()
    piped = invoke("verify", "-", "-o", "ndjson", "--quiet", input=text)
    assert piped.exit_code == 3
    assert {r["reference"] for r in ndjson(piped.stdout) if r["status"] == "failed"} == set(BAD)
    monkeypatch.setenv("EASYPOST_API_BASE", "http://127.0.0.1:1/v2")
    down = invoke("verify", "-", "--quiet", input=text)
    assert down.exit_code == 1 and down.stdout == ""
    assert "cannot reach the API at http://127.0.0.1:1/v2" in down.stderr and "Traceback" not in down.stderr
