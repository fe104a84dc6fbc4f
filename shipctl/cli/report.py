"""`shipctl report`: labels, spend, refunds and failures from the journals, as tables and bar charts or as records.

Local only: no key, no API. The job is `shipctl.jobs.report`; this module reads the options, writes a note for
journals that are gone, and renders: on a terminal, tables and a bar chart per day and per carrier; otherwise (or
with `-o`) one record per group, per failure reason and per currency's total.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from shipctl.cli.app import command
from shipctl.cli.options import choice
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:
    from decimal import Decimal

    from rich.console import Console
    from rich.table import Table

    from shipctl.jobs.report import Group, GroupBy, Report

_BAR = "█"
_PARTS = " ▏▎▍▌▋▊▉"  # eighths of a block: a bar's length to an eighth of a column


@command()
def report(
    journals: list[Path] | None = typer.Option(
        None, "--journal", metavar="PATH",
        help="Report on this journal (repeat for more) instead of every journal `create` wrote on this machine.",
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="DATE", help="From this local day: YYYY-MM-DD, today or yesterday."
    ),
    until: str | None = typer.Option(
        None, "--until", metavar="DATE", help="Up to and including this local day."
    ),
    by: Annotated[str, choice(
        "--by", ("day", "week", "month", "carrier", "service"), "Group the labels by this.",
    )] = "day",
    output: Annotated[str | None, choice(
        "--output", ("table", "json", "ndjson", "csv"),
        "Result format (default: tables and charts on a terminal, else ndjson).", short="-o",
    )] = None,
    delivery: bool = typer.Option(
        False, "--delivery",
        help="Also track the labels (the API: key or sandbox; cached 10 minutes, deliveries for good) and count "
             "delivered on time, late, in transit and not yet scanned per carrier and service.",
    ),
) -> None:
    """Report what the journals say was bought: labels and spend per day, week, month, carrier or service,
    the average and median label, refunds netted out, failed rows by reason.

    Examples:

      shipctl report --since 2024-05-01 --by carrier

      shipctl report --journal orders.csv.journal.db -o csv > spend.csv

      shipctl report --since 2024-05-01 --delivery
    """
    from shipctl.jobs.close_inputs import parse_date
    from shipctl.jobs.report import ReportQuery, build_report, journals_to_read
    from shipctl.paths import state_dir

    term = terminal()
    first = parse_date(since, "--since") if since is not None else None
    last = parse_date(until, "--until") if until is not None else None
    if first is not None and last is not None and first > last:
        raise UsageError(f"--since {first} is after --until {last}")
    fmt = output or term.default_output()
    query = ReportQuery(
        since=first, until=last, by=cast("GroupBy", by),  # one of the choices: checked while parsing
        also=("day", "carrier") if fmt == "table" else (),
    )
    paths = journals_to_read(journals or (), state_dir)
    result = build_report(query, paths, given=bool(journals))
    if result.skipped:
        names = ", ".join(str(p) for p in result.skipped)
        term.info(f"note: skipped {_journals(len(result.skipped))} that are gone or not readable: {names}")
    if not paths:
        term.info("note: no journals to report on: `create` has written none on this machine (or give --journal)")
    deliveries = None
    if delivery:  # the only part of `report` that calls the API
        from shipctl.cli import report_delivery

        deliveries = report_delivery.track_deliveries(result.journals, first, last, fmt)
    if fmt == "table":
        _render(term.out, result, term.width)
        if deliveries is not None:
            report_delivery.render(term.out, deliveries)
    else:
        from shipctl.jobs.report import REPORT_FIELDS
        from shipctl.output import open_writer

        fields = REPORT_FIELDS if deliveries is None else (*REPORT_FIELDS, *report_delivery.FIELDS_AFTER)
        with open_writer(fmt, term.stdout, fields) as writer:  # type: ignore[arg-type]
            for record in [*result.records(), *(deliveries.records() if deliveries is not None else ())]:
                writer.write(record)
    term.info(f"{_journals(len(result.journals))} read")
    raise typer.Exit(0)


def _journals(n: int) -> str:
    return f"{n:,} journal" + ("" if n == 1 else "s")


def _render(out: Console, result: Report, screen: int | None) -> None:
    """The tables and charts, fitted to the terminal's `screen` columns; into a file (None) the table is as wide
    as it needs (no screen to fit: never a date cut to `2026-12…`), the charts as wide as the console."""
    from rich.table import Table

    # A `saved` column (against retail) only where some label's rate carried a retail price, and only where it
    # leaves the group names room to fold into: else the line under the table says it alone.
    table = _groups_table(result, any(g.savings_vs_retail is not None for g in result.groups))
    if screen is not None and len(table.columns) > 8 and _needs(out, table) > screen:
        table = _groups_table(result, False)
    width = screen or out.width
    if not result.groups:
        out.print("No labels bought in this period.")
    else:
        out.print(table, width=None if screen is not None else max(width, _natural(out, table)))
        for line in filter(None, (_savings(t) for t in result.totals)):
            out.print(line)
        for t in result.totals:
            if t.insurance is not None:
                out.print(f"Insurance fees besides the spend: {_money(t.insurance, 'USD')} "
                          f"({t.sums[13]:,} of {t.sums[2]:,} paid labels insured)")
    if result.failed:
        failed = Table(title="Failed rows", title_justify="left")
        failed.add_column("error_code")
        failed.add_column("rows", justify="right")
        for code, count in result.failed:
            failed.add_row(code or "(none)", f"{count:,}")
        out.print(failed)
    for by in ("day", "carrier"):
        groups = result.also.get(by, [])
        if groups:
            out.print(_chart(f"Spend per {by}", groups, width))


def _money(amount: Decimal | None, currency: str) -> str:
    from shipctl.money import format_money

    return "" if amount is None else format_money(amount, currency)


def _groups_table(result: Report, saved: bool) -> Table:
    from rich.table import Table

    money = _money
    table = Table(title=f"Labels by {result.by}", title_justify="left")
    table.add_column(result.by)
    for name in ("labels", "spend", "average", "median", "refunds", "refunded", "pending", *["saved"] * saved):
        table.add_column(name, justify="right", no_wrap=True)  # a figure is never cut: the name column folds
    for g in result.groups:
        table.add_row(_name(g), f"{g.labels:,}", money(g.spend, g.currency), money(g.average, g.currency),
                      money(g.median, g.currency), f"{g.refunds:,}", money(g.refunded, g.currency),
                      money(g.refund_pending, g.currency), *[money(g.savings_vs_retail, g.currency)] * saved)
    for t in result.totals:
        table.add_section()
        table.add_row(f"total {t.currency}", f"{t.labels:,}", money(t.spend, t.currency),
                      money(t.average, t.currency), money(t.median, t.currency), f"{t.refunds:,}",
                      money(t.refunded, t.currency), money(t.refund_pending, t.currency),
                      *[money(t.savings_vs_retail, t.currency)] * saved, style="bold")
    return table


def _needs(out: Console, table: Table) -> int:
    """The width `table` needs with its names folded as far as their longest word, and no further."""
    from rich.measure import Measurement

    return Measurement.get(out, out.options.update_width(1 << 16), table).minimum  # measured unclamped


def _natural(out: Console, table: Table) -> int:
    """The width `table` takes with nothing folded."""
    from rich.measure import Measurement

    return Measurement.get(out, out.options.update_width(1 << 16), table).maximum


def _savings(t: Group) -> str:
    """The total's savings in words, over the paid labels whose rates carried the price; empty when none did."""
    paid = t.sums[2] if t.sums else t.labels - t.refunds  # the labels that cost money
    parts = [f"{_money(amount, t.currency)} against {name} ({n:,} of {paid:,} paid labels)"
             for name, amount, n in (("retail", t.savings_vs_retail, t.retail_labels),
                                     ("list", t.savings_vs_list, t.list_labels)) if amount is not None]
    return f"Saved {' and '.join(parts)}" if parts else ""


def _name(g: Group) -> str:
    return g.group or "(unknown)"


def _chart(title: str, groups: list[Group], width: int) -> Table:
    """One bar per group, its length the group's spend against the largest in its currency."""
    from rich.table import Table

    from shipctl.money import format_money

    largest: dict[str, float] = {}
    for g in groups:
        largest[g.currency] = max(largest.get(g.currency, 0.0), float(g.spend))
    label_width = max(len(_name(g)) for g in groups)
    figure_width = max(len(format_money(g.spend, g.currency)) for g in groups)
    room = max(10, width - label_width - figure_width - 8)
    chart = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    chart.add_column(no_wrap=True)
    chart.add_column(no_wrap=True)
    chart.add_column(justify="right", no_wrap=True)
    for g in groups:
        top = largest[g.currency]
        chart.add_row(_name(g), _bar(float(g.spend) / top * room if top else 0.0),
                      format_money(g.spend, g.currency), style=None)
    return chart


def _bar(length: float) -> str:
    whole, eighths = int(length), int((length - int(length)) * 8)
    return _BAR * whole + (_PARTS[eighths] if eighths else "")
