"""`shipctl refund`: the real SDK over real HTTP to the sandbox, a real journal from a real `create` run."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox, start_sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import make_manifest
from tests.sdk import refund_status, sdk, shipments


def test_refund_by_id_then_again_reports_already_submitted(env: Sandbox) -> None:
    ids = shipments(env, 3)
    first = invoke("refund", *ids, "--output", "ndjson")
    assert first.exit_code == 0, first.stderr
    rows = ndjson(first.stdout)
    assert [r["shipment_id"] for r in rows] == ids  # input order, whatever the completion order
    assert all(r["status"] == "submitted" and r["refund_status"] == "submitted" for r in rows)
    assert all(r["tracking_code"] and r["carrier"] == "USPS" for r in rows)
    client = sdk(env)
    try:  # what each label cost, as the API itself says: what the refund asks back
        paid = [Decimal(client.shipment.retrieve(i).selected_rate.rate) for i in ids]
    finally:
        client._requests_session.close()
    assert [(Decimal(r["cost"]), r["currency"]) for r in rows] == [(p, "USD") for p in paid]
    assert "3 shipments: 3 submitted" in first.stderr
    assert f"${sum(paid):,.2f} submitted for refund" in first.stderr
    assert all(refund_status(env, i) == "submitted" for i in ids)

    second = invoke("refund", *ids, "--output", "ndjson", "--quiet")
    assert second.exit_code == 0, second.stderr
    again = ndjson(second.stdout)
    assert [r["status"] for r in again] == ["already_submitted"] * 3
    assert "3 already submitted" in second.stderr
    assert "submitted for refund" not in second.stderr  # nothing asked back by this run


def test_refund_ids_from_stdin(env: Sandbox) -> None:
    ids = shipments(env, 2)
    result = invoke("refund", "-", "--output", "csv", "--quiet", input="\n".join(ids) + "\n")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("reference,shipment_id,tracking_code,carrier,cost,currency,status,refund_status,error_code,"
                        "error_message")
    assert [line.split(",")[1] for line in lines[1:]] == ids
    assert all(line.split(",")[6] == "submitted" for line in lines[1:])


def test_refund_by_journal_records_the_status_and_is_idempotent(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 5)
    bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr
    journal = tmp_path / "orders.csv.journal.db"

    one = invoke("refund", "--journal", str(journal), "--reference", "ORD-00003", "--output", "ndjson", "--quiet")
    assert one.exit_code == 0, one.stderr
    [row] = ndjson(one.stdout)
    assert (row["reference"], row["status"]) == ("ORD-00003", "submitted")

    rest = invoke("refund", "--journal", str(journal), "--output", "ndjson", "--quiet")
    assert rest.exit_code == 0, rest.stderr
    statuses = {r["reference"]: r["status"] for r in ndjson(rest.stdout)}
    assert statuses == {"ORD-00000": "submitted", "ORD-00001": "submitted", "ORD-00002": "submitted",
                        "ORD-00003": "already_submitted", "ORD-00004": "submitted"}
    with Journal(journal) as j:
        rows = list(j.all())
    assert {r.reference: r.refund_status for r in rows} == dict.fromkeys(statuses, "submitted")
    assert all(refund_status(env, r.shipment_id) == "submitted" for r in rows if r.shipment_id)

    again = invoke("refund", "--journal", str(journal), "--output", "ndjson", "--quiet")
    assert again.exit_code == 0, again.stderr
    assert {r["status"] for r in ndjson(again.stdout)} == {"already_submitted"}
    assert "5 shipments: 5 already submitted" in again.stderr


def test_a_refund_by_id_reaches_the_journal_that_bought_the_label(env: Sandbox, tmp_path: Path) -> None:
    """`create … | refund -`: the journal that bought the labels learns the refunds too, so its rerun reports them
    refunded (not bought) and `report` counts them as refunds, not spend."""
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert bought.exit_code == 0, bought.stderr
    ids = {r["reference"]: r["shipment_id"] for r in ndjson(bought.stdout)}
    refunded = invoke("refund", "-", "--output", "ndjson", "--quiet",
                      input=f"{ids['ORD-00000']}\n{ids['ORD-00002']}\n")
    assert refunded.exit_code == 0, refunded.stderr
    with Journal(tmp_path / "orders.csv.journal.db") as journal:
        assert {r.reference: r.refund_status for r in journal.all()} == {
            "ORD-00000": "submitted", "ORD-00001": None, "ORD-00002": "submitted"}
    rerun = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
    assert {r["reference"]: r["status"] for r in ndjson(rerun.stdout)} == {
        "ORD-00000": "refunded", "ORD-00001": "bought", "ORD-00002": "refunded"}
    report = invoke("report", "-o", "ndjson")
    [total] = [r for r in ndjson(report.stdout) if r["section"] == "total"]
    assert (total["labels"], total["refunds"]) == (3, 2)


GONE = json.dumps({"error": {"code": "NOT_FOUND", "message": "The requested resource could not be found.",
                              "errors": []}}).encode()


def test_a_refund_by_id_names_each_shipments_reference_where_it_is_known(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By id, the reference comes from the journal that bought the label (even when the API can no longer read
    the shipment), else from the API's shipment; it is null only when neither knows one."""
    [shop] = shipments(env, 1, reference="SHOP-77")  # made outside shipctl: only the API knows its reference
    [anonymous] = shipments(env, 1)  # made with no reference, by no journal
    gone: list[str] = []

    def hold(method: str, path: str) -> tuple[int, str, bytes] | None:
        # A shipment the API no longer finds (a wiped sandbox): only the journal still knows its reference.
        return (404, "application/json", GONE) if gone and path == f"/v2/shipments/{gone[0]}" else None

    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=hold):
        manifest = make_manifest(tmp_path / "orders.csv", 2)
        bought = invoke("create", str(manifest), "--output", "ndjson", "--quiet")
        assert bought.exit_code == 0, bought.stderr
        ids = {r["reference"]: r["shipment_id"] for r in ndjson(bought.stdout)}
        gone.append(ids["ORD-00000"])

        result = invoke("refund", ids["ORD-00000"], ids["ORD-00001"], shop, anonymous, "--output", "ndjson",
                        "--quiet")

    assert result.exit_code == 3, result.stderr  # the one the API cannot find fails
    assert [(r["reference"], r["status"]) for r in ndjson(result.stdout)] == [
        ("ORD-00000", "failed"), ("ORD-00001", "submitted"), ("SHOP-77", "submitted"), (None, "submitted")]


def test_unknown_and_unbought_shipments_fail_per_id_with_exit_3(env: Sandbox) -> None:
    [good] = shipments(env, 1)
    [unbought] = shipments(env, 1, buy=False)
    result = invoke("refund", good, "shp_doesnotexist", unbought, "bad/id", "--output", "json", "--quiet")
    assert result.exit_code == 3
    rows = json.loads(result.stdout)
    assert [(r["shipment_id"], r["status"]) for r in rows] == [
        (good, "submitted"),
        ("shp_doesnotexist", "failed"),
        (unbought, "not_bought"),
        ("bad/id", "failed"),
    ]
    assert rows[1]["error_code"] == "NOT_FOUND"
    assert rows[2]["error_code"] == "SHIPMENT.NOT_BOUGHT"
    assert rows[3]["error_code"] == "SHIPMENT.INVALID_ID"
    assert refund_status(env, good) == "submitted"
    assert refund_status(env, unbought) is None


def test_production_refund_needs_confirmation_or_yes(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    ids = shipments(env, 2, key=PROD_KEY)
    refused = invoke("refund", *ids, "--output", "ndjson")
    assert refused.exit_code == 2
    assert "production mode: refusing to refund 2 labels" in refused.stderr
    assert refused.stdout == ""
    assert all(refund_status(env, i, PROD_KEY) is None for i in ids)  # nothing was refunded

    allowed = invoke("refund", *ids, "--yes", "--output", "ndjson")
    assert allowed.exit_code == 0, allowed.stderr
    assert [r["status"] for r in ndjson(allowed.stdout)] == ["submitted", "submitted"]
    assert all(refund_status(env, i, PROD_KEY) == "submitted" for i in ids)


def test_already_refunded_production_labels_need_no_confirmation(
    env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    ids = shipments(env, 1, key=PROD_KEY)
    assert invoke("refund", *ids, "--yes", "--quiet").exit_code == 0
    again = invoke("refund", *ids, "--output", "ndjson", "--quiet")  # nothing left to spend or void: no prompt
    assert again.exit_code == 0, again.stderr
    assert ndjson(again.stdout)[0]["status"] == "already_submitted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give shipment ids"),
        (("--reference", "ORD-1"), "--reference needs --journal"),
        (("shp_1", "--journal", "j.db"), "not both"),
        (("--journal", "missing.db"), "does not exist"),
        (("shp_1", "--output", "xml"), "--output must be"),
    ],
)
def test_usage_errors_exit_2(env: Sandbox, args: tuple[str, ...], message: str) -> None:
    result = invoke("refund", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unknown_reference_refunds_nothing(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    assert invoke("create", str(manifest), "--quiet", "--output", "ndjson").exit_code == 0
    journal = tmp_path / "orders.csv.journal.db"
    result = invoke("refund", "--journal", str(journal), "-r", "ORD-00000,NOPE", "--output", "ndjson")
    assert result.exit_code == 2
    assert "not in journal" in result.stderr and "NOPE" in result.stderr
    assert result.stdout == ""
    with Journal(journal) as j:
        assert all(r.refund_status is None and refund_status(env, r.shipment_id or "") is None for r in j.all())


def test_journal_from_another_target_is_refused(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    assert invoke("create", str(manifest), "--quiet", "--output", "ndjson").exit_code == 0
    with start_sandbox(latency="none") as other:
        monkeypatch.setenv("EASYPOST_API_BASE", other.api_base)
        result = invoke("refund", "--journal", str(tmp_path / "orders.csv.journal.db"))
    assert result.exit_code == 2
    assert "records purchases made against" in result.stderr
