"""Wiring for `shipctl create`: validation pass, target, journal, engine, writers, progress and summary."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from shipctl import safefiles
from shipctl.cli import console
from shipctl.cli.bulk import Checked, RunOptions, check_rows
from shipctl.cli.target import api_target
from shipctl.errors import ShipctlError, UsageError, WriteFailure
from shipctl.exit_codes import ExitCode
from shipctl.manifest import InvalidRow, parse_address_arg
from shipctl.output import cell, neutralise
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
    journal: Path | None
    """None for stdin: one journal per API and content, named once the target is known."""
    fresh: bool
    dry_run: bool
    check_references: bool | None
    """None: on unless the API is known to be in test mode (real money deserves the extra call per new row)."""
    yes: bool
    max_cost: Decimal | None
    run: RunOptions


def _validate(args: CreateArgs, default_from: Any, rejects: list[dict[str, Any]]) -> Checked:
    """Read the whole manifest once and report every problem; nothing is bought before this passes."""

    from shipctl.selection import filter_check

    def reject(item: InvalidRow) -> None:
        raw = {k: v for k, v in item.raw.items() if not isinstance(v, dict | list)}
        rejects.append({"line": item.line, **raw, "error": "; ".join(p.message for p in item.problems)})

    return check_rows(args.manifest, fmt=args.fmt, encoding=args.encoding, default_from=default_from,
                      on_invalid=reject if args.skip_invalid else None,
                      extra_check=filter_check(args.carriers, args.services))


def _write_table_file(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with safefiles.open_text(path) as fh:
        # Neutralised as --results is: these files are opened in spreadsheets to be fixed; the manifest reader
        # takes the `'` off again, so fed back to `create` every value is what it was.
        writer = csv.writer(fh)
        writer.writerow([neutralise(c) for c in columns])
        writer.writerows([neutralise(cell(row.get(c))) for c in columns] for row in rows)


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


class _Output:
    """An output's context manager whose OSErrors on opening or closing (a full disk) name that output."""

    def __init__(self, what: str, inner: contextlib.AbstractContextManager[Any]) -> None:
        self.what = what
        self.inner = inner

    def __enter__(self) -> Any:
        try:
            return self.inner.__enter__()
        except OSError as exc:
            raise WriteFailure.from_os(self.what, exc) from None

    def __exit__(self, *exc_info: Any) -> bool | None:
        try:
            return self.inner.__exit__(*exc_info)
        except OSError as exc:
            raise WriteFailure.from_os(self.what, exc) from None


def _check_outputs(args: CreateArgs) -> None:
    """Every file the run will write must be writable before anything is bought, not found unwritable after."""
    rejects = args.rejects if args.skip_invalid else None
    for flag, path in (("--results", args.results), ("--failed", args.failed), ("--rejects", rejects)):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
        safefiles.check_links(path)  # a planted link is refused now, not after the labels are bought
        if path.is_dir():
            raise UsageError(f"cannot write {flag} {path}: it is a directory")
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {flag} {path}: permission denied")
    if args.labels_dir is not None:
        try:
            args.labels_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=args.labels_dir):
                pass
        except OSError as exc:
            raise UsageError(f"cannot write labels to --labels-dir {args.labels_dir}: {exc.strerror or exc}") from None


def execute(args: CreateArgs) -> ExitCode:
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
    _check_outputs(args)
    if rejects and args.rejects is not None:
        try:
            _write_table_file(args.rejects, rejects)
        except OSError as exc:
            raise WriteFailure.from_os(f"--rejects {args.rejects}", exc) from None
        console.warn(f"skipped {len(rejects)} invalid rows; written to {args.rejects}")

    failed_rows: list[dict[str, Any]] = []
    outcome, summary, stats, target_base = _run_with_outputs(
        args, default_from, checked.rows - checked.invalid, failed_rows
    )
    if args.failed is not None and failed_rows:
        try:
            _write_table_file(args.failed, failed_rows)
        except OSError as exc:
            outcome.write_failure = outcome.write_failure or WriteFailure.from_os(f"--failed {args.failed}", exc)
    paths = _written_paths(args, outcome, bool(failed_rows), bool(rejects))
    summary.render(console.err, stats=stats, quiet=args.run.quiet, paths=paths)
    _warn_after_summary(summary)
    _raise_for(outcome, target_base)
    if args.dry_run and outcome.estimate:
        money = ", ".join(f"{v:.2f} {k}" for k, v in sorted(outcome.estimate.items()))
        console.info(f"dry run: {outcome.quoted} labels would cost {money}; nothing was bought")
    if outcome.interrupted:
        console.info("interrupted: rerun the same command to resume (nothing will be bought twice)")
        return ExitCode.INTERRUPTED
    if stats.failed or stats.skipped or rejects or summary.attention:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _run_with_outputs(
    args: CreateArgs, default_from: Any, total: int, failed_rows: list[dict[str, Any]]
) -> tuple[Any, Any, Any, str]:
    """Start the target, open stdout's and --results' writers, run; (outcome, summary, stats, API base)."""
    from shipctl.output import open_writer

    fmt = args.run.output_format()
    outcome: Any = None
    try:
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(api_target(force_sandbox=args.run.force_sandbox, quiet=args.run.quiet))
            if args.journal is None:
                from shipctl.cli.options import stdin_journal

                args.journal = stdin_journal(args.manifest, target.identity)
            columns = TABLE_COLUMNS if fmt == "table" else RESULT_COLUMNS
            writer = stack.enter_context(_Output("stdout", open_writer(fmt, sys.stdout, columns)))
            results_writer = None
            if args.results is not None:
                try:
                    fh = stack.enter_context(_Output(f"--results {args.results}", safefiles.open_text(args.results)))
                except WriteFailure as failure:
                    raise UsageError(f"cannot write --results {args.results}: {failure.reason}") from None
                results_writer = stack.enter_context(
                    _Output(f"--results {args.results}", open_writer(_format_for(args.results), fh, RESULT_COLUMNS))
                )
            outcome, summary, stats = _run(args, target, default_from, total, writer, results_writer, failed_rows)
    except WriteFailure as failure:
        # Closing stdout or --results flushes what they hold (a table is printed only then): a full disk fails
        # it after the run. Nothing was bought before the run started, so then the failure is all there is.
        if outcome is None:
            raise
        outcome.write_failure = outcome.write_failure or failure
    return outcome, summary, stats, target.api_base


def _written_paths(args: CreateArgs, outcome: Any, failed_rows: bool, rejects: bool) -> dict[str, str]:
    """What the summary lists as written: never an output whose writing failed."""
    unwritten = outcome.write_failure.what if outcome.write_failure is not None else ""
    paths = {"journal": str(args.journal)}
    if args.results and not unwritten.startswith("--results"):
        paths["results"] = str(args.results)
    if args.failed and failed_rows and not unwritten.startswith("--failed"):
        paths["failed rows"] = str(args.failed)
    if args.labels_dir and not unwritten.startswith("the label file"):
        paths["labels"] = str(args.labels_dir)
    if rejects and args.rejects:
        paths["invalid rows"] = str(args.rejects)
    return paths


def _warn_after_summary(summary: _Summary) -> None:
    """One line for each kind of row that needs something after the run, saying what."""
    if summary.attention:
        codes = ", ".join(f"{code} ×{n}" for code, n in summary.attention_codes.most_common())
        console.warn(f"{summary.attention} bought rows need a person ({codes}): see the README's statuses table")
    if summary.unconfirmed:
        console.warn(
            f"{summary.unconfirmed} rows may have been bought (BUY_UNCONFIRMED): rerun this same command to "
            "reconcile them; they are not in the --failed file"
        )
    if summary.retryable:
        console.warn(
            f"{summary.retryable} rows failed for now (429s, 5xx, timeouts, a buy still settling): rerun this same "
            "command to retry them; they are not in the --failed file"
        )
    if summary.held:
        console.warn(
            f"{summary.held} rows were left alone because another shipctl run is buying them "
            "(HELD_BY_OTHER_RUN): rerun this same command after it ends to record their labels"
        )


def _raise_for(outcome: Any, target_base: str) -> None:
    """A run that ended on a failed write, a refusal or an unreachable API ends as that error, after its summary."""
    if outcome.write_failure is not None:
        raise WriteFailure(
            outcome.write_failure.what,
            f"{outcome.write_failure.reason} — nothing bought is lost: make room and rerun the same command "
            "(it records and re-emits every row)",
        )
    if outcome.refused:
        raise ShipctlError(outcome.refused, ExitCode.USAGE)
    if outcome.fatal:
        raise ShipctlError(
            f"the API at {target_base} answered no call ({outcome.fatal}); stopped without buying anything — "
            "check the network and EASYPOST_API_KEY, then rerun",
            ExitCode.ERROR,
        )


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
    from shipctl.claims import Claims
    from shipctl.create_run import CreateRun, ManifestSource
    from shipctl.engine.runner import Engine, run_async
    from shipctl.engine.stats import RunStats
    from shipctl.journal import Journal
    from shipctl.manifest import ShipmentRow
    from shipctl.paths import state_dir
    from shipctl.purchase import BUY_UNCONFIRMED, PurchaseOptions
    from shipctl.selection import filter_check
    from shipctl.summary import Summary

    stats = RunStats(total=total)
    results_out = results_writer
    write_failures: list[WriteFailure] = []
    reader_gone: list[bool] = []
    display: list[Any] = []  # the progress display, once open: the confirmation question pauses it
    summary = _Summary(Summary(noun="shipments"))
    assert args.journal is not None  # named by execute() for stdin
    journal = Journal(args.journal, fresh=args.fresh).open()
    claims = Claims(state_dir(), journal=os.path.abspath(args.journal))
    client: Any = None
    try:
        if journal.set_aside is not None:
            console.info(f"--fresh: previous journal kept as {journal.set_aside}")
        journal.bind_target(target.identity, legacy=None if target.embedded else target.api_base)
        client = make_client(target.api_key, target.api_base, pool_size=args.run.sizing.ceiling + 4)
        engine = Engine(args.run.sizing, stats, classify)

        def emit(record: ResultRecord, row: ShipmentRow) -> None:
            nonlocal results_out
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
                except OSError as exc:  # stdout on a full disk: the rows' results are journaled, the rerun re-emits
                    reader_gone.append(True)
                    console.silence_stdout()
                    write_failures.append(WriteFailure.from_os("stdout", exc))
                    engine.stop()
            if results_out is not None:
                try:
                    results_out.write(data)
                except OSError as exc:
                    results_out = None
                    write_failures.append(WriteFailure.from_os(f"--results {args.results}", exc))
                    engine.stop()
            summary.add(record)
            # A row whose buy may have gone through is not offered for re-shipping: only a rerun on this
            # journal can tell, and a new manifest would get a new journal and could buy it again.
            # Nor is a row that failed only on a temporary error (429, 5xx, timeouts): the same command retries
            # it, and a --failed manifest fed back meanwhile would be a second run of it.
            if (
                record.status == "failed" and record.error_code != BUY_UNCONFIRMED and not record.retryable
                and args.failed is not None
            ):
                failed_rows.append(row.to_flat())

        run = CreateRun(
            engine=engine,
            client=client,
            journal=journal,
            source=ManifestSource(args.manifest, args.fmt, args.encoding, default_from,
                                  filter_check(args.carriers, args.services)),
            options=PurchaseOptions(
                select=args.select,
                carriers=args.carriers,
                services=args.services,
                label_format=args.label_format,
                labels_dir=args.labels_dir,
                # --fresh means the journal no longer knows what was bought: ask the API too, whatever the key.
                check_references=(
                    args.check_references if args.check_references is not None
                    else target.mode != "test" or args.fresh
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
            claims=claims,
            # Not the URL: one API has many spellings (a proxy, a port, letter case); the account is the API's own.
            scope=f"{target.mode or 'unknown'}-mode key",
        )

        async def main() -> Any:
            args.run.describe_engine()
            with args.run.open_progress(stats, noun="shipments") as shown:
                display.append(shown)
                outcome = await run.run()
            return outcome

        outcome = run_async(main)
        stats.finished_at = time.monotonic()
        outcome.write_failure = outcome.write_failure or (write_failures[0] if write_failures else None)
        outcome.interrupted = outcome.interrupted or (bool(reader_gone) and outcome.write_failure is None)
    finally:
        if client is not None:
            session_of(client).close()
        claims.close()
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
        self.attention_codes: Counter[str] = Counter()
        """Rows that still need a person, by code: label file not saved, row edited after purchase, refunded since."""
        self.unconfirmed = 0
        self.retryable = 0
        self.held = 0

    def add(self, record: ResultRecord) -> None:
        if record.status in ("bought", "refunded") and record.error_code:
            self.attention_codes[record.error_code] += 1
        if record.error_code == "HELD_BY_OTHER_RUN":
            self.held += 1
        if record.retryable:
            self.retryable += 1
        if record.error_code == "BUY_UNCONFIRMED":
            self.unconfirmed += 1
        self.inner.add(record)

    @property
    def attention(self) -> int:
        return sum(self.attention_codes.values())

    def render(self, *args: Any, **kwargs: Any) -> None:
        self.inner.render(*args, **kwargs)

