"""The print file's parts, without an API: pages normalised to 4×6 (odd sizes, landscape, images at their
resolution, a letter sheet), the outline, ZPL concatenation, the atomic write, the cache, the printed log.

Where an image lands on a page is read back from the page's own content stream (its `cm` operators composed up to
the image's `Do`), so these tests see what a viewer would draw, not what the code meant to do.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ContentStream, NameObject, NumberObject

from shipctl.errors import WriteFailure
from shipctl.printing.cache import KEEP_DAYS, LabelCache
from shipctl.printing.pages import Sheet, UnreadableFile
from shipctl.printing.pdf import PdfDocument
from shipctl.printing.printed import PrintedLog
from shipctl.printing.replace import replacing
from shipctl.printing.zpl import ZplDocument, formats_in
from shipctl.sandbox import labels as sandbox_labels

TEXT = sandbox_labels.LabelText("9400100000000000000017", "USPS", "Priority", ["Acme", "417 Montgomery St"],
                                ["Customer 1", "350 5th Ave", "New York, NY 10118"], "ORD-1")


def png(width: int, height: int, dpi: float | None, mode: str = "1") -> bytes:
    image = Image.new(mode, (width, height), 0 if mode == "1" else "white")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
    return buffer.getvalue()


def image_pdf(width_pt: float, height_pt: float) -> bytes:
    """A one-page PDF of exactly width×height points, the page filled by an image (Pillow writes it)."""
    image = Image.new("L", (int(width_pt), int(height_pt)), 128)
    buffer = io.BytesIO()
    image.save(buffer, "PDF", resolution=72.0)
    return buffer.getvalue()


def built(add: Any, sheet: str = "4x6") -> PdfReader:
    document = PdfDocument(Sheet(sheet), "test")
    add(document)
    out = io.BytesIO()
    document.write(out)
    return PdfReader(io.BytesIO(out.getvalue()))


def matmul(a: list[float], b: list[float]) -> list[float]:
    """PDF matrices [a b c d e f]: `a` applied first, then `b`."""
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def image_rect(reader: PdfReader, index: int = 0) -> tuple[float, float, float, float]:
    """Where the page's first image is drawn: (x0, y0, x1, y1) in points."""
    page = reader.pages[index]
    ctm = [1.0, 0, 0, 1.0, 0, 0]
    stack = []
    for operands, operator in ContentStream(page.get_contents(), reader).operations:
        if operator == b"q":
            stack.append(ctm)
        elif operator == b"Q":
            ctm = stack.pop()
        elif operator == b"cm":
            ctm = matmul([float(v) for v in operands], ctm)
        elif operator == b"Do":
            corners = [(ctm[0] * x + ctm[2] * y + ctm[4], ctm[1] * x + ctm[3] * y + ctm[5])
                       for x, y in ((0, 0), (1, 0), (0, 1), (1, 1))]
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            return (round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2))
    raise AssertionError("no image drawn on the page")


def box(reader: PdfReader, index: int = 0) -> list[float]:
    return [float(v) for v in reader.pages[index].mediabox]


# --- labels on a 4×6 sheet -------------------------------------------------------------------------------------


def test_a_300_dpi_png_label_fills_the_4x6_page_exactly() -> None:
    reader = built(lambda d: d.add_label(png(1200, 1800, 300), "ORD-1 · code"))
    assert box(reader) == [0, 0, 288, 432]
    assert image_rect(reader) == (0, 0, 288, 432)


def test_a_203_dpi_thermal_png_is_4x6_too_and_a_small_one_is_not_blown_up() -> None:
    reader = built(lambda d: (d.add_label(png(812, 1218, 203), "a"), d.add_label(png(600, 900, 300), "b")))
    assert image_rect(reader, 0) == (0, 0, 288, 432)
    # 2×3 in at 300 dpi: placed at its size, centred, never enlarged to a blurry 4×6.
    assert image_rect(reader, 1) == (72, 108, 216, 324)
    assert box(reader, 1) == [0, 0, 288, 432]


def test_an_image_without_a_resolution_is_scaled_to_fit() -> None:
    reader = built(lambda d: d.add_label(png(400, 600, None, mode="L"), "a"))
    assert image_rect(reader) == (0, 0, 288, 432)


def test_a_letter_size_carrier_pdf_is_scaled_to_fit_keeping_its_aspect_centred() -> None:
    reader = built(lambda d: d.add_label(image_pdf(612, 792), "a"))
    assert box(reader) == [0, 0, 288, 432]
    scale = 288 / 612
    height = 792 * scale
    x0, y0, x1, y1 = image_rect(reader)
    assert (x0, x1) == (0, 288)
    assert (y0, y1) == (round((432 - height) / 2, 2), round((432 + height) / 2, 2))


def test_a_small_pdf_label_is_enlarged_to_fit() -> None:
    reader = built(lambda d: d.add_label(image_pdf(144, 216), "a"))
    assert image_rect(reader) == (0, 0, 288, 432)


def test_a_landscape_label_is_turned_a_quarter_and_fills_the_portrait_page() -> None:
    reader = built(lambda d: d.add_label(image_pdf(432, 288), "a"))
    assert box(reader) == [0, 0, 288, 432]
    assert image_rect(reader) == (0, 0, 288, 432)
    ops = [op for _, op in ContentStream(reader.pages[0].get_contents(), reader).operations]
    assert b"cm" in ops


def test_a_page_rotated_by_its_rotate_key_is_placed_as_a_viewer_shows_it() -> None:
    # A 4×6 page shown landscape (/Rotate 90) is what a viewer shows: turned back to portrait to fit.
    source = PdfReader(io.BytesIO(sandbox_labels.render_pdf(TEXT)))
    writer = PdfWriter()
    page = writer.add_page(source.pages[0])
    page[NameObject("/Rotate")] = NumberObject(90)
    data = io.BytesIO()
    writer.write(data)
    reader = built(lambda d: d.add_label(data.getvalue(), "a"))
    assert box(reader) == [0, 0, 288, 432]
    assert "/Rotate" not in reader.pages[0] or reader.pages[0].rotation == 0
    assert TEXT.tracking_code in reader.pages[0].extract_text()


def test_pdf_label_text_survives_and_odd_boxes_are_dropped() -> None:
    source = PdfReader(io.BytesIO(sandbox_labels.render_pdf(TEXT)))
    writer = PdfWriter()
    page = writer.add_page(source.pages[0])
    page.mediabox = page.cropbox = page.mediabox  # a crop box of its own, as carrier PDFs often have
    data = io.BytesIO()
    writer.write(data)
    reader = built(lambda d: d.add_label(data.getvalue(), "a"))
    assert box(reader) == [0, 0, 288, 432]
    assert "/CropBox" not in reader.pages[0]
    assert TEXT.tracking_code in reader.pages[0].extract_text()


def test_each_page_is_its_own_label_however_many_pdf_labels_are_merged() -> None:
    # Many small PDFs read one after another: a merge that mistook one reader for another (pypdf once told them
    # apart by id(), which a freed reader hands on) would show a label twice and lose another.
    codes = [f"94001000000000000{i:05d}" for i in range(60)]

    def add(document: PdfDocument) -> None:
        for code in codes:
            text = sandbox_labels.LabelText(code, "USPS", "Priority", ["Acme"], ["Customer"], None)
            document.add_label(sandbox_labels.render_pdf(text), code)

    reader = built(add)
    assert [page.extract_text().count(code) for page, code in zip(reader.pages, codes, strict=True)] == [1] * 60


# --- a letter sheet, forms, the outline ------------------------------------------------------------------------


def test_on_a_letter_sheet_the_label_is_4x6_at_full_size_in_the_middle_and_a_form_fills_the_sheet() -> None:
    def add(document: PdfDocument) -> None:
        _, mark = document.add_label(png(1200, 1800, 300), "ORD-1 · code")
        document.add_form(image_pdf(612, 792), "commercial invoice", mark)

    reader = built(add, sheet="letter")
    assert [box(reader, i) for i in range(2)] == [[0, 0, 612, 792]] * 2
    assert image_rect(reader, 0) == (162, 180, 450, 612)
    assert image_rect(reader, 1) == (0, 0, 612, 792)


def test_a_form_on_a_4x6_sheet_is_shrunk_onto_its_own_page_after_the_label_with_a_nested_bookmark() -> None:
    def add(document: PdfDocument) -> None:
        first, mark = document.add_label(png(1200, 1800, 300), "ORD-1 · 9400")
        assert first == 1
        document.add_form(image_pdf(612, 792), "commercial invoice", mark)
        second, _ = document.add_label(png(1200, 1800, 300), "ORD-2 · 9401")
        assert second == 3

    reader = built(add)
    assert len(reader.pages) == 3
    assert all(box(reader, i) == [0, 0, 288, 432] for i in range(3))
    outline = reader.outline
    assert [o.title for o in outline if not isinstance(o, list)] == ["ORD-1 · 9400", "ORD-2 · 9401"]
    [children] = [o for o in outline if isinstance(o, list)]
    assert [(c.title, reader.get_destination_page_number(c)) for c in children] == [("commercial invoice", 1)]
    assert [reader.get_destination_page_number(o) for o in outline if not isinstance(o, list)] == [0, 2]


@pytest.mark.parametrize(
    "data", [b"<html>Service Unavailable</html>", b"", b"%PDF-1.4 garbage", b"\x89PNG\r\n\x1a\nxx"]
)
def test_a_file_that_is_no_label_is_refused_and_adds_nothing(data: bytes) -> None:
    document = PdfDocument(Sheet("4x6"), "t")
    with pytest.raises(UnreadableFile):
        document.add_label(data, "x")
    assert document.pages == 0


def test_transparent_and_greyscale_images_are_printable() -> None:
    rgba = Image.new("RGBA", (1200, 1800), (0, 0, 0, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG", dpi=(300, 300))
    reader = built(lambda d: (d.add_label(buffer.getvalue(), "a"), d.add_label(png(1200, 1800, 300, "L"), "b")))
    assert [image_rect(reader, i) for i in range(2)] == [(0, 0, 288, 432)] * 2


def test_a_black_and_white_label_stored_as_greyscale_or_palette_stays_lossless() -> None:
    grey = Image.new("L", (1200, 1800), 255)
    grey.paste(0, (100, 100, 400, 1700))  # a bar
    palette = grey.convert("P")
    shaded = grey.copy()
    shaded.paste(128, (500, 100, 600, 200))  # a real grey: a photograph-like label keeps JPEG
    filters = []
    for image in (grey, palette, shaded):
        buffer = io.BytesIO()
        image.save(buffer, "PNG", dpi=(300, 300))
        data = buffer.getvalue()
        reader = built(lambda d: d.add_label(data, "a"))  # noqa: B023 -- called at once, in this iteration
        xobjects = reader.pages[0]["/Resources"]["/XObject"]
        [image_object] = [xobjects[name].get_object() for name in xobjects]
        found = image_object["/Filter"]
        filters.append(str(found[0] if isinstance(found, list) else found).lstrip("/"))
        assert image_rect(reader) == (0, 0, 288, 432)
    assert filters == ["CCITTFaxDecode", "CCITTFaxDecode", "DCTDecode"]


# --- ZPL -------------------------------------------------------------------------------------------------------


def test_zpl_labels_are_concatenated_byte_for_byte_one_format_each() -> None:
    first = sandbox_labels.render_zpl(TEXT)
    document = ZplDocument()
    assert document.add_label(first) == (1, 1)
    assert document.add_label(b"^XA^FO50,50^FDtwo^FS^XZ") == (2, 1)  # no final newline: one is added
    with pytest.raises(UnreadableFile):
        document.add_label(b"%PDF-1.4 not zpl")
    out = io.BytesIO()
    document.write(out)
    assert out.getvalue() == first + b"^XA^FO50,50^FDtwo^FS^XZ\n"
    assert formats_in(out.getvalue()) == 2


# --- writing whole or not at all --------------------------------------------------------------------------------


def test_a_failed_build_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    out = tmp_path / "today.pdf"
    out.write_bytes(b"yesterday")
    with pytest.raises(RuntimeError), replacing(out, "--out today.pdf") as fh:
        fh.write(b"%PDF-1.7 half a file")
        raise RuntimeError("killed halfway")
    assert out.read_bytes() == b"yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["today.pdf"]
    with replacing(out, "--out today.pdf") as fh:
        fh.write(b"today")
    assert out.read_bytes() == b"today"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["today.pdf"]


def test_a_link_of_ones_own_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "labels.pdf"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "today.pdf"
    link.symlink_to(target)
    with replacing(link, "--out today.pdf") as fh:
        fh.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_device_is_written_straight_and_a_full_one_is_a_write_failure() -> None:
    with replacing(Path("/dev/null"), "--out /dev/null") as fh:
        fh.write(b"^XA^XZ")
    if Path("/dev/full").exists():
        full = Path("/dev/full")
        with pytest.raises(WriteFailure, match="--out /dev/full"), replacing(full, "--out /dev/full") as fh:
            fh.write(b"x" * 10000)
            fh.flush()


# --- the cache and the printed log -----------------------------------------------------------------------------


def test_the_cache_is_per_api_and_prunes_only_old_files_once_a_day(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path))
    one, other = LabelCache.for_identity("sandbox"), LabelCache.for_identity("https://api.easypost.com/v2 (test key)")
    assert one.root != other.root and one.root.parent == other.root.parent
    assert one.root.stat().st_mode & 0o777 == 0o700
    old, new = one.label("shp_old", "PNG"), one.label("shp_new", "ZPL")
    assert (old.name, new.name) == ("shp_old.png", "shp_new.zpl")
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    import os
    import time

    now = time.time()
    os.utime(old, (now - (KEEP_DAYS + 1) * 86400,) * 2)
    assert one.prune(now) == 1
    assert not old.exists() and new.exists()
    old.write_bytes(b"x")
    os.utime(old, (now - (KEEP_DAYS + 1) * 86400,) * 2)
    assert one.prune(now + 60) == 0  # pruned within the day: not again
    assert one.prune(now + 86400 * 1.5) == 1


def test_the_printed_log_remembers_shipments_and_counts_reprints(tmp_path: Path) -> None:
    with PrintedLog(tmp_path) as log:
        assert log.claim(["shp_1", "shp_2"]).printed == set()
        log.record([("shp_1", "ORD-1", "9400")], tmp_path / "a.pdf")
        log.record([("shp_1", "ORD-1", "9400"), ("shp_2", "ORD-2", None)], tmp_path / "b.pdf")
        assert log.claim(["shp_1", "shp_2", "shp_3"]).printed == {"shp_1", "shp_2"}
    import sqlite3

    db = sqlite3.connect(log.path)
    assert db.execute("SELECT file, times FROM printed WHERE shipment_id = 'shp_1'").fetchone() == (
        str(tmp_path / "b.pdf"), 2)
    db.close()
