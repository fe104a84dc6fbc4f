"""`shipctl refund`: void labels bought by mistake, by shipment id or from a `create` run's journal.

Idempotent. Every shipment is read first (one concurrent pass): one already refunded or submitted for refund is
reported as such and never asked again, one never bought is reported, and the mode of the rest tells whether
real money is involved (production asks for confirmation, or `--yes`, as `create` does before buying). Only
then are the refunds requested, concurrently through the engine. With `--journal` the refund status of each row
is written back to the journal.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from shipctl.cli import console
from shipctl.cli.app import command
from shipctl.cli.bulk import InOrder, RunOptions, engine_session, expand_args, only, run_options
from shipctl.cli.options import (
    Concurrency,
    ForceSandbox,
    MaxConcurrency,
    Output,
    Progress,
    ProgressInterval,
    Quiet,
    Verbose,
    Workers,
    chunk_size_option,
)
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode

REFUND_COLUMNS = (
    "reference", "shipment_id", "tracking_code", "carrier", "status", "refund_status", "error_code",
    "error_message",
)
REFUND_TABLE_COLUMNS = ("reference", "shipment_id", "tracking_code", "status", "error_message")
_SHIPMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_RECONCILE_ATTEMPTS = 3


@dataclass
class _Target:
    index: int
    shipment_id: str
    reference: str | None = None
    required: bool = True
    """Asked for by name (an id, or --reference): not having a label is a failure. A journal row swept up by
    `--journal` alone whose buy never completed is just skipped."""
    result: Any = None  # carrier.refunds.Refund
    shipment: Any = None  # carrier.shipments.Shipment, after the first pass


def _split_refs(values: list[str] | None) -> list[str]:
    refs: list[str] = []
    for value in values or ():
        refs.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(refs))


@command()
def refund(
    shipment_ids: list[str] | None = typer.Argument(None, help="Shipment ids (shp_…), or - to read them from stdin."),
    journal_path: Path | None = typer.Option(
        None, "--journal", help="Refund the labels a `create` run bought, from its journal."
    ),
    references: list[str] | None = typer.Option(
        None, "--reference", "-r", help="With --journal: only these rows (repeat, or comma-separate)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Refund production labels without asking."),
    output: Output = None,
    concurrency: Concurrency = "16",
    max_concurrency: MaxConcurrency = 64,
    workers: Workers = None,
    chunk_size: Annotated[int | None, chunk_size_option("Shipments dispatched")] = None,
    progress: Progress = "auto",
    progress_interval: ProgressInterval = 10.0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    sandbox: ForceSandbox = False,
) -> None:
    """Refund (void) bought labels; ones already refunded or submitted are reported, never asked twice."""
    run = run_options(
        output=output, concurrency=concurrency, max_concurrency=max_concurrency, workers=workers,
        chunk_size=chunk_size, progress=progress, progress_interval=progress_interval, quiet=quiet, verbose=verbose,
        sandbox=sandbox,
    )
    refs = _split_refs(references)
    if shipment_ids and journal_path is not None:
        raise UsageError("give shipment ids or --journal, not both")
    if refs and journal_path is None:
        raise UsageError("--reference needs --journal")
    if not shipment_ids and journal_path is None:
        raise UsageError("give shipment ids, - to read them from stdin, or --journal PATH")
    if journal_path is not None and not journal_path.is_file():
        raise UsageError(f"journal {journal_path} does not exist")

    targets: list[_Target] = []
    if shipment_ids:
        targets = [_Target(i, sid) for i, sid in enumerate(expand_args(shipment_ids, "shipment ids"))]
    code = _execute(
        targets,
        journal_path=journal_path,
        references=refs,
        yes=yes,
        run=run,
    )
    raise typer.Exit(int(code))


def _from_journal(journal: Any, references: list[str], identity: str) -> list[_Target]:
    bound = journal.meta("target")
    if bound is not None and bound != identity:
        raise UsageError(
            f"journal {journal.path} records purchases made against {bound}, but this run targets {identity}; "
            "nothing was refunded"
        )
    rows = {row.reference: row for row in journal.all()}
    missing = [r for r in references if r not in rows]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"not in journal {journal.path}: {shown}; nothing was refunded")
    targets: list[_Target] = []
    wanted = references or list(rows)
    unbought = 0
    for ref in wanted:
        row = rows[ref]
        if not row.shipment_id or (not references and row.state not in ("bought", "created")):
            if references:  # asked for by name: say why nothing happens
                targets.append(_Target(len(targets), "", reference=ref))
            else:
                unbought += 1
            continue
        # A `created` row may have been bought just before a crash: read it, refund it if it was.
        targets.append(_Target(len(targets), row.shipment_id, reference=ref, required=bool(references)
                               or row.state == "bought"))
    if unbought:
        console.info(f"{unbought} journal rows were never bought; nothing to refund for them")
    return targets


def _confirm(yes: bool, count: int) -> None:
    console.info(f"production mode: {count} labels to refund")
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ShipctlError(
            f"production mode: refusing to refund {count} labels without confirmation; rerun with --yes "
            "(nothing was refunded)",
            ExitCode.USAGE,
        )
    if not typer.confirm(f"Refund {count} production labels?", default=False, err=True):
        raise ShipctlError("nothing was refunded", ExitCode.USAGE)


def _execute(
    targets: list[_Target],
    *,
    journal_path: Path | None,
    references: list[str],
    yes: bool,
    run: RunOptions,
) -> ExitCode:
    from shipctl.carrier.refunds import Refund, after_refund, before_refund, failed, refund_shipment
    from shipctl.carrier.shipments import retrieve_shipment
    from shipctl.engine.failures import CallFailure
    from shipctl.engine.runner import run_async
    from shipctl.journal import Journal
    from shipctl.output import open_writer

    fmt = run.output_format()
    columns = REFUND_TABLE_COLUMNS if fmt == "table" else REFUND_COLUMNS
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(engine_session(run, total=None))
        engine, stats, client = session.engine, session.stats, session.client
        journal = None
        if journal_path is not None:
            journal = stack.enter_context(Journal(journal_path))
            targets = _from_journal(journal, references, session.target.identity)
        stats.total = len(targets)
        if not targets:
            console.info("nothing to refund")
            return ExitCode.OK

        async def read(target: _Target) -> None:
            """First pass: what is this shipment's state? Settles everything that needs no refund call."""
            if not target.shipment_id:
                target.result = Refund(shipment_id="", outcome="not_bought", refund_status=None,
                                       error_code="SHIPMENT.NOT_BOUGHT",
                                       error_message="the journal has no shipment for this row")
                return
            if not _SHIPMENT_ID.fullmatch(target.shipment_id):
                target.result = Refund(shipment_id=target.shipment_id, outcome="failed", refund_status=None,
                                       error_code="SHIPMENT.INVALID_ID",
                                       error_message=f"{target.shipment_id!r} is not a shipment id")
                return
            try:
                target.shipment = await engine.call(retrieve_shipment, client, target.shipment_id)
            except CallFailure as failure:
                target.result = failed(target.shipment_id, failure)
                return
            target.result = before_refund(target.shipment)

        async def void(target: _Target) -> None:
            """Second pass: ask for the refund; reconcile through a re-read when the answer is unclear."""
            sid = target.shipment.id
            for _ in range(_RECONCILE_ATTEMPTS):
                try:
                    shipment = await engine.call(refund_shipment, client, sid, retry_unknown=False)
                except CallFailure as failure:
                    if not (failure.outcome_unknown or failure.http_status == 422):
                        target.result = failed(sid, failure)
                        return
                    try:
                        current = await engine.call(retrieve_shipment, client, sid)
                    except CallFailure as again:
                        target.result = failed(sid, again)
                        return
                    settled = before_refund(current)
                    if settled is not None:
                        if failure.outcome_unknown and settled.outcome.startswith("already_"):
                            settled = after_refund(current)  # most likely our own request went through
                        target.result = settled
                        return
                    if not failure.outcome_unknown:
                        target.result = failed(sid, failure)
                        return
                    continue  # nothing happened: ask again
                target.result = after_refund(shipment)
                return
            target.result = Refund(shipment_id=sid, outcome="failed", refund_status=None, error_code="REFUND.UNKNOWN",
                                   error_message="no clear answer from the API; run refund again to check")

        outcomes: Counter[str] = Counter()
        writers: list[Any] = []  # opened at the first result: a refused confirmation leaves stdout empty

        def emit(target: _Target) -> None:
            result = target.result
            if result.outcome == "not_bought" and not target.required:
                stats.skipped += 1
                outcome = "skipped"
            elif result.ok:
                stats.succeeded += 1
                outcome = result.outcome
            else:
                stats.failed += 1
                outcome = result.outcome
            stats.done += 1
            outcomes[outcome] += 1
            if journal is not None and target.reference and result.refund_status:
                journal.update(target.reference, refund_status=result.refund_status)
            if not writers:
                writers.append(stack.enter_context(open_writer(fmt, sys.stdout, columns)))
            writers[0].write(only(columns, {
                "reference": target.reference, "shipment_id": result.shipment_id or None,
                "tracking_code": result.tracking_code, "carrier": result.carrier, "status": outcome,
                "refund_status": result.refund_status, "error_code": result.error_code,
                "error_message": result.error_message,
            }))

        order: InOrder[_Target] = InOrder(emit)

        async def main() -> None:
            run.describe_engine()
            with run.open_progress(stats, noun="shipments"):
                await engine.run(targets, read)
            to_void = [t for t in targets if t.result is None]
            production = sum(1 for t in to_void if t.shipment.mode == "production")
            if production:
                _confirm(yes, production)
            for target in targets:  # what the first pass settled is reported in input order with the rest
                if target.result is not None:
                    order.put(target.index, target)

            async def void_and_emit(target: _Target) -> None:
                await void(target)
                order.put(target.index, target)

            with run.open_progress(stats, noun="shipments"):
                await engine.run(to_void, void_and_emit)

        run_async(main)
        stats.finished_at = time.monotonic()

    parts = [f"{n} {outcome.replace('_', ' ')}" for outcome, n in outcomes.most_common()]
    console.info(f"{len(targets)} shipments: {', '.join(parts)}, {stats.elapsed():.1f} s")
    return ExitCode.PARTIAL if stats.failed else ExitCode.OK
