"""The output ZPL file: the labels' ZPL, concatenated in order, as a Zebra printer takes it raw.

Each label's file is kept byte for byte (a carrier's `~DG` graphics or `^CI` settings included) and must hold at
least one whole `^XA … ^XZ` format; a newline separates one label from the next.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from shipctl.printing.pages import UnreadableFile

_FORMAT = re.compile(rb"\^XA.*?\^XZ", re.DOTALL | re.IGNORECASE)


def formats_in(data: bytes) -> int:
    """How many `^XA … ^XZ` formats (printed labels) `data` holds."""
    return len(_FORMAT.findall(data))


class ZplDocument:
    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.formats = 0

    def add_label(self, data: bytes) -> tuple[int, int]:
        """Add one label's ZPL; (its first format's number, 1-based; how many formats it holds). Raises
        `UnreadableFile` for a file that is not ZPL, with nothing added."""
        count = formats_in(data)
        if not count:
            raise UnreadableFile("it holds no ^XA … ^XZ label")
        first = self.formats + 1
        self._parts.append(data if data.endswith(b"\n") else data + b"\n")
        self.formats += count
        return first, count

    def write(self, fh: BinaryIO) -> None:
        for part in self._parts:
            fh.write(part)
