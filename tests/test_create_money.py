"""Money guards under the awkward cases a review found: resumed runs, key changes, gateways, edits, stdin."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shipctl.cli.terminal import Terminal, use
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, TEST_KEY, invoke, ndjson
from tests.gateway import Gateway, Rule, gateway_in_front, without_mode
from tests.manifests import row, write_manifest


def refs(n: int) -> Counter[str]:
    return Counter({f"ORD-{i:05d}": 1 for i in range(n)})


def bought(sb: Sandbox) -> Counter[str]:
    return Counter(e["reference"] for e in sb.ledger())


def test_a_production_rerun_asks_even_when_its_first_rows_are_already_bought(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(8)])
    assert invoke("create", str(manifest), "--yes", "-q").exit_code == 0
    assert bought(env) == refs(8)
    # The manifest grows; the rerun's first chunk is all resumed rows, so no new shipment reveals the mode.
    write_manifest(manifest, [row(i) for i in range(20)])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2
    assert "production mode" in result.stderr and "--yes" in result.stderr
    assert bought(env) == refs(8)


def test_a_test_key_journal_is_not_resumed_with_a_production_key(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    result = invoke("create", str(manifest), "--yes", "-o", "ndjson")
    assert result.exit_code == 2
    assert "(test key)" in result.stderr and "(production key)" in result.stderr
    assert result.stdout == ""  # nothing reported as bought in production
    assert PROD_KEY not in result.stderr


def test_rows_added_while_the_purchase_waits_for_confirmation_are_not_bought(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    asked: list[int] = []

    def confirm_while_an_export_rewrites_the_file(question: str) -> str:
        asked.append(int(question.split()[1]))  # "Buy 3 labels for $23.40? [y/N]: "
        write_manifest(manifest, [row(i) for i in range(30)])
        return "y"

    # A person at a terminal answers the question (through the terminal object, as the CLI asks it).
    with use(Terminal(interactive=True, answer=confirm_while_an_export_rewrites_the_file)):
        result = invoke("create", str(manifest), "-o", "ndjson")
    assert asked == [3]
    assert bought(env) == refs(3)  # exactly what was confirmed
    records = ndjson(result.stdout)
    # The run reads the copy of the manifest it took at its start: the rows the export added are not this run's.
    assert [r["status"] for r in records] == ["bought"] * 3
    assert result.exit_code == 0, result.stderr


def _first_buy_as_html_502() -> Rule:
    done: list[bool] = []

    def rule(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if path.endswith("/buy") and not done:
            done.append(True)
            return 502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return None

    return rule


@pytest.fixture
def gateway(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    with gateway_in_front(env, monkeypatch, _first_buy_as_html_502()) as proxy:
        yield proxy


def test_a_gateway_error_page_on_buy_is_reconciled_not_failed(
    env: Sandbox, gateway: Gateway, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    failed = tmp_path / "failed.csv"
    result = invoke("create", str(manifest), "-o", "ndjson", "--concurrency", "1", "--failed", str(failed))
    assert gateway.fired
    assert result.exit_code == 0, result.stderr
    assert {r["status"] for r in ndjson(result.stdout)} == {"bought"}
    assert bought(env) == refs(3)
    assert failed.read_text().count("\n") == 1  # its header alone: nothing offered for re-shipping


def test_a_bigger_export_on_stdin_does_not_rebuy_earlier_rows(env: Sandbox, tmp_path: Path) -> None:
    def csv_text(n: int) -> str:
        return write_manifest(tmp_path / f"export-{n}.csv", [row(i) for i in range(n)]).read_text()

    assert invoke("create", "-", "-q", input=csv_text(5)).exit_code == 0
    result = invoke("create", "-", "-o", "ndjson", input=csv_text(6))
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 6
    assert bought(env) == refs(6)


def test_label_files_never_collide(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "orders.csv", [row(0, reference="PO 17/A"), row(1, reference="PO_17_A"), row(2)]
    )
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))
    assert result.exit_code == 0, result.stderr
    paths = {r["reference"]: Path(r["label_path"]) for r in ndjson(result.stdout)}
    assert len(set(paths.values())) == 3
    assert paths["PO_17_A"].name == "PO_17_A.png" and paths["ORD-00002"].name == "ORD-00002.png"
    assert sorted(p.name for p in labels.iterdir()) == sorted(p.name for p in paths.values())


def test_a_row_edited_after_purchase_is_not_rebought_and_is_flagged(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    write_manifest(manifest, [row(0, to_name="Someone Else"), row(1)])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00000"]["status"] == "bought"
    assert by_ref["ORD-00000"]["error_code"] == "EDITED_AFTER_PURCHASE"
    assert bought(env) == refs(2)


def test_a_refunded_label_is_not_reported_as_plainly_bought(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    journal = tmp_path / "orders.csv.journal.db"
    refunded = invoke("refund", "--journal", str(journal), "--reference", "ORD-00001", "-o", "ndjson")
    assert refunded.exit_code == 0, refunded.stderr
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00001"]["error_code"] == "REFUNDED"
    assert by_ref["ORD-00000"]["error_code"] is None
    assert bought(env) == refs(2)  # nothing bought again


def test_a_label_bought_under_another_journal_is_found_by_reference_not_bought_again(
    env: Sandbox, tmp_path: Path
) -> None:
    rows = [row(i) for i in range(4)]
    first = write_manifest(tmp_path / "orders.csv", rows)
    assert invoke("create", str(first), "-q").exit_code == 0
    # The same orders, exported again as another file: a new journal that knows none of them.
    again = write_manifest(tmp_path / "orders-again.csv", [*rows, row(4)])
    result = invoke("create", str(again), "-o", "ndjson", "--check-references")
    assert result.exit_code == 0, result.stderr
    assert "1 bought by this run, 4 found already bought outside this journal" in result.stderr
    records = ndjson(result.stdout)
    assert len(records) == 5 and {r["status"] for r in records} == {"bought"}
    assert sorted(r["purchase"] for r in records) == ["found"] * 4 + ["new"]
    assert bought(env) == refs(5)  # only the new order was bought


def test_production_keys_check_references_by_default(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    rows = [row(i) for i in range(3)]
    assert invoke("create", str(write_manifest(tmp_path / "a.csv", rows)), "--yes", "-q").exit_code == 0
    result = invoke("create", str(write_manifest(tmp_path / "b.csv", rows)), "--yes", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert bought(env) == refs(3)
    # Test keys skip the lookup unless asked: the same rows under a third journal would be bought again.


def test_a_reference_reused_for_another_parcel_is_refused_not_adopted(env: Sandbox, tmp_path: Path) -> None:
    assert invoke("create", str(write_manifest(tmp_path / "a.csv", [row(0)])), "-q").exit_code == 0
    other = write_manifest(tmp_path / "b.csv", [row(3, reference="ORD-00000"), row(1, reference="ORD-00000?x=1")])
    result = invoke("create", str(other), "-o", "ndjson", "--check-references")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00000"]["status"] == "failed" and by_ref["ORD-00000"]["error_code"] == "REFERENCE_IN_USE"
    assert by_ref["ORD-00000?x=1"]["status"] == "bought"  # looked up as itself, not as ORD-00000
    assert by_ref["ORD-00000?x=1"]["shipment_id"] != env.ledger()[0]["shipment_id"]
    assert bought(env) == Counter({"ORD-00000": 1, "ORD-00000?x=1": 1})


def test_a_row_fixed_through_its_failed_file_is_not_sent_off_to_be_bought_again(env: Sandbox, tmp_path: Path) -> None:
    """The README's workflow: a row fails, is fixed in the --failed file and bought from it; the original command
    run again (cron, the up-arrow) buys nothing, and its message says where the label went and which run bought
    it, not to give the order a new reference (which would buy it twice)."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, carrier="NoSuchCarrier")])
    failed = tmp_path / "failed.csv"
    assert invoke("create", str(manifest), "--failed", str(failed), "-q").exit_code == 3
    with failed.open(newline="") as fh:
        fixed_rows = list(csv.DictReader(fh))
    fixed_rows[0]["carrier"] = ""
    fixed_rows[0]["to_street1"] = "2 Fixed St"
    fixed = write_manifest(tmp_path / "fixed.csv", fixed_rows)
    assert invoke("create", str(fixed), "-q").exit_code == 0
    label = next(e for e in env.ledger() if e["reference"] == "ORD-00001")

    again = invoke("create", str(manifest), "-o", "ndjson")
    assert again.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(again.stdout)}
    assert by_ref["ORD-00001"]["error_code"] == "REFERENCE_IN_USE"
    message = by_ref["ORD-00001"]["error_message"]
    assert label["shipment_id"] in message and "2 Fixed St".upper() in message.upper()
    assert "fixed.csv" in message  # the run that bought it, by its journal
    assert "the order has shipped" in message and "give this row its own reference" not in message
    assert bought(env) == Counter({"ORD-00000": 1, "ORD-00001": 1})


def test_a_refunded_label_found_by_reference_is_flagged_and_not_saved(env: Sandbox, tmp_path: Path) -> None:
    first = write_manifest(tmp_path / "a.csv", [row(0)])
    assert invoke("create", str(first), "-q").exit_code == 0
    shipment_id = env.ledger()[0]["shipment_id"]
    assert invoke("refund", shipment_id, "-q").exit_code == 0
    labels = tmp_path / "labels"
    again = write_manifest(tmp_path / "b.csv", [row(0)])
    result = invoke("create", str(again), "-o", "ndjson", "--check-references", "--labels-dir", str(labels))
    assert result.exit_code == 3
    [record] = ndjson(result.stdout)
    assert record["error_code"] == "REFUNDED" and record["label_path"] is None
    assert not labels.exists() or not any(labels.iterdir())
    assert bought(env) == refs(1)


def test_a_shipment_that_cannot_be_read_on_rerun_is_unconfirmed_not_failed(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    outage: list[bool] = []

    def shipments_unreadable(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if outage and method == "GET" and "/shipments/shp_" in path:
            return 503, "application/json", json.dumps({"error": {"code": "SERVICE_UNAVAILABLE",
                                                                   "message": "down", "errors": []}}).encode()
        return None

    failed = tmp_path / "failed.csv"
    with gateway_in_front(env, monkeypatch, shipments_unreadable):
        # Journaled, unbought shipments (as a crash between create and buy leaves them), then an outage.
        assert invoke("create", str(manifest), "--dry-run", "-q").exit_code == 0
        outage.append(True)
        result = invoke("create", str(manifest), "-o", "ndjson", "--failed", str(failed))
    assert result.exit_code == 3
    assert {r["error_code"] for r in ndjson(result.stdout)} == {"BUY_UNCONFIRMED"}
    assert "may have been bought" in result.stderr
    assert failed.read_text().count("\n") == 1  # header only: never offered for re-shipping from a new journal
    assert env.ledger() == []


def test_a_production_key_is_never_downgraded_by_an_answer_without_mode(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)

    def strip_mode(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if "json" not in answer.headers.get("Content-Type", ""):
            return None

        return answer.status_code, "application/json", json.dumps(without_mode(answer.json())).encode()

    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    with gateway_in_front(env, monkeypatch, strip_mode):
        result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2 and "production mode" in result.stderr
    assert env.ledger() == []


def test_the_same_reference_from_two_accounts_gets_two_label_files(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One machine, two client accounts (a 3PL): their order numbers collide, their labels must not.
    labels = tmp_path / "labels"
    for name, i, key in (("a.csv", 0, TEST_KEY), ("b.csv", 5, "EZTK" + "f" * 28)):
        monkeypatch.setenv("EASYPOST_API_KEY", key)
        manifest = write_manifest(tmp_path / name, [row(i, reference="R-1")])
        result = invoke("create", str(manifest), "-q", "--labels-dir", str(labels), "--no-check-references")
        assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in labels.iterdir())
    shipment_ids = [e["shipment_id"] for e in env.ledger()]
    assert files == sorted(["R-1.png", f"R-1-{shipment_ids[1]}.png"])


def test_a_buy_refused_as_already_bought_after_a_429_is_reported_as_found_not_new(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first buy is answered 429 (the API did nothing with it); meanwhile something else buys the shipment, so
    the resend is refused as already bought. The label is not this run's purchase: `found`, not `new`. The 429
    used to count as a send that might have bought it."""
    bought_elsewhere: list[str] = []

    def throttle_first_buy(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method != "POST" or not path.endswith("/buy") or bought_elsewhere:
            return None
        shipment_id = path.split("/")[-2]
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        shipment = requests.get(f"{env.api_base}/shipments/{shipment_id}", headers=headers, timeout=30).json()
        cheapest = min(shipment["rates"], key=lambda rate: float(rate["rate"]))
        requests.post(f"{env.api_base}/shipments/{shipment_id}/buy", json={"rate": {"id": cheapest["id"]}},
                      headers=headers, timeout=30).raise_for_status()
        bought_elsewhere.append(shipment_id)
        return 429, "application/json", json.dumps({"error": {"code": "RATE_LIMITED", "message": "slow down",
                                                              "errors": []}}).encode()

    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=throttle_first_buy):
        result = invoke("create", str(manifest), "-o", "ndjson", "--progress", "off")
    assert result.exit_code == 0, result.output
    (record,) = ndjson(result.stdout)
    assert bought_elsewhere == [record["shipment_id"]]
    assert record["status"] == "bought" and record["purchase"] == "found"
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1})
