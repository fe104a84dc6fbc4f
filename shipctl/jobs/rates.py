"""The `rates` job: what would it cost? One parcel, or every row of a manifest through the engine.

Quotes use the stateless `POST /beta/rates` (nothing is created); where a server does not offer it, a shipment
is created instead (never bought; an unbought shipment costs nothing). A manifest is checked whole first (the
validation pass), then quoted row by row; results go out in input order whatever order the calls finish in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from shipctl.carrier.rates import shipment_rates, stateless_rates, stateless_unavailable
from shipctl.carrier.shipments import Rate
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.session import InOrder, Session
from shipctl.jobs.validation import ManifestSource
from shipctl.manifest import Address, ShipmentRow, ValidRow
from shipctl.manifest.problems import ProblemGroups
from shipctl.money import Totals, add, parse_amount
from shipctl.selection import SelectRule, by_price, filter_conflicts, filter_offers, pick

RATE_COLUMNS = ("carrier", "service", "rate", "currency", "delivery_days", "delivery_date")
"""A one-off quote's record, one per offer."""
BULK_COLUMNS = ("reference", "pick", *RATE_COLUMNS, "error_code", "error_message")
"""A manifest quote's record: an offer of a row (`pick` says which, None under `--all`), or the row's failure."""

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


def rate_record(rate: Rate) -> Record:
    """One offer; the carrier's delivery date when it gives one, else an estimate from its delivery days."""
    return {"carrier": rate.carrier, "service": rate.service, "rate": rate.rate, "currency": rate.currency,
            "delivery_days": rate.delivery_days,
            "delivery_date": rate.delivery_date or estimated_delivery(rate.delivery_days)}


def bulk_record(reference: str | None, *, pick: str | None = None, rate: Rate | None = None,
                error: tuple[str, str] | None = None) -> Record:
    """A manifest record with every `BULK_COLUMNS` key (absent ones None), so every format has the same fields."""
    values: Record = {"reference": reference, "pick": pick, **(rate_record(rate) if rate is not None else {})}
    if error is not None:
        values["error_code"], values["error_message"] = error
    return {column: values.get(column) for column in BULK_COLUMNS}


def offer_records(reference: str | None, matching: Sequence[Rate], show_all: bool) -> list[Record]:
    """Every offer cheapest first with `--all`, else the row's cheapest and fastest (`pick`)."""
    if show_all:
        return [bulk_record(reference, rate=r) for r in by_price(matching)]
    return [bulk_record(reference, pick=rule, rate=pick(matching, rule)) for rule in _PICKS]


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

    def __init__(self, session: Session, host: Host) -> None:
        self.session = session
        self.host = host
        self.stateless = True

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
        rates = await engine.call(shipment_rates, client, params)
        return rates


# --- one parcel ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneOffQuery:
    """One parcel between two addresses, all in the API's shape (`Address.to_easypost()`, a parcel dict)."""

    to_address: dict[str, Any]
    from_address: dict[str, Any]
    parcel: dict[str, Any]
    filters: Filters = Filters()

    def params(self) -> dict[str, Any]:
        return {"to_address": self.to_address, "from_address": self.from_address, "parcel": self.parcel}


class OneOffQuote:
    """Quote one parcel: the offers within the filters, cheapest first, as `RATE_COLUMNS` records.

    Returned whole rather than streamed: a refused quote must leave stdout empty, not an empty table or array.
    """

    def __init__(self, query: OneOffQuery, host: Host) -> None:
        self.query = query
        self.host = host

    def run(self, session: Session) -> list[Record]:
        quoter = Quoter(session, self.host)
        try:
            offers = session.run(lambda: self._quote(session, quoter))
        except CallFailure as failure:
            session.stats.record("failed")
            if failure.code in ("CONNECTION", "TIMEOUT"):  # the message says where and what to check
                raise ShipctlError(failure.message) from None
            if failure.transient:
                raise ShipctlError(f"no answer from the API: {failure}") from None
            raise ShipctlError(f"the API refused the quote: {failure}", ExitCode.USAGE) from None
        if not offers:
            session.stats.record("failed")
            raise ShipctlError("the API returned no rates for this parcel and route")
        chosen = by_price(self.query.filters.offers(offers))
        if not chosen:
            session.stats.record("failed")
            available = sorted({f"{r.carrier} {r.service}" for r in offers})
            raise UsageError(f"no rate matches --carriers/--services; offered: {', '.join(available)}")
        session.stats.record("succeeded")
        return [rate_record(rate) for rate in chosen]

    async def _quote(self, session: Session, quoter: Quoter) -> tuple[Rate, ...]:
        self.host.engine_started(session.engine.sizing)
        return await quoter.quote(self.query.params())


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


@dataclass(frozen=True)
class ManifestOutcome:
    rows: int
    quoted: int
    failed: int
    elapsed: float
    totals: CarrierTotals

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

    def __init__(self, query: ManifestQuery, host: Host) -> None:
        self.query = query
        self.host = host

    def source(self) -> ManifestSource:
        q = self.query
        return ManifestSource(q.path, q.fmt, q.encoding, q.default_from, on_warning=self.host.warn, sheet=q.sheet)

    def validate(self) -> int:
        """The validation pass: every problem told to the host, identical ones grouped; the row count, or
        ShipctlError (exit 2)."""
        with ProblemGroups(self.host.info) as problems:
            seen = self.source().check(problems.add)
        if seen.rows == 0:
            raise ShipctlError(f"{self.query.label}: the manifest has no rows", ExitCode.USAGE)
        if seen.invalid:
            raise ShipctlError(f"{seen.rows} rows: {seen.rows - seen.invalid} valid, {seen.invalid} invalid; "
                               "nothing was quoted", ExitCode.USAGE)
        return seen.rows

    def run(self, session: Session, sink: Sink) -> ManifestOutcome:
        """The quote pass: every valid row quoted, its `BULK_COLUMNS` records handed to `sink` in input order."""
        # The validation pass told the host about the manifest's warnings already: once is enough.
        source = dataclasses.replace(self.source(), on_warning=lambda _m: None)
        quoting = _QuotePass(self.query, self.host, session, sink)
        session.run(lambda: quoting.main(source))
        stats = session.stats
        return ManifestOutcome(rows=stats.total if stats.total is not None else stats.done,
                               quoted=stats.succeeded, failed=stats.failed, elapsed=stats.elapsed(),
                               totals=quoting.totals)


class _QuotePass:
    """One run of the quote pass: the quoter, the in-order emitter and the totals it fills."""

    def __init__(self, query: ManifestQuery, host: Host, session: Session, sink: Sink) -> None:
        self.query = query
        self.host = host
        self.session = session
        self.sink = sink
        self.quoter = Quoter(session, host)
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
        outcome = await self._quote(valid.row)
        if isinstance(outcome, NoQuote):
            self.session.stats.record("failed")
            self.order.put(index, [bulk_record(reference, error=(outcome.code, outcome.message))])
            return
        self.session.stats.record("succeeded")
        self.order.put(index, outcome)

    async def _quote(self, row: ShipmentRow) -> list[Record] | NoQuote:
        filters = self.query.filters
        conflicts = filter_conflicts(row.carrier, row.service, carriers=filters.carriers, services=filters.services)
        if conflicts:
            # The filter restricts pinned rows too (as `create` refuses them): no offer could be chosen, so say
            # why instead of quoting.
            return NoQuote("NO_RATES", "; ".join(f"{column}: {text}" for column, text in conflicts))
        try:
            offers = await self.quoter.quote(row.to_easypost())
        except CallFailure as failure:
            return NoQuote(failure.code, failure.message)
        pinned = filter_offers(offers, (row.carrier,) if row.carrier else None, (row.service,) if row.service else None)
        matching = filters.offers(pinned)
        if not matching:
            return NoQuote("NO_RATES", no_rate_message(row, offers, pinned))
        self.totals.add(matching)
        return offer_records(row.reference, matching, self.query.show_all)


def _valid_rows(source: ManifestSource) -> Iterator[tuple[int, ValidRow]]:
    """The valid rows, numbered from 0 (the validation pass has refused a manifest with invalid ones)."""
    index = 0
    for item in source.rows():
        if isinstance(item, ValidRow):
            yield index, item
            index += 1
