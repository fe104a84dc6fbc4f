"""`shipctl report`: labels, spend, refunds and failures from the journals, as tables and bar charts or as records.

Local only: no key, no API. The job is `shipctl.jobs.report`; this module reads the options, writes a note for
journals that are gone, and renders: on a terminal, tables and a bar chart per day and per carrier, for production
and test money apart; otherwise (or with `-o`) one record per group, per failure reason and per mode's and
currency's total.
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
    from collections.abc import Callable, Sequence
    from decimal import Decimal

    from rich.console import Console
    from rich.segment import Segment
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
        _render(term.out, result, term.width, term.info)
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


_FIGURES = ("labels", "spend", "average", "median", "refunds", "refunded", "pending", "saved")
_DROP_FIRST = ("saved", "pending", "median", "refunded", "average", "refunds")
"""The figure columns a screen too narrow for the table leaves out, least useful first (`saved`: the line under
the table says it too). `labels`, `spend` and the group's name are never left out."""
_NAME_LEAST = 20
"""The narrowest the group's name folds to, unless its longest word is shorter: a longer word folds within."""


_MODES = {"production": "production", "test": "test: no real money"}
"""How a table's title names its mode: test keys' and the built-in sandbox's labels are never added to spend."""


def _render(out: Console, result: Report, screen: int | None, notice: Callable[[str], None] | None = None) -> None:
    """The tables, lines and charts of each mode in turn, production first: test spend is never added to
    production spend, nor shown in its tables."""
    modes = result.modes()
    if not modes:
        out.print("No labels bought in this period.")
    said: set[str] = set()

    def once(line: str) -> None:
        if notice is not None and line not in said:
            said.add(line)
            notice(line)

    for mode in modes:
        _render_mode(out, result.of_mode(mode), screen, once, f" ({_MODES[mode]})")


def _render_mode(out: Console, result: Report, screen: int | None, notice: Callable[[str], None],
                 mode: str) -> None:
    """One mode's tables and charts, fitted to the terminal's `screen` columns; into a file (None) every row on one line
    at the table's natural width, no column left out (a file you can grep and diff), the charts as wide as the
    console. On a screen, the group's name folds first; when the figures still do not fit, whole figure columns
    are left out (said once to `notice`), never a figure cut or the name lost; if even `labels` and `spend` do
    not fit, the line is wider than the screen (the terminal wraps it)."""
    from rich.table import Table

    figures = [f for f in _FIGURES if f != "saved" or any(g.savings_vs_retail is not None for g in result.groups)]
    if not result.groups:
        pass  # failed rows alone
    elif screen is None:
        table = _groups_table(result, figures, fold=False, mode=mode)
        _print_at(out, table, _natural(out, table))
    else:
        figures, dropped = _fit(out, result, figures, screen)
        if dropped:
            notice(f"the table leaves out {', '.join(dropped)} to fit {screen} columns; -o csv has every column")
        table = _groups_table(result, figures, fold=True, mode=mode)
        _print_at(out, table, max(screen, _needs(out, table)))
    if result.groups:
        for line in filter(None, (_savings(t) for t in result.totals)):
            out.print(line)
        for t in result.totals:
            if t.insurance is not None:
                out.print(f"Insurance fees besides the spend: {_money(t.insurance, 'USD')} "
                          f"({t.sums[13]:,} of {t.sums[2]:,} paid labels insured)")
    if result.failed:
        failed = Table(title=f"Failed rows{mode}", title_justify="left")
        failed.add_column("error_code", no_wrap=True)
        failed.add_column("rows", justify="right", no_wrap=True)
        for _, code, count in result.failed:
            failed.add_row(code or "(none)", f"{count:,}")
        _print_at(out, failed, _natural(out, failed))
    width = screen or out.width
    for by in ("day", "carrier"):
        groups = result.also.get(by, [])
        if groups:
            _print_at(out, _chart(f"Spend per {by}{mode}", groups, width), width)


def _fit(out: Console, result: Report, figures: list[str], screen: int) -> tuple[list[str], list[str]]:
    """The figure columns that fit `screen` with the names folded, leaving out the least useful first; and those
    left out."""
    def fits(names: set[str]) -> bool:
        return _needs(out, _groups_table(result, [f for f in figures if f in names], fold=True)) <= screen

    kept = set(figures)
    dropped: list[str] = []
    for name in _DROP_FIRST:
        if fits(kept):
            break
        if name in kept:
            kept.discard(name)
            dropped.append(name)
    # A wide column left out may have made room for a narrower one left out before it: the more useful back first.
    for name in reversed(dropped[:-1]):
        if fits(kept | {name}):
            kept.add(name)
    return [f for f in figures if f in kept], [f for f in dropped if f not in kept]


def _print_at(out: Console, renderable: Table, width: int) -> None:
    """Print `renderable` laid out `width` columns wide, even wider than the console: `Console.print(width=)`
    clamps to the console's own width (80 into a file), which squeezed the names to nothing and cut the amounts.
    Printed without cropping (a line wider than the screen is the terminal's to wrap) and without the blanks
    rich pads a line with: a file you can grep and diff."""
    from rich.segment import Segment, Segments

    lines = Segment.split_lines(out.render(renderable, out.options.update(width=width)))
    out.print(Segments(s for line in lines for s in [*_rstrip(line), Segment.line()]), soft_wrap=True, crop=False)


def _rstrip(line: list[Segment]) -> list[Segment]:
    from rich.segment import Segment

    while line and not line[-1].text.rstrip():
        line = line[:-1]
    if line:
        last = line[-1]
        line = [*line[:-1], Segment(last.text.rstrip(), last.style, last.control)]
    return line


def _money(amount: Decimal | None, currency: str) -> str:
    from shipctl.money import format_money

    return "" if amount is None else format_money(amount, currency)


def _cells(g: Group) -> dict[str, str]:
    money = _money
    return {
        "labels": f"{g.labels:,}", "spend": money(g.spend, g.currency), "average": money(g.average, g.currency),
        "median": money(g.median, g.currency), "refunds": f"{g.refunds:,}",
        "refunded": money(g.refunded, g.currency), "pending": money(g.refund_pending, g.currency),
        "saved": money(g.savings_vs_retail, g.currency),
    }


def _groups_table(result: Report, figures: Sequence[str], *, fold: bool, mode: str = "") -> Table:
    """The groups and totals with these figure columns; with `fold` the name folds at its spaces (a word longer
    than `_NAME_LEAST` within itself), else it stays on one line."""
    from rich.cells import cell_len
    from rich.table import Table

    rows: list[tuple[str, dict[str, str], str | None]] = [(_name(g), _cells(g), None) for g in result.groups]
    rows += [(f"total {t.currency}", _cells(t), "bold") for t in result.totals]
    table = Table(title=f"Labels by {result.by}{mode}", title_justify="left")
    table.add_column(result.by, no_wrap=not fold, overflow="fold")
    for name in figures:
        # A figure is never folded or cut: its column is as wide as its widest figure.
        width = max(cell_len(name), *(cell_len(cells[name]) for _, cells, _ in rows))
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    for name, cells, style in rows:
        if style is not None:
            table.add_section()
        table.add_row(name, *(cells[f] for f in figures), style=style)
    return table


def _needs(out: Console, table: Table) -> int:
    """The width `table` needs with its names folded as far as they may (`_NAME_LEAST`, or their longest word or
    the header when narrower), and no further."""
    from rich.cells import cell_len
    from rich.measure import Measurement

    names = [str(c) for c in table.columns[0].cells]
    longest_word = max(cell_len(w) for n in names for w in (n.split() or [""]))
    least = max(cell_len(str(table.columns[0].header)), min(longest_word, _NAME_LEAST))
    # rich's own minimum holds the longest word whole; a name column is folded within a longer word.
    least_rich = Measurement.get(out, out.options.update_width(1 << 16), table).minimum  # measured unclamped
    return least_rich - max(0, longest_word - least)


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
