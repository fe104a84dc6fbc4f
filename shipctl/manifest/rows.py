"""What the reader yields for each manifest row: a valid, normalised row or the row's problems."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipctl.manifest.models import ShipmentRow

RawRow = dict[str, Any] | tuple[Sequence[str], Sequence[str]]
"""A row as read: a dict, or a table row's (headers, cells), made into the dict only if someone reads it."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one cell: `row N, column C: message` (N counts file lines, header = 1)."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.line}, column {self.column}: {self.message}"


class ValidRow:
    """A valid row: where it is, the validated `ShipmentRow`, and the row as read (`raw`)."""

    __slots__ = ("_raw", "derived", "line", "row")

    def __init__(self, line: int, row: ShipmentRow, raw: RawRow, *, derived: bool = False) -> None:
        self.line = line  # the file line the row starts on (CSV, header = 1), or the object's index (JSON, from 1)
        self.row = row
        self._raw = raw
        self.derived = derived
        """The row gave no reference: `row.reference` is its content's (`ShipmentRow.content_key`)."""

    @property
    def raw(self) -> dict[str, Any]:
        """The row as read: original headers and text for CSV, the object as parsed for JSON.

        Built on first use: almost no valid row is ever looked at as read, and a dict of every cell per row was
        a tenth of the validation pass."""
        raw = self._raw
        if isinstance(raw, tuple):
            headers, cells = raw
            raw = self._raw = dict(zip(headers, cells, strict=True))
        return raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidRow):
            return NotImplemented
        return (self.line, self.row, self.raw) == (other.line, other.row, other.raw)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"ValidRow(line={self.line!r}, row={self.row!r}, raw={self.raw!r})"


@dataclass(slots=True)
class InvalidRow:
    line: int
    problems: list[Problem]
    raw: dict[str, Any]
