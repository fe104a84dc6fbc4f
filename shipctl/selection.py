"""Rate selection, one set of rules for `create`, `rates` and the summary.

One matcher for carrier and service names (`in_filter`: letter case, spaces and underscores do not count, so
`Ground Advantage` is `GroundAdvantage`), one ordering per rule (`by_price`, `pick`). The rate to buy is the
row's carrier/service pin, else `--select cheapest|fastest`, always within `--carriers`/`--services`.

The run's `--carriers`/`--services` restrict every row, pinned or not; `filter_conflicts` finds the pins
outside them before anything is bought, and `choose_rate` refuses them again at buy time.

A delivery-time rule (`--deliver-within N --confidence P`, or a row's `deliver_within`, which wins over the flag)
is one more rule: the cheapest rate whose SmartRate time in transit at the P-th percentile is at most N business
days (`choose_within`), within the same pins and filters; `explain` says why it won and what it passed over.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shipctl.carrier.rates import PERCENTILES, TransitTimes
from shipctl.carrier.shipments import Rate
from shipctl.manifest.rows import Problem, ValidRow

SelectRule = Literal["cheapest", "fastest"]

DEFAULT_CONFIDENCE = 90
"""`--confidence` when not given: 9 parcels in 10 arrive in time; SmartRate's median (50) would miss half the
promises, its 99th prices most rows into express services."""
DELIVERY_TIME_NOT_MET = "DELIVERY_TIME_NOT_MET"
"""The row's error code when no rate within its pins and the run's filters meets its delivery-time rule."""


@dataclass(frozen=True)
class DeliveryRule:
    """Arrive within `days` business days with `confidence` percent certainty (a SmartRate percentile)."""

    days: int
    confidence: int = DEFAULT_CONFIDENCE

    def __post_init__(self) -> None:
        if self.confidence not in PERCENTILES:
            raise ValueError(f"confidence must be one of SmartRate's percentiles {PERCENTILES}, not {self.confidence}")

    def describe(self) -> str:
        return f"within {self.days} business day{'' if self.days == 1 else 's'} at {self.confidence}%"


def delivery_rule(
    row_days: int | None, flag_days: int | None, confidence: int = DEFAULT_CONFIDENCE
) -> DeliveryRule | None:
    """The row's rule: its own `deliver_within`, else `--deliver-within`; None when it has neither."""
    days = row_days if row_days is not None else flag_days
    return None if days is None else DeliveryRule(days, confidence)


class DeliveryTimeNotMet(Exception):
    """No rate in scope arrives in time: `message` lists every offer with its days at the rule's percentile."""

    code = DELIVERY_TIME_NOT_MET

    def __init__(self, rule: DeliveryRule, offered: Sequence[Rate], transit: TransitTimes, scope: str) -> None:
        self.offered = ", ".join(_timed(r, transit, rule) for r in by_price(offered)) or "none"
        self.reason = f"no rate{scope} arrives {rule.describe()}"
        super().__init__(f"{self.reason}; offered: {self.offered}")
        self.message = str(self)


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
    candidates, wanted = _narrow(rates, carrier=carrier, service=service, carriers=carriers, services=services)
    chosen = pick(candidates, rule)
    if chosen is None:
        raise NoMatchingRate(" and ".join(wanted) or "the request", rates)
    return chosen


def _narrow(
    rates: Sequence[Rate],
    *,
    carrier: str | None,
    service: str | None,
    carriers: Collection[str] | None,
    services: Collection[str] | None,
) -> tuple[list[Rate], list[str]]:
    """The rates within the row's pins and the run's filters, and what narrowed them (for messages)."""
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
    return candidates, wanted


def _timed(rate: Rate, transit: TransitTimes, rule: DeliveryRule) -> str:
    days = transit.days(rate, rule.confidence)
    when = "no SmartRate estimate" if days is None else f"{days} day{'' if days == 1 else 's'} at p{rule.confidence}"
    return f"{rate.carrier} {rate.service} {rate.rate} ({when})"


def meets(rate: Rate, rule: DeliveryRule, transit: TransitTimes) -> bool:
    """Whether `rate` arrives within the rule's days at its percentile (no SmartRate estimate: it does not)."""
    days = transit.days(rate, rule.confidence)
    return days is not None and days <= rule.days


def _within_key(rule: DeliveryRule, transit: TransitTimes) -> Callable[[Rate], tuple[Decimal, float, str, str]]:
    def key(rate: Rate) -> tuple[Decimal, float, str, str]:
        days = transit.days(rate, rule.confidence)
        return rate.amount, float("inf") if days is None else float(days), rate.carrier, rate.service

    return key


def choose_within(
    rates: Sequence[Rate],
    rule: DeliveryRule,
    transit: TransitTimes,
    *,
    carrier: str | None = None,
    service: str | None = None,
    carriers: Collection[str] | None = None,
    services: Collection[str] | None = None,
) -> tuple[Rate, str]:
    """The cheapest rate (then the fewer days at the percentile, then by name) within the pins and filters that
    meets `rule`, and why (`explain`); `NoMatchingRate` when the pins and filters leave none,
    `DeliveryTimeNotMet` when none of those arrives in time."""
    candidates, wanted = _narrow(rates, carrier=carrier, service=service, carriers=carriers, services=services)
    if not candidates:
        raise NoMatchingRate(" and ".join(wanted) or "the request", rates)
    key = _within_key(rule, transit)
    chosen = min((r for r in candidates if meets(r, rule, transit)), key=key, default=None)
    if chosen is None:
        raise DeliveryTimeNotMet(rule, candidates, transit, f" of {' and '.join(wanted)}" if wanted else "")
    return chosen, explain(chosen, candidates, rule, transit)


def explain(chosen: Rate, candidates: Sequence[Rate], rule: DeliveryRule, transit: TransitTimes) -> str:
    """`cheapest within 3 business days at 90%: USPS Priority 7.90 (2 days at p90); passed over: USPS
    GroundAdvantage 5.20 (5 days at p90)`: the chosen rate, then every cheaper one that misses the rule."""
    key = _within_key(rule, transit)
    passed = [r for r in sorted(candidates, key=key) if r is not chosen and key(r) < key(chosen)]
    over = ", ".join(_timed(r, transit, rule) for r in passed) or "no cheaper rate"
    return f"cheapest {rule.describe()}: {_timed(chosen, transit, rule)}; passed over: {over}"


def delivery_check(
    rule_days: int | None, carriers: Collection[str] | None, services: Collection[str] | None
) -> Callable[[ValidRow], list[Problem]] | None:
    """The validation pass's extra row check for `create`/`rates`: the filter's (`filter_check`), plus a row with a
    delivery-time rule that SmartRate cannot serve (it is for US domestic shipments only) — refused before any call
    rather than failing after its shipment is made. None when there is nothing to check."""
    filters = filter_check(carriers, services)

    def check(valid: ValidRow) -> list[Problem]:
        found = filters(valid) if filters is not None else []
        row = valid.row
        if row.deliver_within is None and rule_days is None:
            return found
        from shipctl.manifest.models import domestic_zone  # pydantic: only once a row is checked

        origin, destination = domestic_zone(row.from_address.country), domestic_zone(row.to_address.country)
        if origin != "US" or destination != "US":
            source = "deliver_within" if row.deliver_within is not None else f"--deliver-within {rule_days}"
            found.append(Problem(valid.line, "deliver_within",
                                 f"{source}: SmartRate's delivery times are for US domestic shipments only "
                                 f"({row.from_address.country} to {row.to_address.country})"))
        return found

    return check
