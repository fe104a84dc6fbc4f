"""`shipctl create` end to end: the real SDK over real HTTP to the sandbox, a real SQLite journal."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox, start_sandbox
from tests.cli import PROD_KEY, invoke, ndjson, point_at
from tests.gateway import gateway_in_front
from tests.manifests import make_manifest, row, write_manifest


def bought_per_reference(sb: Sandbox) -> Counter[str]:
    return Counter(entry["reference"] for entry in sb.ledger())


def test_buys_every_row_exactly_once_and_rerun_resumes(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 40)
    first = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert first.exit_code == 0, first.stderr
    results = ndjson(first.stdout)
    assert sorted(r["reference"] for r in results) == [f"ORD-{i:05d}" for i in range(40)]
    assert all(r["status"] == "bought" and r["tracking_code"] and r["label_url"] for r in results)
    assert bought_per_reference(env) == Counter({f"ORD-{i:05d}": 1 for i in range(40)})
    assert (tmp_path / "orders.csv.journal.db").exists()

    second = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert second.exit_code == 0, second.stderr
    again = {r["reference"]: r for r in ndjson(second.stdout)}
    # Re-emitted from the journal, identical but for who bought them: the first run, not this one.
    assert {r["purchase"] for r in results} == {"new"}
    assert {r["purchase"] for r in again.values()} == {"resumed"}
    assert again == {r["reference"]: {**r, "purchase": "resumed"} for r in results}
    assert len(env.ledger()) == 40  # nothing bought twice


def test_invalid_manifest_reports_every_row_and_buys_nothing(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(0), row(1, weight="heavy"), row(2), row(3, to_zip="ABCDE"), row(4, weight="-3")]
    manifest = write_manifest(tmp_path / "bad.csv", rows)
    result = invoke("create", str(manifest))
    assert result.exit_code == 2
    assert "row 3, column weight" in result.stderr
    assert "row 5, column to_zip" in result.stderr
    assert "row 6, column weight" in result.stderr
    assert "nothing was bought" in result.stderr
    assert result.stdout == ""
    assert env.ledger() == []


def test_skip_invalid_buys_the_rest_and_keeps_the_rejects(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "mixed.csv", [row(0), row(1, weight="heavy"), row(2)])
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", str(manifest), "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson")
    assert result.exit_code == 3
    assert sorted(r["reference"] for r in ndjson(result.stdout)) == ["ORD-00000", "ORD-00002"]
    assert set(bought_per_reference(env)) == {"ORD-00000", "ORD-00002"}
    with rejects.open(newline="") as fh:
        rejected = list(csv.DictReader(fh))
    assert [r["reference"] for r in rejected] == ["ORD-00001"]
    assert "weight" in rejected[0]["error"]


def test_skip_invalid_with_every_row_invalid_is_invalid_input_not_a_partial_run(env: Sandbox, tmp_path: Path) -> None:
    """Nothing left to buy is exit 2 (invalid input, nothing done), as without --skip-invalid; the rejects are kept."""
    manifest = write_manifest(tmp_path / "bad.csv", [row(0, weight="heavy"), row(1, to_zip="")])
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", str(manifest), "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson")
    assert result.exit_code == 2, result.stderr
    assert "every row of" in result.stderr and "nothing was bought" in result.stderr
    assert result.stdout == ""
    with rejects.open(newline="") as fh:
        assert [r["reference"] for r in csv.DictReader(fh)] == ["ORD-00000", "ORD-00001"]
    assert env.ledger() == []


def test_skip_invalid_on_stdin_needs_a_rejects_file(env: Sandbox, tmp_path: Path) -> None:
    """A file's rejects default to a file beside it; from stdin, skipped rows would be kept nowhere: refused first."""
    text = write_manifest(tmp_path / "mixed.csv", [row(0), row(1, weight="heavy")]).read_text()
    refused = invoke("create", "-", "--skip-invalid", "-o", "ndjson", input=text)
    assert refused.exit_code == 2
    assert "--rejects" in refused.stderr and "nothing was bought" in refused.stderr
    assert env.ledger() == []
    rejects = tmp_path / "rejects.csv"
    kept = invoke("create", "-", "--skip-invalid", "--rejects", str(rejects), "-o", "ndjson", input=text)
    assert kept.exit_code == 3
    assert [r["reference"] for r in ndjson(kept.stdout)] == ["ORD-00000"]
    with rejects.open(newline="") as fh:
        assert [r["reference"] for r in csv.DictReader(fh)] == ["ORD-00001"]


def test_rows_without_a_reference_are_warned_of_before_anything_is_bought(env: Sandbox, tmp_path: Path) -> None:
    """Known by their content, an edited row is a new order: the run says so (and how to be safe), every time."""
    plain = [{k: v for k, v in row(i).items() if k != "reference"} for i in range(3)]
    manifest = write_manifest(tmp_path / "noref.csv", [*plain[:2], row(2)])
    first = invoke("create", str(manifest), "-o", "ndjson")
    assert first.exit_code == 0, first.stderr
    assert "2 rows of" in first.stderr and "have no reference" in first.stderr and "second label" in first.stderr
    edited = write_manifest(tmp_path / "noref.csv", [{**plain[0], "weight": 40}, plain[1], row(2)])
    again = invoke("create", str(edited), "-o", "ndjson")
    assert "have no reference" in again.stderr  # the edit shipped again: the warning said it would
    assert len(env.ledger()) == 4
    with_refs = invoke("create", str(make_manifest(tmp_path / "refs.csv", 2)), "-o", "ndjson")
    assert with_refs.exit_code == 0 and "no reference" not in with_refs.stderr


def test_a_failing_row_does_not_stop_the_others_and_the_failed_file_reruns(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i) for i in range(6)]
    rows[2] = row(2, carrier="NoSuchCarrier")
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    failed = tmp_path / "failed.csv"
    result = invoke("create", str(manifest), "--failed", str(failed), "-o", "ndjson")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00002"]["status"] == "failed"
    assert by_ref["ORD-00002"]["error_code"] == "NO_MATCHING_RATE"
    assert "offered: " in by_ref["ORD-00002"]["error_message"]
    assert sum(r["status"] == "bought" for r in by_ref.values()) == 5

    with failed.open(newline="") as fh:
        failed_rows = list(csv.DictReader(fh))
    assert [r["reference"] for r in failed_rows] == ["ORD-00002"]
    failed_rows[0]["carrier"] = ""  # the fix a clerk would make
    fixed = write_manifest(tmp_path / "fixed.csv", failed_rows)
    rerun = invoke("create", str(fixed), "-o", "ndjson")
    assert rerun.exit_code == 0, rerun.stderr
    assert [r["status"] for r in ndjson(rerun.stdout)] == ["bought"]
    assert bought_per_reference(env)["ORD-00002"] == 1


def test_dry_run_quotes_but_buys_nothing(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 12)
    result = invoke("create", str(manifest), "--dry-run", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    quoted = ndjson(result.stdout)
    assert len(quoted) == 12
    assert all(r["status"] == "planned" and r["rate"] and r["shipment_id"] for r in quoted)
    total = sum(float(r["rate"]) for r in quoted)
    assert f"{total:.2f}" in result.stderr
    assert env.ledger() == []


def test_a_dry_run_over_max_cost_answers_as_the_real_run_would(env: Sandbox, tmp_path: Path) -> None:
    """A cron line rehearsed with --dry-run must not pass (exit 0) when the real run would refuse (exit 2)."""
    manifest = make_manifest(tmp_path / "orders.csv", 6)
    under = invoke("create", str(manifest), "--dry-run", "--max-cost", "10000", "-o", "ndjson")
    assert under.exit_code == 0, under.stderr
    total = sum(Decimal(r["rate"]) for r in ndjson(under.stdout))
    over = invoke("create", str(manifest), "--dry-run", "--max-cost", str(total - Decimal("0.01")), "-o", "ndjson")
    assert over.exit_code == 2
    assert f"dry run: estimated total ${total}" in over.stderr and "the real run would buy nothing" in over.stderr
    real = invoke("create", str(manifest), "--max-cost", str(total - Decimal("0.01")), "-o", "ndjson")
    assert real.exit_code == 2
    assert env.ledger() == []


def test_select_fastest_and_carrier_filter(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 4)

    def dry(journal: str, *flags: str) -> list[dict[str, Any]]:
        args = ("create", str(manifest), "--dry-run", "-o", "ndjson", "--journal", str(tmp_path / journal), *flags)
        return sorted(ndjson(invoke(*args).stdout), key=lambda r: r["reference"])

    cheap, fast, ups = dry("a"), dry("b", "--select", "fastest"), dry("c", "--carriers", "UPS")
    assert len(cheap) == len(fast) == len(ups) == 4
    for c, f in zip(cheap, fast, strict=True):
        assert f["delivery_days"] <= c["delivery_days"]
        assert float(f["rate"]) >= float(c["rate"])
    assert {r["carrier"] for r in ups} == {"UPS"}


def test_production_mode_refuses_without_confirmation(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = make_manifest(tmp_path / "orders.csv", 10)
    refused = invoke("create", str(manifest), "-o", "ndjson")
    assert refused.exit_code == 2
    assert "production mode" in refused.stderr and "--yes" in refused.stderr
    assert env.ledger() == []
    assert PROD_KEY not in refused.stderr + refused.stdout

    confirmed = invoke("create", str(manifest), "-o", "ndjson", "--yes")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert len(ndjson(confirmed.stdout)) == 10
    assert len(env.ledger()) == 10
    assert PROD_KEY not in confirmed.stderr + confirmed.stdout


def test_max_cost_refuses_when_the_estimate_is_higher(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 10)
    result = invoke("create", str(manifest), "--max-cost", "1.00")
    assert result.exit_code == 2
    assert "--max-cost" in result.stderr
    assert env.ledger() == []
    allowed = invoke("create", str(manifest), "--max-cost", "100000", "-o", "ndjson")
    assert allowed.exit_code == 0, allowed.stderr
    assert len(env.ledger()) == 10


def test_labels_are_downloaded_and_converted(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, label_format="PDF"), row(2)])
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "--labels-dir", str(labels), "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    png = Path(by_ref["ORD-00000"]["label_path"])
    pdf = Path(by_ref["ORD-00001"]["label_path"])
    assert png == labels / "ORD-00000.png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert pdf == labels / "ORD-00001.pdf" and pdf.read_bytes().startswith(b"%PDF-")


def test_a_journal_in_use_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    with Journal(tmp_path / "orders.csv.journal.db"):
        result = invoke("create", str(manifest))
    assert result.exit_code == 1
    assert "in use by another shipctl process" in result.stderr
    assert env.ledger() == []


def test_a_journal_is_bound_to_its_api(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    assert invoke("create", str(manifest), "-q").exit_code == 0
    with start_sandbox(latency="none") as other:
        monkeypatch.setenv("EASYPOST_API_BASE", other.api_base)
        result = invoke("create", str(manifest))
        assert result.exit_code == 2
        assert "--journal PATH" in result.stderr
        assert other.ledger() == []


@pytest.mark.parametrize("seed", [1, 2])
def test_exactly_once_under_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    faults = "rate_limit=0.08,server_error=0.05,commit_then_drop=0.05,drop=0.03"
    with start_sandbox(latency="none", faults=faults, seed=seed) as sb:
        point_at(monkeypatch, sb, tmp_path / "state")
        manifest = make_manifest(tmp_path / "orders.csv", 120)
        result = invoke("create", str(manifest), "-o", "ndjson", "--quiet")
        results = ndjson(result.stdout)
        assert result.exit_code == 0, result.stderr
        assert len(results) == 120
        assert all(r["status"] == "bought" and r["tracking_code"] and r["shipment_id"] for r in results)
        ledger = bought_per_reference(sb)
        assert ledger == Counter({f"ORD-{i:05d}": 1 for i in range(120)})
        # Each result names the shipment the ledger says was bought for it.
        bought_ids = {e["reference"]: e["shipment_id"] for e in sb.ledger()}
        assert {r["reference"]: r["shipment_id"] for r in results} == bought_ids


def test_a_permanent_buy_failure_fails_only_its_row_and_an_edited_rerun_buys_it(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [row(i) for i in range(5)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    failed = tmp_path / "failed.csv"
    refused: set[str] = set()
    refusing = [True]

    def note_row_3(method: str, path: str, answer: requests.Response) -> None:
        if method == "POST" and path == "/v2/shipments" and answer.json().get("reference") == "ORD-00003":
            refused.add(answer.json()["id"])

    def refuse_its_buy(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy") and path.split("/")[3] in refused and refusing:
            body = {"error": {"code": "SHIPMENT.INSURE.UNAVAILABLE", "message": "This shipment cannot be insured.",
                              "errors": []}}
            return 422, "application/json", json.dumps(body).encode()
        return None

    # The API refuses row 3's buy for good (a 422): the row fails, the others are bought. The journal is bound to
    # the API's address, so the rerun goes through the same gateway, which then refuses nothing.
    with gateway_in_front(env, monkeypatch, note_row_3, refuse_its_buy):
        first = invoke("create", str(manifest), "-o", "ndjson", "--failed", str(failed))
        assert first.exit_code == 3
        by_ref = {r["reference"]: r for r in ndjson(first.stdout)}
        assert by_ref["ORD-00003"]["status"] == "failed"
        assert by_ref["ORD-00003"]["shipment_id"]  # created, journaled, never bought
        assert "cannot be insured" in by_ref["ORD-00003"]["error_message"]
        with failed.open(newline="") as fh:
            assert [r["reference"] for r in csv.DictReader(fh)] == ["ORD-00003"]
        assert set(bought_per_reference(env)) == {"ORD-00000", "ORD-00001", "ORD-00002", "ORD-00004"}

        refusing.clear()
        rows[3] = row(3, insurance="200")  # the clerk fixes the row in place and reruns the same command
        write_manifest(manifest, rows)
        second = invoke("create", str(manifest), "-o", "ndjson")
    assert second.exit_code == 0, second.stderr
    again = {r["reference"]: r for r in ndjson(second.stdout)}
    assert again["ORD-00003"]["status"] == "bought"
    assert again["ORD-00003"]["shipment_id"] != by_ref["ORD-00003"]["shipment_id"]  # the stale one is never bought
    assert bought_per_reference(env) == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


def test_a_manifest_rewritten_during_the_run_ships_only_what_was_validated(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run reads the manifest a second time after validating it: overwritten in place at the first call to the
    API (new orders, an invalid weight), the run still ships exactly the validated rows, from the copy it read
    once."""
    rows = [row(i) for i in range(20)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    rewritten: list[bool] = []

    def rewrite(method: str, path: str) -> None:
        if not rewritten:
            rewritten.append(True)
            write_manifest(manifest, [row(100 + i) for i in range(5)] + [row(i, weight="heavy") for i in range(20)])
        return None

    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=rewrite):
        result = invoke("create", str(manifest), "-o", "ndjson", "--concurrency", "2")
    assert rewritten and result.exit_code == 0, result.stderr
    assert sorted(r["reference"] for r in ndjson(result.stdout)) == sorted(r["reference"] for r in rows)
    assert sorted(bought_per_reference(env)) == sorted(r["reference"] for r in rows)
    assert not list(Path(os.environ["SHIPCTL_STATE_DIR"]).glob("shipctl-*.manifest")), "its copy is removed at the end"


def test_a_named_pipe_manifest_is_read_once(env: Sandbox, tmp_path: Path) -> None:
    """A FIFO (or `<(…)`) gives its bytes once: read as stdin is (spooled), not opened a second time and waited on."""
    import threading

    fifo = tmp_path / "orders.fifo"
    os.mkfifo(fifo)
    text = make_manifest(tmp_path / "orders.csv", 3).read_text()

    def feed() -> None:
        with fifo.open("w") as fh:
            fh.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    result = invoke("create", str(fifo), "-o", "ndjson")
    writer.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert sorted(bought_per_reference(env)) == ["ORD-00000", "ORD-00001", "ORD-00002"]
