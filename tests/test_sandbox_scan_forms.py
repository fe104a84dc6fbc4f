"""SCAN forms through the real SDK: made from bought shipments as EasyPost's SDK tests make them, refused as
EasyPost refuses them (naming the offending shipments), refused on demand (`refuse_forms`), kept across
restarts, one account's own."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests
from easypost.constant import _FILTERS_KEY
from easypost.errors import EndOfPaginationError, InvalidRequestError, NotFoundError
from easypost.models import ScanForm

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import FROM_ADDRESS, shipment_params
from tests.cli import TEST_KEY
from tests.standalone import sandbox_process
from tests.test_sandbox_batches import one_call_buy_shipment
from tests.test_sandbox_forms import pdf_pages

OTHER_ORIGIN = {"name": "Warehouse 2", "street1": "1 Ferry Building", "city": "San Francisco", "state": "CA",
                "zip": "94111", "country": "US"}
SCAN_FORM_FIELDS = {"id", "object", "created_at", "updated_at", "tracking_codes", "address", "status", "message",
                    "form_url", "form_file_type", "batch_id", "confirmation"}


def bought(client: Any, reference: str, carrier: str = "USPS", **extra: Any) -> Any:
    shp = client.shipment.create(**shipment_params(reference, **extra))
    return client.shipment.buy(shp.id, rate=shp.lowest_rate([carrier]))


def offenders(exc: InvalidRequestError) -> set[str]:
    """The shipments a refusal names: every shipment id in its message (the contract clients rely on)."""
    named = set(re.findall(r"shp_[0-9a-f]{32}", exc.message))
    assert named == {e["message"].split()[0] for e in exc.errors}  # errors[] names the same, one entry each
    return named


def forms_of(client: Any, ids: list[str]) -> dict[str, str | None]:
    """The scan form each shipment is on (None: none, or no such shipment for this account)."""
    out: dict[str, str | None] = {}
    for oid in ids:
        try:
            form = client.shipment.retrieve(oid).scan_form
        except NotFoundError:
            form = None
        out[oid] = form.id if form else None
    return out


def refused(client: Any, ids: list[str]) -> InvalidRequestError:
    """The refusal of a form for `ids`, checked to have made nothing."""
    forms_before = forms_of(client, ids)
    count_before = len(client.scan_form.all(page_size=100)["scan_forms"])
    with pytest.raises(InvalidRequestError) as info:
        client.scan_form.create(shipments=[{"id": i} for i in ids])
    err = info.value
    assert err.http_status == 422 and err.code == "SCAN_FORM.CREATE.FAILURE"
    assert err.message.startswith("Unable to create manifest. ")
    assert len(client.scan_form.all(page_size=100)["scan_forms"]) == count_before
    assert forms_of(client, ids) == forms_before
    return err


def test_the_sdk_tests_calls(client: easypost.EasyPostClient) -> None:
    # As EasyPost's own test_scanform_create / _retrieve: a one-call-buy shipment, the list under `shipment`.
    shipment = client.shipment.create(**one_call_buy_shipment())
    scanform = client.scan_form.create(shipment=[shipment])
    assert isinstance(scanform, ScanForm) and scanform.id.startswith("sf_")
    retrieved = client.scan_form.retrieve(scanform.id)
    assert isinstance(retrieved, ScanForm) and retrieved == scanform

    scanforms = client.scan_form.all(page_size=5)
    assert len(scanforms["scan_forms"]) <= 5 and scanforms["has_more"] is not None
    assert all(isinstance(s, ScanForm) for s in scanforms["scan_forms"])


def test_a_form_is_shaped_like_easyposts_and_marks_its_shipments(client: easypost.EasyPostClient,
                                                               sandbox: Sandbox) -> None:
    shipments = [bought(client, f"day-{i}") for i in range(3)]
    form = client.scan_form.create(shipments=[{"id": s.id} for s in shipments])

    assert set(form.to_dict()) == SCAN_FORM_FIELDS
    assert form.object == "ScanForm" and form.status == "created" and form.message is None
    assert form.tracking_codes == [s.tracking_code for s in shipments]
    assert form.address.id == shipments[0].from_address.id and form.address.street1 == FROM_ADDRESS["street1"]
    assert form.form_file_type is None and form.confirmation is None  # as EasyPost's recorded forms
    assert form.form_url.startswith(sandbox.url + "/labels/sf_") and form.form_url.endswith(".pdf")

    batch = client.batch.retrieve(form.batch_id)  # the batch EasyPost keeps behind every form
    assert batch.scan_form.id == form.id and [s.id for s in batch.shipments] == [s.id for s in shipments]
    for shp in shipments:
        again = client.shipment.retrieve(shp.id)
        assert again.scan_form.to_dict() == form.to_dict() and again.batch_id == form.batch_id

    response = requests.get(form.form_url, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    [(size, lines)] = pdf_pages(response.content)
    assert size == (612, 792) and "USPS SCAN FORM" in lines and "Total packages: 3" in lines
    assert [line for line in lines if line in form.tracking_codes] == form.tracking_codes


def test_a_long_form_lists_every_tracking_code_across_pages(client: easypost.EasyPostClient) -> None:
    shipments = [bought(client, f"long-{i}") for i in range(40)]
    form = client.scan_form.create(shipments=[{"id": s.id} for s in shipments])
    pages = pdf_pages(requests.get(form.form_url, timeout=10).content)
    assert len(pages) == 2 and all(size == (612, 792) for size, _ in pages)
    listed = [line for _, lines in pages for line in lines if line in set(form.tracking_codes)]
    assert listed == [s.tracking_code for s in shipments]
    assert "Page 2 of 2" in " ".join(pages[1][1])


def test_a_shipment_goes_on_one_form_only(client: easypost.EasyPostClient) -> None:
    first, second, third = (bought(client, f"once-{i}") for i in range(3))
    client.scan_form.create(shipments=[{"id": first.id}, {"id": second.id}])
    err = refused(client, [third.id, second.id])
    assert offenders(err) == {second.id} and "already on a scan form" in err.message
    assert client.scan_form.create(shipments=[{"id": third.id}]).tracking_codes == [third.tracking_code]


def test_mixed_origins_and_carriers_are_refused_naming_the_odd_ones(client: easypost.EasyPostClient) -> None:
    home = [bought(client, f"home-{i}") for i in range(2)]
    away = bought(client, "away-1", from_address=dict(OTHER_ORIGIN))
    err = refused(client, [home[0].id, away.id, home[1].id])
    assert offenders(err) == {away.id} and "from address" in err.message

    ups = bought(client, "ups-1", carrier="UPS")
    err = refused(client, [home[0].id, ups.id])
    assert offenders(err) == {ups.id} and "carrier account" in err.message

    # One origin is where parcels are collected: names and letter case do not split it.
    same_place = bought(client, "same-place", from_address={**FROM_ADDRESS, "name": "Someone Else",
                                                            "street1": FROM_ADDRESS["street1"].upper()})
    form = client.scan_form.create(shipments=[{"id": s.id} for s in (*home, same_place)])
    assert len(form.tracking_codes) == 3


def test_unbought_refunded_and_unknown_shipments_are_refused(client: easypost.EasyPostClient,
                                                             sandbox: Sandbox) -> None:
    good = bought(client, "fine-1")
    unbought = client.shipment.create(**shipment_params("not-bought"))
    err = refused(client, [good.id, unbought.id])
    assert offenders(err) == {unbought.id} and "not been purchased" in err.message

    voided = bought(client, "voided")
    client.shipment.refund(voided.id)
    err = refused(client, [voided.id, good.id])
    assert offenders(err) == {voided.id} and "refunded" in err.message

    unknown = "shp_" + "0" * 32
    theirs = easypost.EasyPostClient("EZTKanotheraccount", api_base=sandbox.api_base)
    their_shipment = bought(theirs, "theirs")
    err = refused(client, [good.id, unknown, their_shipment.id])
    assert offenders(err) == {unknown, their_shipment.id}
    assert "2 of the specified shipments were not found" in err.message

    with pytest.raises(InvalidRequestError) as info:
        client.scan_form.create(shipments=[])
    assert info.value.code == "PARAMETER.REQUIRED"
    assert client.scan_form.create(shipments=[{"id": good.id}]).tracking_codes == [good.tracking_code]


def test_injected_refusal_names_one_shipment_every_time_and_splitting_closes_the_rest() -> None:
    with start_sandbox(refuse_forms=["day-2"]) as sb:
        client = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        shipments = [bought(client, f"day-{i}") for i in range(5)]
        ids = [s.id for s in shipments]
        for _ in range(2):  # deterministic: the same answer on every call
            err = refused(client, ids)
            assert offenders(err) == {ids[2]} and "refused by the carrier" in err.message
        # What a client splitting the group sees: the half with the offender is refused, the other is made.
        assert client.scan_form.create(shipments=[{"id": i} for i in ids[:2]]).tracking_codes == [
            s.tracking_code for s in shipments[:2]]
        assert offenders(refused(client, ids[2:])) == {ids[2]}
        assert offenders(refused(client, [ids[2]])) == {ids[2]}
        rest = client.scan_form.create(shipments=[{"id": i} for i in ids[3:]])
        assert rest.tracking_codes == [s.tracking_code for s in shipments[3:]]
        assert client.shipment.retrieve(ids[2]).scan_form is None

        # By shipment id too, added while the sandbox runs.
        late = bought(client, "late")
        sb.form_refusals.add(late.id)
        assert offenders(refused(client, [late.id])) == {late.id}


def test_two_clients_racing_for_the_same_shipments_get_one_form(sandbox: Sandbox) -> None:
    setup = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
    ids = [bought(setup, f"race-{i}").id for i in range(4)]
    results: list[str] = []
    start = threading.Barrier(4)

    def close() -> None:
        c = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
        start.wait()
        try:
            results.append(c.scan_form.create(shipments=[{"id": i} for i in ids]).id)
        except InvalidRequestError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [r for r in results if r.startswith("sf_")]
    assert len(made) == 1 and sorted(results) == sorted([made[0]] + ["SCAN_FORM.CREATE.FAILURE"] * 3)
    assert {setup.shipment.retrieve(i).scan_form.id for i in ids} == set(made)


def test_forms_page_newest_first(client: easypost.EasyPostClient) -> None:
    made = [client.scan_form.create(shipments=[bought(client, f"page-{i}")]).id for i in range(3)]
    first = client.scan_form.all(page_size=2)
    assert [s.id for s in first["scan_forms"]] == made[:0:-1] and first["has_more"] is True
    second = client.scan_form.get_next_page(scan_forms=first, page_size=2)
    assert [s.id for s in second["scan_forms"]] == [made[0]] and second["has_more"] is False
    assert first[_FILTERS_KEY] == second[_FILTERS_KEY]
    with pytest.raises(EndOfPaginationError):
        client.scan_form.get_next_page(scan_forms=second, page_size=2)


def test_forms_survive_a_restart_and_are_the_accounts_own(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite3"
    with start_sandbox(state_path=state) as sb:
        c = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        shipments = [bought(c, f"kept-{i}") for i in range(2)]
        form = c.scan_form.create(shipments=[{"id": s.id} for s in shipments])
    with start_sandbox(state_path=state) as sb2:
        c2 = easypost.EasyPostClient(TEST_KEY, api_base=sb2.api_base)
        again = c2.scan_form.retrieve(form.id)
        assert again.tracking_codes == form.tracking_codes and again.form_url.startswith(sb2.url)
        assert c2.shipment.retrieve(shipments[0].id).scan_form.id == form.id
        assert [s.id for s in c2.scan_form.all()["scan_forms"]] == [form.id]
        assert offenders(refused(c2, [shipments[1].id])) == {shipments[1].id}  # still on its form
        [(_, lines)] = pdf_pages(requests.get(again.form_url, timeout=10).content)
        assert set(form.tracking_codes) <= set(lines)

        other = easypost.EasyPostClient("EZTKsomeoneelse", api_base=sb2.api_base)
        with pytest.raises(NotFoundError):
            other.scan_form.retrieve(form.id)
        assert other.scan_form.all()["scan_forms"] == []


@pytest.mark.slow
def test_the_standalone_server_refuses_what_refuse_form_names(tmp_path: Path) -> None:
    with sandbox_process("--refuse-form", "bad-1,bad-2", "--refuse-form", "bad-3") as server:
        c = easypost.EasyPostClient(TEST_KEY, api_base=server.api_base)
        bad = [bought(c, f"bad-{i}") for i in (1, 2, 3)]
        good = bought(c, "good-1")
        err = refused(c, [good.id, *(s.id for s in bad)])
        assert offenders(err) == {s.id for s in bad}
        assert c.scan_form.create(shipments=[{"id": good.id}]).tracking_codes == [good.tracking_code]
