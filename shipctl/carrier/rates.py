"""Rate quotes over the SDK: the stateless `POST /beta/rates`, or a (never bought) shipment when that is not offered;
and SmartRate's time in transit for a shipment's rates (`smart_rates`).

Blocking functions, run in worker threads by the engine; they return `Rate` values (see `shipments.py`). Ordering and
matching them is `shipctl.selection`'s alone, so `create` and `rates` can never disagree on "cheapest".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from shipctl.carrier.shipments import Rate, _field, create_shipment, rate_from
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



PERCENTILES: tuple[int, ...] = (50, 75, 85, 90, 95, 97, 99)
"""The percentiles SmartRate's `time_in_transit` gives (`percentile_50` … `percentile_99`)."""


def _name(value: str) -> str:
    return value.replace(" ", "").replace("_", "").lower()


@dataclass(frozen=True)
class TransitTimes:
    """SmartRate's answer for one shipment: per rate, business days in transit at each percentile.

    Looked up by rate id (SmartRate answers with the shipment's own rates), else by carrier and service, so a rate
    SmartRate did not name has no estimate rather than someone else's.
    """

    by_id: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    by_service: Mapping[tuple[str, str], Mapping[int, int]] = field(default_factory=dict)
    rates: tuple[Rate, ...] = ()
    """SmartRate's own rates (prices as it gave them, two decimals)."""

    def of(self, rate: Rate) -> Mapping[int, int] | None:
        if rate.id and rate.id in self.by_id:
            return self.by_id[rate.id]
        return self.by_service.get((_name(rate.carrier), _name(rate.service)))

    def days(self, rate: Rate, percentile: int) -> int | None:
        """Business days at `percentile` for `rate`, or None when SmartRate gave none."""
        known = self.of(rate)
        return None if known is None else known.get(percentile)


def _price(value: Any) -> str:
    """SmartRate gives prices as JSON numbers (`7.9`), shipments as strings (`"7.90"`): the string form, always."""
    try:
        return f"{Decimal(str(value)):.2f}"
    except (InvalidOperation, ValueError):
        return str(value or "")


def transit_from(answer: Any) -> TransitTimes:
    """`TransitTimes` from SmartRate's rate objects (SDK objects or plain dicts)."""
    by_id: dict[str, dict[int, int]] = {}
    by_service: dict[tuple[str, str], dict[int, int]] = {}
    rates: list[Rate] = []
    for obj in answer or ():
        tit = _field(obj, "time_in_transit")
        days: dict[int, int] = {}
        for percentile in PERCENTILES:
            value = _field(tit, f"percentile_{percentile}")
            if value is not None:
                days[percentile] = int(value)
        rate = rate_from(obj)
        rate = Rate(id=rate.id, carrier=rate.carrier, service=rate.service, rate=_price(_field(obj, "rate")),
                    currency=rate.currency, delivery_days=rate.delivery_days, delivery_date=rate.delivery_date)
        rates.append(rate)
        if rate.id:
            by_id[str(rate.id)] = days
        by_service[(_name(rate.carrier), _name(rate.service))] = days
    return TransitTimes(by_id, by_service, tuple(rates))


def smart_rates(client: Any, shipment_id: str) -> TransitTimes:
    """SmartRate for a shipment: `client.shipment.get_smart_rates` (EasyPost `GET /shipments/:id/smartrate`).

    A paid call beyond EasyPost's free tier: callers count every one they make."""
    return transit_from(client.shipment.get_smart_rates(quote(shipment_id, safe="")))
