"""Choose the rate to buy: the row's carrier/service pin, else `--select cheapest|fastest` within filters."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Literal

from shipctl.carrier.shipments import Rate

SelectRule = Literal["cheapest", "fastest"]


class NoMatchingRate(Exception):
    def __init__(self, wanted: str, offered: Sequence[Rate]) -> None:
        listing = ", ".join(f"{r.carrier} {r.service} {r.rate}" for r in sorted(offered, key=_price)) or "none"
        super().__init__(f"no rate matches {wanted}; offered: {listing}")
        self.message = str(self)


def _price(rate: Rate) -> Decimal:
    return rate.amount


def _norm(value: str) -> str:
    return value.replace(" ", "").replace("_", "").lower()


def choose_rate(
    rates: Sequence[Rate],
    *,
    carrier: str | None = None,
    service: str | None = None,
    rule: SelectRule = "cheapest",
    carriers: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Rate:
    candidates = list(rates)
    wanted: list[str] = []
    for field, pinned, allowed in (("carrier", carrier, carriers), ("service", service, services)):
        # The row's own pin wins over the run's filter; both compare without case, spaces or underscores.
        names = [pinned] if pinned else list(allowed or ())
        if not names:
            continue
        keep = {_norm(n) for n in names}
        candidates = [r for r in candidates if _norm(getattr(r, field)) in keep]
        wanted.append(f"{field} {pinned}" if pinned else f"{field}s " + "/".join(names))
    if not candidates:
        raise NoMatchingRate(" and ".join(wanted) or "the request", rates)
    if rule == "fastest":
        # Unknown delivery days sort last: a quote without a promise is not "fast".
        return min(candidates, key=lambda r: (r.delivery_days is None, r.delivery_days or 0, _price(r)))
    return min(candidates, key=lambda r: (_price(r), r.delivery_days is None, r.delivery_days or 0))
