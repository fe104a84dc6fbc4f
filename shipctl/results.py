"""The per-row result record that every bulk command emits, and the column order writers use."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["bought", "refunded", "failed", "skipped", "planned"]
"""`refunded`: a label bought once and voided since (`shipctl refund`); it is not shipped and never counts as spend."""
Purchase = Literal["new", "resumed", "found"]
"""Who bought a `bought` row's label: this run (`new`, the only spend of this run), an earlier run of this
journal (`resumed`), or a run outside this journal -- another manifest, journal, machine (`found`, adopted)."""
VerifyMode = Literal["off", "warn", "strict"]
"""`create --verify`: whether EasyPost verifies each destination inside `shipment.create`, and what a failure does."""


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
    purchase: Purchase | None = None
    address_verification: str | None = None
    """What EasyPost's verification of the destination found (`verified`, `corrected: city: A → B`, `failed: E.CODE
    (...)`); None under `--verify off`, for a label found bought outside the journal, or a row not verified."""
    insurance: str | None = None
    """The amount the label is insured for: sent with its buy (None for a label found bought elsewhere)."""
    options: str | None = None
    """The shipment options the row's shipment was created with, as a JSON object (`{"delivery_confirmation":
    "SIGNATURE","print_custom_1":"PO 7731"}`); `is_return` among them for a return label."""
    rate_choice: str | None = None
    """Why this rate: the rule that chose it and what it passed over (`--deliver-within`, a row's deliver_within)."""
    insurance_fee: str | None = field(default=None, metadata={"column": False})
    """What insuring the label cost (USD), for the summary's cost table. Not an output column."""
    retryable: bool = field(default=False, metadata={"column": False})
    """Failed on a temporary API error (429, 5xx, timeout): the same command retries it. Not an output column."""

    def as_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a shallow read is enough (dataclasses.asdict deep-copies, per row).
        return {name: getattr(self, name) for name in RESULT_COLUMNS}


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRecord) if f.metadata.get("column", True))

# What a person reads in a terminal table: the URL (long, and for the sandbox valid only while it runs) is left
# to the data formats; the tracking code comes first.
TABLE_COLUMNS: tuple[str, ...] = (
    "reference", "status", "purchase", "tracking_code", "carrier", "service", "rate", "currency", "delivery_days",
    "shipment_id", "label_path", "error_code", "error_message", "address_verification", "insurance", "options",
    "rate_choice",
)
