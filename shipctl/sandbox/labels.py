"""Real label files from the standard library: a 4×6 PNG, a one-page PDF and ZPL text; a batch's labels as
one PDF of 4×6 pages (`pdf_document` writes every sandbox PDF: uncompressed, its text readable from the bytes).

The PNG is 1200×1800 (4×6 in at 300 dpi), 1-bit grey, with a border, the addresses and tracking code drawn
in a small bitmap font, a barcode-like pattern derived from the tracking code, and the same text in tEXt
chunks so a test (or a person with `pngcheck -t`) can read it back.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from shipctl.sandbox.font import GLYPH_HEIGHT, GLYPH_WIDTH, glyph
from shipctl.sandbox.options import custom_lines, route

WIDTH, HEIGHT = 1200, 1800  # 4x6 inches at 300 dpi; the width must stay a multiple of 8


@dataclass(frozen=True)
class LabelText:
    tracking_code: str
    carrier: str
    service: str
    from_lines: list[str]
    to_lines: list[str]
    reference: str | None
    custom: list[str] = field(default_factory=list)  # options.print_custom_1..3, in order
    is_return: bool = False

    @property
    def service_line(self) -> str:
        return f"{self.carrier} {self.service}{' RETURN' if self.is_return else ''}"


def address_lines(addr: dict[str, object] | None) -> list[str]:
    if not addr:
        return []
    def s(key: str) -> str:
        value = addr.get(key)
        return "" if value is None else str(value)
    lines = [s("name"), s("company"), s("street1"), s("street2"),
             " ".join(p for p in (s("city") + ("," if s("city") else ""), s("state"), s("zip")) if p),
             s("country")]
    return [line for line in lines if line.strip()]


# ----------------------------------------------------------------------------------------------- PNG

class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rows = [bytearray(width) for _ in range(height)]  # 1 = black

    def fill(self, x0: int, y0: int, x1: int, y1: int) -> None:
        x0, x1 = max(0, x0), min(self.width, x1)
        for y in range(max(0, y0), min(self.height, y1)):
            self.rows[y][x0:x1] = b"\x01" * (x1 - x0)

    def text(self, x: int, y: int, text: str, scale: int) -> None:
        for ch in text.upper():
            if x + GLYPH_WIDTH * scale > self.width:
                break
            bits = glyph(ch)
            for row, mask in enumerate(bits):
                for col in range(GLYPH_WIDTH):
                    if mask & (1 << (GLYPH_WIDTH - 1 - col)):
                        px, py = x + col * scale, y + row * scale
                        self.fill(px, py, px + scale, py + scale)
            x += (GLYPH_WIDTH + 1) * scale

    def pack(self) -> bytes:
        """PNG scanlines for 1-bit greyscale (1 = white): filter byte 0, then 8 pixels per byte."""
        to_bits = bytes.maketrans(b"\x00\x01", b"10")
        nbytes = self.width // 8
        raw = bytearray()
        for row in self.rows:
            raw.append(0)
            raw += int(bytes(row).translate(to_bits), 2).to_bytes(nbytes, "big")
        return bytes(raw)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def render_png(label: LabelText) -> bytes:
    c = _Canvas(WIDTH, HEIGHT)
    # Border and separators.
    c.fill(20, 20, WIDTH - 20, 28)
    c.fill(20, HEIGHT - 28, WIDTH - 20, HEIGHT - 20)
    c.fill(20, 20, 28, HEIGHT - 20)
    c.fill(WIDTH - 28, 20, WIDTH - 20, HEIGHT - 20)
    line_h = (GLYPH_HEIGHT + 3)
    y = 60
    c.text(60, y, "FROM:", 4)
    y += line_h * 4
    for line in label.from_lines[:6]:
        c.text(60, y, line[:36], 4)
        y += line_h * 4
    c.fill(20, 440, WIDTH - 20, 448)
    y = 480
    c.text(60, y, "SHIP TO:", 5)
    y += line_h * 5 + 10
    for line in label.to_lines[:6]:
        c.text(60, y, line[:28], 5)
        y += line_h * 5
    c.fill(20, 1000, WIDTH - 20, 1008)
    c.text(60, 1040, label.service_line[:36], 4)
    # A barcode-like pattern: each character of the code gives four bars of varying width.
    x = 100
    for ch in label.tracking_code:
        v = ord(ch)
        for k in range(4):
            bar = 3 + ((v >> k) & 3) * 3
            c.fill(x, 1120, x + bar, 1460)
            x += bar + 4 + ((v >> (k + 1)) & 1) * 3
    c.text(100, 1490, label.tracking_code, 5)
    for i, line in enumerate(label.custom[:3]):
        c.text(60, 1545 + 30 * i, line[:60], 3)
    if label.reference:
        c.text(60, 1640, f"REF {label.reference}"[:36], 4)
    c.text(860, 1700, "SANDBOX", 3)

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 1, 0, 0, 0, 0)
    texts = [
        ("Title", "shipctl sandbox postage label (not valid for shipping)"),
        ("TrackingCode", label.tracking_code),
        ("Carrier", label.carrier),
        ("Service", label.service),
        ("From", "\n".join(label.from_lines)),
        ("To", "\n".join(label.to_lines)),
    ]
    if label.reference:
        texts.append(("Reference", label.reference))
    texts += [(f"PrintCustom{i}", line) for i, line in enumerate(label.custom[:3], start=1)]
    if label.is_return:
        texts.append(("Return", "true"))
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    out += _chunk(b"IHDR", header)
    out += _chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))  # 300 dpi in pixels per metre
    for key, value in texts:
        out += _chunk(b"tEXt", _latin1(key) + b"\x00" + _latin1(value))
    out += _chunk(b"IDAT", zlib.compress(c.pack(), 6))
    out += _chunk(b"IEND", b"")
    return bytes(out)


# ----------------------------------------------------------------------------------------------- PDF

LABEL_PAGE = (288, 432)  # 4×6 in in PDF points


def pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def label_text(shp: dict[str, Any]) -> LabelText:
    """What a bought shipment's label shows: a return label is sent by the customer (`to_address`) to the shipper
    (`from_address`)."""
    rate = shp.get("selected_rate") or {}
    origin, destination = route(shp)
    return LabelText(
        tracking_code=str(shp.get("tracking_code")), carrier=str(rate.get("carrier", "")),
        service=str(rate.get("service", "")), from_lines=address_lines(origin), to_lines=address_lines(destination),
        reference=shp.get("reference"), custom=custom_lines(shp.get("options")), is_return=bool(shp.get("is_return")))


def _label_stream(label: LabelText) -> bytes:
    """The drawing of one 4×6 in label page: addresses, a barcode-like pattern and the tracking code as text."""
    ops: list[str] = ["2 w 10 10 268 412 re S", "BT /F1 9 Tf 20 400 Td 11 TL (FROM:) Tj"]
    for line in label.from_lines:
        ops.append(f"T* ({pdf_escape(line)}) Tj")
    ops.append("ET 10 320 m 278 320 l S")
    ops.append("BT /F1 13 Tf 20 300 Td 16 TL (SHIP TO:) Tj")
    for line in label.to_lines:
        ops.append(f"T* ({pdf_escape(line)}) Tj")
    ops.append("ET 10 170 m 278 170 l S")
    ops.append(f"BT /F1 10 Tf 20 150 Td ({pdf_escape(label.service_line)}) Tj ET")
    x = 24.0
    for ch in label.tracking_code:
        v = ord(ch)
        for k in range(4):
            bar = 0.8 + ((v >> k) & 3) * 0.7
            ops.append(f"{x:.1f} 70 {bar:.1f} 65 re f")
            x += bar + 1.2
    ops.append(f"BT /F1 12 Tf 24 50 Td ({pdf_escape(label.tracking_code)}) Tj ET")
    # The custom lines sit between the tracking code and the reference, which moves down to make room.
    for i, line in enumerate(label.custom[:3]):
        ops.append(f"BT /F1 7 Tf 24 {41 - 8 * i} Td ({pdf_escape(line)}) Tj ET")
    if label.reference:
        ops.append(f"BT /F1 8 Tf 24 {15 if label.custom else 25} Td (REF {pdf_escape(label.reference)}) Tj ET")
    return "\n".join(ops).encode("latin-1", "replace")


def render_pdf(label: LabelText) -> bytes:
    """A one-page 4×6 in (288×432 pt) PDF with the addresses and the tracking code as text."""
    return pdf_document([_label_stream(label)], LABEL_PAGE, f"shipctl sandbox label {label.tracking_code}")


def render_pdf_many(labels: list[LabelText], title: str) -> bytes:
    """One 4×6 in page per label, in the order given (a batch's merged label file)."""
    return pdf_document([_label_stream(label) for label in labels], LABEL_PAGE, title)


def pdf_document(pages: list[bytes], size: tuple[int, int], title: str) -> bytes:
    """A PDF of `pages` (content streams drawing in Helvetica, /F1), every page `size` points, uncompressed so
    that its text can be read back from the bytes."""
    count = len(pages)
    # 1 catalog, 2 page tree, 3 font, then a page and its content per page, then the document info.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {size[0]} {size[1]}] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    objects.append(b"<< /Title (" + pdf_escape(title).encode("latin-1", "replace") + b") >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


# ----------------------------------------------------------------------------------------------- ZPL

def _zpl_escape(text: str) -> str:
    return text.replace("^", " ").replace("~", " ")


def render_zpl(label: LabelText) -> bytes:
    lines = ["^XA", "^CI28", "^PW812", "^LL1218", "^FO20,20^GB772,1178,3^FS", "^CF0,28"]
    y = 50
    lines.append(f"^FO40,{y}^FDFROM:^FS")
    for line in label.from_lines:
        y += 32
        lines.append(f"^FO40,{y}^FD{_zpl_escape(line)}^FS")
    y = 330
    lines.append(f"^FO20,{y - 20}^GB772,3,3^FS")
    lines.append("^CF0,40")
    lines.append(f"^FO40,{y}^FDSHIP TO:^FS")
    for line in label.to_lines:
        y += 46
        lines.append(f"^FO40,{y}^FD{_zpl_escape(line)}^FS")
    lines.append("^FO20,700^GB772,3,3^FS")
    lines.append(f"^CF0,30^FO40,730^FD{_zpl_escape(label.service_line)}^FS")
    lines.append(f"^FO60,800^BY3^BCN,220,Y,N,N^FD{_zpl_escape(label.tracking_code)}^FS")
    for i, line in enumerate(label.custom[:3]):
        lines.append(f"^CF0,24^FO40,{1060 + 28 * i}^FD{_zpl_escape(line)}^FS")
    if label.reference:
        lines.append(f"^CF0,24^FO40,{1150 if label.custom else 1120}^FDREF {_zpl_escape(label.reference)}^FS")
    lines.append("^XZ")
    return ("\n".join(lines) + "\n").encode("utf-8")
