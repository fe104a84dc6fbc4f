"""`shipctl rates`: what would it cost? One parcel from flags, or every row of a manifest through the engine.

Quotes use the stateless `POST /beta/rates` (nothing is created); where a server does not offer it, a shipment
is created instead (never bought; an unbought shipment costs nothing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipctl.cli import console
from shipctl.cli.app import command
from shipctl.cli.bulk import InOrder, RunOptions, check_rows, engine_session, only, run_options
from shipctl.cli.options import (
    Carriers,
    Concurrency,
    Encoding,
    ForceSandbox,
    ManifestFormat,
    MaxConcurrency,
    Output,
    Progress,
    ProgressInterval,
    Quiet,
    RowChunkSize,
    Services,
    Verbose,
    Workers,
    manifest_input,
    split_list,
)
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:
    from shipctl.carrier.shipments import Rate

RATE_COLUMNS = ("carrier", "service", "rate", "currency", "delivery_days", "delivery_date")
BULK_COLUMNS = ("reference", "pick", *RATE_COLUMNS, "error_code", "error_message")
_DIMS = re.compile(r"\s*[x×*]\s*", re.IGNORECASE)
_UNIT = re.compile(r"[a-z\"]+\s*$", re.IGNORECASE)


def parse_weight(value: str) -> float:
    from shipctl.manifest.normalize import weight_oz

    try:
        return weight_oz(value)
    except ValueError as exc:
        raise UsageError(f"--weight: {exc}") from None


def parse_dims(value: str) -> tuple[float, float, float]:
    """`10x8x4`, `10 x 8 x 4 in`, `25x20x10cm` (one unit at the end applies to all three): inches."""
    from shipctl.manifest.normalize import length_in

    parts = _DIMS.split(value.strip())
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"--dims must be LENGTHxWIDTHxHEIGHT, like 10x8x4 or 25x20x10cm, not {value!r}")
    unit = _UNIT.search(parts[2])
    if unit is not None:
        parts = [p if _UNIT.search(p) else p + unit.group(0) for p in parts]
    try:
        length, width, height = (length_in(p) for p in parts)
    except ValueError as exc:
        raise UsageError(f"--dims: {exc}") from None
    return length, width, height


def _address(value: str, flag: str) -> dict[str, Any]:
    from shipctl.manifest import parse_address_arg

    try:
        return parse_address_arg(value, allow_zip=True).to_easypost()
    except ShipctlError as exc:
        raise UsageError(f"{flag}: {exc.message}") from None


@dataclass
class _Quoter:
    """Quotes through the engine: stateless first; after one "not offered here" answer, shipments for the rest."""

    engine: Any
    client: Any
    quiet: bool
    stateless: bool = True

    async def quote(self, params: dict[str, Any]) -> tuple[Any, ...]:
        from shipctl.carrier.rates import shipment_rates, stateless_rates, stateless_unavailable
        from shipctl.engine.failures import CallFailure

        if self.stateless:
            try:
                rates: tuple[Any, ...] = await self.engine.call(stateless_rates, self.client, params)
                return rates
            except CallFailure as failure:
                if not stateless_unavailable(failure):
                    raise
                if self.stateless and not self.quiet:
                    console.info(f"stateless rates are not offered here ({failure.code}); quoting by creating "
                                 "shipments (nothing is bought)")
                self.stateless = False
        rates = await self.engine.call(shipment_rates, self.client, params)
        return rates


def _rate_row(rate: Any) -> dict[str, Any]:
    return {"carrier": rate.carrier, "service": rate.service, "rate": rate.rate, "currency": rate.currency,
            "delivery_days": rate.delivery_days,
            "delivery_date": rate.delivery_date or estimated_delivery(rate.delivery_days)}


def estimated_delivery(days: int | None, today: dt.date | None = None) -> str | None:
    """The carrier's date when it gives one; else today plus `days` business days (carriers count those)."""
    if days is None:
        return None
    day = today or dt.date.today()
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day.isoformat()


@command()
def rates(
    manifest: str | None = typer.Argument(None, help="Quote every row of this manifest (or - for stdin)."),
    to: str | None = typer.Option(None, "--to", help="Destination: a US ZIP, inline JSON or a JSON file."),
    from_: str | None = typer.Option(
        None, "--from", envvar="SHIPCTL_FROM",
        help="Origin: a US ZIP, inline JSON or a JSON file (default $SHIPCTL_FROM). With a manifest, the origin "
        "of rows without one.",
    ),
    weight: str | None = typer.Option(None, "--weight", help="Parcel weight: 12, 12oz, 1.5lb, 500g, 2kg."),
    dims: str | None = typer.Option(None, "--dims", help="Parcel LENGTHxWIDTHxHEIGHT: 10x8x4 (inches) or 25x20x10cm."),
    package: str | None = typer.Option(None, "--package", help="A predefined package (e.g. FlatRateEnvelope)."),
    carriers: Carriers = None,
    services: Services = None,
    show_all: bool = typer.Option(False, "--all", help="With a manifest: every offer, not just cheapest and fastest."),
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    output: Output = None,
    concurrency: Concurrency = "16",
    max_concurrency: MaxConcurrency = 64,
    workers: Workers = None,
    chunk_size: RowChunkSize = None,
    progress: Progress = "auto",
    progress_interval: ProgressInterval = 10.0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    sandbox: ForceSandbox = False,
) -> None:
    """Quote rates: one parcel (--to, --from, --weight), or the cheapest and fastest offer for every manifest row."""
    run = run_options(
        output=output, concurrency=concurrency, max_concurrency=max_concurrency, workers=workers,
        chunk_size=chunk_size, progress=progress, progress_interval=progress_interval, quiet=quiet, verbose=verbose,
        sandbox=sandbox,
    )
    wanted = (split_list(carriers), split_list(services))
    if manifest is None:
        for flag, value in (("--all", show_all), ("--format", fmt), ("--encoding", encoding)):
            if value:
                raise UsageError(f"{flag} goes with a manifest")
        if to is None or weight is None:
            raise UsageError("give --to and --weight for a one-off quote (and --from, or set SHIPCTL_FROM), "
                             "or a MANIFEST to quote every row")
        if from_ is None:
            raise UsageError("give the origin with --from (a ZIP, inline JSON or a JSON file), or set SHIPCTL_FROM")
        if dims and package:
            raise UsageError("give --dims or --package, not both")
        parcel: dict[str, Any] = {"weight": parse_weight(weight)}
        if dims:
            parcel.update(zip(("length", "width", "height"), parse_dims(dims), strict=True))
        if package:
            parcel["predefined_package"] = package
        params = {"to_address": _address(to, "--to"), "from_address": _address(from_, "--from"), "parcel": parcel}
        code = _one_off(params, wanted, run)
    else:
        for flag, value in (("--to", to), ("--weight", weight), ("--dims", dims), ("--package", package)):
            if value:
                raise UsageError(f"{flag} is for a one-off quote; a manifest gives it per row")
        if fmt is not None and fmt not in ("csv", "json", "ndjson"):
            raise UsageError("--format must be csv, json or ndjson")
        code = _bulk(manifest, fmt, encoding, from_, wanted, show_all, run)
    raise typer.Exit(int(code))


# --- one parcel ------------------------------------------------------------------------------------------


def _one_off(params: dict[str, Any], wanted: tuple[Sequence[str], Sequence[str]], run: RunOptions) -> ExitCode:
    from shipctl.carrier.rates import by_price
    from shipctl.engine.failures import CallFailure
    from shipctl.engine.runner import run_async
    from shipctl.output import open_writer
    from shipctl.selection import filter_offers

    with engine_session(run, total=1) as session:
        quoter = _Quoter(session.engine, session.client, run.quiet)

        async def main() -> tuple[Any, ...]:
            run.describe_engine()
            return await quoter.quote(params)

        try:
            offers = run_async(main)
        except CallFailure as failure:
            if failure.transient:
                raise ShipctlError(f"no answer from the API: {failure}") from None
            raise ShipctlError(f"the API refused the quote: {failure}", ExitCode.USAGE) from None

    chosen = by_price(filter_offers(offers, *wanted))
    if not offers:
        raise ShipctlError("the API returned no rates for this parcel and route")
    if not chosen:
        available = sorted({f"{r.carrier} {r.service}" for r in offers})
        raise UsageError(f"no rate matches --carriers/--services; offered: {', '.join(available)}")
    with open_writer(run.output_format(), sys.stdout, RATE_COLUMNS) as writer:
        for rate in chosen:
            writer.write(_rate_row(rate))
    return ExitCode.OK


# --- a manifest ------------------------------------------------------------------------------------------


@dataclass
class _Totals:
    """Per carrier: the sum over rows of that carrier's cheapest offer (exact, per currency), and the row count."""

    by_carrier: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    rows_by_carrier: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cheapest: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    quoted: int = 0

    def add(self, offers: Sequence[Any]) -> None:
        from shipctl.carrier.rates import cheapest, money

        self.quoted += 1
        best: dict[str, Any] = {}
        for rate in offers:
            if money(rate) is None:
                continue
            current = best.get(rate.carrier)
            if current is None or rate.amount < current.amount:
                best[rate.carrier] = rate
        for carrier, rate in best.items():
            self.by_carrier[(carrier, rate.currency)] += rate.amount
            self.rows_by_carrier[carrier] += 1
        overall = cheapest([r for r in offers if money(r) is not None])
        if overall is not None:
            self.cheapest[overall.currency] += overall.amount

    def render(self) -> None:
        if not self.by_carrier:
            return
        console.info("totals per carrier (each row at that carrier's cheapest service):")
        width = max(len("cheapest"), *(len(carrier) for carrier, _ in self.by_carrier))
        for (carrier, currency), amount in sorted(self.by_carrier.items(), key=lambda kv: (kv[0][1], kv[1])):
            rows = self.rows_by_carrier[carrier]
            missing = self.quoted - rows
            note = f"  ({missing} rows without a {carrier} rate)" if missing else ""
            console.info(f"  {carrier:<{width}}  {rows:>5} rows  {_money(amount, currency)}{note}")
        best = ", ".join(_money(amount, currency) for currency, amount in sorted(self.cheapest.items()))
        console.info(f"  {'cheapest':<{width}}  {self.quoted:>5} rows  {best}")


def _money(amount: Decimal, currency: str) -> str:
    text = f"{amount:,.2f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def _bulk(
    manifest: str,
    manifest_fmt: str | None,
    encoding: str | None,
    from_arg: str | None,
    wanted: tuple[Sequence[str], Sequence[str]],
    show_all: bool,
    run: RunOptions,
) -> ExitCode:
    default_from = None
    if from_arg:
        from shipctl.manifest import parse_address_arg

        default_from = parse_address_arg(from_arg, allow_zip=False)
    with manifest_input(manifest) as (path, label, _):
        read = {"fmt": manifest_fmt, "encoding": encoding, "default_from": default_from}
        total = _validate(path, label, read)
        return _quote_rows(path, read, total, wanted, show_all, run)


def _validate(path: Path, label: str, read: dict[str, Any]) -> int:
    """Check every row first (as `create` does): an invalid manifest is reported whole, and nothing is quoted."""
    seen = check_rows(path, **read)
    rows, invalid = seen.rows, seen.invalid
    if rows == 0:
        raise ShipctlError(f"{label}: the manifest has no rows", ExitCode.USAGE)
    if invalid:
        raise ShipctlError(f"{rows} rows: {rows - invalid} valid, {invalid} invalid; nothing was quoted",
                           ExitCode.USAGE)
    return rows


def _no_rate_message(row: Any, offers: Sequence[Rate], pinned: Sequence[Rate]) -> str:
    """Why a row got no offer: none at all, none of its own pin, or none within --carriers/--services."""
    from shipctl.carrier.rates import by_price

    if not offers:
        return "the API returned no rates for this row"
    offered = ", ".join(f"{r.carrier} {r.service} {r.rate}" for r in by_price(offers))
    pin = " ".join(p for p in (row.carrier, row.service) if p)
    what = f"the row's carrier/service ({pin})" if not pinned else "--carriers/--services"
    return f"no rate matches {what}; offered: {offered}"


def _quote_rows(
    path: Path,
    read: dict[str, Any],
    total: int,
    wanted: tuple[Sequence[str], Sequence[str]],
    show_all: bool,
    run: RunOptions,
) -> ExitCode:
    from shipctl.engine.failures import CallFailure
    from shipctl.engine.runner import run_async
    from shipctl.manifest import ValidRow, iter_rows
    from shipctl.output import open_writer
    from shipctl.selection import filter_conflicts, filter_offers

    fmt = run.output_format()
    totals = _Totals()
    carriers, services = wanted
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(engine_session(run, total=total))
        engine, stats = session.engine, session.stats
        quoter = _Quoter(engine, session.client, run.quiet)
        writer = stack.enter_context(open_writer(fmt, sys.stdout, BULK_COLUMNS))

        def emit(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                writer.write(only(BULK_COLUMNS, row))

        order: InOrder[list[dict[str, Any]]] = InOrder(emit)

        def refuse(index: int, ref: str, code: str, message: str) -> None:
            _done(stats, ok=False)
            order.put(index, [{"reference": ref, "error_code": code, "error_message": message}])

        async def handle(item: tuple[int, ValidRow]) -> None:
            index, valid = item
            row = valid.row
            ref = row.reference
            conflicts = filter_conflicts(row.carrier, row.service, carriers=carriers, services=services)
            if conflicts:
                # The filter restricts pinned rows too (as `create` refuses them): no offer could be chosen, so
                # say why instead of quoting.
                refuse(index, ref, "NO_RATES", "; ".join(f"{column}: {text}" for column, text in conflicts))
                return
            try:
                offers = await quoter.quote(row.to_easypost())
            except CallFailure as failure:
                refuse(index, ref, failure.code, failure.message)
                return
            pinned = filter_offers(offers, [row.carrier] if row.carrier else (), [row.service] if row.service else ())
            matching = filter_offers(pinned, carriers, services)
            if not matching:
                refuse(index, ref, "NO_RATES", _no_rate_message(row, offers, pinned))
                return
            totals.add(matching)
            _done(stats, ok=True)
            order.put(index, _offer_rows(ref, matching, show_all))

        def valid_rows() -> Any:
            index = 0
            for item in iter_rows(path, **read):
                if isinstance(item, ValidRow):
                    yield index, item
                    index += 1

        async def main() -> None:
            run.describe_engine()
            with run.open_progress(stats, noun="rows"):
                await engine.run(valid_rows(), handle)

        run_async(main)
        stats.finished_at = time.monotonic()

    if not run.quiet:
        totals.render()
    failed = f", {stats.failed} failed" if stats.failed else ""
    console.info(f"{total} rows: {stats.succeeded} quoted{failed}, {stats.elapsed():.1f} s")
    return ExitCode.PARTIAL if stats.failed else ExitCode.OK


def _offer_rows(ref: str, matching: Sequence[Rate], show_all: bool) -> list[dict[str, Any]]:
    """Every offer cheapest first with `--all`, else the row's cheapest and fastest (`pick`)."""
    from shipctl.carrier.rates import by_price, cheapest, fastest

    if show_all:
        return [{"reference": ref, **_rate_row(r)} for r in by_price(matching)]
    return [{"reference": ref, "pick": pick, **_rate_row(rate)}
            for pick, rate in (("cheapest", cheapest(matching)), ("fastest", fastest(matching)))]


def _done(stats: Any, *, ok: bool) -> None:
    stats.done += 1
    if ok:
        stats.succeeded += 1
    else:
        stats.failed += 1
