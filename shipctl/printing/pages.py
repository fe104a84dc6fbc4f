"""One label or form file as pages of the output's size.

A PDF's pages are scaled to fit their box (up or down), keeping their aspect, centred; a page whose orientation is
not the box's (a landscape label for a portrait 4×6 box) is turned a quarter clockwise first. An image is placed
at its own resolution (a 300 dpi 1200×1800 PNG is exactly 4×6 in), only ever shrunk, never blown up, to fit; an
image that does not say its resolution is scaled to fit like a PDF. Images become PDF pages through Pillow (bilevel
labels as CCITT G4, the way fax-like 1-bit images are meant to be stored; others as JPEG at quality 95), and every
page is then placed with pypdf: its drawing transformed, its boxes set to the sheet. Nothing here writes PDF syntax
by hand.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from shipctl.printing.sniff import kind_of

LABEL_SIZE = (288.0, 432.0)
"""4×6 in, in PDF points (1/72 in)."""
SHEETS: dict[str, tuple[float, float]] = {"4x6": LABEL_SIZE, "letter": (612.0, 792.0)}
"""Page sizes `--page` takes: a thermal printer's 4×6 in label, or a US letter sheet for a laser printer."""

Box = tuple[float, float, float, float]
"""x, y, width, height in points, from the page's lower-left corner."""


class UnreadableFile(Exception):
    """A label or form file that is neither a PDF nor an image pypdf and Pillow can read."""


@dataclass(frozen=True)
class Sheet:
    """The output's page: every page of the file has this size. A label takes a 4×6 in box in its middle (the
    whole page on a 4×6 sheet); a form (an invoice, usually letter-sized) takes the whole page."""

    name: str

    @property
    def size(self) -> tuple[float, float]:
        return SHEETS[self.name]

    @property
    def label_box(self) -> Box:
        width, height = self.size
        return ((width - LABEL_SIZE[0]) / 2, (height - LABEL_SIZE[1]) / 2, *LABEL_SIZE)

    @property
    def form_box(self) -> Box:
        return (0.0, 0.0, *self.size)


@dataclass(frozen=True)
class Placement:
    """A page read from a file, and where it goes: `place` it once it belongs to the output's writer (pypdf
    transforms only pages a writer owns)."""

    page: Any
    size: tuple[float, float]
    box: Box
    enlarge: bool


def label_pages(data: bytes, sheet: Sheet) -> list[Placement]:
    """The pages of one label file, each to be the size of `sheet`, the label in its 4×6 box."""
    return [Placement(page, sheet.size, sheet.label_box, enlarge) for page, enlarge in _source_pages(data)]


def form_pages(data: bytes, sheet: Sheet) -> list[Placement]:
    """The pages of one form file (a commercial invoice), each to be the size of `sheet`, filling it."""
    return [Placement(page, sheet.size, sheet.form_box, enlarge) for page, enlarge in _source_pages(data)]


def _source_pages(data: bytes) -> list[tuple[Any, bool]]:
    """(pypdf page, may it be enlarged) for each page the file holds."""
    from pypdf import PdfReader

    kind = kind_of(data[:4096])
    if kind in ("PNG", "IMAGE"):
        return [_image_page(data)]
    if kind != "PDF":
        raise UnreadableFile("it is neither a PDF nor an image")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = list(reader.pages)
    except Exception as exc:  # a damaged file makes pypdf raise many kinds of error: each means "cannot read it"
        raise UnreadableFile(f"the PDF cannot be read ({exc})") from None
    if not pages:
        raise UnreadableFile("the PDF has no page")
    if any(float(page.cropbox.width) <= 0 or float(page.cropbox.height) <= 0 for page in pages):
        raise UnreadableFile("a page has no area")
    return [(page, True) for page in pages]


def _image_page(data: bytes) -> tuple[Any, bool]:
    from PIL import Image, UnidentifiedImageError
    from pypdf import PdfReader

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            dpi = _dpi(image.info.get("dpi"))
            printable = _printable(image)
            buffer = io.BytesIO()
            # JPEG's quality for photographs and greyscale; a bilevel label is stored losslessly (CCITT G4).
            extra = {} if printable.mode == "1" else {"quality": 95}
            printable.save(buffer, "PDF", resolution=dpi or 72.0, **extra)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableFile(f"the image cannot be read ({exc})") from None
    return PdfReader(buffer).pages[0], dpi is None


def _dpi(value: Any) -> float | None:
    """The image's resolution, rounded where a writer's pixels-per-metre made 299.9994 of 300; None if unsaid."""
    try:
        dpi = float(value[0])
    except (TypeError, ValueError, IndexError):
        return None
    if dpi < 1:
        return None
    return float(round(dpi)) if abs(dpi - round(dpi)) < 0.01 else dpi


def _printable(image: Any) -> Any:
    """An image Pillow's PDF writer takes: transparency flattened onto white, odd modes made greyscale or RGB."""
    from PIL import Image

    if image.mode == "1":
        return image
    if image.mode in ("L", "P", "RGB") and "transparency" not in image.info:
        grey = image.convert("L")
        colours = grey.getcolors(2)
        if colours is not None and {value for _, value in colours} <= {0, 255}:
            # Black and white stored as greyscale or a palette (many carriers' PNGs): bilevel, so stored
            # losslessly (G4), never as JPEG, whose ringing blurs a barcode's edges.
            return grey.point(lambda value: 255 if value > 127 else 0, "1")
    if image.mode in ("L", "RGB", "CMYK"):
        return image
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("L" if image.mode.startswith(("I", "F")) else "RGB")


def place(placement: Placement, page: Any) -> None:
    """Draw `page` (the writer's copy of `placement.page`) into its box: turned if its orientation differs from the
    box's, fitted, centred; its boxes become the sheet's."""
    from pypdf import Transformation
    from pypdf.generic import NameObject, RectangleObject

    if page.rotation % 360:
        page.transfer_rotation_to_content()  # what a viewer shows is what gets placed
    crop = page.cropbox
    x0, y0, width, height = float(crop.left), float(crop.bottom), float(crop.width), float(crop.height)
    bx, by, bw, bh = placement.box
    transform = Transformation().translate(-x0, -y0)
    if (width > height) != (bw > bh) and abs(width - height) > 1:
        # A quarter turn clockwise: (x, y) -> (y, width - x); the page is then `height` wide.
        transform = transform.rotate(-90).translate(0, width)
        width, height = height, width
    scale = min(bw / width, bh / height)
    if not placement.enlarge:
        scale = min(scale, 1.0)
    transform = transform.scale(scale, scale).translate(bx + (bw - width * scale) / 2, by + (bh - height * scale) / 2)
    if any(abs(a - b) > 1e-9 for a, b in zip(transform.ctm, (1, 0, 0, 1, 0, 0), strict=True)):
        page.add_transformation(transform)
    for name in ("/CropBox", "/TrimBox", "/BleedBox", "/ArtBox", "/Annots"):
        if name in page:
            del page[NameObject(name)]  # links and the old boxes point at where the drawing no longer is
    page.mediabox = RectangleObject((0, 0, *placement.size))
