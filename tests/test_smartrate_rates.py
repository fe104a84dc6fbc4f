"""`shipctl rates --deliver-within/--confidence`: each offer with SmartRate's days at the percentile (read back here
through the SDK from the shipment the quote made), the rule's pick, and the SmartRate calls counted."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import easypost

from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import TEST_KEY, invoke
from tests.manifests import row, write_manifest


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def newest_shipment(client: easypost.EasyPostClient) -> str:
    return str(client.shipment.all(page_size=1)["shipments"][0].id)


def test_one_off_quote_shows_each_offers_days_at_the_percentile(env: Sandbox, client: easypost.EasyPostClient) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "2lb",
                    "--deliver-within", "4", "--confidence", "95", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    offers = rows_of(result.stdout)
    assert env.api.smartrates.calls(account_for_key(TEST_KEY)) == 1
    smart = {(r["carrier"], r["service"]): r for r in client.shipment.get_smart_rates(newest_shipment(client))}
    for offer in offers:
        days = smart[(offer["carrier"], offer["service"])]["time_in_transit"]["percentile_95"]
        assert int(offer["transit_days"]) == days
        assert offer["on_time"] == ("true" if days <= 4 else "false")
    best = min((r for r in smart.values() if r["time_in_transit"]["percentile_95"] <= 4),
               key=lambda r: Decimal(str(r["rate"])))
    assert f"cheapest within 4 business days at 95%: {best['carrier']} {best['service']} {best['rate']:.2f}" \
        in result.stderr
    assert "SmartRate: 1 call made" in result.stderr


def test_one_off_quote_with_no_rate_in_time_exits_3(env: Sandbox) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "2lb",
                    "--deliver-within", "1", "--confidence", "99", "-o", "csv")
    assert result.exit_code == 3
    assert all(offer["on_time"] == "false" for offer in rows_of(result.stdout))
    assert "no rate arrives within 1 business day at 99%; offered: " in result.stderr


def test_bulk_quote_picks_by_each_rows_rule(env: Sandbox, client: easypost.EasyPostClient, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0), row(1, deliver_within=4), row(2, deliver_within=1)])
    result = invoke("rates", str(manifest), "--confidence", "99", "-o", "csv")
    assert result.exit_code == 3  # ORD-00002: nothing arrives in one day at p99
    assert "SmartRate: 2 of 3 rows have a delivery-time rule" in result.stderr
    assert env.api.smartrates.calls(account_for_key(TEST_KEY)) == 2
    records = rows_of(result.stdout)
    plain = [r for r in records if r["reference"] == "ORD-00000"]
    assert [r["pick"] for r in plain] == ["cheapest", "fastest"] and all(r["transit_days"] == "" for r in plain)
    timed = [r for r in records if r["reference"] == "ORD-00001"]
    assert [r["pick"] for r in timed] == ["deliver_within", "cheapest", "fastest"]
    shipments = client.shipment.all(page_size=10)["shipments"]
    ours = next(s for s in shipments if any(r.rate == timed[0]["rate"] and r.service == timed[0]["service"]
                                            for r in s.rates))
    smart = client.shipment.get_smart_rates(ours.id)
    best = min((r for r in smart if r["time_in_transit"]["percentile_99"] <= 4), key=lambda r: Decimal(str(r["rate"])))
    assert (timed[0]["carrier"], timed[0]["service"], timed[0]["rate"]) == (best["carrier"], best["service"],
                                                                            f"{best['rate']:.2f}")
    assert timed[0]["on_time"] == "true" and int(timed[0]["transit_days"]) == best["time_in_transit"]["percentile_99"]
    failed = [r for r in records if r["reference"] == "ORD-00002"]
    assert [r["error_code"] for r in failed] == ["DELIVERY_TIME_NOT_MET"]
