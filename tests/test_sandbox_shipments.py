"""The real EasyPost SDK against the sandbox: the full shipment flow, the ledger, and no double purchase."""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path

import easypost
import pytest
import requests
from easypost.errors import InvalidRequestError, NotFoundError, UnauthorizedError

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import INTL_ADDRESS, shipment_params


def _get(url: str) -> requests.Response:
    with requests.Session() as s:
        return s.get(url, timeout=10)


def test_create_returns_rates_shaped_like_easypost(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params("ref-create"))
    assert type(shp).__name__ == "Shipment"
    assert shp.id.startswith("shp_") and len(shp.id) == 4 + 32
    assert shp.mode == "test" and shp.reference == "ref-create" and shp.postage_label is None
    assert shp.to_address.id.startswith("adr_") and shp.parcel.id.startswith("prcl_")
    assert shp.options["label_format"] == "PNG" and shp.options["currency"] == "USD"
    services = {(r.carrier, r.service) for r in shp.rates}
    assert {("USPS", "GroundAdvantage"), ("USPS", "Priority"), ("USPS", "Express"), ("UPS", "Ground"),
            ("UPS", "2ndDayAir"), ("UPS", "NextDayAir"), ("FedEx", "FEDEX_GROUND"), ("FedEx", "FEDEX_2_DAY"),
            ("FedEx", "STANDARD_OVERNIGHT")} <= services
    for rate in shp.rates:
        assert rate.id.startswith("rate_") and rate.shipment_id == shp.id
        assert isinstance(rate.rate, str) and rate.rate.count(".") == 1 and rate.currency == "USD"
    by_price = sorted(shp.rates, key=lambda r: float(r.rate))
    days = [r.delivery_days for r in by_price]
    assert days == sorted(days, reverse=True), "delivery_days must fall as price rises"


def test_rates_are_deterministic_and_depend_on_weight_and_zone(client: easypost.EasyPostClient) -> None:
    a = client.shipment.create(**shipment_params())
    b = client.shipment.create(**shipment_params())
    assert [(r.service, r.rate) for r in a.rates] == [(r.service, r.rate) for r in b.rates]
    heavy = client.shipment.create(**shipment_params(parcel={"weight": 160}))
    far = shipment_params()
    far["to_address"] = {**far["to_address"], "city": "New York", "state": "NY", "zip": "10001"}
    far_shp = client.shipment.create(**far)

    def price(shp: easypost.EasyPostObject, service: str) -> float:
        return next(float(r.rate) for r in shp.rates if r.service == service)

    assert price(heavy, "GroundAdvantage") > price(a, "GroundAdvantage")
    assert price(far_shp, "GroundAdvantage") > price(a, "GroundAdvantage")
    assert far_shp.usps_zone > a.usps_zone


def test_international_destination_gets_international_services(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params(to_address=dict(INTL_ADDRESS)))
    services = {r.service for r in shp.rates}
    assert "PriorityMailInternational" in services and "INTERNATIONAL_PRIORITY" in services
    assert "GroundAdvantage" not in services
    days = [r.delivery_days for r in sorted(shp.rates, key=lambda r: float(r.rate))]
    assert days == sorted(days, reverse=True)


def test_full_flow_create_buy_label_retrieve_refund(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    shp = client.shipment.create(**shipment_params("order-1001"))
    rate = shp.lowest_rate(["USPS"])
    bought = client.shipment.buy(shp.id, rate=rate)
    assert bought.selected_rate.id == rate.id
    assert bought.tracking_code and bought.tracking_code.startswith("9400") and len(bought.tracking_code) == 22
    label = bought.postage_label
    assert type(label).__name__ == "PostageLabel" and label.id.startswith("pl_")
    assert label.label_url.startswith(sandbox.url + "/labels/pl_") and label.label_url.endswith(".png")
    assert label.label_pdf_url is None and label.label_zpl_url is None
    assert type(bought.tracker).__name__ == "Tracker" and bought.tracker.tracking_code == bought.tracking_code
    assert [f.type for f in bought.fees] == ["LabelFee", "PostageFee"]

    png = _get(label.label_url)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png.content[16:20], "big"), int.from_bytes(png.content[20:24], "big")
    assert (width, height) == (1200, 1800)  # 4x6 in at 300 dpi
    assert b"TrackingCode\x00" + bought.tracking_code.encode() in png.content
    assert b"REDONDO BEACH" in png.content.upper()

    pdf_shp = client.shipment.label(shp.id, file_format="PDF")
    pdf = _get(pdf_shp.postage_label.label_pdf_url)
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.") and pdf.content.rstrip().endswith(b"%%EOF")
    assert b"/Count 1" in pdf.content and bought.tracking_code.encode() in pdf.content

    zpl_shp = client.shipment.label(shp.id, file_format="ZPL")
    assert zpl_shp.postage_label.label_pdf_url == pdf_shp.postage_label.label_pdf_url
    zpl = _get(zpl_shp.postage_label.label_zpl_url).text
    assert zpl.startswith("^XA") and zpl.rstrip().endswith("^XZ") and bought.tracking_code in zpl

    by_id = client.shipment.retrieve(shp.id)
    by_ref = client.shipment.retrieve("order-1001")
    assert by_id.id == by_ref.id == shp.id
    assert by_ref.tracking_code == bought.tracking_code

    refunded = client.shipment.refund(shp.id)
    assert refunded.refund_status == "submitted"
    with pytest.raises(InvalidRequestError):
        client.shipment.refund(shp.id)

    assert [e["shipment_id"] for e in sandbox.ledger()] == [shp.id]
    entry = sandbox.ledger()[0]
    assert entry == {**entry, "reference": "order-1001", "rate_id": rate.id, "carrier": "USPS",
                     "service": rate.service, "amount": rate.rate}
    assert _get(sandbox.api_base + "/_sandbox/ledger").json() == {"ledger": sandbox.ledger()}


def test_png_label_is_a_valid_png(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    data = _get(bought.postage_label.label_url).content
    pos, idat, kinds = 8, b"", []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    raw = zlib.decompress(idat)
    assert len(raw) == 1800 * (1 + 1200 // 8)
    assert 0 < raw.count(0) < len(raw)  # some black pixels drawn


def test_buy_with_insurance_rerate_and_insure(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    rerated = client.shipment.regenerate_rates(shp.id)
    new_ids = {r.id for r in rerated["rates"]}
    assert new_ids and not new_ids & {r.id for r in shp.rates}
    stale = shp.rates[0]
    with pytest.raises(InvalidRequestError):
        client.shipment.buy(shp.id, rate=stale)
    fresh = client.shipment.retrieve(shp.id)
    bought = client.shipment.buy(shp.id, rate=fresh.lowest_rate(), insurance="100")
    assert bought.insurance == "100.00"
    assert any(f.type == "InsuranceFee" for f in bought.fees)
    rate = client.rate.retrieve(fresh.lowest_rate().id)
    assert rate.id == fresh.lowest_rate().id and type(rate).__name__ == "Rate"

    other = client.shipment.create(**shipment_params())
    other_bought = client.shipment.buy(other.id, rate=other.lowest_rate())
    insured = client.shipment.insure(other_bought.id, amount="50")
    assert insured.insurance == "50.00"


def test_list_shipments_is_paginated(client: easypost.EasyPostClient) -> None:
    ids = [client.shipment.create(**shipment_params(f"list-{i}")).id for i in range(5)]
    page = client.shipment.all(page_size=2)
    assert [s.id for s in page["shipments"]] == ids[::-1][:2] and page["has_more"] is True
    page2 = client.shipment.get_next_page(page, page_size=2)
    assert [s.id for s in page2["shipments"]] == ids[::-1][2:4]
    everything = client.shipment.all(page_size=100)
    assert not everything["has_more"]


def test_errors_map_to_sdk_exceptions(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidRequestError) as missing:
        client.shipment.create()
    assert missing.value.http_status == 422
    assert json.loads(missing.value.http_body)["error"]["code"] == "PARAMETER.REQUIRED"
    for bad in ({"parcel": {"weight": 0}}, {"parcel": {"weight": "heavy"}}, {"parcel": None},
                {"to_address": None}):
        with pytest.raises(InvalidRequestError):
            client.shipment.create(**{**shipment_params(), **bad})
    with pytest.raises(NotFoundError):
        client.shipment.retrieve("shp_" + "0" * 32)
    with pytest.raises(NotFoundError):
        client.shipment.retrieve("no-such-reference")
    with pytest.raises(NotFoundError):
        client.tracker.retrieve("trk_" + "0" * 32)
    shp = client.shipment.create(**shipment_params())
    with pytest.raises(InvalidRequestError):
        client.shipment.label(shp.id, file_format="PDF")  # not bought yet
    with pytest.raises(InvalidRequestError):
        client.shipment.refund(shp.id)

    nokey = easypost.EasyPostClient("", api_base=sandbox.api_base)
    try:
        with pytest.raises(UnauthorizedError) as unauth:
            nokey.shipment.create(**shipment_params())
        assert json.loads(unauth.value.http_body)["error"]["message"]
    finally:
        nokey._requests_session.close()


def test_double_buy_is_refused_and_never_ledgered_twice(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    shp = client.shipment.create(**shipment_params("once"))
    first = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    with pytest.raises(InvalidRequestError) as again:
        client.shipment.buy(shp.id, rate=shp.lowest_rate())
    body = json.loads(again.value.http_body)
    assert body["error"]["code"] == "SHIPMENT.POSTAGE.EXISTS"
    with pytest.raises(InvalidRequestError):
        client.shipment.buy(shp.id, rate=shp.rates[-1])
    assert client.shipment.retrieve(shp.id).tracking_code == first.tracking_code
    assert len(sandbox.ledger()) == 1


def test_concurrent_buys_of_one_shipment_make_one_purchase(sandbox: Sandbox) -> None:
    setup = easypost.EasyPostClient("EZTKsetup", api_base=sandbox.api_base)
    shp = setup.shipment.create(**shipment_params("race"))
    setup._requests_session.close()
    barrier = threading.Barrier(12)
    outcomes: list[str] = []
    lock = threading.Lock()

    def buy() -> None:
        c = easypost.EasyPostClient("EZTKsetup", api_base=sandbox.api_base)  # its own client, the same account
        try:
            barrier.wait()
            c.shipment.buy(shp.id, rate=shp.rates[0])
            result = "bought"
        except InvalidRequestError as exc:
            result = json.loads(exc.http_body)["error"]["code"]
        finally:
            c._requests_session.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=buy) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted(["bought"] + ["SHIPMENT.POSTAGE.EXISTS"] * 11)
    assert [e["shipment_id"] for e in sandbox.ledger()] == [shp.id]


def test_production_key_answers_in_production_mode(sandbox: Sandbox) -> None:
    prod = easypost.EasyPostClient("EZAKlive0000", api_base=sandbox.api_base)
    try:
        shp = prod.shipment.create(**shipment_params())
        assert shp.mode == "production"
        assert {r.mode for r in shp.rates} == {"production"} and shp.to_address.mode == "production"
    finally:
        prod._requests_session.close()


def test_state_file_persists_across_sandboxes_and_ledger_file(tmp_path: Path) -> None:
    state, ledger = tmp_path / "state.sqlite", tmp_path / "ledger.ndjson"
    with start_sandbox(state_path=state, ledger_path=ledger) as sb:
        c = easypost.EasyPostClient("EZTKa", api_base=sb.api_base)
        shp = c.shipment.create(**shipment_params("persist-1"))
        bought = c.shipment.buy(shp.id, rate=shp.lowest_rate())
        c._requests_session.close()
    with start_sandbox(state_path=state, ledger_path=ledger) as sb2:
        c = easypost.EasyPostClient("EZTKa", api_base=sb2.api_base)  # a new client of the same account
        try:
            again = c.shipment.retrieve("persist-1")
            assert again.tracking_code == bought.tracking_code
            assert again.postage_label.label_url.startswith(sb2.url)  # URLs follow the current server
            assert _get(again.postage_label.label_url).status_code == 200
            with pytest.raises(InvalidRequestError):
                c.shipment.buy(shp.id, rate=shp.lowest_rate())
            other = c.shipment.create(**shipment_params("persist-2"))
            second = c.shipment.buy(other.id, rate=other.lowest_rate())
            assert second.tracking_code != bought.tracking_code
            assert c.tracker.create(tracking_code=bought.tracking_code).shipment_id == shp.id
        finally:
            c._requests_session.close()
        assert [e["reference"] for e in sb2.ledger()] == ["persist-1", "persist-2"]
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [e["shipment_id"] for e in lines] == [shp.id, other.id]
