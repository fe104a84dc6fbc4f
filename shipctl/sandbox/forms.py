"""Paper the sandbox hands out besides labels: a shipment's commercial invoice and a SCAN form, as real PDFs.

Both are letter-size pages (carriers' forms are, unlike the 4×6 labels) drawn in Helvetica with their text
uncompressed, so a test or a person can read the tracking codes back. `Form` objects (a shipment's `forms`)
are built here too; the files are served at `/labels/<id>.pdf` like label files (`files.py`).
"""

from __future__ import annotations

from shipctl.sandbox import labels, model, options
from shipctl.sandbox.model import JSON

LETTER = (612, 792)  # 8.5×11 in in PDF points
_CODES_PER_PAGE = 36


def is_international(shp: JSON) -> bool:
    """Whether a shipment crosses a border: it then needs customs paperwork."""
    def country(key: str) -> str:
        return str((shp.get(key) or {}).get("country") or "US").upper()
    return country("to_address") != country("from_address")


def build_form(form_type: str, mode: str) -> JSON:
    """A `Form` in EasyPost's field order; its file is rendered from the shipment when fetched."""
    ts = model.now_z()
    form_id = model.new_id("form")
    return {"object": "Form", "id": form_id, "created_at": ts, "updated_at": ts, "mode": mode,
            "form_type": form_type, "form_url": f"/labels/{form_id}.pdf", "submitted_electronically": False}


class _Page:
    """Lines of text top-down on one page, in points from the top-left margin."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.width, self.height = size
        self.y = self.height - 54
        self.ops: list[str] = []

    def line(self, text: str, size: int = 10, x: int = 54, gap: int = 4) -> None:
        self.ops.append(f"BT /F1 {size} Tf {x} {self.y} Td ({labels.pdf_escape(text)}) Tj ET")
        self.y -= size + gap

    def rule(self) -> None:
        self.ops.append(f"0.8 w 54 {self.y + 6} m {self.width - 54} {self.y + 6} l S")
        self.y -= 8

    def stream(self) -> bytes:
        return "\n".join(self.ops).encode("latin-1", "replace")


def _address_block(page: _Page, title: str, addr: JSON | None) -> None:
    page.line(title, 9)
    for text in labels.address_lines(addr):
        page.line(text, 10, x=66, gap=3)
    page.y -= 6


def _money(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def commercial_invoice_pdf(shp: JSON) -> bytes:
    """One page: who sends what to whom, the tracking code, and every customs item with its value."""
    page = _Page(LETTER)
    rate = shp.get("selected_rate") or {}
    customs = shp.get("customs_info") or {}
    page.line("COMMERCIAL INVOICE", 20, gap=10)
    page.line(f"Tracking code: {shp.get('tracking_code')}", 12)
    page.line(f"Carrier: {rate.get('carrier', '')} {rate.get('service', '')}   Shipment: {shp.get('id')}", 9)
    page.line(f"Date: {str(shp.get('updated_at') or '')[:10]}   Reference: {shp.get('reference') or '-'}", 9)
    page.rule()
    origin, destination = options.route(shp)  # a return is exported by the customer, back to the shipper
    _address_block(page, "EXPORTER / SHIPPER", origin)
    _address_block(page, "CONSIGNEE", destination)
    page.rule()
    page.line(f"Contents: {customs.get('contents_type') or 'merchandise'}"
              f"{' - ' + str(customs['contents_explanation']) if customs.get('contents_explanation') else ''}", 10)
    page.line("DESCRIPTION                      QTY    VALUE USD   WEIGHT OZ   HS TARIFF    ORIGIN", 8)
    items = list(customs.get("customs_items") or [])
    total = 0.0
    for item in items[:30]:
        value = _money(item.get("value"))
        total += value
        page.line(f"{str(item.get('description') or '')[:30]:<32} {item.get('quantity') or '':>4} "
                  f"{value:>11.2f} {item.get('weight') or '':>11} {item.get('hs_tariff_number') or '':>11} "
                  f"{item.get('origin_country') or '':>7}", 8, gap=3)
    if len(items) > 30:
        total += sum(_money(item.get("value")) for item in items[30:])
        page.line(f"... and {len(items) - 30} more items", 8)
    if not items:
        page.line("(no customs items declared)", 8)
    page.rule()
    page.line(f"TOTAL DECLARED VALUE: {total:.2f} USD", 11)
    page.line(f"EEL/PFC: {customs.get('eel_pfc') or '-'}   Signed: {customs.get('customs_signer') or '-'}", 9)
    page.line("shipctl sandbox document: not valid for export", 8)
    return labels.pdf_document([page.stream()], LETTER, f"Commercial invoice {shp.get('tracking_code')}")


def scan_form_pdf(scan_form: JSON, carrier: str) -> bytes:
    """A SCAN form: the origin, the parcel count and every tracking code, 36 to a page."""
    codes = [str(c) for c in scan_form.get("tracking_codes") or []]
    chunks = [codes[i:i + _CODES_PER_PAGE] for i in range(0, len(codes), _CODES_PER_PAGE)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        page = _Page(LETTER)
        page.line(f"{carrier} SCAN FORM".strip(), 18, gap=6)
        page.line("Shipment Confirmation Acceptance Notice", 10)
        page.line(f"Form: {scan_form.get('id')}   Date: {str(scan_form.get('created_at') or '')[:10]}   "
                  f"Page {number} of {len(chunks)}", 9)
        page.line(f"Total packages: {len(codes)}", 12)
        page.rule()
        _address_block(page, "ORIGIN", scan_form.get("address"))
        page.rule()
        for code in chunk:
            page.line(code, 10, gap=2)
        page.line("shipctl sandbox document: not a carrier manifest", 8)
        pages.append(page.stream())
    return labels.pdf_document(pages, LETTER, f"SCAN form {scan_form.get('id')}")
