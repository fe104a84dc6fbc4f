"""The per-row result record that every bulk command emits, and the column order writers use."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

Status = Literal["bought", "failed", "skipped", "planned"]


@dataclass
class ResultRecord:
    reference: str
    status: Status
    shipment_id: str | None = None
    tracking_code: str | None = None
    carrier: str | None = None
    service: str | None = None
    rate: str | None = None
    currency: str | None = None
    delivery_days: int | None = None
    label_url: str | None = None
    label_path: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a shallow read is enough (dataclasses.asdict deep-copies, per row).
        return {name: getattr(self, name) for name in RESULT_COLUMNS}


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRecord))

# What a person reads in a terminal table: the URL (long, and for the sandbox valid only while it runs) is left
# to the data formats; the tracking code comes first.
TABLE_COLUMNS: tuple[str, ...] = (
    "reference", "status", "tracking_code", "carrier", "service", "rate", "currency", "delivery_days",
    "shipment_id", "label_path", "error_code", "error_message",
)
