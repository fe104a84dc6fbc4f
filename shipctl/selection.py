"""Rate selection, one set of rules for `create`, `rates` and the summary.

One matcher for carrier and service names (`in_filter`: letter case, spaces and underscores do not count, so
`Ground Advantage` is `GroundAdvantage`), one ordering per rule (`by_price`, `pick`). The rate to buy is the
row's carrier/service pin, else `--select cheapest|fastest`, always within `--carriers`/`--services`.

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
        listing = ", ".join(f"{r.carrier} {r.service} {r.rate}" for r in by_price(offered)) or "none"
        super().__init__(f"no rate matches {wanted}; offered: {listing}")
        self.message = str(self)


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


def _days(rate: Rate) -> float:
    return float(rate.delivery_days) if rate.delivery_days is not None else float("inf")


def _cheapest_key(rate: Rate) -> tuple[Decimal, float, str, str]:
    """Price, then the faster (unknown delivery days last), then by name, so equal offers always sort alike."""
    return rate.amount, _days(rate), rate.carrier, rate.service


def _fastest_key(rate: Rate) -> tuple[float, Decimal, str, str]:
    """Fewest delivery days (unknown last: a quote without a promise is not "fast"), then the cheaper."""
    return _days(rate), rate.amount, rate.carrier, rate.service


def by_price(rates: Iterable[Rate]) -> list[Rate]:
    """Cheapest first; the order `rates --all` lists and the rule `--select cheapest` picks by."""
    return sorted(rates, key=_cheapest_key)


def pick(rates: Iterable[Rate], rule: SelectRule) -> Rate | None:
    """The rate `rule` picks among `rates`, or None when there are none."""
    return min(rates, key=_fastest_key if rule == "fastest" else _cheapest_key, default=None)


def choose_rate(
    rates: Sequence[Rate],
    *,
    carrier: str | None = None,
    service: str | None = None,
    rule: SelectRule = "cheapest",
    carriers: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> Rate:
    """The rate to buy for a row: within its pins and the run's filters, by `rule`; `NoMatchingRate` when none."""
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
    chosen = pick(candidates, rule)
    if chosen is None:
        raise NoMatchingRate(" and ".join(wanted) or "the request", rates)
    return chosen
