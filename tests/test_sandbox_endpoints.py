"""The real SDK against the sandbox: addresses, trackers, stateless rates, parcels and customs."""

from __future__ import annotations

import json
from collections.abc import Callable

import easypost
import pytest
from easypost.errors import InvalidRequestError, NotFoundError

from shipctl.sandbox import Sandbox
from shipctl.sandbox.examples import FROM_ADDRESS, PARCEL, TO_ADDRESS, shipment_params
from shipctl.sandbox.tracking import TEST_CODES

BAD_ADDRESS = {"company": "EasyPost", "street1": "000 unknown street", "city": "Not A City", "state": "ZZ",
               "zip": "00001", "country": "US"}


def test_address_create_without_verification(client: easypost.EasyPostClient) -> None:
    addr = client.address.create(**TO_ADDRESS)
    assert type(addr).__name__ == "Address" and addr.id.startswith("adr_")
    assert addr.street1 == TO_ADDRESS["street1"] and addr.verifications.to_dict() == {}
    assert client.address.retrieve(addr.id).id == addr.id


def test_address_verify_pass(client: easypost.EasyPostClient) -> None:
    addr = client.address.create(verify=True, **FROM_ADDRESS)
    delivery = addr.verifications.delivery
    assert delivery.success is True and delivery.errors == []
    assert addr.street1 == "388 TOWNSEND ST APT 20" and addr.zip.startswith("94107-")
    strict = client.address.create(verify_strict=True, **FROM_ADDRESS)
    assert strict.verifications.delivery.success is True
    verified = client.address.create_and_verify(**TO_ADDRESS)
    assert verified.verifications.zip4.success is True
    again = client.address.verify(client.address.create(**TO_ADDRESS).id)
    assert again.verifications.delivery.success is True


def test_address_verify_fail(client: easypost.EasyPostClient) -> None:
    addr = client.address.create(verify=True, **BAD_ADDRESS)  # verify: 201 with success false
    delivery = addr.verifications.delivery
    assert delivery.success is False
    assert delivery.errors[0].code == "E.ADDRESS.NOT_FOUND" and delivery.errors[0].field == "address"
    calls: list[Callable[[], object]] = [
        lambda: client.address.create(verify_strict=True, **BAD_ADDRESS),
        lambda: client.address.create_and_verify(**BAD_ADDRESS),
        lambda: client.address.verify(client.address.create(**BAD_ADDRESS).id),
    ]
    for call in calls:
        with pytest.raises(InvalidRequestError) as exc:
            call()
        body = json.loads(exc.value.http_body)["error"]
        assert body["code"] == "ADDRESS.VERIFY.FAILURE" and body["errors"][0]["code"] == "E.ADDRESS.NOT_FOUND"
        assert set(body["errors"][0]) == {"code", "field", "message", "suggestion"}


def test_zip_outside_its_state_fails_verification(client: easypost.EasyPostClient) -> None:
    wrong = {**TO_ADDRESS, "state": "NY"}  # 90277 is in California
    addr = client.address.create(verify=True, **wrong)
    codes = [e.code for e in addr.verifications.delivery.errors]
    assert addr.verifications.delivery.success is False and "E.ZIP.INVALID" in codes
    no_number = {**TO_ADDRESS, "street1": "N Harbor Dr"}
    errs = client.address.create(verify=True, **no_number).verifications.delivery.errors
    assert "E.HOUSE_NUMBER.MISSING" in [e.code for e in errs]


def test_shipment_with_verify_strict_address_fails(client: easypost.EasyPostClient) -> None:
    with pytest.raises(InvalidRequestError):
        client.shipment.create(**shipment_params(to_address={**BAD_ADDRESS, "verify_strict": True}))


@pytest.mark.parametrize("code", sorted(TEST_CODES))
def test_every_test_tracking_code(client: easypost.EasyPostClient, code: str) -> None:
    tracker = client.tracker.create(tracking_code=code, carrier="USPS")
    status = TEST_CODES[code]
    assert type(tracker).__name__ == "Tracker" and tracker.id.startswith("trk_")
    assert tracker.status == status and tracker.tracking_code == code
    details = tracker.tracking_details
    if status == "unknown":
        assert details == []
    else:
        assert details and details[-1].status == status
        assert all(type(d).__name__ == "EasyPostObject" or d.object == "TrackingDetail" for d in details)
        times = [d.datetime for d in details]
        assert times == sorted(times)
    if status == "delivered":
        assert [d.status for d in details][:1] == ["pre_transit"]
        assert {"in_transit", "out_for_delivery"} <= {d.status for d in details}
    again = client.tracker.retrieve(tracker.id)
    assert again.status == status
    assert client.tracker.create(tracking_code=code, carrier="USPS").id == tracker.id


def test_bought_label_is_trackable_and_trackers_list(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate(["UPS"]))
    assert bought.tracking_code.startswith("1Z") and len(bought.tracking_code) == 18
    tracker = client.tracker.create(tracking_code=bought.tracking_code)
    assert tracker.shipment_id == shp.id and tracker.status == "pre_transit" and tracker.carrier == "UPS"
    assert tracker.tracking_details
    listed = client.tracker.all(tracking_code=bought.tracking_code, page_size=5)
    assert [t.id for t in listed["trackers"]] == [tracker.id] and listed["has_more"] is False
    other = client.shipment.create(**shipment_params())
    fedex = client.shipment.buy(other.id, rate=other.lowest_rate(["FedEx"]))
    assert len(fedex.tracking_code) == 12 and fedex.tracking_code != bought.tracking_code


def test_tracking_codes_are_unique(client: easypost.EasyPostClient) -> None:
    codes = set()
    for _ in range(20):
        shp = client.shipment.create(**shipment_params())
        codes.add(client.shipment.buy(shp.id, rate=shp.lowest_rate()).tracking_code)
    assert len(codes) == 20


def test_stateless_rates(client: easypost.EasyPostClient) -> None:
    rates = client.beta_rate.retrieve_stateless_rates(to_address=TO_ADDRESS, from_address=FROM_ADDRESS,
                                                      parcel=PARCEL)
    assert len(rates) >= 9
    assert all(getattr(r, "id", None) is None for r in rates)
    stateful = client.shipment.create(**shipment_params())
    assert sorted(r.rate for r in rates) == sorted(r.rate for r in stateful.rates)


def test_parcels_and_customs(client: easypost.EasyPostClient) -> None:
    parcel = client.parcel.create(**PARCEL)
    assert parcel.id.startswith("prcl_") and parcel.weight == 15.4
    assert client.parcel.retrieve(parcel.id).id == parcel.id
    item = client.customs_item.create(description="Sweet shirts", quantity=2, weight=11, value=23.25,
                                      hs_tariff_number="654321", origin_country="US")
    assert item.id.startswith("cstitem_") and item.value == "23.25"
    info = client.customs_info.create(customs_certify=True, customs_signer="Steve Brule",
                                      contents_type="merchandise", eel_pfc="NOEEI 30.37(a)",
                                      customs_items=[item])
    assert info.id.startswith("cstinfo_") and info.customs_items[0].id == item.id
    shp = client.shipment.create(to_address=TO_ADDRESS, from_address=FROM_ADDRESS, parcel=parcel,
                                 customs_info=info)
    assert shp.parcel.id == parcel.id and shp.customs_info.id == info.id
    with pytest.raises(InvalidRequestError):
        client.parcel.create(weight=-1)
    with pytest.raises(NotFoundError):
        client.parcel.retrieve("prcl_" + "0" * 32)


def test_unknown_route_is_404(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError):
        client.order.retrieve("order_" + "0" * 32)
