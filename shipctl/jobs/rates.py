"""The `rates` job: what would it cost? One parcel, or every row of a manifest through the engine.

Quotes use the stateless `POST /beta/rates` (nothing is created); where a server does not offer it, a shipment
is created instead (never bought; an unbought shipment costs nothing). A delivery-time rule (`--deliver-within`, a
row's `deliver_within`) needs a shipment too: SmartRate answers for a shipment id, one paid call per quote. A
manifest is checked whole first (the validation pass), then quoted row by row; results go out in input order
whatever order the calls finish in. Given a `QuoteCache`, a quote without a delivery-time rule is first looked up
there (a hit makes no call, its records marked `cached`) and a fresh answer kept; `create` has no such path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from shipctl.carrier.rates import TransitTimes, shipment_rates, smart_rates, stateless_rates, stateless_unavailable
from shipctl.carrier.shipments import Rate, create_shipment
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.session import InOrder, Session
from shipctl.jobs.validation import ManifestSource
from shipctl.manifest import Address, ShipmentRow, ValidRow
from shipctl.manifest.problems import ProblemGroups
from shipctl.manifest.rows import Problem
from shipctl.money import Totals, add, parse_amount
from shipctl.output import counted
from shipctl.quote_cache import Cached, QuoteCache, request_key
from shipctl.selection import (
    DEFAULT_CONFIDENCE,
    DeliveryRule,
    DeliveryTimeNotMet,
    NoMatchingRate,
    SelectRule,
    by_price,
    choose_within,
    delivery_check,
    delivery_rule,
    filter_conflicts,
    filter_offers,
    meets,
    pick,
)

RATE_COLUMNS = ("carrier", "service", "rate", "currency", "delivery_days", "delivery_date")
"""A one-off quote's record, one per offer."""
BULK_COLUMNS = ("reference", "pick", *RATE_COLUMNS, "error_code", "error_message")
"""A manifest quote's record: an offer of a row (`pick` says which, None under `--all`), or the row's failure."""
TRANSIT_COLUMNS = ("transit_days", "on_time")
"""Added after the rate columns when a delivery-time rule is in play: SmartRate's business days at `--confidence`,
and whether that is within the rule's days. A bulk row's rule pick is `pick: deliver_within`."""
WITHIN_PICK = "deliver_within"
CACHED_COLUMN = "cached"
"""With the quote cache on: whether a record's offers came from it (no call made). Every manifest record carries it;
a one-off quote's only when it was answered from the cache (a fresh one prints as it always did)."""

_PICKS: tuple[SelectRule, ...] = ("cheapest", "fastest")

Record = dict[str, Any]
Sink = Callable[[Record], None]


# --- offers as records -----------------------------------------------------------------------------------


def estimated_delivery(days: int | None, today: dt.date | None = None) -> str | None:
    """Today plus `days` business days (carriers count those); None when the carrier gave no days."""
    if days is None:
        return None
    day = today or dt.date.today()
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day.isoformat()


def rate_record(rate: Rate, timed: tuple[DeliveryRule, TransitTimes] | None = None) -> Record:
    """One offer; the carrier's delivery date when it gives one, else an estimate from its delivery days; with a
    delivery-time rule, its days at the rule's percentile and whether it is on time."""
    record: Record = {"carrier": rate.carrier, "service": rate.service, "rate": rate.rate, "currency": rate.currency,
                      "delivery_days": rate.delivery_days,
                      "delivery_date": rate.delivery_date or estimated_delivery(rate.delivery_days)}
    if timed is not None:
        rule, transit = timed
        record["transit_days"] = transit.days(rate, rule.confidence)
        record["on_time"] = meets(rate, rule, transit)
    return record


def bulk_columns(timed: bool, cached: bool = False) -> tuple[str, ...]:
    """A manifest quote's columns: `BULK_COLUMNS`, with `TRANSIT_COLUMNS` after the rate's when a rule is in play
    and `cached` before the error's when the quote cache is on."""
    at = BULK_COLUMNS.index("error_code")
    extra = (*(TRANSIT_COLUMNS if timed else ()), *((CACHED_COLUMN,) if cached else ()))
    return (*BULK_COLUMNS[:at], *extra, *BULK_COLUMNS[at:])


def bulk_record(reference: str | None, *, pick: str | None = None, rate: Rate | None = None,
                error: tuple[str, str] | None = None, timed: tuple[DeliveryRule, TransitTimes] | None = None,
                columns: Sequence[str] = BULK_COLUMNS) -> Record:
    """A manifest record with every one of `columns` (absent ones None), so every format has the same fields."""
    values: Record = {"reference": reference, "pick": pick,
                      **(rate_record(rate, timed) if rate is not None else {})}
    if error is not None:
        values["error_code"], values["error_message"] = error
    return {column: values.get(column) for column in columns}


def offer_records(reference: str | None, matching: Sequence[Rate], show_all: bool,
                  timed: tuple[DeliveryRule, TransitTimes] | None = None,
                  columns: Sequence[str] = BULK_COLUMNS) -> list[Record]:
    """Every offer cheapest first with `--all`, else the row's cheapest and fastest (`pick`); with a delivery-time
    rule, its choice first (`pick: deliver_within`; marked so under `--all` too). `DeliveryTimeNotMet` when no offer
    arrives in time."""
    chosen: Rate | None = None
    if timed is not None:
        chosen, _why = choose_within(matching, *timed)
    if show_all:
        return [bulk_record(reference, rate=r, timed=timed, columns=columns,
                            pick=WITHIN_PICK if r is chosen else None) for r in by_price(matching)]
    picks = [bulk_record(reference, pick=rule, rate=pick(matching, rule), timed=timed, columns=columns)
             for rule in _PICKS]
    if chosen is not None:
        picks.insert(0, bulk_record(reference, pick=WITHIN_PICK, rate=chosen, timed=timed, columns=columns))
    return picks


def no_rate_message(row: ShipmentRow, offers: Sequence[Rate], pinned: Sequence[Rate]) -> str:
    """Why a row got no offer: none at all, none of its own pin, or none within --carriers/--services."""
    if not offers:
        return "the API returned no rates for this row"
    offered = ", ".join(f"{r.carrier} {r.service} {r.rate}" for r in by_price(offers))
    pin = " ".join(p for p in (row.carrier, row.service) if p)
    what = f"the row's carrier/service ({pin})" if not pinned else "--carriers/--services"
    return f"no rate matches {what}; offered: {offered}"


# --- quoting ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """`--carriers` / `--services` (empty: any), matched as `shipctl.selection` matches them."""

    carriers: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    def offers(self, rates: Sequence[Rate]) -> list[Rate]:
        return filter_offers(rates, self.carriers, self.services)


class Quoter:
    """Quotes through the engine: stateless first; after one "not offered here" answer, shipments for the rest."""

    def __init__(self, session: Session, host: Host, cache: QuoteCache | None = None) -> None:
        self.session = session
        self.host = host
        self.stateless = True
        self.smartrate_calls = 0
        self.cache = cache
        target = session.target
        # The built-in sandbox's key is made anew each run for one fixed account: its identity alone scopes it.
        self.scope = "" if cache is None else cache.scope(target.identity, target.mode,
                                                          None if target.embedded else target.api_key)

    async def cached_quote(self, params: dict[str, Any]) -> tuple[tuple[Rate, ...], Cached | None]:
        """`quote`, answered from the quote cache when it holds a fresh answer to the same request (no call);
        a fresh answer is kept there. Without a cache, always a call."""
        if self.cache is None:
            return await self.quote(params), None
        key = request_key(self.scope, params)
        found = self.cache.get(key)
        if found is not None:
            return found.offers, found
        offers = await self.quote(params)
        self.cache.put(key, offers)
        return offers, None

    async def timed_quote(self, params: dict[str, Any]) -> tuple[tuple[Rate, ...], TransitTimes]:
        """A (never bought) shipment's rates and SmartRate's time in transit for them: two calls, one of them paid."""
        engine, client = self.session.engine, self.session.client
        shipment = await engine.call(create_shipment, client, _unreferenced(params))
        transit: TransitTimes = await engine.call(smart_rates, client, shipment.id)
        self.smartrate_calls += 1
        return shipment.rates, transit

    async def quote(self, params: dict[str, Any]) -> tuple[Rate, ...]:
        engine, client = self.session.engine, self.session.client
        if self.stateless:
            try:
                rates: tuple[Rate, ...] = await engine.call(stateless_rates, client, params)
                return rates
            except CallFailure as failure:
                if not stateless_unavailable(failure):
                    raise
                # Calls in flight together may all hear "not offered": say it once.
                if self.stateless:
                    self.host.detail(f"stateless rates are not offered here ({failure.code}); quoting by "
                                     "creating shipments (nothing is bought)")
                self.stateless = False
        rates = await engine.call(shipment_rates, client, _unreferenced(params))
        return rates


def _unreferenced(params: dict[str, Any]) -> dict[str, Any]:
    """A quote's shipment (never bought) carries no reference: the API answers a reference with its newest
    shipment, and `create`'s last look before a buy would take a quote made since for another run's purchase."""
    return {key: value for key, value in params.items() if key != "reference"}


# --- one parcel ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneOffQuery:
    """One parcel between two addresses, all in the API's shape (`Address.to_easypost()`, a parcel dict)."""

    to_address: dict[str, Any]
    from_address: dict[str, Any]
    parcel: dict[str, Any]
    filters: Filters = Filters()
    rule: DeliveryRule | None = None
    """`--deliver-within`/`--confidence`: quote by shipment and SmartRate, each offer with its days in transit."""

    def params(self) -> dict[str, Any]:
        return {"to_address": self.to_address, "from_address": self.from_address, "parcel": self.parcel}


class OneOffQuote:
    """Quote one parcel: the offers within the filters, cheapest first, as `RATE_COLUMNS` records.

    Returned whole rather than streamed: a refused quote must leave stdout empty, not an empty table or array.
    """

    def __init__(self, query: OneOffQuery, host: Host, cache: QuoteCache | None = None) -> None:
        self.query = query
        self.host = host
        self.cache = cache
        """Used for a quote without a delivery-time rule (SmartRate's answer is for a shipment of its own)."""
        self.cached: Cached | None = None
        """The cache's answer, when the quote came from it."""
        self.smartrate_calls = 0
        self.choice: str | None = None
        """Under a delivery-time rule: why its rate (`selection.explain`), or why none (`DeliveryTimeNotMet`)."""
        self.on_time = True
        """False when a delivery-time rule was given and no offer meets it."""

    def columns(self) -> tuple[str, ...]:
        """The records' columns (known once `run` has returned)."""
        if self.query.rule is not None:
            return (*RATE_COLUMNS, *TRANSIT_COLUMNS)
        return (*RATE_COLUMNS, CACHED_COLUMN) if self.cached is not None else RATE_COLUMNS

    def run(self, session: Session) -> list[Record]:
        quoter = Quoter(session, self.host, self.cache if self.query.rule is None else None)
        transit: TransitTimes | None = None
        try:
            if self.query.rule is not None:
                offers, transit = session.run(lambda: self._timed(session, quoter))
            else:
                offers = session.run(lambda: self._quote(session, quoter))
        except CallFailure as failure:
            session.stats.record("failed")
            if failure.code in ("CONNECTION", "TIMEOUT"):  # the message says where and what to check
                raise ShipctlError(failure.message) from None
            if failure.transient:
                raise ShipctlError(f"no answer from the API: {failure}") from None
            raise ShipctlError(f"the API refused the quote: {failure}", ExitCode.USAGE) from None
        finally:
            self.smartrate_calls = quoter.smartrate_calls
        if not offers:
            session.stats.record("failed")
            raise ShipctlError("the API returned no rates for this parcel and route")
        chosen = by_price(self.query.filters.offers(offers))
        if not chosen:
            session.stats.record("failed")
            available = sorted({f"{r.carrier} {r.service}" for r in offers})
            raise UsageError(f"no rate matches --carriers/--services; offered: {', '.join(available)}")
        session.stats.record("succeeded")
        rule = self.query.rule
        if rule is None or transit is None:
            if self.cached is not None:
                return [{**rate_record(rate), CACHED_COLUMN: True} for rate in chosen]
            return [rate_record(rate) for rate in chosen]
        try:
            self.choice = choose_within(chosen, rule, transit)[1]
        except DeliveryTimeNotMet as exc:
            self.choice, self.on_time = exc.message, False
        return [rate_record(rate, (rule, transit)) for rate in chosen]

    async def _quote(self, session: Session, quoter: Quoter) -> tuple[Rate, ...]:
        self.host.engine_started(session.engine.sizing)
        offers, self.cached = await quoter.cached_quote(self.query.params())
        return offers

    async def _timed(self, session: Session, quoter: Quoter) -> tuple[tuple[Rate, ...], TransitTimes]:
        self.host.engine_started(session.engine.sizing)
        return await quoter.timed_quote(self.query.params())


# --- a manifest ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierTotal:
    """One carrier's line of the totals: `rows` rows had an offer from it, `missing` did not."""

    carrier: str
    currency: str
    rows: int
    missing: int
    amount: Decimal


@dataclass
class CarrierTotals:
    """Per carrier: the sum over rows of that carrier's cheapest offer (exact, per currency), and the row count;
    and the sum of every row's cheapest offer whatever the carrier (`cheapest`)."""

    quoted: int = 0
    by_carrier: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    rows_by_carrier: dict[str, int] = field(default_factory=dict)
    cheapest: Totals = field(default_factory=dict)

    def add(self, offers: Sequence[Rate]) -> None:
        """Count one quoted row's offers (an offer whose price is not a number counts for nothing)."""
        self.quoted += 1
        priced = [rate for rate in offers if parse_amount(rate.rate) is not None]
        for carrier in dict.fromkeys(rate.carrier for rate in priced):
            best = pick([rate for rate in priced if rate.carrier == carrier], "cheapest")
            if best is not None:
                key = (carrier, best.currency)
                self.by_carrier[key] = self.by_carrier.get(key, Decimal(0)) + best.amount
                self.rows_by_carrier[carrier] = self.rows_by_carrier.get(carrier, 0) + 1
        overall = pick(priced, "cheapest")
        if overall is not None:
            add(self.cheapest, overall.currency, overall.amount)

    def lines(self) -> list[CarrierTotal]:
        """One per carrier and currency, by currency then amount."""
        ordered = sorted(self.by_carrier.items(), key=lambda kv: (kv[0][1], kv[1]))
        return [CarrierTotal(carrier, currency, self.rows_by_carrier[carrier],
                             self.quoted - self.rows_by_carrier[carrier], amount)
                for (carrier, currency), amount in ordered]


@dataclass(frozen=True)
class ManifestQuery:
    """A manifest to quote: where it is, how to read it, `label` to name it in messages, and what to show."""

    path: Path
    label: str
    fmt: str | None = None
    encoding: str | None = None
    default_from: Address | None = None
    filters: Filters = Filters()
    show_all: bool = False
    sheet: str | None = None
    deliver_within: int | None = None
    """`--deliver-within`; a row's own `deliver_within` wins."""
    confidence: int = DEFAULT_CONFIDENCE


@dataclass(frozen=True)
class ManifestOutcome:
    rows: int
    quoted: int
    failed: int
    elapsed: float
    totals: CarrierTotals
    smartrate_calls: int = 0
    cache_ratio: str | None = None
    """With the quote cache on: this run's hits among the rows that looked in it (`3 of 4 hits (75%)`)."""

    @property
    def code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed else ExitCode.OK


@dataclass(frozen=True)
class NoQuote:
    """Why a row has no offers: an error code and message, as the row's record carries them."""

    code: str
    message: str


class ManifestQuote:
    """Quote every row of a manifest: `validate()` (every row read and checked, nothing sent), then `run()`."""

    def __init__(self, query: ManifestQuery, host: Host, cache: QuoteCache | None = None) -> None:
        self.query = query
        self.host = host
        self.cache = cache
        """Looked in for every row without a delivery-time rule (SmartRate's answer is for a shipment of its own)."""
        self.timed_rows = 0
        """Rows with a delivery-time rule (each one SmartRate call), counted by the validation pass."""

    def source(self) -> ManifestSource:
        q = self.query
        return ManifestSource(q.path, q.fmt, q.encoding, q.default_from, self._check(), on_warning=self.host.warn,
                              sheet=q.sheet)

    def _check(self) -> Callable[[ValidRow], list[Problem]]:
        """A row whose rule SmartRate cannot serve is invalid (as in `create`); the others with a rule are counted."""
        check = delivery_check(self.query.deliver_within, None, None)
        assert check is not None

        def counting(valid: ValidRow) -> list[Problem]:
            found = check(valid)
            if not found and (valid.row.deliver_within is not None or self.query.deliver_within is not None):
                self.timed_rows += 1
            return found

        return counting

    def columns(self) -> tuple[str, ...]:
        """The records' columns: the transit ones when any row has a delivery-time rule (known after `validate`)."""
        return bulk_columns(self.timed_rows > 0, cached=self.cache is not None)

    def validate(self) -> int:
        """The validation pass: every problem told to the host, identical ones grouped; the row count, or
        ShipctlError (exit 2)."""
        self.timed_rows = 0
        with ProblemGroups(self.host.info) as problems:
            seen = self.source().check(problems.add)
        if seen.rows == 0:
            raise ShipctlError(f"{self.query.label}: the manifest has no rows", ExitCode.USAGE)
        if seen.invalid:
            raise ShipctlError(f"{counted(seen.rows, 'rows')}: {seen.rows - seen.invalid} valid, {seen.invalid} "
                               "invalid; nothing was quoted", ExitCode.USAGE)
        return seen.rows

    def run(self, session: Session, sink: Sink) -> ManifestOutcome:
        """The quote pass: every valid row quoted, its `BULK_COLUMNS` records handed to `sink` in input order."""
        # The validation pass told the host about the manifest's warnings already: once is enough.
        source = dataclasses.replace(self.source(), on_warning=lambda _m: None, extra_check=None)
        quoting = _QuotePass(self.query, self.host, session, sink, self.columns(), self.cache)
        before = (self.cache.lookups, self.cache.hits) if self.cache is not None else (0, 0)
        session.run(lambda: quoting.main(source))
        stats = session.stats
        return ManifestOutcome(rows=stats.total if stats.total is not None else stats.done,
                               quoted=stats.succeeded, failed=stats.failed, elapsed=stats.elapsed(),
                               totals=quoting.totals, smartrate_calls=quoting.quoter.smartrate_calls,
                               cache_ratio=_ratio(self.cache, before))


class _QuotePass:
    """One run of the quote pass: the quoter, the in-order emitter and the totals it fills."""

    def __init__(self, query: ManifestQuery, host: Host, session: Session, sink: Sink,
                 columns: Sequence[str] = BULK_COLUMNS, cache: QuoteCache | None = None) -> None:
        self.columns = columns
        self.query = query
        self.host = host
        self.session = session
        self.sink = sink
        self.quoter = Quoter(session, host, cache)
        self.totals = CarrierTotals()
        self.order: InOrder[list[Record]] = InOrder(self._emit)

    def _emit(self, records: list[Record]) -> None:
        for record in records:
            self.sink(record)

    async def main(self, source: ManifestSource) -> None:
        self.host.engine_started(self.session.engine.sizing)
        with self.host.progress(self.session.stats):
            await self.session.engine.run(_valid_rows(source), self._handle)

    async def _handle(self, item: tuple[int, ValidRow]) -> None:
        index, valid = item
        reference = valid.row.reference
        outcome, cached = await self._quote(valid.row)
        if isinstance(outcome, NoQuote):
            self.session.stats.record("failed")
            outcome = [bulk_record(reference, error=(outcome.code, outcome.message), columns=self.columns)]
        else:
            self.session.stats.record("succeeded")
        if CACHED_COLUMN in self.columns:
            for record in outcome:
                record[CACHED_COLUMN] = cached
        self.order.put(index, outcome)

    async def _quote(self, row: ShipmentRow) -> tuple[list[Record] | NoQuote, bool]:
        """The row's records, or why it has none; and whether its offers came from the quote cache."""
        filters = self.query.filters
        conflicts = filter_conflicts(row.carrier, row.service, carriers=filters.carriers, services=filters.services)
        if conflicts:
            # The filter restricts pinned rows too (as `create` refuses them): no offer could be chosen, so say
            # why instead of quoting.
            return NoQuote("NO_RATES", "; ".join(f"{column}: {text}" for column, text in conflicts)), False
        q = self.query
        rule = delivery_rule(row.deliver_within, q.deliver_within, q.confidence)
        transit: TransitTimes | None = None
        cached: Cached | None = None
        try:
            if rule is None:
                offers, cached = await self.quoter.cached_quote(row.to_easypost())
            else:
                offers, transit = await self.quoter.timed_quote(row.to_easypost())
        except CallFailure as failure:
            return NoQuote(failure.code, failure.message), False
        hit = cached is not None
        pinned = filter_offers(offers, (row.carrier,) if row.carrier else None, (row.service,) if row.service else None)
        matching = filters.offers(pinned)
        if not matching:
            return NoQuote("NO_RATES", no_rate_message(row, offers, pinned)), hit
        timed = (rule, transit) if rule is not None and transit is not None else None
        try:
            records = offer_records(row.reference, matching, self.query.show_all, timed, self.columns)
        except (DeliveryTimeNotMet, NoMatchingRate) as exc:
            return NoQuote(getattr(exc, "code", "NO_RATES"), str(exc)), hit
        self.totals.add(matching)
        return records, hit


def _ratio(cache: QuoteCache | None, before: tuple[int, int]) -> str | None:
    """This run's hits among its lookups (`3 of 4 hits (75%)`), or None when it looked nothing up."""
    if cache is None or cache.lookups == before[0]:
        return None
    lookups, hits = cache.lookups - before[0], cache.hits - before[1]
    return f"{hits} of {lookups} hits ({round(100 * hits / lookups)}%)"


def _valid_rows(source: ManifestSource) -> Iterator[tuple[int, ValidRow]]:
    """The valid rows, numbered from 0 (the validation pass has refused a manifest with invalid ones)."""
    index = 0
    for item in source.rows():
        if isinstance(item, ValidRow):
            yield index, item
            index += 1
