"""One figure, one spelling: the prompt, the dry run, `rates` and the summary print the same money the same way."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import cast

import pytest

from shipctl.money import format_money, format_totals, parse_amount, parse_limit
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke
from tests.manifests import row, write_manifest

MONEY = r"\$[0-9,]+\.[0-9]{2}"


def test_every_place_spells_one_estimate_alike(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(12)])

    quoted = invoke("rates", str(manifest), "-o", "ndjson")
    rates_line = re.search(rf"cheapest\s+12 rows\s+({MONEY})", quoted.stderr)
    dry = invoke("create", str(manifest), "--dry-run", "-o", "ndjson", "--journal", str(tmp_path / "dry.db"))
    dry_line = re.search(rf"dry run: 12 labels would cost ({MONEY}); nothing was bought", dry.stderr)

    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    refused = invoke("create", str(manifest), "-o", "ndjson")  # no terminal, no --yes: asked, refused
    prompt_line = re.search(rf"production mode: 12 labels to buy, estimated total ({MONEY})", refused.stderr)
    refusal = re.search(rf"refusing to buy 12 labels \(({MONEY})\) without confirmation", refused.stderr)
    bought = invoke("create", str(manifest), "-o", "ndjson", "--yes")
    summary_line = re.search(rf"^\s+total\s+12\s+({MONEY})$", bought.stderr, re.MULTILINE)

    found = [rates_line, dry_line, prompt_line, refusal, summary_line]
    assert all(found), (quoted.stderr, dry.stderr, refused.stderr, bought.stderr)
    assert len({m.group(1) for m in found if m}) == 1
    assert bought.exit_code == 0 and refused.exit_code == 2


def test_one_label_is_one_label_and_a_piped_manifest_at_a_terminal_is_told_why_no_question_came(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipctl.cli.host import CliHost
    from shipctl.cli.options import RunOptions
    from shipctl.cli.terminal import Terminal
    from shipctl.jobs.host import Spend

    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    refused = invoke("create", str(manifest), "-o", "ndjson")
    assert "production mode: 1 label to buy" in refused.stderr
    assert "refusing to buy 1 label (" in refused.stderr and "controlling terminal" not in refused.stderr

    class AtATerminal(Terminal):  # stderr on a terminal, stdin a pipe (the manifest), no controlling terminal
        @property
        def stderr_is_terminal(self) -> bool:
            return True

    err = io.StringIO()
    term = AtATerminal(stdin=io.StringIO("orders"), stderr=err, interactive=False)
    term.stdin_bytes("the manifest")
    host = CliHost(cast(RunOptions, None), noun="shipments", term=term)  # a question needs no run options
    assert host.approve(Spend("buy", 2, {}, mode="production")) is False
    assert ("refusing to buy 2 labels without confirmation (stdin holds the manifest and there is no controlling "
            "terminal to ask on); rerun with --yes to buy") in err.getvalue()


def test_money_module_spellings() -> None:
    assert format_money(parse_amount(" 7412.3 ") or 0, "USD") == "$7,412.30"
    assert format_money(parse_amount("-2") or 0, "USD") == "-$2.00"
    assert format_money(parse_amount("1234.5") or 0, "EUR") == "1,234.50 EUR"
    assert parse_amount("NaN") is None and parse_amount("seven") is None and parse_amount(None) is None
    totals = {"EUR": parse_amount("3") or 0, "USD": parse_amount("7.8") or 0, "CAD": parse_amount("1") or 0}
    assert format_totals(totals) == "$7.80 + 1.00 CAD + 3.00 EUR"
    assert parse_limit("$1,000") == 1000 and parse_limit("ten") is None


@pytest.mark.parametrize("typed", ["49,95", "4,00", "1,5,0", "12,5", "1.234,56", "$1,2,3", "1,0000"])
def test_a_comma_that_is_not_a_thousands_separator_is_refused_not_read_as_one(typed: str) -> None:
    """`49,95` (a decimal comma) stripped of its comma was $4,995 of insurance; `--max-cost 4,00` a $400 limit."""
    from shipctl.manifest.normalize import money

    assert parse_limit(typed) is None
    with pytest.raises(ValueError, match="only separates thousands"):
        money(typed)


@pytest.mark.parametrize(("typed", "amount"), [("1,250.50", "1250.50"), ("$12,345", "12345"), ("1,000,000", "1000000"),
                                                ("49.95", "49.95"), ("USD 1,234.5", "1234.5")])
def test_thousands_separators_are_still_read(typed: str, amount: str) -> None:
    from decimal import Decimal

    from shipctl.manifest.normalize import money

    assert money(typed) == Decimal(amount)
    if not typed.startswith("USD"):
        assert parse_limit(typed) == Decimal(amount)


def test_max_cost_with_a_decimal_comma_is_refused_before_anything(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    refused = invoke("create", str(manifest), "--max-cost", "4,00")
    assert refused.exit_code == 2 and "only separates thousands" in refused.stderr
    assert env.ledger() == []


@pytest.mark.parametrize(("typed", "amount"), [("1,000$", "1000"), ("1,250.50 $", "1250.50"), ("100$", "100"),
                                                ("5 US$", "5")])
def test_a_dollar_sign_after_the_amount_is_read_as_one_before_it(typed: str, amount: str) -> None:
    """`$1,000` was an amount and `1,000$` told to write cents after a point: the comma was never the problem."""
    from decimal import Decimal

    from shipctl.manifest.normalize import money

    assert money(typed) == Decimal(amount)
    if "US$" not in typed:
        assert parse_limit(typed) == Decimal(amount)


@pytest.mark.parametrize("typed", ["€1,000", "1,000 EUR", "1,000€", "USD 1,0x0"])
def test_an_amount_wrong_for_something_else_than_its_comma_gets_no_comma_advice(
    env: Sandbox, tmp_path: Path, typed: str
) -> None:
    from shipctl.manifest.normalize import money

    with pytest.raises(ValueError, match="is not an amount") as refused:
        money(typed)
    assert "separates thousands" not in str(refused.value)

    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = invoke("create", str(manifest), "--max-cost", typed)
    assert result.exit_code == 2, result.stderr
    assert f"--max-cost must be an amount like 250 or 250.00, not {typed!r}" in result.stderr
    assert "separates thousands" not in result.stderr
    assert env.ledger() == []


def test_a_manifest_amount_with_a_trailing_dollar_sign_is_valid(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, insurance="1,000$"), row(1, insurance="49,95$")])
    result = invoke("validate", str(manifest))
    assert result.exit_code == 2, result.stderr  # the second row only: its comma is a decimal comma
    assert "row 2" not in result.stderr
    assert "row 3, column insurance: '49,95$': a comma in an amount only separates thousands" in result.stderr
