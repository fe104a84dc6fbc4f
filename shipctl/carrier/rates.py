"""Rate quotes over the SDK: the stateless `POST /beta/rates`, or a (never bought) shipment when that is not offered.

Blocking functions, run in worker threads by the engine; they return `Rate` values (see `shipments.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
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


def by_price(rates: Iterable[Rate]) -> list[Rate]:
    """Cheapest first; among equal prices, the faster first (unknown delivery days last)."""
    return sorted(rates, key=lambda r: (r.amount, _days(r), r.carrier, r.service))


def cheapest(rates: Sequence[Rate]) -> Rate | None:
    return by_price(rates)[0] if rates else None


def fastest(rates: Sequence[Rate]) -> Rate | None:
    """Fewest delivery days; among equally fast, the cheapest. Rates without delivery days come last."""
    if not rates:
        return None
    return min(rates, key=lambda r: (_days(r), r.amount, r.carrier, r.service))


def _days(rate: Rate) -> float:
    return float(rate.delivery_days) if rate.delivery_days is not None else float("inf")


def money(rate: Rate) -> Decimal | None:
    """The rate as an exact amount, or None when the API sent something that is not a number."""
    amount = rate.amount
    return amount if amount.is_finite() else None
