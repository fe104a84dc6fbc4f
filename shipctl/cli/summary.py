"""The end-of-run summary on stderr: what happened, what it cost, how fast, and where everything was written.

`Summary.add` is called once per emitted `ResultRecord` (from one thread — the one that writes results) and
costs a few dict updates; money is `Decimal` throughout, never float. `render` prints the summary once at the
end, in full or — with ``--quiet`` — as one line:

    1000 shipments: 998 bought, 2 failed, $7,412.30, 41.2 s (24.3/s)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, TypedDict

from shipctl import money
from shipctl.cli.plain import PlainConsole
from shipctl.money import format_money, format_totals
from shipctl.output import counted as counted  # the CLI's commands import it from here

if TYPE_CHECKING:
    from rich.console import Console

    from shipctl.engine.stats import RunStats
    from shipctl.results import ResultRecord

UNKNOWN = "unknown"
STATUS_ORDER: tuple[str, ...] = ("bought", "refunded", "failed", "skipped", "planned")
MAX_ERROR_KINDS = 5
_NO_PATHS: Mapping[str, str] = MappingProxyType({})

CostKey = tuple[str, str, str]
"""(carrier, service, currency)."""


class Totals(TypedDict):
    counts: dict[str, int]
    """Rows by status."""
    cost: dict[CostKey, Decimal]
    """Sum of the bought rows' rates by (carrier, service, currency)."""
    bought_by: dict[CostKey, int]
    """Bought rows that carry a price, by (carrier, service, currency)."""
    total: dict[str, Decimal]
    """Sum of all bought rows' rates by currency."""
    unpriced: int
    """Bought rows whose rate was missing or not a number (counted, not costed)."""


Line = list[tuple[str, str]]
"""A line of the summary: its pieces of text, each with its rich style ("" for none)."""


def _kinds(codes: Counter[str]) -> str:
    """`CODE ×3, OTHER ×1` for the most common codes, and how many kinds more."""
    note = ", ".join(f"{code} ×{k}" for code, k in codes.most_common(MAX_ERROR_KINDS))
    if len(codes) > MAX_ERROR_KINDS:
        note += f", {len(codes) - MAX_ERROR_KINDS} more kinds"
    return note


def pad(text: str, width: int, *, right: bool = False) -> str:
    """`text` filled with spaces to `width` columns, on its right, or on its left (`right`: right-aligned)."""
    from rich.cells import cell_len  # rich's own measure (~2 ms to load, not rich's console): the same columns

    fill = " " * max(0, width - cell_len(text))
    return fill + text if right else text + fill


_INSURANCE = ("insurance", "")
"""The cost table's line for insurance fees (carrier, service)."""


def format_elapsed(seconds: float) -> str:
    """`41.2 s` under a minute, then `0:03:05`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return str(timedelta(seconds=round(seconds)))


class Summary:
    def __init__(self, noun: str = "shipments") -> None:
        self.noun = noun
        self._counts: Counter[str] = Counter()
        self._cost: dict[CostKey, Decimal] = {}
        self._bought_by: Counter[CostKey] = Counter()
        self._unpriced = 0
        self._errors: Counter[str] = Counter()
        # Labels bought before this run (resumed from the journal, or found bought elsewhere): shown, never spend.
        self._earlier: Counter[str] = Counter()
        self._earlier_total: dict[str, Decimal] = {}
        self._skips: Counter[str] = Counter()

    # --- per row ---------------------------------------------------------------------------------------

    def add(self, record: ResultRecord) -> None:
        self._counts[record.status] += 1
        if record.status == "failed":
            self._errors[record.error_code or "error"] += 1
        elif record.status == "skipped":
            self._skips[record.error_code or "skipped"] += 1
        elif record.status == "bought" and record.purchase in ("resumed", "found"):
            self._earlier[record.purchase] += 1
            amount = money.parse_amount(record.rate)
            if amount is not None:
                money.add(self._earlier_total, money.currency_of(record.currency), amount)
            fee = money.parse_amount(record.insurance_fee)
            if fee is not None:  # what the label cost, as this run's cost table counts it: insurance included
                money.add(self._earlier_total, money.DEFAULT_CURRENCY, fee)
        elif record.status == "bought":
            amount = money.parse_amount(record.rate)
            if amount is None:
                self._unpriced += 1
                return
            key = (record.carrier or UNKNOWN, record.service or UNKNOWN, money.currency_of(record.currency))
            self._cost[key] = self._cost.get(key, Decimal(0)) + amount
            self._bought_by[key] += 1
            fee = money.parse_amount(record.insurance_fee)
            if fee is not None:  # billed with the label, in USD: a line of its own in the cost table
                key = (*_INSURANCE, money.DEFAULT_CURRENCY)
                self._cost[key] = self._cost.get(key, Decimal(0)) + fee
                self._bought_by[key] += 1

    # --- figures ----------------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return sum(self._counts.values())

    def totals(self) -> Totals:
        total = money.sum_by_currency((currency, amount) for (_, _, currency), amount in self._cost.items())
        return Totals(
            counts=dict(self._counts),
            cost=dict(self._cost),
            bought_by=dict(self._bought_by),
            total=total,
            unpriced=self._unpriced,
        )

    def _status_counts(self) -> list[tuple[str, int]]:
        known = [(s, self._counts[s]) for s in STATUS_ORDER if self._counts[s]]
        others = sorted((s, n) for s, n in self._counts.items() if s not in STATUS_ORDER and n)
        return known + others

    def _money(self, totals: dict[str, Decimal] | None = None) -> str:
        return format_totals(self.totals()["total"] if totals is None else totals)

    @property
    def bought_now(self) -> int:
        """Labels this run bought (and paid for)."""
        return self._counts["bought"] - sum(self._earlier.values())

    def _earlier_note(self) -> str:
        parts = [f"{self.bought_now} bought by this run"]
        if self._earlier["resumed"]:
            parts.append(f"{self._earlier['resumed']} resumed from the journal")
        if self._earlier["found"]:
            parts.append(f"{self._earlier['found']} found already bought outside this journal")
        return ", ".join(parts)

    def _planned_rows(self, stats: RunStats) -> int:
        return max(stats.total or 0, self.rows)

    def _all_resumed(self, stats: RunStats, planned: int) -> bool:
        """Every row was done by an earlier run of this journal: no rate to speak of, nothing was worked."""
        return bool(stats.resumed) and stats.done == stats.resumed and planned == self.rows

    # --- output -----------------------------------------------------------------------------------------

    def one_line(self, stats: RunStats) -> str:
        """`1000 shipments: 998 bought, 2 failed, $7,412.30, 41.2 s (24.3/s)`."""
        planned = self._planned_rows(stats)
        parts = [f"{n} {status}" for status, n in self._status_counts()] or ["nothing done"]
        earlier = sum(self._earlier.values())
        if earlier:
            parts[0] += f" ({earlier} already bought before this run)"
        if planned > self.rows:
            parts.append(f"{planned - self.rows} not done")
        spent = self._money()
        if spent:
            parts.append(spent + (" spent" if earlier else ""))
        if self._all_resumed(stats, planned):
            parts.append(f"all resumed from the journal, {format_elapsed(stats.elapsed())}")
        else:
            parts.append(f"{format_elapsed(stats.elapsed())} ({stats.throughput():.1f}/s)")
        return f"{counted(planned, self.noun)}: " + ", ".join(parts)

    def lines(self, stats: RunStats, paths: Mapping[str, str] = _NO_PATHS) -> list[Line]:
        """The full summary, a line a list of (text, style) pieces: rich draws the styles on a terminal; anywhere
        else the text is written as it is (`render`)."""
        planned = self._planned_rows(stats)
        lines: list[Line] = [self._headline(stats, planned)]
        lines.extend(self._status_lines(stats, planned))
        lines.extend(self._cost_lines())
        api: Line = [("api ", "bold"), (f"retries {stats.retries}, 429 answers {stats.rate_limited}", "")]
        lowest = min(stats.limit_low, stats.limit)
        if stats.rate_limited or stats.limit < stats.max_limit or lowest < stats.limit_start:
            api.append((f" (in-flight limit ended at {stats.limit} of {stats.max_limit}), "
                        f"limit started at {stats.limit_start}, lowest {lowest}", ""))
        lines.append(api)

        written = [(label, where) for label, where in paths.items() if where]
        if written:
            lines.append([("written", "bold")])
            label_w = max(len(label) for label, _ in written)
            # A long path is printed whole, never cropped: no line here is wrapped or cut.
            lines.extend([(f"  {label.ljust(label_w)}  {where}", "")] for label, where in written)
        return lines

    def _headline(self, stats: RunStats, planned: int) -> Line:
        """`Summary: 50 shipments in 2.1 s, 23.8/s overall`; a run that found every row already done has no
        rate to give (it worked no row), so it says that instead."""
        if self._all_resumed(stats, planned):
            return [
                ("Summary: ", "bold"), (counted(planned, self.noun), "bold"),
                (", all already done (resumed from the journal)" if planned > 1 else ", already done (resumed from "
                 "the journal)", ""),
                (f", {format_elapsed(stats.elapsed())}", ""),
            ]
        return [
            ("Summary: ", "bold"),
            (counted(planned, self.noun), "bold"),
            (f" in {format_elapsed(stats.elapsed())}, ", ""),
            (f"{stats.throughput():.1f}/s", "bold magenta"),
            (" overall", ""),
        ]

    def _status_lines(self, stats: RunStats, planned: int) -> list[Line]:
        # Plain lines rather than a grid: a grid pads its last column, leaving trailing blanks in cron logs.
        styles = {"bought": "green", "failed": "red", "skipped": "yellow", "not done": "yellow", "refunded": "yellow"}
        rows = [(status, str(count), self._status_note(status, stats)) for status, count in self._status_counts()]
        if planned > self.rows:
            rows.append(("not done", str(planned - self.rows), ("", "")))
        if not rows:
            rows.append(("nothing to do", "", ("", "")))
        label_w = max(len(r[0]) for r in rows)
        count_w = max(len(r[1]) for r in rows)
        lines = []
        for status, count_text, note in rows:
            line: Line = [
                ("  ", ""), (status.ljust(label_w), styles.get(status, "")), ("  " + count_text.rjust(count_w), ""),
            ]
            if note[0]:
                line += [("  ", ""), note]
            lines.append(line)
        return lines

    def _status_note(self, status: str, stats: RunStats) -> tuple[str, str]:
        if status == "bought" and self._earlier:
            return self._earlier_note(), "dim"
        if status == "bought" and stats.resumed:
            # Not "no API call": a resumed row may still fetch its label file, or check it was not refunded.
            return f"{stats.resumed} resumed from the journal", "dim"
        if status == "refunded":
            return "voided since they were bought: not shipped, not counted as spend", "dim"
        if status == "skipped":
            return _kinds(self._skips), ""
        if status == "failed":
            return _kinds(self._errors), ""
        return "", ""

    def _cost_lines(self) -> list[Line]:
        """The cost table of what this run bought, then what it found bought before it (never spend)."""
        totals = self.totals()
        lines: list[Line] = []
        if totals["cost"]:
            rows: list[tuple[str, str, str, str, str]] = []  # carrier, service, count, amount, the row's style
            for (carrier, service, currency), amount in sorted(totals["cost"].items()):
                n = totals["bought_by"][(carrier, service, currency)]
                rows.append((carrier, service, str(n), format_money(amount, currency), ""))
            for currency, amount in sorted(totals["total"].items()):
                label = "total" if len(totals["total"]) == 1 else f"total {currency}"
                n = sum(k for key, k in totals["bought_by"].items() if key[2] == currency and key[:2] != _INSURANCE)
                rows.append((label, "", str(n), format_money(amount, currency), "bold"))
            from rich.cells import cell_len

            widths = [max(cell_len(row[i]) for row in rows) for i in range(4)]
            lines.append([("cost (bought by this run)" if self._earlier else "cost", "bold")])
            for carrier, service, count, price, style in rows:
                # Columns two spaces apart, the figures right-aligned: laid out here, so that a file and a terminal
                # get the same table and no width ever crops a carrier's name.
                lines.append([
                    ("  ", ""), (pad(carrier, widths[0]), style), ("  " + pad(service, widths[1]) + "  ", ""),
                    (pad(count, widths[2], right=True) + "  ", ""), (pad(price, widths[3], right=True), style),
                ])
        elif self._earlier:
            lines.append([("cost ", "bold"), ("nothing bought by this run, nothing spent", "")])
        if self._earlier:
            earlier = sum(self._earlier.values())
            found = self._money(self._earlier_total)
            lines.append([(
                f"already bought before this run: {earlier} label{'s' if earlier != 1 else ''}"
                + (f", {found}" if found else "")
                + " (not spent by this run)", "",
            )])
        if totals["unpriced"]:
            lines.append([(f"{totals['unpriced']} bought rows carried no price", "yellow")])
        return lines

    def render(
        self,
        console: Console | PlainConsole,
        *,
        stats: RunStats,
        quiet: bool = False,
        paths: Mapping[str, str] = _NO_PATHS,
    ) -> None:
        """Print the summary to `console` (the stderr console): the full form, or one line when `quiet`."""
        if quiet:
            console.print(self.one_line(stats), markup=False, highlight=False, soft_wrap=True, emoji=False)
            return
        lines = self.lines(stats, paths)
        if isinstance(console, PlainConsole):
            console.write_lines(["".join(text for text, _ in line) for line in lines])
            return
        from rich.console import Group
        from rich.text import Text

        console.print(Group(*(Text.assemble(*line) for line in lines)), highlight=False)
