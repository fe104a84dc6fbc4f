"""`shipctl refund`: void labels bought by mistake, by shipment id or from a `create` run's journal.

The options and the rendering; the run itself (the read pass, the money question, the voids and their
reconciliation, the journal) is `shipctl.jobs.refund`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import RunOptions, engine_options
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:  # the job, the SDK and the journal load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.engine.stats import RunStats
    from shipctl.jobs.refund import RefundInputs, RefundOutcome, UnusedOutcome
    from shipctl.output import Writer

REFUND_TABLE_COLUMNS = ("reference", "shipment_id", "tracking_code", "cost", "status", "error_message")


def _split_refs(values: list[str] | None) -> list[str]:
    refs: list[str] = []
    for value in values or ():
        refs.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(refs))


def _inputs(shipment_ids: list[str] | None, journals: list[Path] | None, references: list[str] | None) -> RefundInputs:
    from shipctl.cli.inputs import expand_args
    from shipctl.jobs.refund import RefundInputs, require_journal

    if len(journals or ()) > 1:
        raise UsageError("give one --journal (several only with --unused)")
    journal_path = journals[0] if journals else None
    refs = _split_refs(references)
    if shipment_ids and journal_path is not None:
        raise UsageError("give shipment ids or --journal, not both")
    if refs and journal_path is None:
        raise UsageError("--reference needs --journal")
    if not shipment_ids and journal_path is None:
        raise UsageError("give shipment ids, - to read them from stdin, or --journal PATH")
    if journal_path is not None:
        # Before the API (or the built-in sandbox) is started: a mistyped path or reference is a usage error.
        require_journal(journal_path)
        _require_references(journal_path, refs)
        return RefundInputs(journal=journal_path, references=tuple(refs))
    return RefundInputs(shipment_ids=tuple(expand_args(shipment_ids or [], "shipment ids", field="shipment_id")))


def _require_references(path: Path, refs: list[str]) -> None:
    """Every `--reference` is a row of the journal (the job checks again, against the journal it holds)."""
    if not refs:
        return
    from shipctl.journal import Journal

    with Journal(path) as journal:
        missing = [ref for ref in refs if journal.get(ref) is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"not in journal {path}: {shown}; nothing was refunded")


class _Results:
    """The result writer on stdout, opened at the first result: a refused confirmation leaves stdout empty."""

    def __init__(self, stack: contextlib.ExitStack, host: CliHost) -> None:
        self._stack = stack
        self._host = host
        from shipctl.jobs.refund import REFUND_FIELDS

        self._columns = REFUND_TABLE_COLUMNS if host.result_format() == "table" else REFUND_FIELDS
        self._writer: Writer | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            writer = self._host.open_writer(self._columns)
            self._writer = self._stack.enter_context(writer)
        self._writer.write({c: record.get(c) for c in self._columns})


def _end_line(outcome: RefundOutcome, stats: RunStats) -> str:
    from shipctl.cli.summary import counted
    from shipctl.money import format_totals

    parts = [f"{n} {status.replace('_', ' ')}" for status, n in outcome.statuses.most_common()]
    # What comes back, once the carrier accepts: the labels this run voided (not ones already under way).
    back = f"; {format_totals(outcome.submitted)} submitted for refund" if outcome.submitted else ""
    return f"{counted(outcome.shipments, 'shipments')}: {', '.join(parts)}, {stats.elapsed():.1f} s{back}"


@command()
@engine_options("Shipments dispatched")
def refund(
    shipment_ids: list[str] | None = typer.Argument(
        None, metavar="SHIPMENT_ID...",
        help="Shipment ids (shp_…), or - to read them from stdin (one a line, or create's NDJSON).",
    ),
    journal_path: list[Path] | None = typer.Option(
        None, "--journal", metavar="PATH",
        help="Refund the labels a `create` run bought, from its journal (with --unused: repeatable).",
    ),
    references: list[str] | None = typer.Option(
        None, "--reference", "-r", metavar="REF", help="With --journal: only these rows (repeat, or comma-separate)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Refund production (or unknown-mode) labels without asking."),
    unused: bool = typer.Option(
        False, "--unused",
        help="Refund the journals' labels never scanned by the carrier, older than --older-than and inside the "
             "carrier's refund window (USPS 30 days, UPS and FedEx 90); default: every journal on this machine."),
    older_than: str | None = typer.Option(
        None, "--older-than", metavar="AGE", help="With --unused: 7d (the default), 36h, 2w, 90m, or days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --unused: list the labels and the amount only."),
    *,
    run: RunOptions,
) -> None:
    """Refund (void) bought labels; ones already refunded or submitted are reported, never asked twice.

    Examples:

      shipctl refund shp_0a1b shp_2c3d --yes

      shipctl refund --journal orders.csv.journal.db -r ORD-1001

      shipctl refund - < results.ndjson        (the ids of the labels create bought)

      shipctl refund --unused --older-than 7d --dry-run
    """
    from shipctl.cli.host import CliHost
    from shipctl.cli.unreachable import UnreachableWatch
    from shipctl.jobs.refund import RefundJob
    from shipctl.jobs.session import open_session

    if unused:
        _unused(shipment_ids, journal_path, references, older_than, dry_run, CliHost(run, noun="labels", yes=yes),
                run)
    if dry_run:
        raise UsageError("--dry-run goes with --unused")
    if older_than is not None:  # without --unused every label of the journal would be refunded, whatever its age
        raise UsageError("--older-than goes with --unused")
    inputs = _inputs(shipment_ids, journal_path, references)
    host = CliHost(run, noun="shipments", yes=yes)
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(
            open_session(run.sizing, force_sandbox=run.force_sandbox, announce=host.detail)
        )
        watch = UnreachableWatch(session)
        outcome = RefundJob(inputs, session, host, watch.sink(_Results(stack, host))).run()
    watch.raise_if_unreachable()
    if outcome.shipments:
        terminal().info(_end_line(outcome, session.stats))
    raise typer.Exit(int(outcome.exit_code))



DEFAULT_OLDER_THAN = "7d"
UNUSED_TABLE_COLUMNS = ("reference", "shipment_id", "carrier", "cost", "age_days", "status", "error_message")


def _unused(shipment_ids: list[str] | None, journals: list[Path] | None, references: list[str] | None,
            older_than: str | None, dry_run: bool, host: CliHost, run: RunOptions) -> None:
    from shipctl.jobs.refund import (
        MIN_UNUSED_AGE,
        UNUSED_FIELDS,
        UnusedInputs,
        UnusedRefundJob,
        parse_age,
        require_journal,
    )
    from shipctl.jobs.session import open_session

    if shipment_ids or references:
        raise UsageError("--unused chooses the labels itself: give no shipment ids or --reference")
    age = parse_age(older_than or DEFAULT_OLDER_THAN)
    if age < MIN_UNUSED_AGE:
        raise UsageError(f"--older-than {older_than}: at least 1d. A label bought less than a day ago has not met "
                         "its carrier yet, so no scan does not make it unused; to void one, refund it by "
                         "--reference or shipment id")
    for path in journals or ():
        require_journal(path)
    inputs = UnusedInputs(age, tuple(journals or ()), dry_run=dry_run)
    columns = UNUSED_TABLE_COLUMNS if host.result_format() == "table" else UNUSED_FIELDS
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(open_session(run.sizing, force_sandbox=run.force_sandbox,
                                                   announce=host.detail))
        writer: list[Writer] = []

        def sink(record: dict[str, Any]) -> None:
            if not writer:
                writer.append(stack.enter_context(host.open_writer(columns)))
            writer[0].write({c: record.get(c) for c in columns})

        outcome = UnusedRefundJob(inputs, session, host, sink).run()
    terminal().info(_unused_line(outcome, dry_run))
    raise typer.Exit(int(outcome.exit_code))


def _unused_line(outcome: UnusedOutcome, dry_run: bool) -> str:
    """What the run did: refunded counts and sums only what the API took back; the rest is said apart."""
    from shipctl.jobs.refund import UNREADABLE
    from shipctl.money import format_totals
    from shipctl.output import counted

    def listed(counts: Counter[str]) -> str:
        return ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in counts.most_common())

    parts: list[str] = []
    if not outcome.chosen:
        parts.append("nothing to refund: no unscanned label old enough and inside its refund window"
                     + (" among those read" if outcome.skipped[UNREADABLE] else ""))
    elif dry_run:
        parts.append(f"{counted(outcome.chosen, 'unused labels')} would be refunded "
                     f"({format_totals(outcome.totals) or '$0.00'})")
    else:
        # Submitted, not refunded: the carrier pays back once it accepts the refund, days later for some.
        parts.append(f"{counted(outcome.refunded, 'unused labels')} submitted for refund "
                     f"({format_totals(outcome.refunded_totals) or '$0.00'})")
        if failures := outcome.failures:
            parts.append(f"not refunded: {listed(failures)}")
    if unreadable := outcome.skipped[UNREADABLE]:
        parts.append(f"{unreadable} labels could not be read (their tracking and refund status are unknown; "
                     "run again to check them)")
    if rest := Counter({why: n for why, n in outcome.skipped.items() if why != UNREADABLE}):
        parts.append(f"left alone: {listed(rest)}")
    return "; ".join(parts)
