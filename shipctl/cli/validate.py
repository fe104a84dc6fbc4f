"""`shipctl validate MANIFEST`: check every row, report every problem, optionally emit the normalised rows."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Literal

import typer

from shipctl.cli import console
from shipctl.cli.app import command
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:
    from shipctl.manifest import ShipmentRow

EASYPOST_EXTRA = ("carrier", "service", "insurance", "label_format")


def normalised_record(row: ShipmentRow) -> dict[str, Any]:
    """The EasyPost request shape plus the row's pins: what `--output json|ndjson` writes per valid row."""
    record = row.to_easypost()
    for key in EASYPOST_EXTRA:
        record[key] = getattr(row, key)
    return record


@command()
def validate(
    manifest: str = typer.Argument(..., help="The manifest: a CSV, JSON or NDJSON file, or - for stdin."),
    fmt: Literal["csv", "json", "ndjson"] | None = typer.Option(
        None, "--format", help="The manifest's format (default: sniffed from its content)."
    ),
    encoding: str | None = typer.Option(
        None, "--encoding", help="The manifest's text encoding, e.g. cp1252 (default: UTF-8, BOM or not)."
    ),
    from_address: str | None = typer.Option(
        None, "--from", envvar="SHIPCTL_FROM",
        help="Origin for rows without from_* columns: a JSON file or inline JSON (default $SHIPCTL_FROM).",
    ),
    output: Literal["json", "ndjson", "csv"] | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the valid rows, normalised, to stdout: json/ndjson in EasyPost's request shape, "
        "csv as canonical manifest columns.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only problems (and the summary when there are any)."
    ),
) -> None:
    """Validate a manifest: every problem on stderr as `row N, column C: message`, then a summary.

    Exits 0 when every row is valid, 2 otherwise.
    """
    from shipctl.manifest import FLAT_COLUMNS, ValidRow, iter_rows, parse_address_arg
    from shipctl.output import open_writer

    warn = (lambda message: None) if quiet else console.warn
    default_from = parse_address_arg(from_address) if from_address is not None else None
    rows = iter_rows(manifest, fmt=fmt, encoding=encoding, default_from=default_from, on_warning=warn)
    valid = invalid = 0
    with ExitStack() as stack:
        writer = None
        if output is not None:
            writer = stack.enter_context(open_writer(output, sys.stdout, FLAT_COLUMNS if output == "csv" else ()))
        for result in rows:
            if isinstance(result, ValidRow):
                valid += 1
                if writer is not None:
                    writer.write(result.row.to_flat() if output == "csv" else normalised_record(result.row))
            else:
                invalid += 1
                for problem in result.problems:
                    console.err.print(str(problem), markup=False, highlight=False, emoji=False)
    total = valid + invalid
    if invalid or not quiet:
        console.info(f"{total} row{'' if total == 1 else 's'}: {valid} valid, {invalid} invalid")
    if invalid:
        raise typer.Exit(int(ExitCode.USAGE))
