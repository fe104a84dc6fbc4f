"""`--carriers`/`--services` restrict every row, pinned or not: `create` refuses a pin outside them before buying,
`rates` quotes nothing for it, and both match names as the rate chooser does (no case, spaces or underscores)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from shipctl.carrier.shipments import Rate
from shipctl.sandbox import Sandbox
from shipctl.selection import NoMatchingRate, choose_rate
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest


def mixed_pins(path: Path) -> Path:
    """Rows 0 and 4 unpinned; row 1 pinned to FedEx (line 3), row 2 to UPS Ground, row 3 to USPS Priority (line 5)."""
    return write_manifest(path, [
        row(0), row(1, carrier="FedEx"), row(2, carrier="UPS", service="Ground"),
        row(3, carrier="USPS", service="Priority"), row(4),
    ])


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_create_refuses_pins_outside_carriers_before_buying(env: Sandbox, tmp_path: Path) -> None:
    manifest = mixed_pins(tmp_path / "m.csv")
    result = invoke("create", str(manifest), "--carriers", "UPS", "--fresh", "-o", "ndjson")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("row 3, column carrier: FedEx") and "--carriers UPS" in line for line in lines)
    assert any(line.startswith("row 5, column carrier: USPS") and "--carriers UPS" in line for line in lines)
    assert "row 4, column" not in result.stderr
    assert "nothing was bought" in result.stderr
    assert result.stdout == ""
    assert env.ledger() == []


def test_create_skip_invalid_buys_only_rows_inside_carriers(env: Sandbox, tmp_path: Path) -> None:
    manifest = mixed_pins(tmp_path / "m.csv")
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", str(manifest), "--carriers", "UPS", "--skip-invalid", "--rejects", str(rejects),
                    "-o", "ndjson", "--quiet")
    assert result.exit_code == 3, result.stderr
    assert sorted(r["reference"] for r in ndjson(result.stdout)) == ["ORD-00000", "ORD-00002", "ORD-00004"]
    ledger = env.ledger()
    assert sorted(e["reference"] for e in ledger) == ["ORD-00000", "ORD-00002", "ORD-00004"]
    assert {e["carrier"] for e in ledger} == {"UPS"}
    rejected = read_rejects(rejects)
    assert [(r["line"], r["reference"]) for r in rejected] == [("3", "ORD-00001"), ("5", "ORD-00003")]
    assert all("--carriers UPS" in r["error"] for r in rejected)


def test_create_refuses_pins_outside_services(env: Sandbox, tmp_path: Path) -> None:
    manifest = mixed_pins(tmp_path / "m.csv")
    result = invoke("create", str(manifest), "--services", "Ground,FEDEX_GROUND,GroundAdvantage", "-o", "ndjson")
    assert result.exit_code == 2, result.stderr
    assert "row 5, column service: Priority is outside --services Ground,FEDEX_GROUND,GroundAdvantage" in (
        result.stderr)
    assert "column carrier" not in result.stderr
    assert env.ledger() == []

    rejects = tmp_path / "rejects.csv"
    again = invoke("create", str(manifest), "--services", "Ground,FEDEX_GROUND,GroundAdvantage", "--skip-invalid",
                   "--rejects", str(rejects), "-o", "ndjson", "--quiet")
    assert again.exit_code == 3, again.stderr
    ledger = env.ledger()
    assert sorted(e["reference"] for e in ledger) == ["ORD-00000", "ORD-00001", "ORD-00002", "ORD-00004"]
    assert {e["service"] for e in ledger} <= {"Ground", "FEDEX_GROUND", "GroundAdvantage"}
    assert [r["reference"] for r in read_rejects(rejects)] == ["ORD-00003"]


def test_services_filter_matches_pins_as_the_rate_chooser_does(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [
        row(0, service="GroundAdvantage"), row(1, carrier="usps", service="ground_advantage"),
        row(2, service="Priority"), row(3),
    ])
    rejects = tmp_path / "rejects.csv"
    result = invoke("create", str(manifest), "--services", "Ground Advantage", "--skip-invalid",
                    "--rejects", str(rejects), "-o", "ndjson", "--quiet")
    assert result.exit_code == 3, result.stderr
    ledger = env.ledger()
    assert sorted(e["reference"] for e in ledger) == ["ORD-00000", "ORD-00001", "ORD-00003"]
    assert {e["service"] for e in ledger} == {"GroundAdvantage"}
    assert [r["reference"] for r in read_rejects(rejects)] == ["ORD-00002"]
    assert "row 4, column service: Priority is outside --services Ground Advantage" in result.stderr


def test_rates_and_create_agree_on_a_filter_no_row_can_meet(env: Sandbox, tmp_path: Path) -> None:
    manifest = mixed_pins(tmp_path / "m.csv")
    quoted = invoke("rates", str(manifest), "--carriers", "DHL", "-o", "ndjson", "--quiet")
    assert quoted.exit_code == 3, quoted.stderr
    out = {r["reference"]: r for r in ndjson(quoted.stdout)}
    assert len(out) == 5
    assert all(r["error_code"] == "NO_RATES" and r["carrier"] is None for r in out.values())
    # A pinned row says which pin the filter excludes, in the words `create` uses.
    assert out["ORD-00001"]["error_message"] == (
        "carrier: FedEx is outside --carriers DHL (the filter restricts pinned rows too)")
    assert "USPS is outside --carriers DHL" in out["ORD-00003"]["error_message"]
    assert out["ORD-00000"]["error_message"].startswith("no rate matches --carriers/--services")

    bought = invoke("create", str(manifest), "--carriers", "DHL", "--fresh", "-o", "ndjson")
    assert bought.exit_code == 2
    for line in (3, 4, 5):
        assert f"row {line}, column carrier:" in bought.stderr
    assert env.ledger() == []


def test_rates_services_filter_matches_pins_as_the_rate_chooser_does(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0, service="GroundAdvantage"), row(1)])
    result = invoke("rates", str(manifest), "--services", "Ground Advantage", "-o", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    out = ndjson(result.stdout)
    assert [(r["reference"], r["pick"], r["service"]) for r in out] == [
        ("ORD-00000", "cheapest", "GroundAdvantage"), ("ORD-00000", "fastest", "GroundAdvantage"),
        ("ORD-00001", "cheapest", "GroundAdvantage"), ("ORD-00001", "fastest", "GroundAdvantage"),
    ]


def _rate(carrier: str, service: str, amount: str) -> Rate:
    return Rate(id=f"rate_{carrier}_{service}", carrier=carrier, service=service, rate=amount, currency="USD",
                delivery_days=2, delivery_date=None)


def test_choose_rate_keeps_a_pinned_row_inside_the_filter() -> None:
    """The buy path's own guard, for a caller that skipped the validation pass (the CLI never does)."""
    offers = [_rate("FedEx", "FEDEX_GROUND", "5.00"), _rate("UPS", "Ground", "6.00")]
    with pytest.raises(NoMatchingRate, match="carrier FedEx and --carriers UPS"):
        choose_rate(offers, carrier="FedEx", carriers=["UPS"])
    with pytest.raises(NoMatchingRate, match="service FEDEX_GROUND and --services Ground"):
        choose_rate(offers, service="FEDEX_GROUND", services=["Ground"])
    assert choose_rate(offers, carrier="ups", services=["ground"]).carrier == "UPS"
    assert choose_rate(offers, service="Ground", carriers=["U P_S"]).service == "Ground"
    assert choose_rate(offers, carriers=["UPS"]).amount == Decimal("6.00")
