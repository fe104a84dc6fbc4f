"""Labels bought straight through the official SDK, for tests that need shipments made outside shipctl."""

from __future__ import annotations

from typing import Any, Protocol

import easypost

from tests.cli import TEST_KEY


class Api(Protocol):
    """A sandbox, in-process or a standalone process: anything with an API base URL."""

    api_base: str


def sdk(api: Api, key: str = TEST_KEY) -> Any:
    return easypost.EasyPostClient(key, api_base=api.api_base)


def shipments(api: Api, count: int, *, buy: bool = True, key: str = TEST_KEY,
              reference: str | None = None) -> list[str]:
    """`count` shipments New York <- San Francisco (weights 10, 11, …), with `reference` when given, bought at their
    lowest rate unless `buy` is False; their ids."""
    client = sdk(api, key)
    ids = []
    try:
        for i in range(count):
            shipment = client.shipment.create(
                to_address={"name": f"C{i}", "street1": "350 5th Ave", "city": "New York", "state": "NY",
                            "zip": "10118", "country": "US"},
                from_address={"name": "B", "street1": "417 Montgomery St", "city": "San Francisco", "state": "CA",
                              "zip": "94104", "country": "US"},
                parcel={"weight": 10 + i}, **({"reference": reference} if reference is not None else {}),
            )
            if buy:
                client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
            ids.append(shipment.id)
    finally:
        client._requests_session.close()
    return ids


def refund_status(api: Api, shipment_id: str, key: str = TEST_KEY) -> str | None:
    client = sdk(api, key)
    try:
        return client.shipment.retrieve(shipment_id).refund_status  # type: ignore[no-any-return]
    finally:
        client._requests_session.close()
