"""`shipctl report --delivery`: the tracking run behind it and its table. The job is `shipctl.jobs.report_delivery`.

Imported by `cli/report.py` only when `--delivery` is given: this is where `report` meets the API (the key, the
sandbox target, the engine, the SDK), so a `report` without it loads none of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shipctl.cli.terminal import terminal

if TYPE_CHECKING:
    from rich.console import Console

    from shipctl.jobs.report_delivery import DeliveryReport

FIELDS_AFTER = ("carrier", "service", "delivered", "on_time", "late", "in_transit", "not_scanned", "other",
                "untracked", "median_days", "average_days")
"""The delivery records' fields that the spend records lack, added after theirs in a CSV header."""


def track_deliveries(journals: Sequence[Path], since: dt.date | None, until: dt.date | None,
                     fmt: str) -> DeliveryReport:
    """Track the journals' labels (the cache answering what it can) and count them."""
    from shipctl.cli.host import CliHost
    from shipctl.cli.options import RunOptions
    from shipctl.engine.sizing import size_pools
    from shipctl.jobs.report_delivery import DeliveryJob, DeliveryQuery, TrackingCache
    from shipctl.jobs.session import open_session

    run = RunOptions(output=fmt, sizing=size_pools(), progress="auto",  # type: ignore[arg-type]
                     progress_interval=10.0, quiet=False, verbose=False, force_sandbox=False)
    host = CliHost(run, noun="codes")
    with TrackingCache.in_state_dir() as cache, open_session(run.sizing, announce=host.detail) as session:
        report = DeliveryJob(DeliveryQuery(since, until), journals, session, host, cache).run()
    term = terminal()
    if report.cache_error:
        term.warn(f"the tracking answers could not be kept in {cache.path}: {report.cache_error}")
    term.info(f"delivery: {report.total.labels:,} labels, {report.tracked:,} codes tracked, "
              f"{report.cached:,} from the tracking cache")
    return report


def render(out: Console, report: DeliveryReport) -> None:
    from rich.table import Table

    if not report.total.labels:
        out.print("No labels to track in this period.")
        return
    table = Table(title="Delivery by service", title_justify="left")
    table.add_column("service")
    names = ("labels", "on time", "late", "in transit", "not scanned", "delivered", "other", "untracked",
             "median days", "average days")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)

    def days(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    for i, g in enumerate([*report.groups, report.total]):
        if i == len(report.groups):
            table.add_section()
        record = g.record("total" if g is report.total else "service")
        table.add_row(str(record["group"]), f"{g.labels:,}", f"{g.on_time:,}", f"{g.late:,}", f"{g.in_transit:,}",
                      f"{g.not_scanned:,}", f"{g.delivered:,}", f"{g.other:,}", f"{g.untracked:,}",
                      days(g.median_days), days(g.average_days), style="bold" if g is report.total else None)
    out.print(table)
