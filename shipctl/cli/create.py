"""`shipctl create`: buy a label for every row of a manifest, resumably, never twice.

The command parses its options, runs the validation pass (every problem printed, nothing bought unless it
passes), checks every output it will write, then hands the rows to the core job (`shipctl.jobs.create`) with a
sink that writes results as they come, and prints the summary and the exit code the run deserves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from shipctl.cli.app import command
from shipctl.cli.options import (
    MANIFEST_PANEL,
    Carriers,
    Confidence,
    DefaultFrom,
    DeliverWithin,
    Encoding,
    ManifestFormat,
    RunOptions,
    Select,
    SelectRule,
    Services,
    Sheet,
    Verify,
    choice,
    engine_options,
    parse_confidence,
    parse_deliver_within,
    split_list,
)
from shipctl.cli.terminal import terminal
from shipctl.errors import ShipctlError, UsageError, WriteFailure
from shipctl.exit_codes import ExitCode

# Only what `--help` needs is imported above: the job, the SDK, the models and the outputs are imported where the
# command runs (ARCHITECTURE.md, "Lazy imports").
if TYPE_CHECKING:
    from shipctl.cli.create_output import CreateSummary
    from shipctl.engine.stats import RunStats
    from shipctl.jobs.create import CreateOutcome
    from shipctl.jobs.purchase import PurchaseOptions
    from shipctl.jobs.validation import ManifestSource
    from shipctl.manifest import Address
    from shipctl.plans import Plan
    from shipctl.results import VerifyMode
    from shipctl.target import Target

OUTPUT_PANEL = "Result files and labels"
MONEY_PANEL = "Money"
JOURNAL_PANEL = "Journal and never-twice"

# Options `create` shares with `apply`.
LabelFormatChoice = Annotated[str | None, choice(
    "--label-format", ("PDF", "PNG", "ZPL"),
    "Label file format for every row (default: each row's label_format column, else PNG).", case_sensitive=False,
    panel=OUTPUT_PANEL,
)]
LabelsDir = Annotated[Path | None, typer.Option(
    "--labels-dir", rich_help_panel=OUTPUT_PANEL, help="Download each label to DIR/<reference>.<ext>."
)]
Results = Annotated[Path | None, typer.Option(
    "--results", rich_help_panel=OUTPUT_PANEL, help="Also write every result to this file."
)]
Yes = Annotated[bool, typer.Option(
    "--yes", "-y", rich_help_panel=MONEY_PANEL, help="Buy in production mode without asking."
)]


@dataclass
class CreateArgs:
    """The command line, parsed: where rows come from, where everything goes, how to spend."""

    manifest: Path
    manifest_label: str
    source: ManifestSource
    purchase: PurchaseOptions
    results: Path | None
    failed: Path | None
    skip_invalid: bool
    rejects: Path | None
    journal: Path | None
    """None for stdin: one journal per API and content, named once the target is known."""
    fresh: bool
    dry_run: bool
    yes: bool
    max_cost: Decimal | None
    run: RunOptions
    from_stdin: bool = False
    """The manifest came on stdin: `manifest` is a spooled copy, no file of the user's."""
    plan: Plan | None = None
    """`apply`: the plan bought (its rows pinned in `purchase`)."""
    all_or_nothing: bool = False
    approved_by: str | None = None
    after: Callable[[CreateOutcome, Target], None] | None = None
    """`plan`: what to do with the outcome once the run is over, before the summary (write the plan file)."""


@command()
@engine_options("Rows read and dispatched")
def create(
    manifest: str = typer.Argument(..., help="Manifest file (CSV, JSON, NDJSON or an .xlsx workbook), or - for stdin."),
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    sheet: Sheet = None,
    from_: DefaultFrom = None,
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", rich_help_panel=MANIFEST_PANEL, help="Skip invalid rows instead of stopping."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", rich_help_panel=MANIFEST_PANEL, help="Where --skip-invalid writes invalid rows."
    ),
    select: Select = "cheapest",
    carriers: Carriers = None,
    services: Services = None,
    deliver_within: DeliverWithin = None,
    confidence: Confidence = None,
    verify: Verify = "warn",
    results: Results = None,
    failed: Path | None = typer.Option(
        None, "--failed", rich_help_panel=OUTPUT_PANEL, help="Write failed rows here as a manifest to rerun."
    ),
    label_format: LabelFormatChoice = None,
    labels_dir: LabelsDir = None,
    journal_path: Path | None = typer.Option(
        None, "--journal", rich_help_panel=JOURNAL_PANEL, help="Journal file (default: beside the manifest)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", rich_help_panel=JOURNAL_PANEL,
        help="Set the old journal aside and start it over; labels already bought are adopted, never bought again "
        "(to ship an order again, give it a new reference).",
    ),
    check_references: bool | None = typer.Option(
        None, "--check-references/--no-check-references", rich_help_panel=JOURNAL_PANEL,
        help="Look each new row's reference up in the API before shipping it, and again right before its buy; a "
        "label already bought elsewhere is recorded, never bought again (default: on unless the key is a test "
        "key; on with --fresh).",
    ),
    reference_quiet: str | None = typer.Option(
        None, "--reference-quiet", metavar="SECONDS", rich_help_panel=JOURNAL_PANEL,
        help="With the reference check on: how long a new shipment waits before its last look, so another machine "
        "buying the same orders at the same moment is seen (default 5; $SHIPCTL_REFERENCE_QUIET; a value below 5 "
        "must be used on every machine buying the same orders).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", rich_help_panel=MONEY_PANEL, help="Create shipments and choose rates; buy nothing."
    ),
    yes: Yes = False,
    max_cost: str | None = typer.Option(
        None, "--max-cost", rich_help_panel=MONEY_PANEL,
        help="Refuse to buy if the estimate is higher than this many dollars, e.g. 250.00 (no limit when not given).",
    ),
    *,
    run: RunOptions,
) -> None:
    """Buy a label for every row of MANIFEST; rerun the same command to resume after any interruption.

    Examples:

      shipctl create orders.csv

      shipctl create orders.csv --dry-run

      export-orders | shipctl create - --yes --max-cost 500 > out.ndjson
    """
    from shipctl.cli.inputs import manifest_input, read_once
    from shipctl.paths import default_journal

    limit = _limit(max_cost)
    with manifest_input(manifest) as (path, label, from_stdin), read_once(path, from_stdin) as readable:
        if skip_invalid and from_stdin and rejects is None:
            # A file's rejects default to a file beside it; stdin or a pipe has no beside, and skipped rows kept
            # nowhere are lost.
            raise UsageError(f"--skip-invalid with the manifest {label} needs --rejects FILE, where the invalid rows "
                             "it skips are kept; nothing was bought")
        source, purchase = manifest_and_rules(
            readable, fmt=fmt, encoding=encoding, sheet=sheet, from_=from_, select=select, carriers=carriers,
            services=services, deliver_within=deliver_within, confidence=confidence, verify=verify,
            label_format=label_format, labels_dir=labels_dir, check_references=check_references,
            reference_quiet=reference_quiet,
        )
        args = CreateArgs(
            manifest=path,
            manifest_label=label,
            source=source,
            purchase=purchase,
            results=results,
            failed=failed,
            skip_invalid=skip_invalid,
            rejects=rejects or (None if from_stdin else path.with_name(path.name + ".rejects.csv")),
            journal=journal_path or (None if from_stdin else default_journal(path)),
            fresh=fresh,
            dry_run=dry_run,
            yes=yes,
            max_cost=limit,
            run=run,
            from_stdin=from_stdin,
        )
        code = execute(args)
    raise typer.Exit(int(code))


def manifest_and_rules(
    path: Path, *, fmt: str | None, encoding: str | None, sheet: str | None, from_: str | None, select: str,
    carriers: str | None, services: str | None, deliver_within: str | None, confidence: str | None, verify: str,
    label_format: str | None = None, labels_dir: Path | None = None, check_references: bool | None = None,
    reference_quiet: str | None = None,
) -> tuple[ManifestSource, PurchaseOptions]:
    """The manifest to read and how to choose and buy, from the options `create` and `plan` share."""
    from shipctl.jobs.purchase import PurchaseOptions
    from shipctl.jobs.validation import ManifestSource
    from shipctl.selection import delivery_check

    default_from: Address | None = None
    if from_:
        from shipctl.manifest import parse_address_arg  # only for --from (or $SHIPCTL_FROM): its own module

        default_from = parse_address_arg(from_)
    wanted = (split_list(carriers), split_list(services))
    within = parse_deliver_within(deliver_within)
    if within is not None and select == "fastest":
        raise UsageError("--deliver-within is a rule of its own (the cheapest rate in time): give it or "
                         "--select fastest, not both")
    rule_check = delivery_check(within, *wanted)
    source = ManifestSource(path, fmt, encoding, default_from, rule_check, terminal().warn, sheet)
    purchase = PurchaseOptions(
        select=cast(SelectRule, select), carriers=wanted[0], services=wanted[1], label_format=label_format,
        labels_dir=labels_dir, check_references=check_references, verify=cast("VerifyMode", verify),
        deliver_within=within, confidence=parse_confidence(confidence),
        quiet_seconds=_quiet_seconds(reference_quiet),
    )
    return source, purchase


def _quiet_seconds(given: str | None) -> float:
    """`--reference-quiet`, else $SHIPCTL_REFERENCE_QUIET (`plan` and `apply` read only that), else the default."""
    import math
    import os

    from shipctl.jobs.purchase import QUIET_SECONDS

    source = "--reference-quiet"
    if given is None:
        given, source = os.environ.get("SHIPCTL_REFERENCE_QUIET") or None, "SHIPCTL_REFERENCE_QUIET"
    if given is None:
        return QUIET_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= 600:
        raise UsageError(f"{source} must be a number of seconds from 0 to 600, like 5 or 2.5, not {given!r}")
    return seconds


def _limit(value: str | None) -> Decimal | None:
    if value is None:
        return None
    from shipctl.money import COMMA_HINT, misplaced_comma, parse_limit

    amount = parse_limit(value)
    if amount is None:
        raise UsageError(f"--max-cost must be an amount like 250 or 250.00, not {value!r}"
                         + (f" ({COMMA_HINT})" if misplaced_comma(value.replace("$", "")) else ""))
    if amount < 0:
        raise UsageError("--max-cost must not be negative")
    return amount


def execute(args: CreateArgs) -> ExitCode:
    """Validate, check the outputs, run the job, then the summary, the warnings and the exit code."""
    from shipctl.cli.create_output import check_journal, check_outputs, write_table_file
    from shipctl.cli.host import smartrate_note
    from shipctl.cli.summary import counted
    from shipctl.money import format_totals

    term = terminal()
    check_journal(args.journal, None if args.from_stdin else args.manifest, args.manifest_label)
    valid, rejects = _validate(args)
    if valid is None:
        return ExitCode.USAGE
    files = {"--results": args.results, "--failed": args.failed,
             "--rejects": args.rejects if args.skip_invalid else None}
    inputs = {f"the manifest {args.manifest_label}": None if args.from_stdin else args.manifest,
              f"the journal {args.journal}": args.journal}
    check_outputs(files, args.purchase.labels_dir, inputs)
    if rejects and args.rejects is not None:
        try:
            write_table_file(args.rejects, rejects)
        except OSError as exc:
            raise WriteFailure.from_os(f"--rejects {args.rejects}", exc) from None
        term.warn(f"skipped {counted(len(rejects), 'invalid rows')}; written to {args.rejects}")
    if valid == 0:  # --skip-invalid skipped every row: nothing to do, which is an input problem, not a partial run
        term.info(f"every row of {args.manifest_label} is invalid; nothing was bought")
        return ExitCode.USAGE
    outcome, summary, stats, target, failed_rows = _run(args, valid)
    if args.after is not None and not (outcome.interrupted or outcome.fatal or outcome.refused):
        args.after(outcome, target)
    _write_failed(args, outcome, failed_rows)
    summary.render(term.err, stats=stats, quiet=args.run.quiet,
                   paths=_written_paths(args, outcome, summary, failed_rows, bool(rejects)))
    _warn_after_summary(summary)
    if outcome.unverified:
        whose = "1 row's destination" if outcome.unverified == 1 else f"{outcome.unverified} rows' destinations"
        term.warn(f"{whose} failed verification and {'was' if outcome.unverified == 1 else 'were'} not stopped "
                  "(--verify warn): see address_verification; --verify strict buys none of them")
    _label_notes(args, outcome, summary, embedded=target.embedded)
    _raise_for(outcome, target.api_base)
    if args.dry_run and outcome.estimate:
        insured = f" (insurance {format_totals(outcome.insurance)} included)" if outcome.insurance else ""
        term.info(f"dry run: {counted(outcome.quoted, 'labels')} would cost {format_totals(outcome.estimate)}"
                  f"{insured}{smartrate_note(outcome.smartrate_calls)}; nothing was bought")
    elif outcome.smartrate_calls:
        term.info(f"SmartRate: {counted(outcome.smartrate_calls, 'calls')} made to choose rates by delivery time "
                  "(EasyPost bills them beyond its free tier)")
    if outcome.wide_looks[0]:
        rows, calls = outcome.wide_looks
        term.info(f"reference check: {counted(rows, 'rows')} had the account's shipments read around their "
                  f"reference's ({counted(calls, 'calls')}): a first look more than --reference-quiet before "
                  "their shipment, or an abandoned shipment that could hide a label")
    if outcome.interrupted:
        term.info("interrupted: rerun the same command to resume (nothing will be bought twice)")
        return ExitCode.INTERRUPTED
    # A manifest row a plan leaves out is not a problem of the apply (the plan said so when it was made).
    if stats.failed or stats.skipped - outcome.not_in_plan or rejects or summary.attention:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _validate(args: CreateArgs) -> tuple[int | None, list[dict[str, Any]]]:
    """The validation pass: every problem printed, identical ones grouped; (valid rows, or None when the run must
    stop; the invalid rows kept for --rejects under --skip-invalid, one each)."""
    from shipctl.cli.create_output import reject_row
    from shipctl.cli.problems import problem_report
    from shipctl.cli.summary import counted
    from shipctl.manifest import InvalidRow

    term = terminal()
    rejects: list[dict[str, Any]] = []

    with problem_report() as problems:
        def invalid(item: InvalidRow) -> None:
            problems.add(item)
            if args.skip_invalid:
                rejects.append(reject_row(item))

        checked = args.source.check(invalid)
    if checked.rows == 0:
        raise ShipctlError(f"{args.manifest_label}: the manifest has no rows", ExitCode.USAGE)
    valid = checked.rows - checked.invalid
    if checked.derived:
        term.warn(f"{counted(checked.derived, 'rows')} of {args.manifest_label} "
                  f"{'has' if checked.derived == 1 else 'have'} no reference, so "
                  f"{'it is' if checked.derived == 1 else 'each is'} known by its content: a row edited after its "
                  "label was bought is a new order and gets a second label. An order number column (reference, "
                  "order_id, order …) makes a rerun of an edited row safe")
    if checked.invalid and not args.skip_invalid:
        term.info(
            f"{counted(checked.rows, 'rows')}: {valid} valid, {checked.invalid} invalid; "
            "nothing was bought (fix the rows, or pass --skip-invalid)"
        )
        return None, rejects
    return valid, rejects


def _run(args: CreateArgs, total: int) -> tuple[CreateOutcome, CreateSummary, RunStats, Target, list[dict[str, Any]]]:
    """The job on a session, its results through the sink: (outcome, summary, stats, API target, --failed rows)."""
    from shipctl.cli.create_output import open_sink
    from shipctl.cli.host import CliHost
    from shipctl.jobs.create import CreateInputs, CreateJob
    from shipctl.jobs.session import open_session
    from shipctl.paths import stdin_journal

    term = terminal()
    host = CliHost(args.run, noun="shipments", yes=args.yes)
    outcome: CreateOutcome | None = None
    with open_session(args.run.sizing, total=total, force_sandbox=args.run.force_sandbox,
                      announce=host.detail) as session:
        journal = args.journal = args.journal or stdin_journal(args.manifest, session.target.identity)
        if term.stdout_closed:
            term.warn(_closed_stdout(args.results, journal))
        inputs = CreateInputs(source=args.source, options=args.purchase, journal=journal, fresh=args.fresh,
                              dry_run=args.dry_run, max_cost=args.max_cost, plan=args.plan,
                              all_or_nothing=args.all_or_nothing, approved_by=args.approved_by)
        sink_cm = open_sink(term, host.result_format(), args.results, args.failed is not None)
        try:
            with sink_cm as sink:
                outcome = CreateJob(inputs, session, host, sink).run()
        except WriteFailure as failure:
            # Closing stdout or --results flushes what they hold (a table is printed only then): a full disk fails
            # it after the run. Nothing was bought before the run started, so then the failure is all there is.
            if outcome is None:
                raise
            outcome.write_failure = outcome.write_failure or failure
            sink.summary.cut_off.add(failure.what)
        return outcome, sink.summary, session.stats, session.target, sink.failed_rows


def _closed_stdout(results: Path | None, journal: Path) -> str:
    """The one line a run started with stdout closed gets: exit 0 would otherwise be all a script sees, and the
    results it meant to read would be lost without a word (a rerun prints them again from the journal)."""
    kept = f"--results {results} and the journal {journal} keep them" if results is not None else (
        f"the journal {journal} keeps them")
    return (f"stdout is closed: the results are not printed ({kept}; rerun the same command with stdout open to "
            "print them, nothing is bought twice)")


def _write_failed(args: CreateArgs, outcome: CreateOutcome, failed_rows: list[dict[str, Any]]) -> None:
    """`--failed` is written whenever it was asked for: with no row to fix it holds its header alone, so a script
    that attaches or feeds it back always finds it."""
    if args.failed is None:
        return
    from shipctl.cli.create_output import FAILED_COLUMNS, write_table_file

    try:
        write_table_file(args.failed, failed_rows, header=FAILED_COLUMNS)
    except OSError as exc:
        outcome.write_failure = outcome.write_failure or WriteFailure.from_os(f"--failed {args.failed}", exc)


def _written_paths(args: CreateArgs, outcome: CreateOutcome, summary: CreateSummary,
                   failed_rows: list[dict[str, Any]], rejects: bool) -> dict[str, str]:
    """What the summary lists as written, each with what it holds: never an output whose writing failed."""
    from shipctl.cli.summary import counted

    unwritten = outcome.write_failure.what if outcome.write_failure is not None else ""
    paths = {"journal": str(args.journal)}
    if outcome.set_aside is not None:
        paths["previous journal"] = f"{outcome.set_aside} (set aside by --fresh)"
    fixes = f"{counted(len(failed_rows), 'rows')} to fix" if failed_rows else "header only: no row to fix"
    candidates = (
        ("results", args.results, "--results", ""),
        ("failed rows", args.failed, "--failed", f" ({fixes})"),
        ("labels", args.purchase.labels_dir, "the label file", f" ({_labels_note(outcome, summary)})"),
    )
    for label, path, what, note in candidates:
        if path is not None and not unwritten.startswith(what):
            paths[label] = f"{path}{note}"
    if rejects and args.rejects:
        paths["invalid rows"] = str(args.rejects)
    return paths


def _labels_note(outcome: CreateOutcome, summary: CreateSummary) -> str:
    """How many label files --labels-dir holds for this manifest's bought rows, and how many this run saved."""
    from shipctl.cli.summary import counted

    there, saved = summary.label_files, outcome.labels_saved
    if there == 0:
        return "no label file saved"
    if saved >= there:
        return f"{counted(there, 'label files')} saved"
    return f"{counted(there, 'label files')}: {saved} saved by this run, {there - saved} already there"


def _label_notes(args: CreateArgs, outcome: CreateOutcome, summary: CreateSummary, *, embedded: bool) -> None:
    """Where the labels are (a table shows no label URL, and no file is saved without --labels-dir), and which
    rows' own `label_format` the flag overrode."""
    from shipctl.cli.summary import counted

    term = terminal()
    forced = args.purchase.label_format
    if forced and outcome.overridden_formats:
        (fmt, n), *more = outcome.overridden_formats.most_common()
        asked = " and ".join([f"{counted(n, 'rows')} asked for {fmt}", *(f"{k} for {f}" for f, k in more)])
        term.info(f"labels: {asked}; --label-format {forced} makes every label {forced}")
    unsaved = summary.no_file["now"] + summary.no_file["earlier"]
    if args.purchase.labels_dir is not None or not unsaved or args.run.quiet:
        return
    files, them = ("files", "them") if unsaved > 1 else ("a file", "it")
    # Only what this run bought is "bought": a rerun re-emits every label of the journal and buys none of them.
    now, earlier = summary.no_file["now"], summary.no_file["earlier"]
    bought = (f"{now} bought" if not earlier else f"{earlier} bought before this run" if not now
              else f"{now} bought by this run and {earlier} before it")
    # Lines a narrow terminal does not break mid-word: a clerk reads this one, it is what to do next. A head
    # longer than "labels: 9999 bought, not saved as files." puts what to do on lines of its own (under 80).
    head = f"labels: {bought}, not saved as {files}."
    todo = (f"{head} To save {them}, rerun the same command\n  with --labels-dir DIR; labels already bought are "
            "not bought again.") if len(head) <= 40 else (
            f"{head}\n  To save {them}, rerun the same command with --labels-dir DIR;\n  labels already bought are "
            "not bought again.")
    term.info(f"{todo}\n  {_label_urls(args, outcome, summary, embedded=embedded)}.")


def _label_urls(args: CreateArgs, outcome: CreateOutcome, summary: CreateSummary, *, embedded: bool) -> str:
    """Where the label URLs are: the outputs that took every row (a table has no URL column). An output that
    stopped taking rows (a full disk, a closed stdout) holds only some: then the journal, which has them all."""
    term = terminal()
    cut = set(summary.cut_off)
    if outcome.write_failure is not None:
        cut.add(outcome.write_failure.what)
    if term.stdout_closed:  # it took no row at all
        cut.add("stdout")
    outputs = (("stdout", "stdout", (args.run.output or term.default_output()) != "table"),
               (str(args.results), f"--results {args.results}", args.results is not None))
    whole = [name for name, what, shown in outputs if shown and what not in cut]
    lost = [name for name, what, shown in outputs if shown and what in cut]
    if whole:
        urls = f"Their URLs are in the label_url field of {' and '.join(whole)}"
    elif lost:
        urls = (f"Their URLs: {' and '.join(lost)} did not take every row, but the journal keeps them all;\n"
                "  rerunning the same command writes them again")
    else:
        return "For their URLs, add -o ndjson or --results FILE"
    if embedded:
        urls += ".\n  A sandbox label URL works only while the run that bought the label runs"
    return urls


def _warn_after_summary(summary: CreateSummary) -> None:
    """One line for each kind of row that needs something after the run, saying what."""
    from shipctl.cli.summary import counted

    term = terminal()
    if summary.attention:
        codes = ", ".join(f"{code} ×{n}" for code, n in summary.attention_codes.most_common())
        verb = "needs" if summary.attention == 1 else "need"
        rows = f"{counted(summary.attention, 'rows')} with a label"  # bought, or bought and refunded since
        term.warn(f"{rows} {verb} a person ({codes}): see the README's statuses table")
    if summary.unconfirmed:
        term.warn(
            f"{counted(summary.unconfirmed, 'rows')} may have been bought (BUY_UNCONFIRMED): rerun this same "
            "command to reconcile them; they are not in the --failed file"
        )
    if summary.retryable:
        term.warn(
            f"{counted(summary.retryable, 'rows')} failed for now (429s, 5xx, timeouts, a buy still settling): "
            "rerun this same command to retry them; they are not in the --failed file"
        )
    if summary.held:
        term.warn(
            f"{counted(summary.held, 'rows')} left alone because another shipctl run is buying them "
            "(HELD_BY_OTHER_RUN): rerun this same command after it ends to record their labels"
        )


def _raise_for(outcome: CreateOutcome, api_base: str) -> None:
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
        # The failure already says where and what to check (carrier/errors.py): do not say it twice.
        raise ShipctlError(
            f"the API at {api_base} answered no call ({outcome.fatal}); stopped without buying anything",
            ExitCode.ERROR,
        )
