"""`shipctl create`: buy a label for every row of a manifest, resumably, never twice."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from shipctl.cli.app import command
from shipctl.cli.bulk import run_options
from shipctl.cli.options import (
    Carriers,
    Concurrency,
    Encoding,
    ForceSandbox,
    ManifestFormat,
    MaxConcurrency,
    Output,
    Progress,
    ProgressInterval,
    Quiet,
    RowChunkSize,
    Services,
    Verbose,
    Workers,
    default_journal,
    manifest_input,
    split_list,
)
from shipctl.errors import UsageError


def _decimal(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.replace("$", "").replace(",", ""))
    except InvalidOperation:
        raise UsageError(f"{flag} must be an amount like 250 or 250.00, not {value!r}") from None
    if amount < 0:
        raise UsageError(f"{flag} must not be negative")
    return amount


@command()
def create(
    manifest: str = typer.Argument(..., help="Manifest file (CSV, JSON or NDJSON), or - for stdin."),
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    from_: str | None = typer.Option(
        None, "--from", envvar="SHIPCTL_FROM", help="Default origin: a JSON file or inline JSON ($SHIPCTL_FROM)."
    ),
    output: Output = None,
    results: Path | None = typer.Option(None, "--results", help="Also write every result to this file."),
    failed: Path | None = typer.Option(None, "--failed", help="Write failed rows here as a manifest to rerun."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip invalid rows instead of stopping."),
    rejects: Path | None = typer.Option(None, "--rejects", help="Where --skip-invalid writes invalid rows."),
    select: str = typer.Option("cheapest", "--select", help="Rate rule for unpinned rows: cheapest or fastest."),
    carriers: Carriers = None,
    services: Services = None,
    label_format: str | None = typer.Option(None, "--label-format", help="PDF, PNG or ZPL (default PNG)."),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="Download each label to DIR/<reference>.<ext>."),
    journal_path: Path | None = typer.Option(None, "--journal", help="Journal file (default: beside the manifest)."),
    fresh: bool = typer.Option(
        False, "--fresh",
        help="Set the old journal aside and start it over; labels already bought are adopted, never bought again "
        "(to ship an order again, give it a new reference).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Create shipments and choose rates; buy nothing."),
    check_references: bool | None = typer.Option(
        None, "--check-references/--no-check-references",
        help="Look each new row's reference up in the API before shipping it, and again right before its buy; a "
        "label already bought elsewhere is recorded, never bought again (default: on unless the key is a test "
        "key; on with --fresh).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Buy in production mode without asking."),
    max_cost: str | None = typer.Option(None, "--max-cost", help="Refuse to buy if the estimate is higher."),
    concurrency: Concurrency = "16",
    max_concurrency: MaxConcurrency = 64,
    workers: Workers = None,
    chunk_size: RowChunkSize = None,
    progress: Progress = "auto",
    progress_interval: ProgressInterval = 10.0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    sandbox: ForceSandbox = False,
) -> None:
    """Buy a label for every row of MANIFEST; rerun the same command to resume after any interruption."""
    from shipctl.cli.run_create import CreateArgs, execute

    if select not in ("cheapest", "fastest"):
        raise UsageError("--select must be cheapest or fastest")
    if fmt is not None and fmt not in ("csv", "json", "ndjson"):
        raise UsageError("--format must be csv, json or ndjson")
    if label_format is not None:
        label_format = label_format.upper()
        if label_format not in ("PDF", "PNG", "ZPL"):
            raise UsageError("--label-format must be PDF, PNG or ZPL")
    run = run_options(
        output=output, concurrency=concurrency, max_concurrency=max_concurrency, workers=workers,
        chunk_size=chunk_size, progress=progress, progress_interval=progress_interval, quiet=quiet, verbose=verbose,
        sandbox=sandbox,
    )

    with manifest_input(manifest) as (path, label, from_stdin):
        code = execute(
            CreateArgs(
                manifest=path,
                manifest_label=label,
                fmt=fmt,
                encoding=encoding,
                from_arg=from_,
                results=results,
                failed=failed,
                skip_invalid=skip_invalid,
                rejects=rejects or (None if from_stdin else path.with_name(path.name + ".rejects.csv")),
                select=select,  # type: ignore[arg-type]
                carriers=split_list(carriers),
                services=split_list(services),
                label_format=label_format,
                labels_dir=labels_dir,
                journal=journal_path or (None if from_stdin else default_journal(path)),
                fresh=fresh,
                dry_run=dry_run,
                check_references=check_references,
                yes=yes,
                max_cost=_decimal(max_cost, "--max-cost"),
                run=run,
            )
        )
    raise typer.Exit(int(code))

