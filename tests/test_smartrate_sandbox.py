"""The sandbox's SmartRate (`GET /v2/shipments/:id/smartrate`) through the official SDK, as EasyPost's own SDK tests
call it: the answer's shape, percentiles that never fall, the SDK's `lowest_smart_rate`, and the per-account count."""

from __future__ import annotations

from typing import Any

import easypost
import pytest
from easypost.errors import ApiError, FilteringError

from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from shipctl.sandbox.smartrate import transit_days
from tests.cli import TEST_KEY

KEYS = [f"percentile_{p}" for p in (50, 75, 85, 90, 95, 97, 99)]


def _shipment(client: easypost.EasyPostClient, to_zip: str, **to: Any) -> Any:
    return client.shipment.create(
        to_address={"name": "A", "street1": "350 5th Ave", "city": "New York", "state": "NY", "zip": to_zip,
                    "country": "US", **to},
        from_address={"name": "B", "street1": "417 Montgomery St", "city": "San Francisco", "state": "CA",
                      "zip": "94104", "country": "US"},
        parcel={"weight": 20},
    )


def test_smartrate_answers_every_rate_with_non_decreasing_percentiles(client: easypost.EasyPostClient) -> None:
    shipment = _shipment(client, "10118")
    smart = client.shipment.get_smart_rates(shipment.id)
    assert {r["id"] for r in smart} == {r.id for r in shipment.rates}  # the shipment's own rates, buyable by id
    by_id = {r.id: r for r in shipment.rates}
    for rate in smart:
        days = [rate["time_in_transit"][key] for key in KEYS]
        assert days == sorted(days) and days[0] >= 1
        assert isinstance(rate["rate"], float)  # EasyPost answers SmartRate prices as numbers
        assert f"{rate['rate']:.2f}" == by_id[rate["id"]].rate
        assert rate["shipment_id"] == shipment.id and rate["object"] == "Rate"
        # The documented function: a test can know the sandbox's answer without asking it.
        assert dict(zip(KEYS, days, strict=True)) == transit_days(
            rate["carrier"], rate["service"], rate["delivery_days"], shipment.usps_zone)


def test_lowest_smart_rate_is_the_cheapest_within_the_days(client: easypost.EasyPostClient) -> None:
    shipment = _shipment(client, "10118")
    smart = client.shipment.get_smart_rates(shipment.id)
    for days in (2, 3, 5):
        in_time = [r for r in smart if r["time_in_transit"]["percentile_90"] <= days]
        lowest = client.shipment.lowest_smart_rate(shipment.id, delivery_days=days, delivery_accuracy="percentile_90")
        assert lowest["rate"] == min(r["rate"] for r in in_time)
    # A high percentile costs more than the median: the rule is not the same as delivery_days.
    median = client.shipment.lowest_smart_rate(shipment.id, delivery_days=4, delivery_accuracy="percentile_50")
    strict = client.shipment.lowest_smart_rate(shipment.id, delivery_days=4, delivery_accuracy="percentile_95")
    assert median["rate"] < strict["rate"]
    with pytest.raises(FilteringError):
        client.shipment.lowest_smart_rate(shipment.id, delivery_days=0, delivery_accuracy="percentile_90")


def test_smartrate_is_counted_per_account_and_refused_abroad(sandbox: Sandbox,
                                                              client: easypost.EasyPostClient) -> None:
    account = account_for_key(TEST_KEY)
    shipment = _shipment(client, "10118")
    client.shipment.get_smart_rates(shipment.id)
    client.shipment.get_smart_rates(shipment.id)
    assert sandbox.api.smartrates.calls(account) == 2
    assert sandbox.api.smartrates.calls("someone else") == 0

    other = easypost.EasyPostClient("EZTK-another-account", api_base=sandbox.api_base)
    with pytest.raises(ApiError) as gone:  # another account's shipment does not exist for it
        other.shipment.get_smart_rates(shipment.id)
    assert gone.value.http_status == 404

    abroad = client.shipment.create(
        to_address={"name": "A", "street1": "24 Sussex Dr", "city": "Ottawa", "state": "ON", "zip": "K1M 1M4",
                    "country": "CA"},
        from_address={"name": "B", "street1": "417 Montgomery St", "city": "San Francisco", "state": "CA",
                      "zip": "94104", "country": "US"},
        parcel={"weight": 20},
        customs_info={"contents_type": "merchandise", "customs_signer": "B", "eel_pfc": "NOEEI 30.37(a)",
                      "customs_items": [{"description": "T-shirt", "quantity": 1, "value": 10, "weight": 5,
                                         "origin_country": "US", "hs_tariff_number": "610910"}]},
    )
    with pytest.raises(ApiError) as refused:
        client.shipment.get_smart_rates(abroad.id)
    assert refused.value.http_status == 422
    assert sandbox.api.smartrates.calls(account) == 2  # refusals are not counted
