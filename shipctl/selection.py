"""Choose the rate to buy: the row's carrier/service pin, else `--select cheapest|fastest` within filters.

The run's `--carriers`/`--services` restrict every row, pinned or not; `filter_conflicts` finds the pins
outside them before anything is bought, and `choose_rate` refuses them again at buy time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from typing import Literal

from shipctl.carrier.shipments import Rate
from shipctl.manifest.rows import Problem, ValidRow

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


def in_filter(value: str, allowed: Collection[str] | None) -> bool:
    """True when `value` passes a `--carriers`/`--services` list: no list, or one of its names (as `_norm` sees it)."""
    return not allowed or _norm(value) in {_norm(name) for name in allowed}


def filter_offers(
    rates: Iterable[Rate], carriers: Collection[str] | None = None, services: Collection[str] | None = None
) -> list[Rate]:
    """The offers within these carriers and services (empty means any), matched as `choose_rate` matches them."""
    return [r for r in rates if in_filter(r.carrier, carriers) and in_filter(r.service, services)]


def filter_conflicts(
    carrier: str | None,
    service: str | None,
    *,
    carriers: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> list[tuple[str, str]]:
    """(column, message) for each of the row's pins that the run's filter excludes; empty when the row may run."""
    found: list[tuple[str, str]] = []
    for column, pinned, allowed in (("carrier", carrier, carriers), ("service", service, services)):
        if pinned and allowed and not in_filter(pinned, allowed):
            flag = f"--{column}s {','.join(allowed)}"
            found.append((column, f"{pinned} is outside {flag} (the filter restricts pinned rows too)"))
    return found


def filter_check(
    carriers: Collection[str] | None, services: Collection[str] | None
) -> Callable[[ValidRow], list[Problem]] | None:
    """The validation pass's extra row check for a run with these filters; None when there is no filter."""
    if not carriers and not services:
        return None

    def check(valid: ValidRow) -> list[Problem]:
        row = valid.row
        return [Problem(valid.line, column, message)
                for column, message in filter_conflicts(row.carrier, row.service, carriers=carriers, services=services)]

    return check


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
        # Pin and filter both narrow: the filter is the run's restriction, so a pin cannot step outside it (the
        # validation pass refuses such rows already; this holds even for a caller that skipped it).
        if pinned:
            candidates = [r for r in candidates if in_filter(getattr(r, field), [pinned])]
            wanted.append(f"{field} {pinned}")
        if allowed:
            candidates = [r for r in candidates if in_filter(getattr(r, field), allowed)]
            wanted.append(f"--{field}s " + ",".join(allowed))
    if not candidates:
        raise NoMatchingRate(" and ".join(wanted) or "the request", rates)
    if rule == "fastest":
        # Unknown delivery days sort last: a quote without a promise is not "fast".
        return min(candidates, key=lambda r: (r.delivery_days is None, r.delivery_days or 0, _price(r)))
    return min(candidates, key=lambda r: (_price(r), r.delivery_days is None, r.delivery_days or 0))
