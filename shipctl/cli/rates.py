"""`shipctl rates`: the command line over the `rates` job (`shipctl.jobs.rates`).

Parses and checks the options (the parcel flags of a one-off quote, or a manifest), runs the job on a session,
writes its records and renders the per-carrier totals and the end line on stderr.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import (
    MANIFEST_PANEL,
    Carriers,
    Confidence,
    DeliverWithin,
    Encoding,
    ManifestFormat,
    RunOptions,
    Services,
    engine_options,
    parse_confidence,
    parse_deliver_within,
    split_list,
)
from shipctl.cli.terminal import terminal
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:  # the job, the SDK and the models load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.jobs.rates import CarrierTotals, Filters, OneOffQuery
    from shipctl.quote_cache import QuoteCache

CACHE_PANEL = "Quote cache"
CacheTtl = Annotated[str | None, typer.Option(
    "--cache-ttl", metavar="DURATION", rich_help_panel=CACHE_PANEL,
    help="How long a quote is reused from the local quote cache: 30s, 15m, 1h (default 15m); 0 turns it off.",
)]
NoCache = Annotated[bool, typer.Option(
    "--no-cache", rich_help_panel=CACHE_PANEL, help="Ask the API for every quote; neither read nor fill the cache.",
)]


def parse_cache_ttl(value: str | None, no_cache: bool) -> float:
    """Seconds a cached quote is good for; 0 for no cache (`--no-cache`, `--cache-ttl 0`)."""
    from shipctl.quote_cache import DEFAULT_TTL, parse_ttl

    if no_cache or value is None:
        return 0.0 if no_cache else DEFAULT_TTL
    try:
        return parse_ttl(value)
    except ValueError as exc:
        raise UsageError(f"--cache-ttl: {exc}") from None


def open_cache(ttl: float) -> QuoteCache | None:
    from shipctl.quote_cache import QuoteCache

    return QuoteCache.in_state_dir(ttl) if ttl > 0 else None


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


@command()
@engine_options("Rows read and dispatched")
def rates(
    manifest: str | None = typer.Argument(
        None, metavar="MANIFEST", help="Quote every row of this manifest (or - for stdin)."
    ),
    to: str | None = typer.Option(
        None, "--to", metavar="ADDRESS", help="Destination: a US ZIP, inline JSON or a JSON file."
    ),
    from_: str | None = typer.Option(
        None, "--from", envvar="SHIPCTL_FROM", metavar="ADDRESS",
        help="Origin: a US ZIP, inline JSON or a JSON file (default $SHIPCTL_FROM). With a manifest, the origin "
        "of rows without one.",
    ),
    weight: str | None = typer.Option(
        None, "--weight", metavar="WEIGHT", help="Parcel weight: 12, 12oz, 1.5lb, 500g, 2kg."
    ),
    dims: str | None = typer.Option(
        None, "--dims", metavar="LxWxH", help="Parcel dimensions: 10x8x4 (inches) or 25x20x10cm."
    ),
    package: str | None = typer.Option(
        None, "--package", metavar="NAME", help="A predefined package (e.g. FlatRateEnvelope)."
    ),
    carriers: Carriers = None,
    services: Services = None,
    show_all: bool = typer.Option(False, "--all", help="With a manifest: every offer, not just cheapest and fastest."),
    deliver_within: DeliverWithin = None,
    confidence: Confidence = None,
    cache_ttl: CacheTtl = None,
    no_cache: NoCache = False,
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    sheet: str | None = typer.Option(
        None, "--sheet", rich_help_panel=MANIFEST_PANEL, help="The sheet of an .xlsx workbook (default: the first)."
    ),
    *,
    run: RunOptions,
) -> None:
    """Quote rates: one parcel (--to, --from, --weight), or the cheapest and fastest offer for every manifest row.

    Examples:

      shipctl rates --to 10001 --from 94105 --weight 1.5lb --dims 10x8x4

      shipctl rates orders.csv --carriers UPS,USPS --all -o csv > quotes.csv
    """
    from shipctl.cli.host import CliHost
    from shipctl.jobs.rates import Filters
    from shipctl.selection import DeliveryRule

    filters = Filters(split_list(carriers), split_list(services))
    host = CliHost(run, noun="rows")
    within, percent = parse_deliver_within(deliver_within), parse_confidence(confidence)
    ttl = parse_cache_ttl(cache_ttl, no_cache)
    if manifest is None:
        for flag, value in (("--all", show_all), ("--format", fmt), ("--encoding", encoding), ("--sheet", sheet)):
            if value:
                raise UsageError(f"{flag} goes with a manifest")
        query = _one_off_query(to, from_, weight, dims, package, filters)
        if within is not None:
            query = dataclasses.replace(query, rule=DeliveryRule(within, percent))
        code = _one_off(query, run, host, ttl)
    else:
        for flag, value in (("--to", to), ("--weight", weight), ("--dims", dims), ("--package", package)):
            if value:
                raise UsageError(f"{flag} is for a one-off quote; a manifest gives it per row")
        code = _bulk(manifest, fmt, encoding, from_, filters, show_all, run, host, sheet=sheet,
                     rule=(within, percent), cache_ttl=ttl)
    raise typer.Exit(int(code))


# --- one parcel ------------------------------------------------------------------------------------------


def _one_off_query(
    to: str | None, from_: str | None, weight: str | None, dims: str | None, package: str | None, filters: Filters,
) -> OneOffQuery:
    from shipctl.jobs.rates import OneOffQuery

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
    return OneOffQuery(_address(to, "--to"), _address(from_, "--from"), parcel, filters)


def _one_off(query: OneOffQuery, run: RunOptions, host: CliHost, cache_ttl: float = 0.0) -> ExitCode:
    import contextlib

    from shipctl.jobs.rates import OneOffQuote
    from shipctl.jobs.session import open_session

    with contextlib.ExitStack() as stack:
        # A delivery-time rule is answered by SmartRate for a shipment of its own: never from the cache.
        cache = open_cache(cache_ttl if query.rule is None else 0.0)
        if cache is not None:
            stack.callback(cache.close)
        session = stack.enter_context(
            open_session(run.sizing, total=1, force_sandbox=run.force_sandbox, announce=host.detail))
        job = OneOffQuote(query, host, cache)
        records = job.run(session)
    _cache_trouble(cache)
    with host.open_writer(job.columns()) as writer:
        for record in records:
            writer.write(record)
    if job.cached is not None:
        host.detail(f"quote cache: answered from a quote {_age(job.cached.age)} old, no call made (--no-cache asks "
                    "the API)")
    if job.choice is not None:
        terminal().info(job.choice)
    _smartrate_line(job.smartrate_calls, run)
    return ExitCode.OK if job.on_time else ExitCode.PARTIAL


def _cache_trouble(cache: QuoteCache | None) -> None:
    if cache is not None and cache.write_error is not None:
        terminal().info(f"quote cache: some quotes could not be kept ({cache.write_error}); they are not reused")


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"


def _smartrate_line(calls: int, run: RunOptions) -> None:
    if calls and not run.quiet:
        terminal().info(f"SmartRate: {calls} call{'' if calls == 1 else 's'} made (EasyPost bills them beyond its "
                        "free tier)")


# --- a manifest ------------------------------------------------------------------------------------------


def _bulk(
    manifest: str,
    manifest_fmt: str | None,
    encoding: str | None,
    from_arg: str | None,
    filters: Filters,
    show_all: bool,
    run: RunOptions,
    host: CliHost,
    *,
    sheet: str | None = None,
    rule: tuple[int | None, int] = (None, 90),
    cache_ttl: float = 0.0,
) -> ExitCode:
    import contextlib

    from shipctl.cli.inputs import manifest_input
    from shipctl.cli.unreachable import UnreachableWatch
    from shipctl.jobs.rates import ManifestQuery, ManifestQuote
    from shipctl.jobs.session import open_session
    from shipctl.manifest import parse_address_arg

    default_from = parse_address_arg(from_arg, allow_zip=False) if from_arg else None
    with contextlib.ExitStack() as stack:
        path, label, _ = stack.enter_context(manifest_input(manifest))
        query = ManifestQuery(path, label, manifest_fmt, encoding, default_from, filters, show_all, sheet,
                              deliver_within=rule[0], confidence=rule[1])
        cache = open_cache(cache_ttl)
        if cache is not None:
            stack.callback(cache.close)
        job = ManifestQuote(query, host, cache)
        total = job.validate()
        if job.timed_rows and not run.quiet:
            terminal().info(f"SmartRate: {job.timed_rows} of {total} rows have a delivery-time rule; one SmartRate "
                            "call each")
        with (
            open_session(run.sizing, total=total, force_sandbox=run.force_sandbox, announce=host.detail) as session,
            host.open_writer(job.columns()) as writer,
        ):
            watch = UnreachableWatch(session)
            outcome = job.run(session, watch.sink(writer.write))
    watch.raise_if_unreachable()
    if not run.quiet:
        _render_totals(outcome.totals)
    failed = f", {outcome.failed} failed" if outcome.failed else ""
    ratio = f"; quote cache: {outcome.cache_ratio}" if outcome.cache_ratio else ""
    terminal().info(f"{outcome.rows} rows: {outcome.quoted} quoted{failed}, {outcome.elapsed:.1f} s{ratio}")
    _cache_trouble(cache)
    _smartrate_line(outcome.smartrate_calls, run)
    return outcome.code


def _render_totals(totals: CarrierTotals) -> None:
    from shipctl.money import format_money

    lines = totals.lines()
    if not lines:
        return
    term = terminal()
    term.info("totals per carrier (each row at that carrier's cheapest service):")
    width = max(len("cheapest"), *(len(line.carrier) for line in lines))
    for line in lines:
        note = f"  ({line.missing} rows without a {line.carrier} rate)" if line.missing else ""
        term.info(f"  {line.carrier:<{width}}  {line.rows:>5} rows  {format_money(line.amount, line.currency)}{note}")
    best = ", ".join(format_money(amount, currency) for currency, amount in sorted(totals.cheapest.items()))
    term.info(f"  {'cheapest':<{width}}  {totals.quoted:>5} rows  {best}")


