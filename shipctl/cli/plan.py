"""`shipctl plan` and `shipctl apply`: postage as a reviewed change.

`plan` is `create --dry-run` (every shipment created and journaled, every rate chosen, nothing bought) that also
writes the plan file (`shipctl.plans`) and shows it to a person: totals, the dearest rows, what changed since the
last plan of the same manifest. `apply` buys exactly that plan through `create`'s own job and journal: the rows are
pinned to their planned shipment and rate, checked all before any is bought, and the money guard (`--max-cost`, the
production confirmation) holds as in `create`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipctl.cli.app import command
from shipctl.cli.create import (
    MONEY_PANEL,
    CreateArgs,
    LabelFormatChoice,
    LabelsDir,
    Results,
    Yes,
    _limit,
    execute,
    manifest_and_rules,
)
from shipctl.cli.options import (
    Carriers,
    Confidence,
    DefaultFrom,
    DeliverWithin,
    Encoding,
    ManifestFormat,
    RunOptions,
    Select,
    Services,
    Sheet,
    Verify,
    engine_options,
)
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:
    from shipctl.jobs.create import CreateOutcome
    from shipctl.plans import Plan
    from shipctl.target import Target

_DURATION = re.compile(r"\s*(\d+)\s*([smhd])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, flag: str) -> dt.timedelta:
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"{flag} must be a duration like 90m, 24h or 2d, not {text!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@command()
@engine_options("Rows read and dispatched")
def plan(
    manifest: str = typer.Argument(..., help="Manifest file (CSV, JSON, NDJSON or an .xlsx workbook)."),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="Where to write the plan (JSON)."),
    valid_for: str = typer.Option(
        "24h", "--valid-for", metavar="DURATION", help="How long apply may buy from it (90m, 24h, 2d)."
    ),
    fmt: ManifestFormat = None,
    encoding: Encoding = None,
    sheet: Sheet = None,
    from_: DefaultFrom = None,
    select: Select = "cheapest",
    carriers: Carriers = None,
    services: Services = None,
    deliver_within: DeliverWithin = None,
    confidence: Confidence = None,
    verify: Verify = "warn",
    journal_path: Path | None = typer.Option(
        None, "--journal", help="Journal file (default: beside the manifest); apply buys through it."
    ),
    *,
    run: RunOptions,
) -> None:
    """Create every shipment and choose every rate, buy nothing, and write the plan that apply will buy.

    Examples:

      shipctl plan orders.csv --out plan.json

      shipctl plan orders.csv --out plan.json --deliver-within 3 && shipctl apply plan.json
    """
    from shipctl import plans
    from shipctl.manifest import parse_address_arg
    from shipctl.paths import default_journal

    if manifest == "-":
        raise UsageError("plan needs a manifest file, not stdin: apply reads it again and checks it did not change")
    path = Path(manifest)
    if not path.is_file():
        raise UsageError(f"{manifest}: no such manifest file")
    span = parse_duration(valid_for, "--valid-for")
    if span > MAX_VALID_FOR:
        raise UsageError("--valid-for is at most 30d: rates and surcharges change")
    journal = journal_path or default_journal(path)
    _check_out(out, path, journal)
    origin = parse_address_arg(from_) if from_ else None
    reading = {"format": fmt, "encoding": encoding, "sheet": sheet,
               "from": json.dumps(origin.to_easypost()) if origin is not None else None}
    source, purchase = manifest_and_rules(
        path, fmt=fmt, encoding=encoding, sheet=sheet, from_=reading["from"], select=select, carriers=carriers,
        services=services, deliver_within=deliver_within, confidence=confidence, verify=verify,
    )
    manifest_sha256 = plans.file_sha256(path)  # as read for the plan: an edit during planning fails apply's check

    def write(outcome: CreateOutcome, target: Target) -> None:
        from shipctl.jobs.plan import build_plan

        made = build_plan(outcome, journal_path=journal, api=target.identity, manifest=path, valid_for=span,
                          reading=reading, manifest_sha256=manifest_sha256)
        _write_and_show(made, out, path)

    args = CreateArgs(
        manifest=path, manifest_label=manifest, source=source, purchase=purchase, results=None, failed=None,
        skip_invalid=False, rejects=None, journal=journal, fresh=False, dry_run=True, yes=False, max_cost=None,
        run=run, after=write,
    )
    raise typer.Exit(int(execute(args)))


MAX_VALID_FOR = dt.timedelta(days=30)


def _check_out(out: Path, manifest: Path, journal: Path) -> None:
    """`--out` is checked before the dry run creates anything: never the manifest or the journal, a file in a
    folder that exists."""
    target = out.resolve()
    if target in (manifest.resolve(), journal.resolve()):
        which = "the manifest" if target == manifest.resolve() else "the journal"
        raise UsageError(f"--out is {which} itself; give the plan a file of its own")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")


def _write_and_show(made: Plan, out: Path, manifest: Path) -> None:
    from shipctl import money, plans
    from shipctl.errors import WriteFailure
    from shipctl.paths import state_dir

    term = terminal()
    last = plans.last_plan_path(state_dir(), manifest)
    previous = plans.read_previous(last)
    try:
        document = plans.write(made, out)
        last.parent.mkdir(parents=True, exist_ok=True)
        last.write_text(json.dumps(document), encoding="utf-8")
    except OSError as exc:
        raise WriteFailure.from_os(f"--out {out}", exc) from None
    totals = money.format_totals(made.estimate()) or "nothing"
    insured = f" (insurance {money.format_totals(made.insurance)} included)" if made.insurance else ""
    term.info(f"plan: {len(made.rows)} labels, {totals}{insured}; written to {out}, valid until "
              f"{document['expires_at']}")
    for carrier, service, currency, count, amount in made.by_service():
        term.info(f"  {carrier:<8} {service:<36} {count:>5}  {money.format_money(amount, currency):>12}")
    dearest = plans.most_expensive(made.rows)
    if dearest:
        term.info("  the dearest: " + ", ".join(
            f"{row.reference} {money.format_money(row.rate, row.currency)}" for row in dearest))
    if previous is not None:
        changes = plans.changes_since(previous, made)
        term.info(f"  since the last plan of this manifest: {len(changes) or 'nothing'} changed")
        for change in changes[:10]:
            term.info(f"    {change.reference}: {change.before} → {change.after}")
        if len(changes) > 10:
            term.info(f"    … and {len(changes) - 10} more")
    if made.not_planned:
        term.info(f"  not planned: {len(made.not_planned)} rows (see their records); apply will not buy them")
    term.info(f"  digest {document['digest']}  (approve this one: apply refuses an edited file)")
    term.info(f"  to buy exactly this: shipctl apply {out}")


@command()
@engine_options("Rows read and dispatched")
def apply(
    plan_file: Path = typer.Argument(..., metavar="PLAN", help="The plan file shipctl plan wrote."),
    max_drift: str | None = typer.Option(
        None, "--max-drift", rich_help_panel=MONEY_PANEL,
        help="How far a planned price may have moved (0.50, or 5%); beyond it the row fails (default: 0).",
    ),
    all_or_nothing: bool = typer.Option(
        False, "--all-or-nothing", rich_help_panel=MONEY_PANEL,
        help="If any planned row cannot be bought as planned, buy none.",
    ),
    max_cost: str | None = typer.Option(
        None, "--max-cost", rich_help_panel=MONEY_PANEL,
        help="Refuse to buy if the estimate of what is left to buy is higher.",
    ),
    yes: Yes = False,
    approved_by: str | None = typer.Option(
        None, "--approved-by", metavar="NAME", rich_help_panel=MONEY_PANEL,
        help="Who approved the plan: recorded in the journal with the time.",
    ),
    label_format: LabelFormatChoice = None,
    labels_dir: LabelsDir = None,
    results: Results = None,
    *,
    run: RunOptions,
) -> None:
    """Buy exactly what a plan holds: its rows, at its rates, through its journal; a second apply buys nothing.

    Refused before anything is bought when the plan was altered, has expired, or its manifest changed, or when the
    API or mode differ. A rate gone or repriced beyond --max-drift fails its row (all rows with --all-or-nothing).

    Examples:

      shipctl apply plan.json

      shipctl apply plan.json --max-drift 2% --approved-by "Dana (ops)" --yes
    """
    from dataclasses import replace

    from shipctl import plans

    if approved_by is not None and not approved_by.strip():
        raise UsageError("--approved-by needs a name")
    loaded = plans.load(plan_file)
    plans.check_applicable(loaded, now=dt.datetime.now(dt.timezone.utc), manifest=Path(loaded.manifest))
    reading = loaded.reading
    source, purchase = manifest_and_rules(
        Path(loaded.manifest), fmt=reading.get("format"), encoding=reading.get("encoding"),
        sheet=reading.get("sheet"), from_=reading.get("from"), select="cheapest", carriers=None, services=None,
        deliver_within=None, confidence=None, verify="off", label_format=label_format, labels_dir=labels_dir,
    )
    purchase = replace(purchase, pins=loaded.by_reference(), max_drift=plans.parse_drift(max_drift))
    args = CreateArgs(
        manifest=Path(loaded.manifest), manifest_label=loaded.manifest, source=source, purchase=purchase,
        results=results, failed=None, skip_invalid=False, rejects=None, journal=Path(loaded.journal), fresh=False,
        dry_run=False, yes=yes, max_cost=_limit(max_cost), run=run, plan=loaded, all_or_nothing=all_or_nothing,
        approved_by=approved_by,
    )
    raise typer.Exit(int(execute(args)))
