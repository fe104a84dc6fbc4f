"""How far a planned price may move before `apply` refuses to buy at the new one (`--max-drift`).

A module of its own, not part of `plans.py`: every `create` carries one (the purchase options' default) but reads
no plan, and `plans.py`'s other dataclasses and imports cost a one-row run ~5 ms of start-up for nothing.
`plans.parse_drift` makes one from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Drift:
    """How far a planned price may move before `apply` refuses to buy at the new one: an amount or a percentage."""

    amount: Decimal | None = None
    percent: Decimal | None = None

    def allows(self, planned: Decimal, now: Decimal) -> bool:
        moved = abs(now - planned)
        if self.percent is not None:
            return moved <= planned * self.percent / 100
        return moved <= (self.amount or Decimal(0))

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent.normalize():f}%"
        return f"{(self.amount or Decimal(0)):.2f}"
