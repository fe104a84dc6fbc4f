"""`shipctl verify`: check every address of a manifest with EasyPost before buying; `--fix` writes the corrections.

The job is `shipctl.jobs.verify`; this module reads the options, refuses an unwritable `--fix` before any call,
puts one record per address on stdout and ends with one line on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipctl.cli.app import command
from shipctl.cli.options import DefaultFrom, Encoding, ManifestFormat, RunOptions, Sheet, engine_options
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:  # the job, the SDK and the models load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.jobs.verify import Plan, VerifyOutcome, VerifyQuery

VERIFY_TABLE_COLUMNS = (
    "line", "reference", "address", "status", "changes", "error_code", "error_message", "residential",
)
"""A terminal is narrow: the table leaves EasyPost's spelling of the address to the other formats."""


@command()
@engine_options("Addresses dispatched")
def verify(
    manifest: str = typer.Argument(..., metavar="MANIFEST", help="The manifest to check (or - for stdin)."),
    fix: Path | None = typer.Option(
        None, "--fix", metavar="FILE",
        help="Write the manifest (CSV) to FILE with EasyPost's corrections applied, every other cell untouched.",
    ),
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    sheet: Sheet = None,
    from_: DefaultFrom = None,
    *,
    run: RunOptions,
) -> None:
    """Verify every destination (and each distinct origin) with EasyPost: verified, corrected or failed, and why.

    Examples:

      shipctl verify orders.csv

      shipctl verify orders.csv --fix orders.fixed.csv && shipctl create orders.fixed.csv
    """
    from shipctl.cli.host import CliHost
    from shipctl.cli.inputs import manifest_input
    from shipctl.jobs.verify import VerifyQuery
    from shipctl.manifest import parse_address_arg

    default_from = parse_address_arg(from_) if from_ else None
    host = CliHost(run, noun="addresses")
    with manifest_input(manifest) as (path, label, from_stdin):
        query = VerifyQuery(path, label, fmt, encoding, default_from, sheet)
        if fix is not None:
            _check_fix(fix, query, None if from_stdin else path)
        outcome = _execute(query, host, fix)
    terminal().info(end_line(outcome))
    raise typer.Exit(int(outcome.exit_code))


def _check_fix(fix: Path, query: VerifyQuery, manifest: Path | None) -> None:
    """Before any call: `--fix` must be a CSV manifest's, writable, and not the manifest itself."""
    from shipctl.cli.create_output import check_outputs
    from shipctl.jobs.manifest_fix import fix_refusal

    refusal = fix_refusal(query.path, query.fmt, query.encoding)
    if refusal is not None:
        raise UsageError(f"--fix writes CSV manifests only, and {refusal}; verify it without --fix, or save it as CSV")
    check_outputs({"--fix": fix}, None, {f"the manifest {query.label}": manifest})


def _execute(query: VerifyQuery, host: CliHost, fix: Path | None) -> VerifyOutcome:
    from shipctl.cli.unreachable import UnreachableWatch
    from shipctl.jobs.session import open_session
    from shipctl.jobs.verify import VERIFY_COLUMNS, AddressVerification

    job = AddressVerification(query, host)
    plan = job.validate()
    columns = VERIFY_TABLE_COLUMNS if host.result_format() == "table" else VERIFY_COLUMNS
    run = host.run
    with (
        open_session(
            run.sizing, total=plan.addresses, force_sandbox=run.force_sandbox, announce=host.detail,
        ) as session,
        host.open_writer(columns) as writer,
    ):
        watch = UnreachableWatch(session)
        outcome = job.run(plan, session, watch.sink(writer.write))
    watch.raise_if_unreachable()
    if fix is not None:
        _write_fix(query, outcome, fix, plan)
    return outcome


def _write_fix(query: VerifyQuery, outcome: VerifyOutcome, fix: Path, plan: Plan) -> None:
    from shipctl.jobs.manifest_fix import write_fixed

    term = terminal()
    report = write_fixed(query.path, fix, outcome.corrections, query.encoding)
    for note in report.unwritten:
        term.warn(f"--fix: not written, {note}")
    term.info(f"--fix: {fix} written: {report.cells} cells corrected in {report.rows} of {plan.rows} rows"
              + (f"; {outcome.failed} address{'' if outcome.failed == 1 else 'es'} still "
                 f"fail{'s' if outcome.failed == 1 else ''} verification" if outcome.failed else ""))


def end_line(outcome: VerifyOutcome) -> str:
    """`5 rows, 6 addresses: 3 verified, 1 corrected, 2 failed, 0.4 s`."""
    checked = outcome.verified + outcome.corrected + outcome.failed + outcome.errors
    parts = [f"{outcome.verified} verified", f"{outcome.corrected} corrected", f"{outcome.failed} failed"]
    if outcome.errors:
        parts.append(f"{outcome.errors} not checked (API errors)")
    return f"{outcome.rows} rows, {checked} addresses: {', '.join(parts)}, {outcome.elapsed:.1f} s"
