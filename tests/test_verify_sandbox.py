"""The sandbox verifies addresses as EasyPost does, through the real SDK over HTTP: its codes, its corrections,
`verify` vs `verify_strict`, verification inside `shipment.create`, and the trap (a `verify: false` verifies)."""

from __future__ import annotations

import json
from typing import Any

import easypost
import pytest
import requests
from easypost.errors import InvalidRequestError

from shipctl.carrier.addresses import check_from, judge
from shipctl.sandbox import Sandbox
from shipctl.sandbox.examples import shipment_params
from tests.cli import TEST_KEY

AUSTIN = {"name": "Cat", "street1": "600 Congress Ave", "city": "Austin", "state": "TX", "zip": "78701",
          "country": "US"}


def _delivery(addr: Any) -> Any:
    return addr.verifications.delivery


def test_a_zip_outside_its_state_fails_with_easyposts_codes(client: easypost.EasyPostClient) -> None:
    addr = client.address.create(verify=True, **{**AUSTIN, "city": "Los Angeles", "state": "CA"})
    errors = _delivery(addr).errors
    assert _delivery(addr).success is False
    assert [(e.code, e.field) for e in errors] == [("E.ADDRESS.NOT_FOUND", "address"), ("E.ZIP.INVALID", "zip")]
    assert addr.verifications.zip4.success is False


def test_a_street_without_a_number_and_an_unknown_state_fail(client: easypost.EasyPostClient) -> None:
    no_number = client.address.create(verify=True, **{**AUSTIN, "street1": "Congress Avenue"})
    assert [e.code for e in _delivery(no_number).errors] == ["E.HOUSE_NUMBER.MISSING"]
    assert _delivery(no_number).errors[0].message == "House number is missing"
    unknown = client.address.create(verify=True, **{**AUSTIN, "state": "UM", "zip": "96898"})
    assert [e.code for e in _delivery(unknown).errors] == ["E.ADDRESS.NOT_FOUND"]


def test_correctable_addresses_come_back_corrected(client: easypost.EasyPostClient) -> None:
    typo = client.address.create(verify=True, **{**AUSTIN, "city": "austn", "street1": "600 congress avenue",
                                                 "street2": "Suite 5"})
    assert _delivery(typo).success is True and _delivery(typo).errors == []
    assert (typo.street1, typo.street2, typo.city, typo.state) == ("600 CONGRESS AVE STE 5", "", "AUSTIN", "TX")
    assert typo.zip.startswith("78701-") and len(typo.zip) == 10  # a ZIP+4 added
    wrong_state = client.address.create(verify=True, **{**AUSTIN, "state": "CA"})
    assert _delivery(wrong_state).success is True and wrong_state.state == "TX"
    details = _delivery(wrong_state).details
    assert isinstance(details.latitude, float) and details.time_zone


def test_what_changed_is_told_apart_from_easyposts_spelling(client: easypost.EasyPostClient) -> None:
    sent = {**AUSTIN, "city": "Austn", "street1": "600 congress avenue"}
    check = check_from(client.address.create(verify=True, **sent))
    assert check is not None
    verdict = judge(sent, check)
    assert verdict.outcome == "corrected"
    assert [(c.field, c.old, c.new) for c in verdict.changes] == [("city", "Austn", "AUSTIN")]
    plain = check_from(client.address.create(verify=True, **AUSTIN))
    assert plain is not None and judge(AUSTIN, plain).outcome == "verified"  # upper case + ZIP+4 is no correction


def test_residential_is_deterministic(client: easypost.EasyPostClient) -> None:
    home = [client.address.create(verify=True, **AUSTIN).residential for _ in range(2)]
    assert home[0] == home[1] and isinstance(home[0], bool)
    business = client.address.create(verify=True, **{**AUSTIN, "name": None, "company": "Acme"})
    assert business.residential is False
    said = client.address.create(verify=True, **{**AUSTIN, "residential": True})
    assert said.residential is True


def test_verify_strict_refuses_and_create_and_verify_corrects(client: easypost.EasyPostClient) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        client.address.create(verify_strict=True, **{**AUSTIN, "street1": "Congress Avenue"})
    body = json.loads(exc.value.http_body)["error"]
    assert body["code"] == "ADDRESS.VERIFY.FAILURE"
    assert [e["code"] for e in body["errors"]] == ["E.HOUSE_NUMBER.MISSING"]
    fixed = client.address.create_and_verify(**{**AUSTIN, "city": "Austn"})
    assert fixed.city == "AUSTIN"  # strict still corrects what it can


def test_the_trap_a_verify_false_still_verifies(sandbox: Sandbox) -> None:
    """The SDK drops a false `verify`; a raw client sending one gets verification, as at EasyPost."""
    response = requests.post(f"{sandbox.api_base}/addresses", json={"address": AUSTIN, "verify": False},
                             headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30)
    assert response.status_code == 201
    assert response.json()["verifications"]["delivery"]["success"] is True
    plain = requests.post(f"{sandbox.api_base}/addresses", json={"address": AUSTIN},
                          headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30)
    assert plain.json()["verifications"] == {}


def test_shipment_create_verifies_its_to_address_only_when_asked(client: easypost.EasyPostClient) -> None:
    bad = {**AUSTIN, "city": "Los Angeles", "state": "CA"}
    warned = client.shipment.create(**shipment_params(to_address={**bad, "verify": True}))
    assert warned.rates and warned.to_address.verifications.delivery.success is False
    assert client.shipment.retrieve(warned.id).to_address.verifications.delivery.errors[1].code == "E.ZIP.INVALID"
    quiet = client.shipment.create(**shipment_params(to_address=bad))
    assert client.shipment.retrieve(quiet.id).to_address.verifications.to_dict() == {}
    even_false = client.shipment.create(**shipment_params(to_address={**bad, "verify": False}))
    assert even_false.to_address.verifications.delivery.success is False
    with pytest.raises(InvalidRequestError) as exc:
        client.shipment.create(**shipment_params(to_address={**bad, "verify_strict": True}))
    assert [e["code"] for e in exc.value.errors] == ["E.ADDRESS.NOT_FOUND", "E.ZIP.INVALID"]
