"""The output PDF: labels in order, each followed by its forms, every page the sheet's size, one bookmark a label.

A label's bookmark reads `<reference> · <tracking code>` and points at its first page; its forms' bookmarks sit
under it (`commercial invoice`). A viewer's outline is then the pick list, and a test can map pages to labels.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from shipctl.printing.pages import Placement, Sheet, form_pages, label_pages, place


class PdfDocument:
    """Pages added in the order they are to come out of the printer; `write` puts the whole file out."""

    def __init__(self, sheet: Sheet, title: str) -> None:
        from pypdf import PdfWriter

        self.sheet = sheet
        self._writer = PdfWriter()
        self._writer.add_metadata({"/Title": title, "/Producer": "shipctl labels (pypdf)"})
        self.pages = 0
        self._sources: list[Any] = []
        """Every page added, as read: it keeps its reader alive until the file is written. Older pypdf (3.1, the
        lowest shipctl allows) tells readers apart by `id()`, and a reader freed after its page was added could
        leave its id to the next label's reader, whose page would then be taken for the first one's."""

    def add_label(self, data: bytes, title: str) -> tuple[int, Any]:
        """Add a label's pages; (its first page, 1-based; its bookmark, the parent of its forms' bookmarks).
        Raises `UnreadableFile` with nothing added."""
        pages = label_pages(data, self.sheet)
        first = self._append(pages)
        return first + 1, self._writer.add_outline_item(title=title, page_number=first)

    def add_form(self, data: bytes, title: str, parent: Any) -> int:
        """Add a form's pages after its label; the number of pages. Raises `UnreadableFile` with nothing added."""
        pages = form_pages(data, self.sheet)
        first = self._append(pages)
        self._writer.add_outline_item(title=title, page_number=first, parent=parent)
        return len(pages)

    def _append(self, placements: list[Placement]) -> int:
        first = self.pages
        for placement in placements:
            self._sources.append(placement.page)
            place(placement, self._writer.add_page(placement.page))
        self.pages += len(placements)
        return first

    def write(self, fh: BinaryIO) -> None:
        self._writer.page_mode = "/UseOutlines"  # open with the bookmarks shown: they are the pick list
        self._writer.write(fh)
