"""The run summary: its totals are exactly the per-row results, its one-liner, and where things went."""

from __future__ import annotations

import io
import re
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from shipctl.cli.plain import PlainConsole
from shipctl.cli.summary import Summary, format_elapsed
from shipctl.cli.terminal import Terminal
from shipctl.engine.stats import RunStats
from shipctl.money import format_money
from shipctl.money import parse_amount as parse_money
from shipctl.results import ResultRecord

WIDTH = 120


def console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=False, width=WIDTH)


def finished(total: int | None, done: int, elapsed: float, **counters: int) -> RunStats:
    stats = RunStats(total=total, started_at=1000.0, finished_at=1000.0 + elapsed)
    stats.done = done
    for name, value in counters.items():
        setattr(stats, name, value)
    return stats


def bought(
    ref: str, rate: str, carrier: str = "USPS", service: str = "Priority", currency: str | None = "USD"
) -> ResultRecord:
    return ResultRecord(ref, "bought", carrier=carrier, service=service, rate=rate, currency=currency)


# --- totals equal the sum of the per-row results --------------------------------------------------------

rates = st.decimals(
    min_value=0, max_value=Decimal("99999.99"), places=2, allow_nan=False, allow_infinity=False
)
records = st.builds(
    ResultRecord,
    reference=st.text(min_size=1, max_size=8),
    status=st.sampled_from(["bought", "failed", "skipped", "planned"]),
    carrier=st.sampled_from([None, "USPS", "UPS", "FedEx", "[bold]DHL"]),
    service=st.sampled_from([None, "Priority", "Ground", "Express"]),
    rate=st.one_of(st.none(), rates.map(str), st.just("n/a")),
    currency=st.sampled_from([None, "USD", "usd", "EUR", "CAD"]),
    error_code=st.sampled_from([None, "ADDRESS.VERIFY.FAILURE", "PAYMENT.REQUIRED"]),
)


@given(st.lists(records, max_size=60))
def test_totals_equal_the_sum_of_per_row_results(rows: list[ResultRecord]) -> None:
    summary = Summary()
    for row in rows:
        summary.add(row)
    totals = summary.totals()

    assert totals["counts"] == dict(Counter(row.status for row in rows))

    # An independent oracle: sum the priced bought rows straight from the records.
    expected: dict[tuple[str, str, str], Decimal] = {}
    unpriced = 0
    for row in rows:
        if row.status != "bought":
            continue
        if row.rate is None or row.rate == "n/a":
            unpriced += 1
            continue
        key = (row.carrier or "unknown", row.service or "unknown", (row.currency or "USD").upper())
        expected[key] = expected.get(key, Decimal(0)) + Decimal(row.rate)
    assert totals["cost"] == expected
    assert totals["unpriced"] == unpriced
    assert sum(totals["bought_by"].values()) + unpriced == totals["counts"].get("bought", 0)
    for currency, amount in totals["total"].items():
        assert amount == sum((a for k, a in expected.items() if k[2] == currency), Decimal(0))
        assert isinstance(amount, Decimal)

    # Rendering never fails on arbitrary rows (markup-like names are printed literally).
    buffer = io.StringIO()
    stats = finished(len(rows), len(rows), 3.0)
    summary.render(console(buffer), stats=stats)
    summary.render(console(buffer), stats=stats, quiet=True)
    if any(r.status == "bought" and r.carrier == "[bold]DHL" and r.rate not in (None, "n/a") for r in rows):
        assert "[bold]DHL" in buffer.getvalue()


records_with_text = st.builds(
    ResultRecord,
    reference=st.text(min_size=1, max_size=8),
    status=st.sampled_from(["bought", "failed", "skipped", "refunded"]),
    carrier=st.sampled_from([None, "USPS", "[bold]DHL", "順豊", "Fed\rEx", "Cafe\u0301"]),
    service=st.sampled_from([None, "Priority", "GroundAdvantage"]),
    rate=st.one_of(st.none(), rates.map(str)),
    currency=st.sampled_from([None, "USD", "EUR"]),
    error_code=st.sampled_from([None, "A", "B", "C", "D", "E", "F"]),
    purchase=st.sampled_from([None, "new", "resumed", "found"]),
    insurance_fee=st.sampled_from([None, "1.00"]),
)


@given(st.lists(records_with_text, max_size=30), st.integers(0, 3), st.integers(0, 5))
def test_the_plain_summary_is_what_rich_writes_to_a_file(rows: list[ResultRecord], resumed: int,
                                                          rate_limited: int) -> None:
    """Into a pipe or a file the summary is written without rich (`PlainConsole`): the same characters rich writes
    there, styles dropped, its control characters stripped, wide characters aligned."""
    summary = Summary()
    for row in rows:
        summary.add(row)
    stats = finished(len(rows) + 2, len(rows), 3.0, resumed=resumed, rate_limited=rate_limited)
    paths = {"journal": "/tmp/orders.csv.journal.db", "results": "", "labels": "/srv/" + "deep/" * 30}
    drawn = io.StringIO()  # as the terminal object makes its stderr console: soft-wrapped, never cut
    summary.render(Console(file=drawn, force_terminal=False, width=WIDTH, soft_wrap=True, highlight=False,
                           emoji=False), stats=stats, paths=paths)
    written = io.StringIO()
    summary.render(PlainConsole(lambda: written, lambda: console(io.StringIO()), stderr=True), stats=stats,
                   paths=paths)
    assert written.getvalue() == drawn.getvalue()
    assert "\r" not in written.getvalue()


def test_the_terminal_writes_stderr_plain_unless_rich_would_colour_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    term = Terminal(stdout=io.StringIO(), stderr=io.StringIO())
    assert isinstance(term.err, PlainConsole)
    term.warn("row 3\x07 of 5")
    term.info("a\tb")
    assert term.stderr.getvalue() == "warning: row 3 of 5\na       b\n"  # type: ignore[attr-defined]
    drawn = io.StringIO()  # what rich writes there: the bell stripped, the tab expanded
    Console(file=drawn, force_terminal=False, soft_wrap=True).print("warning: row 3\x07 of 5", markup=False)
    Console(file=drawn, force_terminal=False, soft_wrap=True).print("a\tb", markup=False)
    assert drawn.getvalue() == term.stderr.getvalue()  # type: ignore[attr-defined]
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not isinstance(term.err, PlainConsole)
    term.warn("again")
    assert "\x1b[33mwarning: again" in term.stderr.getvalue()  # type: ignore[attr-defined]
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert isinstance(term.err, PlainConsole)


@pytest.mark.parametrize("markup", [None, True, False])
@given(st.lists(st.sampled_from(["[bold]", "[/]", "[", "]", "x", " ", "[red]a[/red]", "\\[", "\t", "\x07"]),
                max_size=8).map("".join))
def test_plain_text_is_what_rich_writes_with_or_without_markup(markup: bool | None, text: str) -> None:
    """Markup rich would read (its tags stripped) is written as rich writes it; text marked as no markup keeps
    its brackets."""
    options = {} if markup is None else {"markup": markup}
    drawn = io.StringIO()
    try:
        Console(file=drawn, force_terminal=False, soft_wrap=True, highlight=False, emoji=False).print(text, **options)
    except Exception as exc:  # markup rich refuses ("[/]" with no tag open) is refused alike
        with pytest.raises(type(exc)):
            PlainConsole(io.StringIO, lambda: console(io.StringIO()), stderr=True).print(text, **options)
        return
    written = io.StringIO()
    PlainConsole(lambda: written, lambda: console(written), stderr=True).print(text, **options)
    assert written.getvalue() == drawn.getvalue()


def test_money_is_decimal_exact() -> None:
    summary = Summary()
    for i in range(10):
        summary.add(bought(f"r{i}", "0.10"))
    assert summary.totals()["total"] == {"USD": Decimal("1.00")}  # 0.1 × 10 == 1 exactly; not so with floats


# --- the one-liner --------------------------------------------------------------------------------------


def test_quiet_is_one_line() -> None:
    summary = Summary(noun="shipments")
    for i in range(997):
        summary.add(bought(f"r{i}", "7.43"))
    summary.add(bought("r997", "4.59", carrier="UPS", service="Ground"))
    summary.add(ResultRecord("bad1", "failed", error_code="ADDRESS.VERIFY.FAILURE"))
    summary.add(ResultRecord("bad2", "failed", error_code="ADDRESS.VERIFY.FAILURE"))
    stats = finished(1000, 1000, 41.2, retries=5, rate_limited=1)

    buffer = io.StringIO()
    summary.render(console(buffer), stats=stats, quiet=True, paths={"results": "out.ndjson"})
    assert buffer.getvalue() == "1000 shipments: 998 bought, 2 failed, $7,412.30, 41.2 s (24.3/s)\n"


def test_one_liner_counts_rows_not_reached_and_mixed_currencies() -> None:
    summary = Summary(noun="labels")
    summary.add(bought("a", "10.00"))
    summary.add(bought("b", "30", carrier="DHL", service="Express", currency="EUR"))
    summary.add(ResultRecord("c", "skipped"))
    stats = finished(10, 3, 90.0)
    assert summary.one_line(stats) == (
        "10 labels: 2 bought, 1 skipped, 7 not done, $10.00 + 30.00 EUR, 0:01:30 (0.0/s)"
    )


def test_one_liner_with_nothing_to_do() -> None:
    assert Summary().one_line(finished(0, 0, 0.2)) == "0 shipments: nothing done, 0.2 s (0.0/s)"


# --- the full summary -----------------------------------------------------------------------------------


def test_full_summary_shows_counts_costs_speed_api_and_paths() -> None:
    summary = Summary()
    summary.add(bought("a", "7.43"))
    summary.add(bought("b", "7.43"))
    summary.add(bought("c", "12.10", carrier="UPS", service="Ground"))
    summary.add(
        ResultRecord("d", "failed", error_code="ADDRESS.VERIFY.FAILURE", error_message="no such street")
    )
    stats = finished(4, 4, 2.0, resumed=1, retries=7, rate_limited=2, limit=8)
    paths = {
        "results": "out/results.ndjson",
        "failed rows": "out/failed.csv",
        "labels": "out/labels/",
        "journal": "/home/clerk/.local/state/shipctl/manifest.sqlite",
        "unused": "",
    }
    buffer = io.StringIO()
    summary.render(console(buffer), stats=stats, paths=paths)
    out = buffer.getvalue()

    assert "4 shipments in 2.0 s" in out
    assert "1.5/s overall" in out  # (4 done - 1 resumed) / 2 s
    assert re.search(r"bought +3 +1 resumed from the journal", out)
    assert re.search(r"failed +1 +ADDRESS.VERIFY.FAILURE ×1", out)
    assert re.search(r"USPS +Priority +2 +\$14\.86", out)
    assert re.search(r"UPS +Ground +1 +\$12\.10", out)
    assert re.search(r"total +3 +\$26\.96", out)
    assert "retries 7, 429 answers 2 (in-flight limit ended at 8 of 16)" in out
    for label, where in paths.items():
        if where:
            assert label in out and where in out
    assert "unused" not in out
    assert "\x1b[" not in out  # a cron log gets plain text


def test_unpriced_rows_are_counted_not_costed() -> None:
    summary = Summary()
    summary.add(bought("a", "oops"))
    summary.add(ResultRecord("b", "bought"))
    assert summary.totals()["unpriced"] == 2
    assert summary.totals()["cost"] == {}
    buffer = io.StringIO()
    summary.render(console(buffer), stats=finished(2, 2, 1.0))
    assert "2 bought rows carried no price" in buffer.getvalue()


def test_formatting_helpers() -> None:
    assert format_money(Decimal("7412.3"), "USD") == "$7,412.30"
    assert format_money(Decimal("-5"), "USD") == "-$5.00"
    assert format_money(Decimal("1234.5"), "EUR") == "1,234.50 EUR"
    assert parse_money(" 7.43 ") == Decimal("7.43")
    assert parse_money("NaN") is None and parse_money("Infinity") is None and parse_money("") is None
    assert format_elapsed(41.25) == "41.2 s"
    assert format_elapsed(3723) == "1:02:03"


def test_the_cost_table_aligns_by_screen_columns() -> None:
    """Wide characters take two columns and combining marks none, as rich measures them: every row of the cost
    table ends in the same column."""
    from rich.cells import cell_len

    summary = Summary()
    for i, carrier in enumerate(["USPS", "Cafe\u0301", "順豊"]):
        summary.add(bought(f"r{i}", "7.80", carrier=carrier))
    written = io.StringIO()
    summary.render(PlainConsole(lambda: written, lambda: console(io.StringIO()), stderr=True),
                   stats=finished(3, 3, 1.0))
    lines = written.getvalue().splitlines()
    table = lines[lines.index("cost") + 1:][:4]
    assert len({cell_len(line) for line in table}) == 1, table
