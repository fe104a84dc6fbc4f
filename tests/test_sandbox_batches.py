"""Batches through the real SDK, as EasyPost's own SDK tests drive them: create, buy, one merged label file,
a SCAN form, shipments in and out, and the refusals; kept across restarts, one account's own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests
from easypost.constant import _FILTERS_KEY
from easypost.errors import EndOfPaginationError, InvalidRequestError, NotFoundError
from easypost.models import Batch

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import shipment_params
from shipctl.sandbox.model import CARRIER_ACCOUNTS
from tests.cli import TEST_KEY
from tests.test_sandbox_forms import pdf_pages

BATCH_FIELDS = {"id", "object", "mode", "state", "num_shipments", "reference", "created_at", "updated_at",
                "scan_form", "shipments", "status", "pickup", "label_url"}
SUMMARY_FIELDS = {"batch_status", "batch_message", "reference", "tracking_code", "id"}


def one_call_buy_shipment(reference: str | None = None, service: str = "GroundAdvantage") -> dict[str, Any]:
    """EasyPost's SDK test fixture: a shipment with the carrier and service to buy it at."""
    return shipment_params(reference, service=service, carrier_accounts=[CARRIER_ACCOUNTS["USPS"]], carrier="USPS")


def bought(client: Any, reference: str, carrier: str = "USPS") -> Any:
    shp = client.shipment.create(**shipment_params(reference))
    return client.shipment.buy(shp.id, rate=shp.lowest_rate([carrier]))


def get(url: str) -> requests.Response:
    with requests.Session() as s:
        return s.get(url, timeout=10)


def refusal(call: Any, *args: Any, **kwargs: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        call(*args, **kwargs)
    assert info.value.http_status == 422
    return info.value


def test_the_sdk_tests_calls(client: easypost.EasyPostClient) -> None:
    batch = client.batch.create(shipments=[one_call_buy_shipment()])
    assert isinstance(batch, Batch) and batch.id.startswith("batch_") and batch.shipments is not None
    assert client.batch.retrieve(batch.id).id == batch.id

    bought_batch = client.batch.buy(batch.id)
    assert isinstance(bought_batch, Batch) and bought_batch.num_shipments == 1
    assert isinstance(client.batch.label(bought_batch.id, file_format="ZPL"), Batch)
    assert isinstance(client.batch.create_scan_form(bought_batch.id), Batch)

    batches = client.batch.all(page_size=5)
    assert len(batches["batches"]) <= 5 and batches["has_more"] is not None
    assert all(isinstance(b, Batch) for b in batches["batches"])

    shipment = client.shipment.create(**one_call_buy_shipment())
    empty = client.batch.create()
    with_shipments = client.batch.add_shipments(empty.id, shipments=[shipment])
    assert with_shipments.num_shipments == 1
    assert client.batch.remove_shipments(with_shipments.id, shipments=[shipment]).num_shipments == 0


def test_a_one_call_buy_creates_and_buys_at_once(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    # EasyPost's SDK tests make their shipments this way: a service (and carrier) given at create.
    shipment = client.shipment.create(**one_call_buy_shipment("one-call"))
    assert shipment.tracking_code and shipment.postage_label.label_url
    assert (shipment.selected_rate.carrier, shipment.selected_rate.service) == ("USPS", "GroundAdvantage")
    assert [(e["shipment_id"], e["service"]) for e in sandbox.ledger()] == [(shipment.id, "GroundAdvantage")]
    by_account = shipment_params("by-account", service="Ground", carrier_accounts=[CARRIER_ACCOUNTS["UPS"]])
    assert client.shipment.create(**by_account).selected_rate.carrier == "UPS"
    err = refusal(client.shipment.create, **one_call_buy_shipment("nope", service="Teleport"))
    assert err.code == "PARAMETER.INVALID" and len(sandbox.ledger()) == 2
    with pytest.raises(NotFoundError):
        client.shipment.retrieve("nope")  # refused before anything was made


def test_a_batch_moves_through_its_states_in_easyposts_shapes(client: easypost.EasyPostClient,
                                                            sandbox: Sandbox) -> None:
    batch = client.batch.create(shipments=[one_call_buy_shipment(f"s-{i}") for i in range(3)], reference="day")
    assert set(batch.to_dict()) == BATCH_FIELDS and batch.object == "Batch" and batch.mode == "test"
    assert batch.state == "created" and batch.num_shipments == 3 and batch.reference == "day"
    assert all(set(s.to_dict()) == SUMMARY_FIELDS for s in batch.shipments)
    assert [(s.reference, s.batch_status, s.tracking_code) for s in batch.shipments] == [
        (f"s-{i}", "created", None) for i in range(3)]
    assert batch.status.to_dict() == {"created": 3, "queued_for_purchase": 0, "creation_failed": 0,
                                      "postage_purchased": 0, "postage_purchase_failed": 0}
    assert sandbox.ledger() == []  # a batch buys when told to, not at create

    purchased = client.batch.buy(batch.id)
    assert purchased.state == "purchased" and purchased.status.postage_purchased == 3
    codes = [s.tracking_code for s in purchased.shipments]
    assert all(codes) and [e["service"] for e in sandbox.ledger()] == ["GroundAdvantage"] * 3
    shipment = client.shipment.retrieve(purchased.shipments[0].id)
    assert shipment.batch_id == batch.id and shipment.batch_status == "postage_purchased"
    assert shipment.selected_rate.service == "GroundAdvantage"

    labelled = client.batch.label(batch.id, file_format="PDF")
    assert labelled.state == "label_generated" and labelled.label_url.startswith(sandbox.url + "/labels/batch_")
    pages = pdf_pages(get(labelled.label_url).content)
    assert [size for size, _ in pages] == [(288, 432)] * 3  # one 4×6 in page per label
    assert [next(c for c in codes if c in lines) for _, lines in pages] == codes  # in the batch's order

    zpl = get(client.batch.label(batch.id, file_format="ZPL").label_url).text
    assert zpl.count("^XA") == zpl.count("^XZ") == 3
    assert re.findall(r"\^FD(\d{22})\^FS", zpl) == codes


def test_a_shipment_without_a_service_fails_its_purchase(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    batch = client.batch.create(shipments=[one_call_buy_shipment("ok"), shipment_params("no-service"),
                                           one_call_buy_shipment("bad-service", service="Teleport")])
    result = client.batch.buy(batch.id)
    assert result.state == "purchase_failed"
    by_ref = {s.reference: s for s in result.shipments}
    assert by_ref["ok"].batch_status == "postage_purchased" and by_ref["ok"].tracking_code
    for ref in ("no-service", "bad-service"):
        assert by_ref[ref].batch_status == "postage_purchase_failed" and by_ref[ref].batch_message
    assert [e["reference"] for e in sandbox.ledger()] == ["ok"]
    err = refusal(client.batch.label, batch.id, file_format="PDF")
    assert err.code == "BATCH.LABEL.UNAVAILABLE" and by_ref["no-service"].id in err.message
    assert client.batch.retrieve(batch.id).label_url is None
    assert refusal(client.batch.label, client.batch.create().id, file_format="PDF").code == "BATCH.LABEL.UNAVAILABLE"
    assert refusal(client.batch.label, batch.id, file_format="EPL9").code == "PARAMETER.INVALID"


def test_a_shipment_bought_on_its_own_shows_bought_in_its_batch(client: easypost.EasyPostClient,
                                                                sandbox: Sandbox) -> None:
    shp = client.shipment.create(**shipment_params("alone"))
    batch = client.batch.create(shipments=[shp])
    assert batch.shipments[0].batch_status == "created"
    client.shipment.buy(shp.id, rate=shp.lowest_rate())
    again = client.batch.retrieve(batch.id).shipments[0]
    assert again.batch_status == "postage_purchased" and again.tracking_code
    assert client.batch.buy(batch.id).state == "purchased"  # nothing left to buy
    assert [e["reference"] for e in sandbox.ledger()] == ["alone"]


def test_shipments_move_in_and_out(client: easypost.EasyPostClient) -> None:
    a, b = bought(client, "a"), bought(client, "b")
    batch = client.batch.create(shipments=[a])
    assert client.shipment.retrieve(a.id).batch_id == batch.id
    grown = client.batch.add_shipments(batch.id, shipments=[b, a])  # a again: already in, nothing changes
    assert [s.id for s in grown.shipments] == [a.id, b.id]
    assert grown.status.postage_purchased == 2

    labelled = client.batch.label(batch.id, file_format="PDF")
    shrunk = client.batch.remove_shipments(batch.id, shipments=[{"id": a.id}])
    assert [s.id for s in shrunk.shipments] == [b.id] and shrunk.label_url is None  # the old file is stale
    assert get(labelled.label_url).status_code == 404
    gone = client.shipment.retrieve(a.id)
    assert gone.batch_id is None and gone.batch_status is None

    other = client.batch.create()
    err = refusal(client.batch.add_shipments, other.id, shipments=[b])
    assert err.code == "BATCH.SHIPMENTS.INVALID" and b.id in err.message and "another batch" in err.message
    unknown = "shp_" + "0" * 32
    err = refusal(client.batch.add_shipments, other.id, shipments=[{"id": unknown}, a])
    assert unknown in err.message and a.id not in err.message
    assert client.batch.retrieve(other.id).num_shipments == 0  # refused as a whole


def test_a_batch_scan_form(client: easypost.EasyPostClient) -> None:
    shipments = [bought(client, f"close-{i}") for i in range(3)]
    batch = client.batch.create(shipments=shipments)
    closed = client.batch.create_scan_form(batch.id)
    form = closed.scan_form
    assert form.object == "ScanForm" and form.status == "created" and form.batch_id == batch.id
    assert form.tracking_codes == [s.tracking_code for s in shipments]
    assert client.scan_form.retrieve(form.id).to_dict() == form.to_dict()
    assert all(client.shipment.retrieve(s.id).scan_form.id == form.id for s in shipments)
    [(_, lines)] = pdf_pages(get(form.form_url).content)
    assert set(form.tracking_codes) <= set(lines)

    assert refusal(client.batch.create_scan_form, batch.id).code == "BATCH.SCAN_FORM.EXISTS"
    assert refusal(client.batch.add_shipments, batch.id, shipments=[bought(client, "late")]).code == (
        "BATCH.SCAN_FORM.EXISTS")
    assert refusal(client.batch.remove_shipments, batch.id, shipments=[shipments[0]]).code == (
        "BATCH.SCAN_FORM.EXISTS")

    refunded = bought(client, "refunded")
    client.shipment.refund(refunded.id)
    mixed = client.batch.create(shipments=[bought(client, "fine"), refunded])
    err = refusal(client.batch.create_scan_form, mixed.id)
    assert err.code == "SCAN_FORM.CREATE.FAILURE" and re.findall(r"shp_\w{32}", err.message) == [refunded.id]
    assert client.batch.retrieve(mixed.id).scan_form is None


def test_an_injected_refusal_refuses_the_batch_form_too() -> None:
    with start_sandbox(refuse_forms=["odd-one"]) as sb:
        client = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        odd = bought(client, "odd-one")
        batch = client.batch.create(shipments=[bought(client, "even"), odd])
        err = refusal(client.batch.create_scan_form, batch.id)
        assert err.code == "SCAN_FORM.CREATE.FAILURE" and re.findall(r"shp_\w{32}", err.message) == [odd.id]
        client.batch.remove_shipments(batch.id, shipments=[odd])
        assert client.batch.create_scan_form(batch.id).scan_form.tracking_codes == [
            client.shipment.retrieve("even").tracking_code]


def test_batches_page_newest_first(client: easypost.EasyPostClient) -> None:
    made = [client.batch.create().id for _ in range(3)]
    first = client.batch.all(page_size=2)
    assert [b.id for b in first["batches"]] == made[:0:-1] and first["has_more"] is True
    second = client.batch.get_next_page(batches=first, page_size=2)
    assert [b.id for b in second["batches"]] == [made[0]] and first[_FILTERS_KEY] == second[_FILTERS_KEY]
    with pytest.raises(EndOfPaginationError):
        client.batch.get_next_page(batches=second, page_size=2)


def test_batches_survive_a_restart_and_are_the_accounts_own(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite3"
    with start_sandbox(state_path=state) as sb:
        c = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        shipments = [bought(c, f"kept-{i}") for i in range(2)]
        batch = c.batch.create(shipments=shipments)
        c.batch.label(batch.id, file_format="PDF")
    with start_sandbox(state_path=state) as sb2:
        c2 = easypost.EasyPostClient(TEST_KEY, api_base=sb2.api_base)
        again = c2.batch.retrieve(batch.id)
        assert again.state == "label_generated" and [s.id for s in again.shipments] == [s.id for s in shipments]
        assert again.label_url.startswith(sb2.url) and len(pdf_pages(get(again.label_url).content)) == 2
        other = easypost.EasyPostClient("EZTKsomeoneelse", api_base=sb2.api_base)
        with pytest.raises(NotFoundError):
            other.batch.retrieve(batch.id)
        with pytest.raises(NotFoundError):
            other.batch.create_scan_form(batch.id)
        theirs = other.batch.create()
        err = refusal(other.batch.add_shipments, theirs.id, shipments=[shipments[0]])
        assert "not found" in err.message  # our shipment is not theirs to batch
        assert [b.id for b in other.batch.all()["batches"]] == [theirs.id]
