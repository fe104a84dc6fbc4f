"""What the reader yields for each manifest row: a valid, normalised row or the row's problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipctl.manifest.models import ShipmentRow


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one cell: `row N, column C: message` (N counts file lines, header = 1)."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.line}, column {self.column}: {self.message}"


@dataclass(slots=True)
class ValidRow:
    line: int
    """The file line the row starts on (CSV, header = line 1), or the 1-based object index (JSON, NDJSON)."""
    row: ShipmentRow
    raw: dict[str, Any]
    """The row as read: original headers and text for CSV, the object as parsed for JSON."""


@dataclass(slots=True)
class InvalidRow:
    line: int
    problems: list[Problem]
    raw: dict[str, Any]
