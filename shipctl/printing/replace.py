"""Write the output file whole or not at all: into a temporary file beside it, renamed over it at the end.

A run killed halfway, a full disk or a failed build leaves the old file (or none) under the final name, never half
a PDF that a printer would take. A link of the user's own is kept a link: its target is what gets replaced. A
device or a pipe (`/dev/usb/lp0`, a printer's queue) cannot be renamed over: it is written straight.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from shipctl import safefiles
from shipctl.errors import WriteFailure

Written = Callable[[Path, os.stat_result], None]
"""Told the final path and the identity of the file written whole, just before it is renamed there."""


@contextlib.contextmanager
def replacing(dest: Path, what: str, on_written: Written | None = None) -> Iterator[BinaryIO]:
    """A binary file whose content becomes `dest` when the block ends without an error; failures to write are
    `WriteFailure`s naming `what`. `on_written` is called before the rename (not for a device, written straight)."""
    try:
        if safefiles.check_links(dest):
            dest = dest.resolve()
        special = dest.exists() and not stat.S_ISREG(dest.stat().st_mode)
    except OSError as exc:
        raise WriteFailure.from_os(what, exc) from None
    if special:
        yield from _straight(dest, what)
        return
    try:
        fd, tmp = safefiles.create_beside(dest)
    except OSError as exc:
        raise WriteFailure.from_os(what, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if on_written is not None:
                on_written(dest, os.fstat(fh.fileno()))
        os.replace(tmp, dest)
    except OSError as exc:
        raise WriteFailure.from_os(what, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def _straight(dest: Path, what: str) -> Iterator[BinaryIO]:
    try:
        with open(dest, "wb") as fh:  # a device: no temporary file can stand in for it
            yield fh
    except OSError as exc:
        raise WriteFailure.from_os(what, exc) from None


def discards(dest: Path) -> bool:
    """Whether `dest` is the null device, which keeps nothing written to it (`--out /dev/null`)."""
    try:
        found, null = os.stat(dest), os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(found.st_mode) and found.st_rdev == null.st_rdev
