"""`plan` after its dry run: the plan document from what the run quoted and journaled.

The dry run is `create`'s own (every shipment created and journaled, every rate chosen, nothing bought); this
module reads back, for each row the run planned, the shipment and the rate id the journal holds, and puts them in
a `Plan` together with what the plan is bound to: the API and mode, the account, the manifest's SHA-256 and the
journal, so `apply` buys those very rates through that journal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipctl import money
from shipctl.jobs.create import CreateOutcome
from shipctl.journal import Journal
from shipctl.plans import Plan, PlannedRow


def build_plan(
    outcome: CreateOutcome, *, journal_path: Path, api: str, manifest: Path, valid_for: dt.timedelta,
    reading: Mapping[str, Any], manifest_sha256: str, now: dt.datetime | None = None,
) -> Plan:
    made = now or dt.datetime.now(dt.timezone.utc)
    rows: list[PlannedRow] = []
    unplanned = list(outcome.unplanned)
    with Journal(journal_path) as journal:
        mode, account = journal.meta("mode"), journal.meta("account")
        for reference, line, choice in outcome.planned:
            entry = journal.get(reference)
            amount = money.parse_amount(entry.rate) if entry is not None else None
            if entry is None or not entry.shipment_id or not entry.rate_id or amount is None:
                # A quote that did not reach the journal is not planned: apply never guesses. Said, not dropped.
                unplanned.append({"reference": reference, "status": "failed", "error_code": "NOT_JOURNALED",
                                  "error_message": "its quote is not in the journal; plan again"})
                continue
            rows.append(PlannedRow(
                reference=reference, line=line, shipment_id=entry.shipment_id, rate_id=entry.rate_id,
                carrier=entry.carrier, service=entry.service, rate=amount, currency=money.currency_of(entry.currency),
                delivery_days=entry.delivery_days, rate_choice=choice,
            ))
    return Plan(
        created_at=made,
        expires_at=made + valid_for,
        api=api,
        mode=mode,
        account=account,
        manifest=str(manifest.resolve()),
        manifest_sha256=manifest_sha256,
        journal=str(journal_path.resolve()),
        rows=tuple(rows),
        reading=reading,
        insurance=dict(outcome.insurance),
        not_planned=tuple(unplanned),
    )
