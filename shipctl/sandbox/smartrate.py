"""SmartRate: `GET /v2/shipments/:id/smartrate`, each of a shipment's rates with its time in transit.

EasyPost answers `{"result": [rate, ...]}`: the shipment's own rates (same ids, so one is bought by its id), their
prices as JSON numbers (not the strings a shipment carries), each with `time_in_transit` — business days at the
50th, 75th, 85th, 90th, 95th, 97th and 99th percentile. Like EasyPost it is for US domestic shipments only (the
sandbox refuses others with 422 `SMARTRATE.UNAVAILABLE`, its own wording).

The percentiles are a pure function of the rate's service, carrier and delivery days and the shipment's zone
(`transit_days`), documented here so a test can tell what the sandbox will say; tests should still read them
through the SDK (`get_smart_rates`) and pick the expected rate themselves.

EasyPost bills SmartRate beyond a free tier, so the sandbox counts the calls it answered per account
(`SmartRates.calls`): a test asserts how many a run made.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

from shipctl.sandbox import model
from shipctl.sandbox.model import JSON, ApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipctl.sandbox.api import Request, SandboxApi

    Handler = Callable[[Request], tuple[int, JSON]]

ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/v2/shipments/([^/]+)/smartrate", "shipment.smartrate"),
]

PERCENTILES: tuple[int, ...] = (50, 75, 85, 90, 95, 97, 99)

_GROUND = frozenset({"GroundAdvantage", "FEDEX_GROUND", "Ground"})
_TWO_DAY = frozenset({"Priority", "FEDEX_2_DAY", "2ndDayAir"})
_OVERNIGHT = frozenset({"Express", "STANDARD_OVERNIGHT", "NextDayAir"})
# Business days over the rate's own delivery_days, per percentile (50 … 99): non-decreasing, widest for ground.
SPREAD: dict[str, tuple[int, ...]] = {
    "ground": (-1, 0, 1, 1, 2, 3, 4),
    "two_day": (0, 0, 0, 1, 1, 2, 3),
    "overnight": (0, 0, 0, 0, 1, 1, 2),
}
CARRIER_SLACK: dict[str, int] = {"USPS": 1, "UPS": 0, "FedEx": 0}
"""Added from the 85th percentile up: USPS's tail is the longer one, so a dearer UPS or FedEx rate can be the
cheapest that makes a deadline at high confidence."""
FAR_ZONE = 6
"""From this zone up, one more day from the 95th percentile up (long lanes have longer tails)."""


def service_class(service: str) -> str:
    """`ground`, `two_day` or `overnight`; a service the sandbox does not know counts as ground."""
    if service in _OVERNIGHT:
        return "overnight"
    if service in _TWO_DAY:
        return "two_day"
    return "ground"


def transit_days(carrier: str, service: str, delivery_days: int, zone: int) -> dict[str, int]:
    """`time_in_transit` for one rate: for the i-th percentile of `PERCENTILES`,

        max(1, delivery_days + SPREAD[service_class(service)][i]
               + (CARRIER_SLACK[carrier] if percentile >= 85)
               + (1 if zone >= FAR_ZONE and percentile >= 95))

    Every term is non-decreasing over the percentiles, so the answer is too (as EasyPost's always is).
    """
    spread = SPREAD[service_class(service)]
    slack = CARRIER_SLACK.get(carrier, 0)
    days: dict[str, int] = {}
    for percentile, extra in zip(PERCENTILES, spread, strict=True):
        value = delivery_days + extra
        if percentile >= 85:
            value += slack
        if percentile >= 95 and zone >= FAR_ZONE:
            value += 1
        days[f"percentile_{percentile}"] = max(1, value)
    return days


def _number(value: object) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def smart_rate(rate: JSON, zone: int) -> JSON:
    """One rate as SmartRate answers it: EasyPost's field set, prices as numbers, `time_in_transit` added."""
    days = int(rate.get("delivery_days") or rate.get("est_delivery_days") or 1)
    return {
        "carrier": rate["carrier"], "carrier_account_id": rate.get("carrier_account_id"),
        "created_at": rate.get("created_at"), "currency": rate.get("currency", "USD"),
        "delivery_date": rate.get("delivery_date"),
        "delivery_date_guaranteed": bool(rate.get("delivery_date_guaranteed")),
        "delivery_days": rate.get("delivery_days"), "est_delivery_days": rate.get("est_delivery_days"),
        "id": rate.get("id"), "list_currency": rate.get("list_currency"), "list_rate": _number(rate.get("list_rate")),
        "mode": rate.get("mode"), "object": "Rate", "rate": _number(rate.get("rate")),
        "retail_currency": rate.get("retail_currency"), "retail_rate": _number(rate.get("retail_rate")),
        "service": rate["service"], "shipment_id": rate.get("shipment_id"),
        "time_in_transit": transit_days(rate["carrier"], rate["service"], days, zone),
        "updated_at": rate.get("updated_at"),
    }


class SmartRates:
    def __init__(self, api: SandboxApi) -> None:
        self.api = api
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()  # answered on the server's thread, read from a test's

    def handlers(self) -> dict[str, Handler]:
        return {"shipment.smartrate": self.smartrate}

    def calls(self, account: str = model.DEFAULT_ACCOUNT) -> int:
        """How many SmartRate answers (200) this account has had since the sandbox started."""
        with self._lock:
            return self._calls[account]

    def smartrate(self, req: Request) -> tuple[int, JSON]:
        shipment = self.api._shipment(req.params[0], req)
        from_country = str((shipment.get("from_address") or {}).get("country") or "US").upper()
        to_country = str((shipment.get("to_address") or {}).get("country") or "US").upper()
        if from_country != "US" or to_country != "US":
            raise ApiError(422, "SMARTRATE.UNAVAILABLE", "SmartRate is available for US domestic shipments only.")
        zone = int(shipment.get("usps_zone") or 5)
        result = [smart_rate(rate, zone) for rate in shipment.get("rates") or []]
        with self._lock:
            self._calls[req.account] += 1
        return 200, {"result": result}
