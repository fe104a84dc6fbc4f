"""Example addresses and parcels (the ones EasyPost's own test suite records), for tests and demos."""

from __future__ import annotations

from typing import Any

TO_ADDRESS: dict[str, Any] = {
    "name": "Elizabeth Swan", "street1": "179 N Harbor Dr", "city": "Redondo Beach", "state": "CA",
    "zip": "90277", "country": "US", "email": "test@example.com", "phone": "5555555555",
}
FROM_ADDRESS: dict[str, Any] = {
    "name": "Jack Sparrow", "street1": "388 Townsend St", "street2": "Apt 20", "city": "San Francisco",
    "state": "CA", "zip": "94107", "country": "US", "email": "test@example.com", "phone": "5555555555",
}
PARCEL: dict[str, Any] = {"length": 10, "width": 8, "height": 4, "weight": 15.4}
INTL_ADDRESS: dict[str, Any] = {
    "name": "Hans Muster", "street1": "Unter den Linden 77", "city": "Berlin", "zip": "10117", "country": "DE",
}


def shipment_params(reference: str | None = None, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"to_address": dict(TO_ADDRESS), "from_address": dict(FROM_ADDRESS),
                              "parcel": dict(PARCEL)}
    if reference is not None:
        params["reference"] = reference
    params.update(extra)
    return params
