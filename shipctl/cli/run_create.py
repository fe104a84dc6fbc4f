"""Wiring for `shipctl create`: validation pass, target, journal, engine, writers, progress and summary."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from shipctl.cli import console
from shipctl.cli.bulk import Checked, RunOptions, check_rows
from shipctl.cli.target import api_target
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.manifest import InvalidRow, parse_address_arg
from shipctl.results import RESULT_COLUMNS, TABLE_COLUMNS, ResultRecord


@dataclass
class CreateArgs:
    manifest: Path
    manifest_label: str
    fmt: str | None
    encoding: str | None
    from_arg: str | None
    results: Path | None
    failed: Path | None
    skip_invalid: bool
    rejects: Path | None
    select: Literal["cheapest", "fastest"]
    carriers: tuple[str, ...]
    services: tuple[str, ...]
    label_format: str | None
    labels_dir: Path | None
    journal: Path
    fresh: bool
    dry_run: bool
    check_references: bool | None
    """None: on unless the API is known to be in test mode (real money deserves the extra call per new row)."""
    yes: bool
    max_cost: Decimal | None
    run: RunOptions


def _validate(args: CreateArgs, default_from: Any, rejects: list[dict[str, Any]]) -> Checked:
    """Read the whole manifest once and report every problem; nothing is bought before this passes."""

    def reject(item: InvalidRow) -> None:
        raw = {k: v for k, v in item.raw.items() if not isinstance(v, dict | list)}
        rejects.append({"line": item.line, **raw, "error": "; ".join(p.message for p in item.problems)})

    return check_rows(args.manifest, fmt=args.fmt, encoding=args.encoding, default_from=default_from,
                      on_invalid=reject if args.skip_invalid else None)


def _write_table_file(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _confirm_purchase(yes: bool, count: int, totals: dict[str, Decimal]) -> bool:
    money = ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(totals.items()))
    console.info(f"production mode: {count} labels to buy, estimated total {money}")
    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        # Refused, not crashed: the run still ends with its summary (and --failed file), then exits 2.
        console.error(
            f"production mode: refusing to buy {count} labels ({money}) without confirmation; "
            "rerun with --yes to buy"
        )
        return False
    import typer

    return bool(typer.confirm(f"Buy {count} labels for {money}?", default=False, err=True))


def execute(args: CreateArgs) -> ExitCode:
    from shipctl.output import open_writer

    default_from = parse_address_arg(args.from_arg) if args.from_arg else None
    rejects: list[dict[str, Any]] = []
    checked = _validate(args, default_from, rejects)
    if checked.rows == 0:
        raise ShipctlError(f"{args.manifest_label}: the manifest has no rows", ExitCode.USAGE)
    if checked.invalid and not args.skip_invalid:
        console.info(
            f"{checked.rows} rows: {checked.rows - checked.invalid} valid, {checked.invalid} invalid; "
            "nothing was bought (fix the rows, or pass --skip-invalid)"
        )
        return ExitCode.USAGE
    if rejects and args.rejects is not None:
        _write_table_file(args.rejects, rejects)
        console.warn(f"skipped {len(rejects)} invalid rows; written to {args.rejects}")

    fmt = args.run.output_format()
    failed_rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(api_target(force_sandbox=args.run.force_sandbox, quiet=args.run.quiet))
        target_base = target.api_base
        columns = TABLE_COLUMNS if fmt == "table" else RESULT_COLUMNS
        writer = stack.enter_context(open_writer(fmt, sys.stdout, columns))
        results_writer = None
        if args.results is not None:
            args.results.parent.mkdir(parents=True, exist_ok=True)
            fh = stack.enter_context(args.results.open("w", newline="", encoding="utf-8"))
            results_writer = stack.enter_context(open_writer(_format_for(args.results), fh, RESULT_COLUMNS))
        total = checked.rows - checked.invalid
        outcome, summary, stats = _run(args, target, default_from, total, writer, results_writer, failed_rows)

    if args.failed is not None and failed_rows:
        _write_table_file(args.failed, failed_rows)
    paths = {"journal": str(args.journal)}
    if args.results:
        paths["results"] = str(args.results)
    if args.failed and failed_rows:
        paths["failed rows"] = str(args.failed)
    if args.labels_dir:
        paths["labels"] = str(args.labels_dir)
    if rejects and args.rejects:
        paths["invalid rows"] = str(args.rejects)
    summary.render(console.err, stats=stats, quiet=args.run.quiet, paths=paths)
    if summary.unconfirmed:
        console.warn(
            f"{summary.unconfirmed} rows may have been bought (BUY_UNCONFIRMED): rerun this same command to "
            "reconcile them; they are not in the --failed file"
        )
    if outcome.refused:
        raise ShipctlError(outcome.refused, ExitCode.USAGE)
    if outcome.fatal:
        raise ShipctlError(
            f"the API at {target_base} answered no call ({outcome.fatal}); stopped without buying anything — "
            "check the network and EASYPOST_API_KEY, then rerun",
            ExitCode.ERROR,
        )
    if args.dry_run and outcome.estimate:
        money = ", ".join(f"{v:.2f} {k}" for k, v in sorted(outcome.estimate.items()))
        console.info(f"dry run: {outcome.quoted} labels would cost {money}; nothing was bought")
    if outcome.interrupted:
        console.info("interrupted: rerun the same command to resume (nothing will be bought twice)")
        return ExitCode.INTERRUPTED
    if stats.failed or stats.skipped or rejects or summary.attention:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _format_for(path: Path) -> Any:
    return {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}.get(path.suffix.lower(), "ndjson")


def _run(
    args: CreateArgs,
    target: Any,
    default_from: Any,
    total: int,
    writer: Any,
    results_writer: Any,
    failed_rows: list[dict[str, Any]],
) -> Any:
    from shipctl.carrier.client import make_client, session_of
    from shipctl.carrier.errors import classify
    from shipctl.create_run import CreateRun, ManifestSource
    from shipctl.engine.runner import Engine, run_async
    from shipctl.engine.stats import RunStats
    from shipctl.journal import Journal
    from shipctl.manifest import ShipmentRow
    from shipctl.purchase import BUY_UNCONFIRMED, PurchaseOptions
    from shipctl.summary import Summary

    stats = RunStats(total=total)
    reader_gone: list[bool] = []
    display: list[Any] = []  # the progress display, once open: the confirmation question pauses it
    summary = _Summary(Summary(noun="shipments"))
    journal = Journal(args.journal, fresh=args.fresh).open()
    client: Any = None
    try:
        if journal.set_aside is not None:
            console.info(f"--fresh: previous journal kept as {journal.set_aside}")
        journal.bind_target(target.identity, legacy=None if target.embedded else target.api_base)
        client = make_client(target.api_key, target.api_base, pool_size=args.run.sizing.ceiling + 4)
        engine = Engine(args.run.sizing, stats, classify)

        def emit(record: ResultRecord, row: ShipmentRow) -> None:
            data = record.as_dict()
            if not reader_gone:
                try:
                    writer.write(data)
                except BrokenPipeError:
                    # The reader went away (`| head`): stop starting rows, as for Ctrl-C; the rest stay resumable.
                    reader_gone.append(True)
                    console.silence_stdout()
                    engine.stop()
                    console.warn("stdout was closed: no new rows will start; rerun the command to resume")
            if results_writer is not None:
                results_writer.write(data)
            summary.add(record)
            # A row whose buy may have gone through is not offered for re-shipping: only a rerun on this
            # journal can tell, and a new manifest would get a new journal and could buy it again.
            if record.status == "failed" and record.error_code != BUY_UNCONFIRMED and args.failed is not None:
                failed_rows.append(row.to_flat())

        run = CreateRun(
            engine=engine,
            client=client,
            journal=journal,
            source=ManifestSource(args.manifest, args.fmt, args.encoding, default_from),
            options=PurchaseOptions(
                select=args.select,
                carriers=args.carriers,
                services=args.services,
                label_format=args.label_format,
                labels_dir=args.labels_dir,
                check_references=(
                    args.check_references if args.check_references is not None else target.mode != "test"
                ),
            ),
            emit=emit,
            guard=lambda count, totals: _confirm_with_display(display, args.yes, count, totals),
            dry_run=args.dry_run,
            max_cost=args.max_cost,
            on_warning=console.warn,
            on_info=console.info,
            hard_stop=_exit_now,
            expected_mode=target.mode,
        )

        async def main() -> Any:
            args.run.describe_engine()
            with args.run.open_progress(stats, noun="shipments") as shown:
                display.append(shown)
                outcome = await run.run()
            return outcome

        outcome = run_async(main)
        stats.finished_at = time.monotonic()
        outcome.interrupted = outcome.interrupted or bool(reader_gone)
    finally:
        if client is not None:
            session_of(client).close()
        journal.close()
    return outcome, summary, stats


def _confirm_with_display(display: list[Any], yes: bool, count: int, totals: dict[str, Decimal]) -> bool:
    if not display:
        return _confirm_purchase(yes, count, totals)
    with display[0].suspended():
        return _confirm_purchase(yes, count, totals)


def _exit_now() -> None:
    """The second Ctrl-C: leave at once, with what stdout already holds flushed and the cursor shown again."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    if sys.stderr.isatty():
        sys.stderr.write("\x1b[?25h\n")  # the live display hides the cursor while it runs
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(int(ExitCode.INTERRUPTED))


class _Summary:
    """The summary plus what create itself needs to know for its exit code and warnings."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.attention = 0
        """Bought rows that still need a person: label file not saved, row edited after purchase."""
        self.unconfirmed = 0

    def add(self, record: ResultRecord) -> None:
        if record.status == "bought" and record.error_code:
            self.attention += 1
        if record.error_code == "BUY_UNCONFIRMED":
            self.unconfirmed += 1
        self.inner.add(record)

    def render(self, *args: Any, **kwargs: Any) -> None:
        self.inner.render(*args, **kwargs)

