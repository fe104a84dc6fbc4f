"""Rate quotes over the SDK: the stateless `POST /beta/rates`, or a (never bought) shipment when that is not offered.

Blocking functions, run in worker threads by the engine; they return `Rate` values (see `shipments.py`). Ordering and
matching them is `shipctl.selection`'s alone, so `create` and `rates` can never disagree on "cheapest".
"""

from __future__ import annotations

from typing import Any

from shipctl.carrier.shipments import Rate, create_shipment, rate_from
from shipctl.engine.failures import CallFailure

STATELESS_KEYS = ("to_address", "from_address", "parcel", "customs_info", "options", "carrier_accounts")
"""The parts of a `shipment.create` request that the stateless rates endpoint takes."""

_NOT_OFFERED = {403, 404, 405, 501}


def stateless_rates(client: Any, params: dict[str, Any]) -> tuple[Rate, ...]:
    """Quote without creating anything: `client.beta_rate.retrieve_stateless_rates` (EasyPost `POST /beta/rates`)."""
    body = {key: params[key] for key in STATELESS_KEYS if params.get(key) is not None}
    rates = client.beta_rate.retrieve_stateless_rates(**body)
    return tuple(rate_from(r) for r in rates or ())


def shipment_rates(client: Any, params: dict[str, Any]) -> tuple[Rate, ...]:
    """Quote by creating a shipment (nothing is bought; an unbought shipment costs nothing)."""
    return create_shipment(client, params).rates


def stateless_unavailable(failure: CallFailure) -> bool:
    """True when the stateless endpoint is not offered to this account/server, so a shipment must quote instead."""
    return failure.http_status in _NOT_OFFERED

