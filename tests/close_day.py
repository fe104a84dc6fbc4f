"""A shipping day for the `close` tests: labels bought by a real `create` run from two origins with two carriers, and
what the sandbox says about scan forms and pickups, read back through the official SDK."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shipctl.engine.sizing import size_pools
from shipctl.jobs import Headless, open_session
from shipctl.jobs.close import CloseInputs, CloseJob, CloseOutcome
from tests.cli import TEST_KEY, invoke, ndjson
from tests.manifests import row, write_manifest
from tests.sdk import Api, sdk

SECOND_ORIGIN = {"from_street1": "1 Market St", "from_city": "San Francisco", "from_state": "CA", "from_zip": "94105"}
CARRIERS = ("USPS", "UPS")


def day_rows(per_group: int = 2, start: int = 0) -> list[dict[str, Any]]:
    """`per_group` rows for each of two origins x two carriers, interleaved as a real export would be."""
    rows = []
    for n in range(per_group * 4):
        i = start + n
        extra: dict[str, Any] = {"carrier": CARRIERS[n % 2]}
        if (n // 2) % 2:
            extra.update(SECOND_ORIGIN)
        rows.append(row(i, **extra))
    return rows


def buy(path: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Buy `rows` with `shipctl create` (in-process, against whatever the environment points at); the records in
    manifest order."""
    write_manifest(path, rows)
    result = invoke("create", str(path), "-o", "ndjson", "--quiet")
    assert result.exit_code == 0, result.stderr
    bought = sorted(ndjson(result.stdout), key=lambda r: str(r["reference"]))  # stdout is in completion order
    assert [r["status"] for r in bought] == ["bought"] * len(rows)
    return bought


def today(**changes: Any) -> CloseInputs:
    """What `shipctl close` runs on by default: today's labels, plus `changes`."""
    return CloseInputs(**{"day": dt.date.today(), **changes})


def run_close(inputs: CloseInputs, host: Headless | None = None) -> tuple[CloseOutcome, list[dict[str, Any]]]:
    """The job as a script would run it: its own session (whatever the environment points at), records kept."""
    records: list[dict[str, Any]] = []
    with open_session(size_pools(concurrency=4)) as session:
        outcome = CloseJob(inputs, session, host or Headless(), records.append).run()
    return outcome, records


def scan_forms(api: Api, key: str = TEST_KEY) -> list[Any]:
    """Every form the sandbox holds for the key's account, through the SDK."""
    client = sdk(api, key)
    try:
        forms: list[Any] = []
        page = client.scan_form.all(page_size=100)
        forms.extend(page["scan_forms"])
        while page["has_more"]:
            page = client.scan_form.get_next_page(page, 100)
            forms.extend(page["scan_forms"])
        return forms
    finally:
        client._requests_session.close()


def form_of(api: Api, shipment_ids: Sequence[str]) -> dict[str, str | None]:
    """Each shipment's form id, as the API shows it on the shipment."""
    client = sdk(api)
    try:
        found = {}
        for sid in shipment_ids:
            form = client.shipment.retrieve(sid).scan_form
            found[sid] = None if form is None else form.id
        return found
    finally:
        client._requests_session.close()


def pickups(api: Api, key: str = TEST_KEY) -> list[Any]:
    client = sdk(api, key)
    try:
        return list(client.pickup.all(page_size=100)["pickups"])
    finally:
        client._requests_session.close()
