"""Money defects found by trying shipctl as a new user and an attacker would; the sandbox's ledger is the truth."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import easypost
import pytest
import requests

from shipctl.claims import Claims
from shipctl.money import format_money
from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import TEST_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest


def bought(sb: Sandbox) -> Counter[str]:
    return Counter(e["reference"] for e in sb.ledger())


def refs(*numbers: int) -> Counter[str]:
    return Counter({f"ORD-{i:05d}": 1 for i in numbers})


def test_rows_that_failed_only_transiently_are_not_offered_for_reshipping(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unlucky = {"ORD-00001", "ORD-00002"}

    def creates_unavailable(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "POST" and path == "/v2/shipments" and answer.json().get("reference") in unlucky:
            body = {"error": {"code": "SERVICE_UNAVAILABLE", "message": "try later", "errors": []}}
            return 503, "application/json", json.dumps(body).encode()
        return None

    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(4)])
    failed = tmp_path / "failed.csv"
    with gateway_in_front(env, monkeypatch, creates_unavailable):
        first = invoke("create", str(manifest), "-o", "ndjson", "--failed", str(failed))
        assert first.exit_code == 3
        assert {r["reference"] for r in ndjson(first.stdout) if r["status"] == "failed"} == {*unlucky}
        # Header only: a temporary failure is the same command's to retry, not a new manifest's.
        assert failed.read_text().count("\n") == 1
        assert "rerun this same command to retry them" in first.stderr

        # The same command, rerun once the API recovers, buys them; an export of just those rows afterwards
        # (a new journal) buys nothing.
        lost = set(unlucky)
        unlucky.clear()
        rerun = invoke("create", str(manifest), "-q")
        assert rerun.exit_code == 0, rerun.stderr
        assert bought(env) == refs(0, 1, 2, 3)
        assert lost == {"ORD-00001", "ORD-00002"}
        retry = write_manifest(tmp_path / "retry.csv", [row(1), row(2)])
        again = invoke("create", str(retry), "-o", "ndjson")
        assert again.exit_code == 0, again.stderr
    assert {r["purchase"] for r in ndjson(again.stdout)} == {"found"}
    assert bought(env) == refs(0, 1, 2, 3)


def test_a_refunded_label_has_its_own_status_and_is_never_spend(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    first = ndjson(invoke("create", str(manifest), "-o", "ndjson", "-q").stdout)
    voided = next(r for r in first if r["reference"] == "ORD-00001")
    journal = tmp_path / "orders.csv.journal.db"
    assert invoke("refund", "--journal", str(journal), "-r", "ORD-00001", "-q").exit_code == 0

    result = invoke("create", str(manifest), "-o", "ndjson")
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00001"]["status"] == "refunded"
    assert by_ref["ORD-00000"]["status"] == "bought"
    assert [r["reference"] for r in by_ref.values() if r["status"] == "bought"] == ["ORD-00000"]
    assert "refunded  1" in result.stderr and f"${voided['rate']}" not in result.stderr
    assert "cost (bought by this run)" not in result.stderr  # this run spent nothing
    assert result.exit_code == 3  # a person must give the row a new reference to ship it
    assert bought(env) == refs(0, 1)


def test_a_rerun_counts_what_the_labels_cost_as_the_first_run_did_insurance_included(
    env: Sandbox, tmp_path: Path
) -> None:
    """Insured at $250, each label was charged a $2.50 InsuranceFee (the sandbox account's 1%): the first run's
    total has it, and so has the rerun's "already bought", read from the journal, not guessed from the manifest."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(i, insurance="250") for i in range(3)])
    first = invoke("create", str(manifest), "-o", "ndjson")
    assert first.exit_code == 0, first.stderr
    paid = sum(Decimal(r["rate"]) for r in ndjson(first.stdout)) + 3 * Decimal("2.50")
    assert format_money(paid, "USD") in first.stderr  # the cost table's total
    again = invoke("create", str(manifest), "-o", "ndjson")
    assert again.exit_code == 0, again.stderr
    assert f"already bought before this run: 3 labels, {format_money(paid, 'USD')}" in again.stderr
    # Adopted into another journal, the labels are "found": their fee comes from the API's answer.
    other = invoke("create", str(write_manifest(tmp_path / "copy.csv", [row(i, insurance="250") for i in range(3)])),
                   "-o", "ndjson")
    assert f"already bought before this run: 3 labels, {format_money(paid, 'USD')}" in other.stderr
    assert bought(env) == refs(0, 1, 2)
    # `report`: spend is what the rates cost, the fees beside it; a refunded label is neither (each label once).
    postage = paid - 3 * Decimal("2.50")
    [total] = [r for r in ndjson(invoke("report", "-o", "ndjson").stdout) if r["section"] == "total"]
    assert (Decimal(total["spend"]), Decimal(total["insurance"])) == (postage, Decimal("7.50"))
    first_id = ndjson(first.stdout)[0]["shipment_id"]
    assert invoke("refund", first_id, "-q").exit_code == 0
    [total] = [r for r in ndjson(invoke("report", "-o", "ndjson").stdout) if r["section"] == "total"]
    assert Decimal(total["insurance"]) == Decimal("5.00") and total["refunds"] == 1


def test_the_summary_tells_what_this_run_bought_from_what_it_found(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i) for i in range(5)]
    assert invoke("create", str(write_manifest(tmp_path / "a.csv", rows)), "-q").exit_code == 0
    result = invoke("create", str(write_manifest(tmp_path / "b.csv", [*rows, row(5)])), "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert "1 bought by this run, 5 found already bought outside this journal" in result.stderr
    assert "already bought before this run: 5 labels" in result.stderr
    assert "ORD-0000" not in result.stderr  # one summary, not a warning line per row
    quiet = invoke("create", str(write_manifest(tmp_path / "c.csv", rows)), "-q")
    assert quiet.stderr.strip().startswith("5 shipments: 5 bought (5 already bought before this run)")
    assert "$" not in quiet.stderr  # nothing spent
    assert bought(env) == refs(0, 1, 2, 3, 4, 5)


def test_a_resumed_run_decides_the_mode_as_the_first_run_did(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EASYPOST_API_KEY")  # a standalone sandbox via EASYPOST_API_BASE: the key tells no mode
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(8)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    # The rerun's first chunk is all resumed rows: no answer reveals the mode; the journal remembers it.
    write_manifest(manifest, [row(i) for i in range(20)])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert "production mode" not in result.stderr
    assert bought(env) == refs(*range(20))


def test_stdin_journals_are_per_api_and_content(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = write_manifest(tmp_path / "export.csv", [row(0), row(1)]).read_text()
    with monkeypatch.context() as built_in:
        built_in.delenv("EASYPOST_API_KEY")
        built_in.delenv("EASYPOST_API_BASE")
        assert invoke("create", "-", "-q", input=text).exit_code == 0
    # Another API afterwards: its own stdin journal, not "journal bound to the sandbox" (exit 2).
    result = invoke("create", "-", "-o", "ndjson", input=text)
    assert result.exit_code == 0, result.stderr
    assert bought(env) == refs(0, 1)


def test_fresh_sets_the_journal_aside_but_buys_nothing_again(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    result = invoke("create", str(manifest), "--fresh", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert "previous journal kept as" in result.stderr
    assert {r["purchase"] for r in ndjson(result.stdout)} == {"found"}
    assert bought(env) == refs(0, 1, 2)


def test_a_purchase_by_another_machine_just_before_the_buy_is_adopted_not_doubled(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across machines nothing can be claimed: the reference is looked up again right before `buy`."""
    other_machine = easypost.EasyPostClient(TEST_KEY, api_base=env.api_base)

    def meanwhile_elsewhere(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        # Our shipment is created; before we buy it, another machine creates and buys the same order.
        if method == "POST" and path == "/v2/shipments" and answer.ok:
            ours = answer.json()
            theirs = other_machine.shipment.create(
                to_address={"id": ours["to_address"]["id"]}, from_address={"id": ours["from_address"]["id"]},
                parcel={"id": ours["parcel"]["id"]}, reference=ours["reference"],
            )
            other_machine.shipment.buy(theirs.id, rate=theirs.lowest_rate())
        return None

    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    try:
        with gateway_in_front(env, monkeypatch, meanwhile_elsewhere):
            result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    finally:
        other_machine._requests_session.close()
    assert result.exit_code == 0, result.stderr
    assert {r["purchase"] for r in ndjson(result.stdout)} == {"found"}
    assert bought(env) == refs(0, 1)  # theirs only; ours was never bought


def test_a_dead_runs_bought_claim_stays_bought_when_a_row_cannot_adopt_it(env: Sandbox, tmp_path: Path) -> None:
    """A run bought R and died before its claim said so; a row for another parcel under R must not free R."""
    client = easypost.EasyPostClient(TEST_KEY, api_base=env.api_base)
    try:
        params = {k: v for k, v in row(0).items() if k != "reference"}
        shipment = client.shipment.create(
            reference="ORD-00000",
            to_address={k[3:]: v for k, v in params.items() if k.startswith("to_")},
            from_address={k[5:]: v for k, v in params.items() if k.startswith("from_")},
            parcel={"weight": params["weight"]},
        )
        client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
    finally:
        client._requests_session.close()
    dead = Claims(tmp_path / "state", journal="dead-run.journal.db")
    dead.open(f"test-mode key account {account_for_key(TEST_KEY)}")
    dead.claim("ORD-00000")
    dead.attach("ORD-00000", shipment.id)  # bought, then killed before `settle`
    dead.close()  # its run file goes: the run is dead

    other_parcel = write_manifest(tmp_path / "other.csv", [row(0, to_street1="1 Other St", weight=99)])
    refused = invoke("create", str(other_parcel), "-o", "ndjson")
    assert [r["error_code"] for r in ndjson(refused.stdout)] == ["REFERENCE_IN_USE"]
    same = invoke("create", str(write_manifest(tmp_path / "same.csv", [row(0)])), "-o", "ndjson")
    assert same.exit_code == 0, same.stderr
    assert [(r["shipment_id"], r["purchase"]) for r in ndjson(same.stdout)] == [(shipment.id, "found")]
    assert bought(env) == refs(0)


def test_a_key_whose_account_the_api_cannot_name_buys_nothing(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims are per account: guessing a scope of our own would let two runs of one account miss each other."""

    def users_not_found(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if path.startswith("/v2/users"):
            return 404, "application/json", json.dumps({"error": {"code": "NOT_FOUND", "message": "no"}}).encode()
        return None

    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    with gateway_in_front(env, monkeypatch, users_not_found):
        result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 1
    assert "did not name the account" in result.stderr and "Traceback" not in result.stderr
    assert env.ledger() == []


def test_a_label_refunded_outside_the_journal_is_never_saved_for_printing(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    first = {r["reference"]: r for r in ndjson(invoke("create", str(manifest), "-o", "ndjson", "-q").stdout)}
    assert invoke("refund", first["ORD-00001"]["shipment_id"], "-q").exit_code == 0  # by id: the journal is not told
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00001"]["status"] == "refunded" and by_ref["ORD-00001"]["label_path"] is None
    assert [p.name for p in labels.iterdir()] == ["ORD-00000.png"]


def test_only_a_refund_asked_for_or_done_voids_a_label() -> None:
    from shipctl.jobs.purchase import record_from_journal
    from shipctl.journal import JournalRow

    def status(refund: str | None) -> str:
        entry = JournalRow("R", 2, "d", "bought", shipment_id="shp_1", rate="7.80", refund_status=refund)
        return record_from_journal(entry).status

    assert [status(s) for s in ("submitted", "refunded")] == ["refunded", "refunded"]
    assert [status(s) for s in (None, "rejected", "not_applicable")] == ["bought"] * 3  # still paid for


def test_labels_from_an_earlier_built_in_sandbox_run_are_saved_on_a_rerun(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EASYPOST_API_KEY")
    monkeypatch.delenv("EASYPOST_API_BASE")
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0  # its sandbox, and its label URLs, are gone now
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in labels.iterdir()) == ["ORD-00000.png", "ORD-00001.png"]


def test_fresh_looks_references_up_even_with_a_test_key(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "another-state"))  # cron with another HOME: no claims
    result = invoke("create", str(manifest), "--fresh", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert {r["purchase"] for r in ndjson(result.stdout)} == {"found"}
    assert bought(env) == refs(0, 1)


def test_a_404_that_is_not_easyposts_never_means_the_shipment_is_gone() -> None:
    """Something in front of the API answering its own 404 says nothing about the shipment: unknown, not gone."""
    import http.server

    from shipctl.carrier.errors import classify
    from tests.gateway import ThreadedServer

    class NoRoute(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"message": "no Route matched with those values"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadedServer(NoRoute)
    client = easypost.EasyPostClient(TEST_KEY, api_base=server.api_base)
    try:
        with pytest.raises(easypost.errors.ApiError) as raised:
            client.shipment.retrieve("shp_0123")
    finally:
        client._requests_session.close()
        server.close()
    failure = classify(raised.value)
    assert failure.outcome_unknown and failure.transient and failure.code == "BAD_RESPONSE"
