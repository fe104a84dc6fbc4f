"""Shipment options, return labels, empty references and insurance through the real SDK over HTTP: what is quoted,
what is bought and charged, and what the label files show."""

from __future__ import annotations

import datetime
import io
import re
import zlib
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import easypost
import pypdf
import pytest
import requests
from easypost.errors import InvalidRequestError

from shipctl.sandbox import Sandbox, model
from shipctl.sandbox.examples import INTL_ADDRESS, shipment_params
from tests.test_sandbox_forms import CUSTOMS, pdf_pages


def get(url: str) -> requests.Response:
    with requests.Session() as s:
        response = s.get(url, timeout=10)
    assert response.status_code == 200
    return response


def prices(shp: Any) -> dict[tuple[str, str], Decimal]:
    return {(r.carrier, r.service): Decimal(r.rate) for r in shp.rates}


def today() -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date()


def zpl_fields(text: str) -> list[str]:
    return re.findall(r"\^FD(.*?)\^FS", text)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def label_files(client: easypost.EasyPostClient, shp_id: str) -> dict[str, bytes]:
    """The bought label as PNG, PDF and ZPL, fetched from the sandbox."""
    files = {"PNG": get(client.shipment.retrieve(shp_id).postage_label.label_url).content}
    for fmt, key in (("PDF", "label_pdf_url"), ("ZPL", "label_zpl_url")):
        files[fmt] = get(getattr(client.shipment.label(shp_id, file_format=fmt).postage_label, key)).content
    return files


# --------------------------------------------------------------------------- delivery_confirmation

# What the surcharges must be (the sandbox's table, restated so a changed table fails here).
USPS_SIGNATURE, USPS_ADULT, UPS_SIGNATURE, FEDEX_SIGNATURE = (Decimal("3.65"), Decimal("8.40"), Decimal("6.70"),
                                                              Decimal("7.90"))


def test_a_signature_adds_each_carriers_surcharge_to_every_rate(client: easypost.EasyPostClient) -> None:
    plain = client.shipment.create(**shipment_params())
    signed = client.shipment.create(**shipment_params(options={"delivery_confirmation": "SIGNATURE"}))
    adult = client.shipment.create(**shipment_params(options={"delivery_confirmation": "ADULT_SIGNATURE"}))
    none = client.shipment.create(**shipment_params(options={"delivery_confirmation": "NO_SIGNATURE"}))
    base = prices(plain)
    extra = {"USPS": USPS_SIGNATURE, "UPS": UPS_SIGNATURE, "FedEx": FEDEX_SIGNATURE}
    assert prices(signed) == {key: price + extra[key[0]] for key, price in base.items()}
    assert prices(adult)[("USPS", "Priority")] == base[("USPS", "Priority")] + USPS_ADULT
    assert prices(none) == base
    assert signed.options["delivery_confirmation"] == "SIGNATURE" and signed.messages == []
    for rate in signed.rates:  # the other prices move with the rate
        old = next(r for r in plain.rates if (r.carrier, r.service) == (rate.carrier, rate.service))
        assert Decimal(rate.retail_rate) - Decimal(old.retail_rate) == extra[rate.carrier]
        assert Decimal(rate.list_rate) - Decimal(old.list_rate) == extra[rate.carrier]

    # Rerating quotes the same signature again.
    rerated = client.shipment.regenerate_rates(signed.id)["rates"]
    assert {(r.carrier, r.service): Decimal(r.rate) for r in rerated} == prices(signed)
    # The stateless rates too.
    stateless = client.beta_rate.retrieve_stateless_rates(**shipment_params(
        options={"delivery_confirmation": "SIGNATURE"}))
    assert {(r.carrier, r.service): Decimal(r.rate) for r in stateless} == prices(signed)


def test_a_signature_only_some_carriers_offer_leaves_the_others_out(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params(options={"delivery_confirmation": "INDIRECT_SIGNATURE"}))
    assert shp.rates and {r.carrier for r in shp.rates} == {"FedEx"}
    assert sorted(m["carrier"] for m in shp.messages) == ["UPS", "USPS"]
    for message in shp.messages:
        assert message["type"] == "rate_error" and "INDIRECT_SIGNATURE" in message["message"]
        assert message["carrier_account_id"].startswith("ca_")


def test_the_signature_is_what_is_bought_and_ledgered(client: easypost.EasyPostClient, sandbox: Sandbox) -> None:
    plain = client.shipment.create(**shipment_params())
    shp = client.shipment.create(**shipment_params("sig-1", options={"delivery_confirmation": "ADULT_SIGNATURE"}))
    rate = next(r for r in shp.rates if (r.carrier, r.service) == ("USPS", "GroundAdvantage"))
    bought = client.shipment.buy(shp.id, rate=rate)
    expected = prices(plain)[("USPS", "GroundAdvantage")] + USPS_ADULT
    assert Decimal(bought.selected_rate.rate) == expected
    postage = next(f for f in bought.fees if f.type == "PostageFee")
    assert Decimal(postage.amount) == expected
    assert Decimal(sandbox.ledger()[-1]["amount"]) == expected


def test_an_unknown_delivery_confirmation_is_refused(client: easypost.EasyPostClient) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        client.shipment.create(**shipment_params("bad-sig", options={"delivery_confirmation": "SIGNATURE_PLEASE"}))
    error = refused.value
    assert error.http_status == 422 and error.code == "SHIPMENT.INVALID_PARAMS"
    assert "SIGNATURE_PLEASE" in error.message and "ADULT_SIGNATURE_RESTRICTED" in error.message
    assert error.errors[0]["field"] == "options.delivery_confirmation"
    assert client.shipment.all()["shipments"] == []  # nothing was made


# --------------------------------------------------------------------------- label_date

def test_label_date_is_the_bought_labels_date(client: easypost.EasyPostClient) -> None:
    day = today() + datetime.timedelta(days=3)
    shp = client.shipment.create(**shipment_params(options={"label_date": day.isoformat()}))
    assert shp.options["label_date"] == day.isoformat()
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.postage_label.label_date == f"{day.isoformat()}T00:00:00Z"

    # A date and time with an offset is shown in UTC, as EasyPost stores every date.
    later = client.shipment.create(**shipment_params(options={"label_date": f"{day.isoformat()}T18:30:00-07:00"}))
    bought = client.shipment.buy(later.id, rate=later.lowest_rate())
    assert bought.postage_label.label_date == f"{(day + datetime.timedelta(days=1)).isoformat()}T01:30:00Z"

    # Today is not the past.
    now = client.shipment.create(**shipment_params(options={"label_date": today().isoformat()}))
    assert client.shipment.buy(now.id, rate=now.lowest_rate()).postage_label.label_date.startswith(
        today().isoformat())


def test_without_label_date_the_label_is_dated_when_bought(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.postage_label.label_date == bought.postage_label.created_at


@pytest.mark.parametrize("value, words", [
    ((datetime.date(2020, 1, 2)).isoformat(), "in the past"),
    ("next tuesday", "not an ISO 8601 date"),
])
def test_a_past_or_unreadable_label_date_is_refused(client: easypost.EasyPostClient, value: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        client.shipment.create(**shipment_params(options={"label_date": value}))
    assert refused.value.http_status == 422 and refused.value.code == "SHIPMENT.INVALID_PARAMS"
    assert words in refused.value.message and value in refused.value.message
    assert refused.value.errors[0]["field"] == "options.label_date"


def test_the_past_is_the_day_the_shipper_wrote(client: easypost.EasyPostClient) -> None:
    yesterday = (today() - datetime.timedelta(days=1)).isoformat()
    with pytest.raises(InvalidRequestError, match="in the past"):
        client.shipment.create(**shipment_params(options={"label_date": yesterday}))
    # Late yesterday west of UTC is today in UTC, but the shipper dated it yesterday.
    with pytest.raises(InvalidRequestError, match="in the past"):
        client.shipment.create(**shipment_params(options={"label_date": f"{yesterday}T23:30:00-12:00"}))
    # Early today east of UTC is yesterday in UTC, but the shipper dated it today.
    early = f"{today().isoformat()}T00:30:00+14:00"
    shp = client.shipment.create(**shipment_params(options={"label_date": early}))
    assert client.shipment.buy(shp.id, rate=shp.lowest_rate()).postage_label.label_date == f"{yesterday}T10:30:00Z"


# --------------------------------------------------------------------------- print_custom and other options

def _black_pixels(png: bytes, top: int, bottom: int) -> int:
    """Black pixels in rows top..bottom, inside the label's border (the sandbox's 1-bit PNG: 0 bits are black)."""
    pos, idat = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 1200 // 8
    rows = [raw[y * stride + 1:(y + 1) * stride] for y in range(top, bottom)]
    return sum(8 - bin(byte).count("1") for row in rows for byte in row[5:145])  # x 40..1160


def test_print_custom_is_echoed_and_drawn_on_every_label_format(client: easypost.EasyPostClient) -> None:
    custom = {"print_custom_1": "Order 1001", "print_custom_2": "Gift wrap", "print_custom_3": "Dept (B) 7"}
    shp = client.shipment.create(**shipment_params("custom-1", options=dict(custom)))
    assert {k: shp.options[k] for k in custom} == custom
    client.shipment.buy(shp.id, rate=shp.lowest_rate())
    files = label_files(client, shp.id)

    fields = zpl_fields(files["ZPL"].decode())
    assert all(text in fields for text in custom.values())
    text = pdf_text(files["PDF"])
    assert all(value in text for value in custom.values()) and "REF custom-1" in text
    png = files["PNG"]
    for i, value in enumerate(custom.values(), start=1):
        assert f"PrintCustom{i}\x00{value}".encode() in png

    plain = client.shipment.create(**shipment_params("custom-0"))
    client.shipment.buy(plain.id, rate=plain.lowest_rate())
    plain_files = label_files(client, plain.id)
    assert not any(value in zpl_fields(plain_files["ZPL"].decode()) for value in custom.values())
    assert _black_pixels(plain_files["PNG"], 1540, 1630) == 0  # the custom lines' band is empty without them
    assert _black_pixels(png, 1540, 1630) > 0


def test_other_options_pass_through_unchanged(client: easypost.EasyPostClient) -> None:
    given = {"invoice_number": "123", "hazmat": None, "some_future_option": {"nested": [1, 2]}, "label_format": "ZPL"}
    shp = client.shipment.create(**shipment_params(options=dict(given)))
    options = shp.to_dict()["options"]
    assert {k: options[k] for k in given} == given
    assert options["currency"] == "USD" and options["date_advance"] == 0 and options["payment"] == {"type": "SENDER"}
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.to_dict()["options"] == options


# --------------------------------------------------------------------------- return labels

def test_a_return_label_goes_from_the_customer_back_to_the_shipper(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params("rma-1", is_return=True))
    assert shp.is_return is True
    # As EasyPost does: the shipment keeps the addresses as given (the outbound shipment's); the label swaps them.
    assert shp.to_address.name == "Elizabeth Swan" and shp.from_address.name == "Jack Sparrow"
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate(["USPS"]))
    assert bought.is_return is True and client.shipment.retrieve(shp.id).is_return is True
    files = label_files(client, shp.id)

    fields = zpl_fields(files["ZPL"].decode())
    assert fields.index("FROM:") < fields.index("Elizabeth Swan") < fields.index("SHIP TO:")
    assert fields.index("SHIP TO:") < fields.index("Jack Sparrow")
    assert any("RETURN" in f for f in fields)
    [(_, lines)] = pdf_pages(files["PDF"])
    assert lines.index("FROM:") < lines.index("Elizabeth Swan") < lines.index("SHIP TO:") < lines.index(
        "Jack Sparrow")
    assert b"From\x00Elizabeth Swan" in files["PNG"] and b"To\x00Jack Sparrow" in files["PNG"]

    # Its tracking starts where the customer is.
    tracker = client.tracker.create(tracking_code=bought.tracking_code)
    assert tracker.carrier_detail.origin_location.startswith("REDONDO BEACH")
    assert tracker.carrier_detail.destination_location.startswith("SAN FRANCISCO")


def test_an_outbound_label_is_not_a_return(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    assert shp.is_return is False
    client.shipment.buy(shp.id, rate=shp.lowest_rate(["USPS"]))
    fields = zpl_fields(label_files(client, shp.id)["ZPL"].decode())
    assert fields.index("FROM:") < fields.index("Jack Sparrow") < fields.index("SHIP TO:") < fields.index(
        "Elizabeth Swan")
    assert not any("RETURN" in f for f in fields)


def test_an_international_return_is_exported_by_the_customer(client: easypost.EasyPostClient) -> None:
    outbound = client.shipment.create(**shipment_params(to_address=dict(INTL_ADDRESS), customs_info=CUSTOMS))
    back = client.shipment.create(**shipment_params(to_address=dict(INTL_ADDRESS), customs_info=CUSTOMS,
                                                    is_return=True))
    assert prices(back) == prices(outbound)  # priced for Germany both ways
    bought = client.shipment.buy(back.id, rate=back.lowest_rate())
    [form] = bought.forms
    [(_, lines)] = pdf_pages(get(form.form_url).content)
    assert lines.index("EXPORTER / SHIPPER") < lines.index("Hans Muster") < lines.index("CONSIGNEE")
    assert lines.index("CONSIGNEE") < lines.index("Jack Sparrow")


# --------------------------------------------------------------------------- reference

def test_an_empty_reference_is_null(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params(""))
    assert shp.reference is None
    assert client.shipment.retrieve(shp.id).reference is None
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.reference is None
    assert "REF" not in " ".join(zpl_fields(label_files(client, shp.id)["ZPL"].decode()))


# --------------------------------------------------------------------------- insurance

def expected_fee(amount: str, user: Any) -> Decimal:
    """The fee a client estimates from the account's fields."""
    fee = (Decimal(amount) * Decimal(user.insurance_fee_rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return max(fee, Decimal(user.insurance_fee_minimum))


def test_insurance_at_buy_is_charged_at_the_accounts_rate(client: easypost.EasyPostClient) -> None:
    user = client.user.retrieve_me()
    assert (user.insurance_fee_rate, user.insurance_fee_minimum) == ("0.01", "1.00")
    for amount, fee in (("123.45", "1.23000"), ("250", "2.50000"), ("40", "1.00000"), ("100.50", "1.01000")):
        shp = client.shipment.create(**shipment_params())
        bought = client.shipment.buy(shp.id, rate=shp.lowest_rate(), insurance=amount)
        assert bought.insurance == f"{Decimal(amount):.2f}"
        assert [f.type for f in bought.fees] == ["LabelFee", "PostageFee", "InsuranceFee"]
        charged = bought.fees[2]
        assert charged.amount == fee and Decimal(charged.amount) == expected_fee(amount, user)
        assert charged.charged is True and charged.refunded is False


def test_insure_after_buying_adds_the_same_fee(client: easypost.EasyPostClient) -> None:
    user = client.user.retrieve_me()
    shp = client.shipment.create(**shipment_params())
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.insurance is None and [f.type for f in bought.fees] == ["LabelFee", "PostageFee"]
    insured = client.shipment.insure(shp.id, amount="100")
    assert insured.insurance == "100.00"  # a string, as EasyPost's
    assert [f.type for f in insured.fees] == ["LabelFee", "PostageFee", "InsuranceFee"]
    assert insured.fees[2].amount == "1.00000" == f"{expected_fee('100', user):.5f}"
    assert client.shipment.retrieve(shp.id).insurance == "100.00"


@pytest.mark.parametrize("amount", ["lots", "-5", "5000.01", "NaN"])
def test_an_impossible_insurance_amount_is_refused_and_nothing_bought(client: easypost.EasyPostClient,
                                                                      sandbox: Sandbox, amount: str) -> None:
    shp = client.shipment.create(**shipment_params())
    with pytest.raises(InvalidRequestError) as refused:
        client.shipment.buy(shp.id, rate=shp.lowest_rate(), insurance=amount)
    assert refused.value.http_status == 422 and refused.value.errors[0]["field"] == "insurance"
    assert client.shipment.retrieve(shp.id).postage_label is None and sandbox.ledger() == []


def test_insuring_an_unbought_shipment_is_refused(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params())
    with pytest.raises(InvalidRequestError) as refused:
        client.shipment.insure(shp.id, amount="100")
    assert refused.value.code == "SHIPMENT.INSURE.UNAVAILABLE"


def test_the_fee_follows_the_accounts_fields(client: easypost.EasyPostClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fee is computed from the user object's fields, not from constants of its own: change them and both
    `GET /v2/users` and the charge move together."""
    build_user = model.build_user
    monkeypatch.setattr(model, "build_user", lambda account: {
        **build_user(account), "insurance_fee_rate": "0.025", "insurance_fee_minimum": "3.00"})
    user = client.user.retrieve_me()
    assert (user.insurance_fee_rate, user.insurance_fee_minimum) == ("0.025", "3.00")
    for amount, fee in (("100", "3.00000"), ("200.10", "5.00000"), ("300.30", "7.51000")):
        shp = client.shipment.create(**shipment_params())
        bought = client.shipment.buy(shp.id, rate=shp.lowest_rate(), insurance=amount)
        assert bought.fees[2].amount == fee == f"{expected_fee(amount, user):.5f}"
    later = client.shipment.create(**shipment_params())
    client.shipment.buy(later.id, rate=later.lowest_rate())
    assert client.shipment.insure(later.id, amount="40").fees[2].amount == "3.00000"  # the minimum
