"""Money, one way everywhere: exact `Decimal` amounts, summed per currency, printed as `$7.80` or `7.80 EUR`.

The API sends rates as strings (`"7.43"`); the user gives limits as `250`, `$1,000.00`. Amounts are never
floats and never added across currencies. The prompt, the summary, `rates` and `--max-cost` all print through
`format_money` / `format_totals`, so one figure reads the same wherever it appears.

Whether spending (or voiding) needs a person's yes is decided here too, once for every command: only a key the
API confirms as a test key spends nothing real; an unknown mode is treated as production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

DEFAULT_CURRENCY = "USD"

Totals = dict[str, Decimal]
"""Amounts by currency code."""


def parse_amount(value: str | None) -> Decimal | None:
    """An API amount (`"7.43"`) as a Decimal; None when missing or not a finite number."""
    if value is None:
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
COMMA_HINT = "a comma in an amount only separates thousands (1,250.50): write cents after a point, as 49.95"


def without_thousands(text: str) -> str | None:
    """`1,250.50` as `1250.50`; text without a comma as it is; None for a comma that is not a thousands separator
    (`49,95`, `4,00`, `1,5,0`): a decimal comma read as a separator would make the amount 100 times larger."""
    if "," not in text:
        return text
    text = text.strip()
    return text.replace(",", "") if _GROUPED.fullmatch(text) else None


def misplaced_comma(text: str) -> bool:
    """Whether a comma is what is wrong with `text`: it is not a thousands separator, and without it the rest is a
    number (`49,95`, `1.234,56`), so `COMMA_HINT` is the advice. `€1,000` is wrong for its `€`, not its comma:
    the hint would send a person fixing what is right."""
    return "," in text and without_thousands(text) is None and parse_amount(text.replace(",", "")) is not None


def parse_limit(value: str) -> Decimal | None:
    """A limit a person typed (`250`, `250.00`, `$1,000`); None when it is not an amount (`4,00` neither)."""
    text = without_thousands(value.replace("$", ""))
    return None if text is None else parse_amount(text)


def currency_of(code: str | None) -> str:
    """The currency code as totals are keyed: upper case, USD when the API left it out."""
    return (code or "").strip().upper() or DEFAULT_CURRENCY


def add(totals: Totals, currency: str, amount: Decimal) -> None:
    totals[currency] = totals.get(currency, Decimal(0)) + amount


def sum_by_currency(amounts: Iterable[tuple[str, Decimal]]) -> Totals:
    totals: Totals = {}
    for currency, amount in amounts:
        add(totals, currency, amount)
    return totals


def format_money(amount: Decimal, currency: str) -> str:
    """`$7,412.30` for USD; `1,234.50 EUR` for anything else (a bare `$` would be ambiguous for CAD, AUD…)."""
    figure = f"{amount:,.2f}"
    if currency == DEFAULT_CURRENCY:
        return "-$" + figure[1:] if figure.startswith("-") else "$" + figure
    return f"{figure} {currency}"


def format_totals(totals: Mapping[str, Decimal]) -> str:
    """`$7.80 + 3.00 EUR`: USD first, then the other currencies by code; empty for no money."""
    ordered = sorted(totals.items(), key=lambda item: (item[0] != DEFAULT_CURRENCY, item[0]))
    return " + ".join(format_money(amount, currency) for currency, amount in ordered)


def needs_approval(mode: str | None) -> bool:
    """True unless the API (or the key) says test mode: real money, or money nobody can rule out."""
    return mode != "test"
