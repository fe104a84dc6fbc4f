"""A quote needs no name: `rates --to` takes the README's own JSON address; a label still needs a full one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
README_TO = '{"street1": "350 5th Ave", "city": "New York", "state": "NY", "zip": "10118"}'


@pytest.fixture
def env(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    return env


def test_the_readme_rates_example_works(env: Sandbox) -> None:
    result = invoke("rates", "--to", README_TO, "--from", str(EXAMPLES / "from.json"), "--weight", "12",
                    "--carriers", "USPS,UPS", "--services", "Priority,Ground", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    offers = ndjson(result.stdout)
    assert offers and {(o["carrier"], o["service"]) for o in offers} <= {("USPS", "Priority"), ("UPS", "Ground")}
    assert "error" not in result.stderr


def test_a_quote_origin_needs_no_name_either(env: Sandbox) -> None:
    origin = json.dumps({"zip": "94105", "city": "San Francisco"})
    result = invoke("rates", "--to", README_TO, "--from", origin, "--weight", "1", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr


def test_a_quote_still_needs_a_us_zip(env: Sandbox) -> None:
    result = invoke("rates", "--to", '{"street1": "350 5th Ave", "city": "New York"}', "--from", "94105",
                    "--weight", "1")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "error: --to: address (inline JSON): zip: required for US addresses\n"


def test_a_label_origin_still_needs_a_name(env: Sandbox, tmp_path: Path) -> None:
    for command in ("create", "validate"):
        result = invoke(command, str(EXAMPLES / "manifest.csv"), "--from", README_TO)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == "error: address (inline JSON): name: a name or a company is required\n"
    assert env.ledger() == []
