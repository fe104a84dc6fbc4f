"""`shipctl reconcile`: the journals on this machine against the account's purchased labels; exit 3 on a mismatch.

The options and the rendering; the comparison is `shipctl.jobs.reconcile`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import RunOptions, engine_options
from shipctl.cli.terminal import terminal

if TYPE_CHECKING:  # the job and the SDK load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.output import Writer

RECONCILE_TABLE_COLUMNS = ("status", "reference", "shipment_id", "cost", "created_at", "detail")
DEFAULT_DAYS = 30


class _Records:
    """The record writer on stdout, opened at the first mismatch: a clean account prints nothing there."""

    def __init__(self, stack: contextlib.ExitStack, host: CliHost) -> None:
        from shipctl.jobs.reconcile import RECONCILE_FIELDS

        self._stack = stack
        self._host = host
        self._columns = RECONCILE_TABLE_COLUMNS if host.result_format() == "table" else RECONCILE_FIELDS
        self._writer: Writer | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._stack.enter_context(self._host.open_writer(self._columns))
        self._writer.write({c: record.get(c) for c in self._columns})


@command()
@engine_options("Shipments read")
def reconcile(
    since: str | None = typer.Option(
        None, "--since", metavar="DATE",
        help=f"First day (YYYY-MM-DD, UTC; today or yesterday, local) or ISO time of the range "
             f"(default: {DEFAULT_DAYS} days ago)."),
    until: str | None = typer.Option(
        None, "--until", metavar="DATE", help="Last day (inclusive) or ISO time of the range (default: now)."),
    journals: list[Path] | None = typer.Option(
        None, "--journal", metavar="PATH",
        help="Compare these journals (repeat); default: every journal `create` wrote on this machine."),
    *,
    run: RunOptions,
) -> None:
    """Compare the journals with the account: labels bought outside any journal, journal rows the account does not
    know, refund statuses that changed. Exit 3 when something does not match.

    Examples:

      shipctl reconcile --since 2025-03-01

      shipctl reconcile --journal orders.csv.journal.db -o csv > mismatches.csv
    """
    import datetime as dt

    from shipctl.cli.host import CliHost
    from shipctl.errors import UsageError
    from shipctl.jobs.reconcile import ReconcileInputs, ReconcileJob, parse_day
    from shipctl.jobs.refund import require_journal
    from shipctl.jobs.session import open_session

    now = dt.datetime.now(dt.timezone.utc)
    start = parse_day(since, "--since") if since else now - dt.timedelta(days=DEFAULT_DAYS)
    if start > now:  # said as it is: "--until is before --since" blamed an --until never given
        raise UsageError(f"--since {since} is in the future: no label is bought that late")
    end = parse_day(until, "--until", end=True) if until else now  # a day alone: all of it
    for path in journals or ():
        require_journal(path)
    inputs = ReconcileInputs(since=start, until=end, journals=tuple(journals or ()))
    host = CliHost(run, noun="shipments")
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(open_session(run.sizing, force_sandbox=run.force_sandbox,
                                                   announce=host.detail))
        outcome = ReconcileJob(inputs, session, host, _Records(stack, host)).run()
    found = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in outcome.statuses.most_common())
    terminal().info(f"{outcome.listed} labels on the account, {outcome.journal_rows} journal rows: "
                    + (found or "everything matches"))
    raise typer.Exit(int(outcome.exit_code))
