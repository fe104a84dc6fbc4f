"""`shipctl close`: the end of the shipping day, one form per origin and carrier, and a pickup for each on request.

The options, the checks made before the API is started, and the rendering; the run itself is `shipctl.jobs.close`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import RunOptions, engine_options
from shipctl.cli.terminal import terminal
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:  # the job, the SDK and SQLite load when the command runs, not for --help
    from shipctl.cli.host import CliHost
    from shipctl.engine.stats import RunStats
    from shipctl.jobs.close import CloseInputs, CloseOutcome
    from shipctl.output import Writer

CLOSE_TABLE_COLUMNS = (
    "group", "status", "origin", "carrier", "shipments", "form_id", "form_file", "pickup_confirmation",
    "reference", "tracking_code", "error_message",
)


def _inputs(journals: list[Path] | None, day: str | None, forms_dir: Path | None, pickup: bool,
            window: str | None, dry_run: bool) -> CloseInputs:
    """Everything checked before the API (or the built-in sandbox) is started: a typo is exit 2, nothing done."""
    from shipctl.jobs.close import CloseInputs
    from shipctl.jobs.close_inputs import DEFAULT_WINDOW, PickupWindow, parse_day, require_journals

    paths = tuple(dict.fromkeys(journals or ()))
    require_journals(paths)
    if window is not None and not pickup:
        raise UsageError("--pickup-window goes with --pickup")
    if forms_dir is not None:
        _check_forms_dir(forms_dir)
    # Named journals name their labels: every day's, unless --date narrows them. Otherwise: today's.
    chosen = parse_day(day) if day is not None else None if paths else parse_day("today")
    return CloseInputs(
        journals=paths, day=chosen, forms_dir=forms_dir,
        pickup=PickupWindow.parse(window or DEFAULT_WINDOW) if pickup else None, dry_run=dry_run,
    )


def _check_forms_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--forms-dir {path} is not a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--forms-dir {path} cannot be written")


class _Results:
    """stdout's writer, opened at the first record: a run with nothing to close leaves stdout empty."""

    def __init__(self, stack: contextlib.ExitStack, host: CliHost) -> None:
        from shipctl.jobs.close import CLOSE_FIELDS

        self._stack = stack
        self._host = host
        self._columns = CLOSE_TABLE_COLUMNS if host.result_format() == "table" else CLOSE_FIELDS
        self._writer: Writer | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = self._stack.enter_context(self._host.open_writer(self._columns))
        self._writer.write({c: record.get(c) for c in self._columns})


def end_line(outcome: CloseOutcome, stats: RunStats, dry_run: bool) -> str:
    """`40 labels read: 4 forms created, 1 left out; 3 refunded (never put on a form); 4 pickups booked ($11.45),
    0.9 s`."""
    from shipctl.cli.summary import counted
    from shipctl.money import format_totals

    forms = [f"{counted(n, 'forms')} {status.replace('_', ' ')}" for status, n in outcome.forms.most_common()
             if status != "would_create"]
    if dry_run:
        forms.append(f"{counted(outcome.forms['would_create'], 'forms')} would be created; nothing was created")
    parts = [", ".join(forms or ["no form made"])]
    if outcome.left_out:
        parts[0] += f", {counted(outcome.left_out, 'labels')} left out"
    if outcome.excluded:
        parts.append(", ".join(f"{n} {why}" for why, n in outcome.excluded.most_common()))
    if outcome.void_on_form:
        parts.append(f"{counted(outcome.void_on_form, 'refunded labels')} on a form (named above)")
    if outcome.pickups:
        parts.append(", ".join(
            f"{counted(n, 'pickups')} {status.replace('_', ' ')}"
            + (f" ({format_totals(outcome.pickup_spend[status])})" if status in outcome.pickup_spend else "")
            for status, n in outcome.pickups.most_common()
        ))
    return f"{counted(outcome.shipments, 'labels')} read: {'; '.join(parts)}, {stats.elapsed():.1f} s"


def interrupted_line(outcome: CloseOutcome) -> str:
    """`interrupted: 1 form created before the interrupt, 6 labels not on a form yet; rerun close to fetch the PDF
    of 1 form and close the rest (it makes no form twice)`."""
    from shipctl.cli.summary import counted

    made = outcome.forms["created"]
    said = [f"{counted(made, 'forms')} created before the interrupt" if made else "no form created"]
    todo = []
    if outcome.without_pdf:
        n = outcome.without_pdf
        todo.append(f"fetch the PDF{'' if n == 1 else 's'} of {counted(n, 'forms')}")
    if outcome.not_closed:
        said.append(f"{counted(outcome.not_closed, 'labels')} not on a form yet")
        todo.append("close the rest")
    if unbooked := outcome.pickups["not_booked"] + outcome.pickups["failed"]:
        said.append(f"{counted(unbooked, 'pickups')} not booked")
        todo.append("book the pickups (with --pickup)")
    rerun = f"rerun close to {' and '.join(todo)}" if todo else "rerun close to check"
    return f"interrupted: {', '.join(said)}; {rerun} (it makes no form twice)"


@command()
@engine_options("Shipments dispatched")
def close(
    journals: list[Path] | None = typer.Option(
        None, "--journal", metavar="PATH", help="Close the labels of these create journals only (repeat).",
    ),
    day: str | None = typer.Option(
        None, "--date", metavar="DAY", help="Labels bought that local day: today (default), yesterday, YYYY-MM-DD.",
    ),
    forms_dir: Path | None = typer.Option(
        None, "--forms-dir", metavar="DIR", help="Where the forms' PDFs go (default: the state directory's forms/).",
    ),
    pickup: bool = typer.Option(False, "--pickup", help="Book and buy a carrier pickup for each form."),
    window: str | None = typer.Option(
        None, "--pickup-window", metavar="WINDOW",
        help="[DAY ]HH:MM-HH:MM, local time (default: next-business-day 09:00-17:00).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Buy production (or unknown-mode) pickups without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the groups and what would be done; create nothing."),
    *,
    run: RunOptions,
) -> None:
    """End the shipping day: one SCAN form per origin and carrier for the day's labels, never twice.

    Examples:

      shipctl close

      shipctl close --date yesterday --pickup --yes --forms-dir /srv/forms

      shipctl close --journal orders.csv.journal.db --dry-run
    """
    from shipctl.cli.host import CliHost

    inputs = _inputs(journals, day, forms_dir, pickup, window, dry_run)
    host = CliHost(run, noun="labels", yes=yes)
    outcome, stats = _execute(inputs, host)
    if outcome.interrupted:
        if outcome.shipments or outcome.forms:
            terminal().info(end_line(outcome, stats, inputs.dry_run))
        terminal().info(interrupted_line(outcome))
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if outcome.shipments or outcome.forms:
        terminal().info(end_line(outcome, stats, inputs.dry_run))
    else:
        terminal().info("nothing to close: no label bought " + (
            "in these journals" if inputs.journals else f"on {inputs.day} for this account on this machine"))
    if outcome.write_failure:
        raise outcome.write_failure
    if outcome.refused:
        raise ShipctlError(outcome.refused, ExitCode.USAGE)
    raise typer.Exit(int(outcome.exit_code))


def _execute(inputs: CloseInputs, host: CliHost) -> tuple[CloseOutcome, RunStats]:
    from shipctl.jobs.close import CloseJob
    from shipctl.jobs.session import open_session

    with contextlib.ExitStack() as stack:
        session = stack.enter_context(
            open_session(host.run.sizing, force_sandbox=host.run.force_sandbox, announce=host.detail)
        )
        outcome = CloseJob(inputs, session, host, _Results(stack, host)).run()
    return outcome, session.stats
