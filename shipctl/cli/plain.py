"""stderr as plain text, for when nothing on it can show colour: a pipe, a file, cron's mail.

Rich would write the same characters there (it drops styles when the stream is no terminal), but loading it and
laying text out through it is ~25 ms of a 1-row `create`'s CPU. `PlainConsole` takes the part of rich's `Console`
that messages, the summary and the plain progress lines use, and writes the text as rich would: styles dropped,
the control characters rich strips from text stripped too. Anything else it is handed (a table, a live display)
goes through a real rich console on the same stream, made when first needed (`rich`).

`shows_plain` is rich's own test for "this stream is a terminal" (TTY_COMPATIBLE, FORCE_COLOR, then isatty),
negated: where rich would colour, rich draws.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

# Rich's `Text` strips these (bell, backspace, vertical tab, form feed, carriage return): a manifest's reference
# must not move the cursor of whoever reads the log later.
_STRIPPED = dict.fromkeys((7, 8, 11, 12, 13))


def strip_controls(text: str) -> str:
    """`text` as rich renders it into a file: its control characters stripped, its tabs expanded (stops of 8)."""
    return text.translate(_STRIPPED).expandtabs(8)


def shows_plain(stream: Any) -> bool:
    """Whether rich would write `stream` without colour or cursor moves (so the plain console writes it)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "0"
    forced = os.environ.get("FORCE_COLOR")
    if forced is not None:
        return forced == ""
    try:
        return not stream.isatty()
    except (AttributeError, ValueError, OSError):
        return True


class PlainConsole:
    """The slice of rich's `Console` that shipctl prints text through, for a stream that shows no colour.

    `stream` is called at each write: the stream is looked up when used, as the terminal object does. `rich`
    makes the rich console of the same stream, for what only rich draws.
    """

    is_terminal = False
    is_dumb_terminal = False

    def __init__(self, stream: Callable[[], TextIO], rich: Callable[[], Console], *, stderr: bool) -> None:
        self._stream = stream
        self.rich = rich
        self.stderr = stderr
        self._gone = False

    def _write(self, text: str) -> None:
        """Write and flush; once the reader has gone (`2>&1 | head`), drop the rest. A message nobody reads must
        not stop a run that is buying labels: it ends as it would have, everything in its journal."""
        if self._gone:
            return
        try:
            stream = self._stream()
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            self._gone = True

    @property
    def file(self) -> TextIO:
        return self._stream()

    @property
    def width(self) -> int:
        """`COLUMNS`, else 80: what a line of progress may assume (nothing here wraps or crops to it)."""
        columns = os.environ.get("COLUMNS", "")
        return int(columns) if columns.isdigit() and int(columns) > 0 else 80

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **options: Any) -> None:
        """Text as written (style, highlighting and wrapping mean nothing here); anything else via rich, and so
        is text rich would read as markup (`markup` not False, a `[` in it), which rich strips of its tags."""
        if not all(isinstance(item, str) for item in objects) or (
            options.get("markup", True) is not False and any("[" in item for item in objects)
        ):
            self.rich().print(*objects, sep=sep, end=end, **options)
            return
        self._write(strip_controls(sep.join(objects)) + end)

    def write_lines(self, lines: list[str]) -> None:
        self._write("".join(strip_controls(line) + "\n" for line in lines))

    def line(self, count: int = 1) -> None:
        self._write("\n" * count)
