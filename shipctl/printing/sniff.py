"""What a label or form file is, from its first bytes: a name or a URL can lie (an HTML error page saved as .pdf)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["PDF", "PNG", "ZPL", "IMAGE"]

_HEAD = 4096
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM")


def kind_of(head: bytes) -> Kind | None:
    """PDF (`%PDF` near the start, as readers accept it), PNG, another image Pillow reads, ZPL (`^XA`), or None."""
    if b"%PDF-" in head[:1024]:
        return "PDF"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(_IMAGE_MAGIC):
        return "IMAGE"
    if b"^XA" in head[:_HEAD].upper():
        return "ZPL"
    return None


def file_kind(path: Path) -> Kind | None:
    """The kind of the file at `path`; None when it is missing, empty, unreadable or of no kind shipctl prints."""
    try:
        with path.open("rb") as fh:
            return kind_of(fh.read(_HEAD))
    except OSError:
        return None
