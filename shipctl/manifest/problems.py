"""Identical problems, grouped: one line per distinct (column, message) with the rows it is on.

A manifest exported without its origin columns has the same problem on every row; printed per row, 2,000
identical lines bury the one different problem and never say how to fix the 2,000. Grouped, each distinct
problem is one line, `rows 2–2001 (2,000 rows), column from_*: required`, in the order the file first shows
it, and a hint follows where one helps. A problem on one row still reads `row N, column C: message`.

Pure text: the job or the CLI hands in the function that prints a line (`Host.info`, the terminal's `line`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from shipctl.manifest.rows import InvalidRow

SHOWN_RANGES = 6
"""How many row ranges a line lists before it says `and N more`: enough to find them, short enough to read."""
MAX_GROUPS = 10_000
"""Distinct problems held before they are printed: memory stays bounded on a million rows that each have a
different bad value (the same problem seen again after that starts a new line)."""

# Short enough for one line of an 80-column terminal.
_NO_ORIGIN = "give rows without from_* an origin: pass --from FILE or set SHIPCTL_FROM"
_PART_ORIGIN = "--from and SHIPCTL_FROM fill in only rows whose from_* cells are all empty"


def hint_for(column: str, message: str) -> str | None:
    """What to do about a problem, when the message alone does not say it."""
    if not column.startswith("from_") or not message.endswith("required"):
        return None
    return _NO_ORIGIN if column == "from_*" else _PART_ORIGIN


@dataclass
class _Group:
    """The rows of one distinct problem: the first `SHOWN_RANGES` runs of consecutive rows, and a count."""

    ranges: list[list[int]] = field(default_factory=list)
    rows: int = 0
    last: int = 0

    def add(self, row: int) -> None:
        if self.rows and row == self.last:  # one row can raise one problem twice (an item list): count it once
            return
        self.rows += 1
        if self.ranges and row == self.last + 1 and self.ranges[-1][1] == self.last:
            self.ranges[-1][1] = row
        elif len(self.ranges) < SHOWN_RANGES:
            self.ranges.append([row, row])
        self.last = row

    def where(self) -> str:
        """`row 5`, `rows 3, 4, 7`, `rows 2–2001 (2,000 rows)`, `rows 2, 4, 6 and 994 more (997 rows)`."""
        if self.rows == 1:
            return f"row {self.ranges[0][0]}"
        listed = sum(end - start + 1 for start, end in self.ranges)
        text = ", ".join(_run(start, end) for start, end in self.ranges)
        if listed < self.rows:
            text += f" and {self.rows - listed:,} more"
        if any(end - start > 1 for start, end in self.ranges) or listed < self.rows:
            text += f" ({self.rows:,} rows)"  # only where the list alone does not show how many
        return f"rows {text}"


def _run(start: int, end: int) -> str:
    """`7`, `7, 8` or `7–9`: a range only where it saves writing rows out."""
    if start == end:
        return str(start)
    return f"{start}, {end}" if end == start + 1 else f"{start}–{end}"


class ProblemGroups:
    """Feed it every `InvalidRow` (`add`), then `flush` (or use it as a context manager, which flushes on the
    way out, so problems seen before a manifest error are still printed)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.groups: dict[tuple[str, str], _Group] = {}
        self.hints: dict[str, bool] = {}
        """Each hint wanted, and whether it has been printed (once per report, however many flushes)."""

    def add(self, item: InvalidRow) -> None:
        for problem in item.problems:
            key = (problem.column, problem.message)
            group = self.groups.get(key)
            if group is None:
                if len(self.groups) >= MAX_GROUPS:
                    self.flush()
                group = self.groups[key] = _Group()
                hint = hint_for(problem.column, problem.message)
                if hint is not None:
                    self.hints.setdefault(hint, False)
            group.add(problem.line)

    def flush(self) -> None:
        """Print every group held, first seen first, then any hint not printed yet."""
        for (column, message), group in self.groups.items():
            self.emit(f"{group.where()}, column {column}: {message}")
        self.groups.clear()
        for hint, shown in self.hints.items():
            if not shown:
                self.emit(f"hint: {hint}")
                self.hints[hint] = True

    def __enter__(self) -> ProblemGroups:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()
