"""Shipment `forms` through the real SDK: a commercial invoice PDF for every international label, none at home;
and label conversion answering in the format asked for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests
from easypost.errors import NotFoundError

from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import INTL_ADDRESS, shipment_params
from tests.cli import TEST_KEY

CUSTOMS = {
    "customs_certify": True, "customs_signer": "Steve Brule", "eel_pfc": "NOEEI 30.37(a)",
    "contents_type": "merchandise",
    "customs_items": [
        {"description": "Sweet shirts", "quantity": 2, "value": 23.25, "weight": 11, "hs_tariff_number": "654321",
         "origin_country": "US"},
        {"description": "Canvas tote", "quantity": 1, "value": 9.5, "weight": 6, "hs_tariff_number": "420222",
         "origin_country": "US"},
    ],
}


def get(url: str) -> requests.Response:
    with requests.Session() as s:
        return s.get(url, timeout=10)


def pdf_pages(data: bytes) -> list[tuple[tuple[int, int], list[str]]]:
    """Each page's size in points and its text lines, read from the sandbox's uncompressed PDF bytes."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    text = data.decode("latin-1")
    count = int(re.search(r"/Type /Pages /Kids \[[^\]]*\] /Count (\d+)", text).group(1))  # type: ignore[union-attr]
    pages = []
    for size, contents in re.findall(r"/MediaBox \[0 0 (\d+ \d+)\].*?/Contents (\d+) 0 R", text):
        stream = re.search(rf"\n{contents} 0 obj\n<< /Length \d+ >>\nstream\n(.*?)\nendstream", text, re.S)
        assert stream is not None
        lines = [re.sub(r"\\(.)", r"\1", s) for s in re.findall(r"\(((?:[^()\\]|\\.)*)\) Tj", stream.group(1))]
        width, height = (int(v) for v in size.split())
        pages.append(((width, height), lines))
    assert len(pages) == count
    return pages


def intl_params(reference: str) -> dict[str, Any]:
    return shipment_params(reference, to_address=dict(INTL_ADDRESS), customs_info=CUSTOMS)


def test_an_international_label_carries_a_commercial_invoice(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**intl_params("intl-1"))
    assert shp.forms == []  # the invoice comes with the label
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())

    assert len(bought.forms) == 1
    form = bought.forms[0]
    assert set(form.to_dict()) == {"object", "id", "created_at", "updated_at", "mode", "form_type", "form_url",
                                   "submitted_electronically"}
    assert form.object == "Form" and form.id.startswith("form_") and form.mode == "test"
    assert form.form_type == "commercial_invoice" and form.submitted_electronically is False
    assert client.shipment.retrieve(shp.id).forms[0].to_dict() == form.to_dict()

    response = get(form.form_url)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    [(size, lines)] = pdf_pages(response.content)
    assert size == (612, 792)  # a letter page, as carriers' invoices are
    text = "\n".join(lines)
    assert "COMMERCIAL INVOICE" in text and bought.tracking_code in text
    assert "Sweet shirts" in text and "Canvas tote" in text and "654321" in text
    assert "TOTAL DECLARED VALUE: 32.75 USD" in text
    assert "Hans Muster" in text and "Jack Sparrow" in text


def test_a_domestic_label_has_no_forms(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**shipment_params("home-1"))
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    assert bought.forms == [] and client.shipment.retrieve(shp.id).forms == []


def test_each_international_label_has_its_own_invoice(client: easypost.EasyPostClient) -> None:
    codes = []
    urls = []
    for ref in ("intl-a", "intl-b"):
        shp = client.shipment.create(**intl_params(ref))
        bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
        codes.append(bought.tracking_code)
        urls.append(bought.forms[0].form_url)
    assert urls[0] != urls[1]
    for code, url in zip(codes, urls, strict=True):
        [(_, lines)] = pdf_pages(get(url).content)
        assert f"Tracking code: {code}" in lines


def test_label_conversion_answers_in_the_format_asked(client: easypost.EasyPostClient) -> None:
    shp = client.shipment.create(**intl_params("conv-1"))
    bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
    code = bought.tracking_code

    pdf = client.shipment.label(shp.id, file_format="PDF").postage_label
    [(size, lines)] = pdf_pages(get(pdf.label_pdf_url).content)
    assert size == (288, 432) and code in lines  # 4×6 in

    zpl = client.shipment.label(shp.id, file_format="zpl").postage_label
    text = get(zpl.label_zpl_url).text
    assert text.startswith("^XA") and text.rstrip().endswith("^XZ") and code in text

    converted = client.shipment.label(shp.id, file_format="PNG")
    png = get(converted.postage_label.label_url).content
    assert png.startswith(b"\x89PNG") and b"TrackingCode\x00" + code.encode() in png
    assert converted.forms[0].id == bought.forms[0].id  # converting the label leaves the invoice alone


def test_forms_survive_a_restart_and_stay_the_accounts_own(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite3"
    with start_sandbox(state_path=state) as sb:
        c = easypost.EasyPostClient(TEST_KEY, api_base=sb.api_base)
        shp = c.shipment.create(**intl_params("kept-1"))
        bought = c.shipment.buy(shp.id, rate=shp.lowest_rate())
        form_id = bought.forms[0].id
    with start_sandbox(state_path=state) as sb2:
        c2 = easypost.EasyPostClient(TEST_KEY, api_base=sb2.api_base)
        again = c2.shipment.retrieve(shp.id)
        assert again.forms[0].id == form_id and again.forms[0].form_url.startswith(sb2.url + "/labels/")
        [(_, lines)] = pdf_pages(get(again.forms[0].form_url).content)
        assert f"Tracking code: {bought.tracking_code}" in lines
        other = easypost.EasyPostClient("EZTKsomeoneelse", api_base=sb2.api_base)
        with pytest.raises(NotFoundError):
            other.shipment.retrieve(shp.id)


def test_an_unknown_form_file_is_404(sandbox: Sandbox) -> None:
    assert get(f"{sandbox.url}/labels/form_{'0' * 32}.pdf").status_code == 404
    assert get(f"{sandbox.url}/labels/sf_{'0' * 32}.pdf").status_code == 404
