"""`shipctl validate MANIFEST`: check every row, report every problem, optionally emit the normalised rows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

import typer

from shipctl.cli.app import command
from shipctl.cli.options import choice
from shipctl.cli.problems import problem_report
from shipctl.cli.terminal import terminal
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:
    from shipctl.manifest import InvalidRow, ShipmentRow, ValidRow
    from shipctl.manifest.reader import Format
    from shipctl.output import OutputFormat

EASYPOST_EXTRA = ("carrier", "service", "insurance", "label_format", "deliver_within")


def normalised_record(row: ShipmentRow) -> dict[str, Any]:
    """The EasyPost request shape plus the row's pins: what `--output json|ndjson` writes per valid row."""
    record = row.to_easypost()
    for key in EASYPOST_EXTRA:
        record[key] = getattr(row, key)
    if row.customs_info is not None and row.customs_info.declared_value is not None:
        record["customs_info"]["declared_value"] = str(row.customs_info.declared_value)  # shipctl's own check
    return record


@command()
def validate(
    manifest: str = typer.Argument(
        ..., help="The manifest: a CSV, JSON or NDJSON file, an .xlsx workbook, or - for stdin."
    ),
    fmt: Annotated[str | None, choice(
        "--format", ("csv", "json", "ndjson"), "The manifest's format (default: sniffed from its content).",
    )] = None,
    encoding: str | None = typer.Option(
        None, "--encoding", help="The manifest's text encoding, e.g. cp1252 (default: UTF-8, BOM or not)."
    ),
    sheet: str | None = typer.Option(
        None, "--sheet", help="The sheet of an .xlsx workbook to read (default: its first sheet)."
    ),
    from_address: str | None = typer.Option(
        None, "--from", envvar="SHIPCTL_FROM",
        help="Origin for rows without from_* columns: a JSON file or inline JSON (default $SHIPCTL_FROM).",
    ),
    output: Annotated[str | None, choice(
        "--output", ("json", "ndjson", "csv"),
        "Write the valid rows, normalised, to stdout: json/ndjson in EasyPost's request shape, "
        "csv as canonical manifest columns.",
        short="-o",
    )] = None,
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only problems (and the summary when there are any)."
    ),
) -> None:
    """Validate a manifest: every problem on stderr as `row N, column C: message`, then a summary.

    The same problem on many rows is one line naming them: `rows 2–2001 (2,000 rows), column from_*: required`.

    Exits 0 when every row is valid, 2 otherwise (a manifest with no rows too, as `create` refuses it).

    Examples:

      shipctl validate orders.csv --from origin.json

      cat orders.ndjson | shipctl validate - -o csv > clean.csv
    """
    from shipctl.manifest import iter_rows, parse_address_arg

    term = terminal()
    default_from = parse_address_arg(from_address) if from_address is not None else None
    # stdin is handed over as a byte stream: the reader sniffs its encoding as it does a file's.
    source: str | IO[bytes] = term.stdin_bytes("the manifest") if manifest == "-" else manifest
    rows = iter_rows(source, fmt=cast("Format | None", fmt), encoding=encoding, default_from=default_from,
                     on_warning=(lambda _message: None) if quiet else term.warn, sheet=sheet)
    with contextlib.ExitStack() as stack:
        write = None if output is None else _valid_row_writer(stack, output)
        # Entered last, so closed first: the problems are on stderr before anything else ends.
        problems = stack.enter_context(problem_report())
        valid, invalid = _check(rows, write, problems.add)
    total = valid + invalid
    if total == 0:
        # As `create` says it: a cron job's `validate X && create X` must not pass the gate and fail at the buy.
        raise ShipctlError(f"{'stdin' if manifest == '-' else manifest}: the manifest has no rows", ExitCode.USAGE)
    if invalid or not quiet:
        term.info(f"{total} row{'' if total == 1 else 's'}: {valid} valid, {invalid} invalid")
    if invalid:
        raise typer.Exit(int(ExitCode.USAGE))


def _check(
    rows: Iterable[ValidRow | InvalidRow],
    write: Callable[[ValidRow], None] | None,
    report: Callable[[InvalidRow], None],
) -> tuple[int, int]:
    """Each invalid row to `report`, each valid row to `write`; (valid, invalid)."""
    from shipctl.manifest import ValidRow

    valid = invalid = 0
    for result in rows:
        if isinstance(result, ValidRow):
            valid += 1
            if write is not None:
                write(result)
        else:
            invalid += 1
            report(result)
    return valid, invalid


def _valid_row_writer(stack: contextlib.ExitStack, output: str) -> Callable[[ValidRow], None]:
    """A writer on stdout for `--output`: csv as manifest columns (it validates again), json/ndjson as requests."""
    from shipctl.manifest import FLAT_COLUMNS
    from shipctl.output import open_writer

    columns = FLAT_COLUMNS if output == "csv" else ()
    writer = stack.enter_context(open_writer(cast("OutputFormat", output), terminal().stdout, columns))

    def write(valid: ValidRow) -> None:
        writer.write(valid.row.to_flat() if output == "csv" else normalised_record(valid.row))

    return write
