"""The issue's Done-when at full size: after a 500-row `create`, `shipctl labels` writes a PDF of exactly one 4×6
page per label in manifest order (each page's text is its own tracking code), the invoices after their labels,
a ZPL file of 500 labels, and a reprint of three references is three pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from shipctl.sandbox import Sandbox
from tests.test_labels_cli import create, labels, manifest, outline, sizes, zpl_codes

pytestmark = pytest.mark.slow

ROWS = 500
INTERNATIONAL = (7, 250, 499)


def test_500_labels_make_500_pages_and_500_zpl_labels(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", ROWS, international=INTERNATIONAL)
    bought = create(orders, "--label-format", "PDF")
    out = tmp_path / "today.pdf"
    labels(str(orders), "--out", str(out))

    reader = PdfReader(out)
    assert len(reader.pages) == ROWS + len(INTERNATIONAL)
    assert sizes(reader) == {(0.0, 0.0, 288.0, 432.0)}
    marks = outline(reader)
    assert [title for title, _, _ in marks] == [f"{r['reference']} · {r['tracking_code']}" for r in bought]
    for i, (_, page, children) in enumerate(marks):
        text = reader.pages[page].extract_text()
        assert re.findall(r"\b\d{22}\b", text) == [bought[i]["tracking_code"]]
        if i in INTERNATIONAL:
            assert children == [("commercial invoice", page + 1)]
            assert "COMMERCIAL INVOICE" in reader.pages[page + 1].extract_text()

    zpl = tmp_path / "today.zpl"
    labels(str(orders), "--out", str(zpl))
    assert zpl_codes(zpl.read_text()) == [r["tracking_code"] for r in bought]

    reprint = tmp_path / "reprint.pdf"
    labels(str(orders), "--out", str(reprint), "-r", bought[400]["reference"], "-r", bought[3]["reference"],
           "-r", bought[123]["reference"])
    again = PdfReader(reprint)
    assert len(again.pages) == 3
    assert [t for t, _, _ in outline(again)] == [
        f"{bought[i]['reference']} · {bought[i]['tracking_code']}" for i in (3, 123, 400)]
