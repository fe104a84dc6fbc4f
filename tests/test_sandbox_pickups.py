"""Pickups through the real SDK, as EasyPost's own SDK tests book them: rates at create, buy, cancel, and the
refusals (an unknown rate, buying or cancelling twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import easypost
import pytest
from easypost.constant import _FILTERS_KEY
from easypost.errors import EndOfPaginationError, FilteringError, InvalidRequestError, NotFoundError
from easypost.models import Pickup

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import FROM_ADDRESS, shipment_params
from shipctl.sandbox.model import CARRIER_ACCOUNTS
from tests.cli import TEST_KEY
from tests.test_sandbox_batches import one_call_buy_shipment

PICKUP_FIELDS = {"id", "object", "created_at", "updated_at", "mode", "status", "reference", "min_datetime",
                 "max_datetime", "is_account_address", "instructions", "messages", "confirmation", "address",
                 "carrier_accounts", "pickup_rates"}


def basic_pickup() -> dict[str, Any]:
    """EasyPost's SDK test fixture: next-day USPS pickup at the sender's door."""
    return {"address": dict(FROM_ADDRESS), "min_datetime": "2025-03-08", "max_datetime": "2025-03-08",
            "instructions": "Pickup at front door"}


def bought(client: Any, reference: str, carrier: str = "USPS") -> Any:
    shp = client.shipment.create(**shipment_params(reference))
    return client.shipment.buy(shp.id, rate=shp.lowest_rate([carrier]))


def refusal(call: Any, *args: Any, **kwargs: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        call(*args, **kwargs)
    assert info.value.http_status == 422
    return info.value


def test_the_sdk_tests_calls(client: easypost.EasyPostClient) -> None:
    shipment = client.shipment.create(**one_call_buy_shipment())  # as EasyPost's test_pickup_create
    pickup = client.pickup.create(**basic_pickup(), shipment=shipment)
    assert isinstance(pickup, Pickup) and pickup.id.startswith("pickup_") and pickup.pickup_rates is not None

    lowest = pickup.lowest_rate()  # as EasyPost's test_pickup_lowest_rate
    assert (lowest.carrier, lowest.service, lowest.rate) == ("USPS", "NextDay", "0.00")
    with pytest.raises(FilteringError):
        pickup.lowest_rate(services=["BAD SERVICE"])
    with pytest.raises(FilteringError):
        pickup.lowest_rate(carriers=["BAD CARRIER"])

    assert client.pickup.retrieve(pickup.id).id == pickup.id
    scheduled = client.pickup.buy(pickup.id, carrier="USPS", service="NextDay")
    assert isinstance(scheduled, Pickup) and scheduled.status == "scheduled" and scheduled.confirmation
    canceled = client.pickup.cancel(scheduled.id)
    assert isinstance(canceled, Pickup) and canceled.status == "canceled"
    assert canceled.confirmation == scheduled.confirmation

    pickups = client.pickup.all(page_size=5)
    assert len(pickups["pickups"]) <= 5 and pickups["has_more"] is not None
    assert all(isinstance(p, Pickup) for p in pickups["pickups"])


def test_a_pickup_is_shaped_like_easyposts(client: easypost.EasyPostClient) -> None:
    shipment = bought(client, "shape")
    window = {"min_datetime": "2025-03-08T09:00:00-07:00", "max_datetime": "2025-03-08T17:00:00Z"}
    pickup = client.pickup.create(**{**basic_pickup(), **window}, shipment=shipment, reference="eod-1")
    assert set(pickup.to_dict()) == PICKUP_FIELDS
    assert pickup.status == "unknown" and pickup.confirmation is None and pickup.mode == "test"
    assert pickup.reference == "eod-1" and pickup.instructions == "Pickup at front door"
    assert (pickup.min_datetime, pickup.max_datetime) == ("2025-03-08T16:00:00Z", "2025-03-08T17:00:00Z")
    assert pickup.is_account_address is False and pickup.messages == [] and pickup.carrier_accounts == []
    assert pickup.address.id.startswith("adr_") and pickup.address.street1 == FROM_ADDRESS["street1"]
    [rate] = pickup.pickup_rates
    assert type(rate).__name__ == "PickupRate" and rate.id.startswith("pickuprate_")
    assert rate.pickup_id == pickup.id and rate.currency == "USD" and rate.mode == "test"


def test_ups_offers_two_pickups_and_the_cheapest_is_bought(client: easypost.EasyPostClient) -> None:
    pickup = client.pickup.create(**basic_pickup(), shipment=bought(client, "ups", carrier="UPS"))
    offered = sorted((float(r.rate), r.service) for r in pickup.pickup_rates)
    assert len(offered) == 2 and {r.carrier for r in pickup.pickup_rates} == {"UPS"}
    cheapest = pickup.lowest_rate()
    assert (float(cheapest.rate), cheapest.service) == offered[0] and offered[0][0] < offered[1][0]

    err = refusal(client.pickup.buy, pickup.id, carrier="USPS", service="NextDay")
    assert err.code == "PICKUP.RATE.INVALID" and "UPS" in err.message
    err = refusal(client.pickup.buy, pickup.id, carrier="UPS", service="Teleport")
    assert err.code == "PICKUP.RATE.INVALID"
    assert client.pickup.retrieve(pickup.id).status == "unknown"  # nothing booked by a refused buy

    booked = client.pickup.buy(pickup.id, carrier=cheapest.carrier, service=cheapest.service)
    assert booked.status == "scheduled" and booked.confirmation
    err = refusal(client.pickup.buy, pickup.id, carrier=cheapest.carrier, service=cheapest.service)
    assert err.code == "PICKUP.STATUS.INVALID" and "scheduled" in err.message
    assert client.pickup.retrieve(pickup.id).confirmation == booked.confirmation

    client.pickup.cancel(pickup.id)
    err = refusal(client.pickup.cancel, pickup.id)
    assert err.code == "PICKUP.STATUS.INVALID" and "already canceled" in err.message
    assert refusal(client.pickup.buy, pickup.id, carrier="UPS", service=cheapest.service).code == (
        "PICKUP.STATUS.INVALID")


def test_what_a_pickup_needs(client: easypost.EasyPostClient) -> None:
    shipment = bought(client, "needs")
    assert refusal(client.pickup.create, **basic_pickup()).code == "PARAMETER.REQUIRED"  # no shipment or batch
    unbought = client.shipment.create(**shipment_params("unbought"))
    assert "purchased" in refusal(client.pickup.create, **basic_pickup(), shipment=unbought).errors[0]["message"]
    late = {**basic_pickup(), "min_datetime": "2025-03-09", "max_datetime": "2025-03-08"}
    assert refusal(client.pickup.create, **late, shipment=shipment).errors[0]["field"] == "max_datetime"
    assert refusal(client.pickup.create, **{**basic_pickup(), "min_datetime": "tomorrow-ish"},
                   shipment=shipment).errors[0]["field"] == "min_datetime"
    fresh = client.pickup.create(**basic_pickup(), shipment=shipment)
    assert refusal(client.pickup.cancel, fresh.id).code == "PICKUP.STATUS.INVALID"  # never bought
    assert refusal(client.pickup.buy, fresh.id, carrier="USPS").code == "PARAMETER.REQUIRED"


def test_a_batch_pickup_offers_each_carrier_and_shows_on_the_batch(client: easypost.EasyPostClient) -> None:
    batch = client.batch.create(shipments=[bought(client, "b-usps"), bought(client, "b-fedex", carrier="FedEx")])
    pickup = client.pickup.create(**basic_pickup(), batch=batch)
    assert {r.carrier for r in pickup.pickup_rates} == {"USPS", "FedEx"}
    assert client.batch.retrieve(batch.id).pickup.id == pickup.id
    client.pickup.buy(pickup.id, carrier="fedex", service="future_day")  # as EasyPost, case does not matter
    assert client.batch.retrieve(batch.id).pickup.status == "scheduled"

    only_ups = client.pickup.create(**basic_pickup(), batch=batch, carrier_accounts=[{"id": CARRIER_ACCOUNTS["UPS"]}])
    assert {r.carrier for r in only_ups.pickup_rates} == {"UPS"}
    assert [a.id for a in only_ups.carrier_accounts] == [CARRIER_ACCOUNTS["UPS"]]


def test_pickups_page_newest_first(client: easypost.EasyPostClient) -> None:
    shipment = bought(client, "paged")
    made = [client.pickup.create(**basic_pickup(), shipment=shipment).id for _ in range(3)]
    first = client.pickup.all(page_size=2)
    assert [p.id for p in first["pickups"]] == made[:0:-1] and first["has_more"] is True
    second = client.pickup.get_next_page(pickups=first, page_size=2)
    assert [p.id for p in second["pickups"]] == [made[0]] and first[_FILTERS_KEY] == second[_FILTERS_KEY]
    with pytest.raises(EndOfPaginationError):
        client.pickup.get_next_page(pickups=second, page_size=2)


def test_pickups_survive_a_restart_and_are_the_accounts_own(tmp_path: Path, sandbox: Sandbox) -> None:
    state = tmp_path / "sandbox.sqlite3"
    with start_sandbox(state_path=state) as sb:
        c = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        pickup = c.pickup.create(**basic_pickup(), shipment=bought(c, "kept"))
        c.pickup.buy(pickup.id, carrier="USPS", service="NextDay")
    with start_sandbox(state_path=state) as sb2:
        c2 = easypost.EasyPostClient(TEST_KEY, api_base=sb2.api_base)
        assert c2.pickup.retrieve(pickup.id).status == "scheduled"
        assert refusal(c2.pickup.buy, pickup.id, carrier="USPS", service="NextDay").code == "PICKUP.STATUS.INVALID"
        other = easypost.EasyPostClient("EZTKsomeoneelse", api_base=sb2.api_base)
        with pytest.raises(NotFoundError):
            other.pickup.retrieve(pickup.id)
        with pytest.raises(NotFoundError):
            other.pickup.cancel(pickup.id)
        assert other.pickup.all()["pickups"] == []
        assert c2.pickup.retrieve(pickup.id).status == "scheduled"
