"""The validation pass every manifest job runs first: every row read and checked, nothing sent before it passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shipctl.manifest import Address, InvalidRow, Problem, ValidRow, iter_rows


@dataclass
class Checked:
    """What the validation pass saw: every row, and how many of them were invalid."""

    rows: int = 0
    invalid: int = 0
    derived: int = 0
    """Valid rows that gave no reference, known by their content instead (an edit makes them a new order)."""


@dataclass
class ManifestSource:
    """A manifest and how to read it; `extra_check` adds a job's own rules to the manifest's (create: pins
    outside `--carriers`/`--services`), and a row it flags is invalid like any other."""

    path: Path
    fmt: str | None = None
    encoding: str | None = None
    default_from: Address | None = None
    extra_check: Callable[[ValidRow], list[Problem]] | None = None
    on_warning: Callable[[str], None] = field(default=lambda _m: None)
    sheet: str | None = None
    """The sheet of an `.xlsx` workbook to read (None: its first sheet)."""

    def rows(self, *, warn: bool = False) -> Iterator[ValidRow | InvalidRow]:
        """Every row, as a `ValidRow` or an `InvalidRow` (with the extra check applied). Only the validation pass
        warns (`warn=True`): a phase reading the same manifest again must not repeat its warnings."""
        on_warning = self.on_warning if warn else None
        items = iter_rows(self.path, fmt=self.fmt, encoding=self.encoding,  # type: ignore[arg-type]
                          default_from=self.default_from, on_warning=on_warning, sheet=self.sheet)
        return items if self.extra_check is None else _checked(items, self.extra_check)

    def check(self, on_invalid: Callable[[InvalidRow], None]) -> Checked:
        """Read the whole manifest once; `on_invalid` sees each invalid row (to print, or to keep aside)."""
        rows = invalid = derived = 0
        for item in self.rows(warn=True):
            rows += 1
            if isinstance(item, InvalidRow):
                invalid += 1
                on_invalid(item)
            elif item.derived:
                derived += 1
        return Checked(rows, invalid, derived)


def _checked(items: Iterator[ValidRow | InvalidRow], extra_check: Callable[[ValidRow], list[Problem]]
             ) -> Iterator[ValidRow | InvalidRow]:
    for item in items:
        if isinstance(item, ValidRow) and (problems := extra_check(item)):
            item = InvalidRow(item.line, problems, item.raw)
        yield item
