"""create and buy go through the SDK's requestor and read its plain JSON (`carrier/shipments.py`): the records
they make must be the ones the SDK's own `shipment` service would give, on every SDK version the range allows
(CI runs this at the newest and at 9.0, the oldest)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import easypost
import pytest

from shipctl.carrier.errors import classify
from shipctl.carrier.shipments import Shipment, buy_shipment, create_shipment, shipment_from
from shipctl.jobs.made_from import made_from
from shipctl.sandbox.examples import shipment_params


def _same_but_ids(ours: Shipment, theirs: Shipment) -> None:
    mine, other = asdict(ours), asdict(theirs)
    for record in (mine, other):
        record.pop("raw")  # the answer itself: plain JSON one way, the SDK's object the other (see made_from below)
        record.pop("id")
        record.pop("tracking_code", None)
        record.pop("label_url", None)
        for rate in [*record["rates"], record.get("selected_rate") or {}]:
            rate.pop("id", None)
    assert mine == other


def test_a_created_shipment_reads_as_the_sdks_service_reads_it(client: easypost.EasyPostClient) -> None:
    params: dict[str, Any] = {**shipment_params(), "reference": "REQ-1"}
    ours = create_shipment(client, params)
    theirs = shipment_from(client.shipment.create(**params))
    assert ours.id.startswith("shp_") and ours.id != theirs.id
    assert len(ours.rates) >= 2 and ours.reference == "REQ-1"
    _same_but_ids(ours, theirs)
    # Either form of the answer is recognised as made from the request, and neither from another one.
    other = {**params, "to_address": {**params["to_address"], "street2": "Apt 9"}}
    assert made_from(ours.raw, params) and made_from(theirs.raw, params)
    assert not made_from(ours.raw, other) and not made_from(theirs.raw, other)


def test_a_bought_shipment_reads_as_the_sdks_service_reads_it(client: easypost.EasyPostClient) -> None:
    made = [create_shipment(client, shipment_params()) for _ in range(2)]
    cheapest = [min(m.rates, key=lambda r: r.amount) for m in made]
    ours = buy_shipment(client, made[0].id, cheapest[0].id)
    theirs = shipment_from(client.shipment.buy(made[1].id, rate={"id": cheapest[1].id}), with_rates=False)
    assert ours.bought and theirs.bought and ours.id == made[0].id
    assert ours.tracking_code and ours.label_url
    _same_but_ids(ours, theirs)


def test_the_api_refusing_a_second_buy_raises_the_sdks_own_error(client: easypost.EasyPostClient) -> None:
    made = create_shipment(client, shipment_params())
    buy_shipment(client, made.id, made.rates[0].id)
    with pytest.raises(easypost.errors.ApiError) as refused:
        buy_shipment(client, made.id, made.rates[0].id)
    assert classify(refused.value).code == "SHIPMENT.POSTAGE.EXISTS"
