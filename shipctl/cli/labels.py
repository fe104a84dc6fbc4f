"""`shipctl labels`: the labels `create` bought, as one print-ready file (a 4×6 PDF, a letter PDF, or ZPL).

Parses and checks everything local first — the output's format and that it can be written, the journal or the
records on stdin, `--reference`, `--sort-by`'s column — so that a mistake is one line and exit 2 before any API
(or the built-in sandbox) is started. Then the job (`shipctl.jobs.labels`) fetches and builds; this module
writes its records (only with `-o`) and the summary on stderr.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipctl.cli.app import command
from shipctl.cli.options import MANIFEST_PANEL, Encoding, RunOptions, choice, engine_options
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

if TYPE_CHECKING:
    from shipctl.cli.host import CliHost
    from shipctl.jobs.label_rows import LabelRow
    from shipctl.jobs.labels import LabelsOutcome, LabelsRequest
    from shipctl.output import Writer

OUTPUT_PANEL = "The file"
PICK_PANEL = "Which labels, in what order"
_SUFFIXES = {".pdf": "pdf", ".zpl": "zpl"}
_SHOWN = 5


@dataclass
class _Source:
    """Where the labels come from, read and checked: the rows in manifest (or input) order."""

    rows: list[LabelRow]
    where: str
    manifest: Path | None = None
    journal: Path | None = None
    journal_target: str | None = None


@command()
@engine_options("Labels dispatched", "Also write one record per label on stdout, in this format (default: none).")
def labels(
    manifest: str | None = typer.Argument(
        None, metavar="MANIFEST",
        help="The manifest `create` shipped (its journal is beside it), or - for create's records on stdin.",
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="FILE", rich_help_panel=OUTPUT_PANEL, help="The file to write: .pdf or .zpl."
    ),
    fmt: Annotated[str | None, choice(
        "--format", ("pdf", "zpl"), "The file's format (default: from --out's extension).", case_sensitive=False,
        panel=OUTPUT_PANEL,
    )] = None,
    page: Annotated[str, choice(
        "--page", ("4x6", "letter"), "PDF pages: 4×6 in labels, or each label on a letter sheet.",
        case_sensitive=False, panel=OUTPUT_PANEL,
    )] = "4x6",
    journal_path: Path | None = typer.Option(
        None, "--journal", metavar="PATH", rich_help_panel=PICK_PANEL,
        help="The journal of a create run (default: the one beside MANIFEST).",
    ),
    sort_by: str | None = typer.Option(
        None, "--sort-by", metavar="COLUMN", rich_help_panel=PICK_PANEL,
        help="Order by this manifest column (bin, sku…), for picking order (default: manifest order).",
    ),
    references: list[str] | None = typer.Option(
        None, "--reference", "-r", metavar="REF", rich_help_panel=PICK_PANEL,
        help="Only these references (repeat, or comma-separate): a reprint.",
    ),
    only_new: bool = typer.Option(
        False, "--only-new", rich_help_panel=PICK_PANEL, help="Only labels no earlier `labels` run put in a file.",
    ),
    encoding: Encoding = None,
    sheet: str | None = typer.Option(
        None, "--sheet", rich_help_panel=MANIFEST_PANEL, help="The sheet of an .xlsx manifest (default: the first)."
    ),
    *,
    run: RunOptions,
) -> None:
    """Write the labels a `create` run bought into one print-ready file: a PDF of 4×6 in pages, or ZPL.

    Refunded labels are left out; labels not on disk are fetched once and cached.

    Examples:

      shipctl labels orders.csv --out today.pdf

      shipctl labels orders.csv --out today.zpl --sort-by bin

      shipctl labels orders.csv --out reprint.pdf -r ORD-1001 -r ORD-1002

      shipctl create orders.csv | shipctl labels - --out today.pdf --page letter
    """
    from shipctl.jobs.labels import LabelsRequest

    if out is None:
        raise UsageError("give --out FILE: the file to write (.pdf, or .zpl for a Zebra printer)")
    file_format = _output_format(out, fmt)
    if file_format == "zpl" and page != "4x6":
        raise UsageError("--page letter goes with a PDF: a ZPL label is the size the printer's media is")
    for flag, value in (("--encoding", encoding), ("--sheet", sheet)):
        if value is not None and manifest in (None, "-"):
            raise UsageError(f"{flag} goes with a MANIFEST: it says how to read it")
    source = _source(manifest, journal_path, sort_by, encoding, sheet)
    rows = _pick(source, _split_refs(references), sort_by, encoding, sheet)
    request = LabelsRequest(
        rows=tuple(rows), out=out, file_format=file_format, page=page, only_new=only_new, named=bool(references),
        journal=source.journal, journal_target=source.journal_target,
    )
    _check_outputs(request, source)
    code = _run(request, run)
    raise typer.Exit(code)


def _output_format(out: Path, fmt: str | None) -> Any:
    if str(out) == "-":
        raise UsageError("--out needs a file: stdout carries the records (-o)")
    named = _SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        if named is None:
            raise UsageError(f"--out {out}: cannot tell the format from its name; end it in .pdf or .zpl, "
                             "or pass --format pdf|zpl")
        return named
    if named is not None and named != fmt:
        raise UsageError(f"--out {out} is named {out.suffix} but --format is {fmt}: say one thing")
    return fmt


def _split_refs(values: list[str] | None) -> list[str]:
    refs: list[str] = []
    for value in values or ():
        refs.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(refs))


def _source(manifest: str | None, journal: Path | None, sort_by: str | None, encoding: str | None,
            sheet: str | None) -> _Source:
    """The rows to consider; given a manifest, every one of its rows is among them (one the journal never
    recorded as `not_attempted`), so none drops out of the count unseen."""
    from shipctl.cli.inputs import require_file
    from shipctl.jobs.label_rows import ManifestFile, read_journal, rows_from_records, with_unattempted
    from shipctl.paths import default_journal

    if manifest == "-":
        if journal is not None:
            raise UsageError("give - (create's records on stdin) or --journal, not both")
        if sort_by is not None:
            raise UsageError("--sort-by orders by a manifest column: give the MANIFEST instead of -")
        return _Source(rows_from_records(terminal().stdin_text("create's records").read()), "the records on stdin")
    if manifest is None and journal is None:
        raise UsageError("give the MANIFEST create shipped, --journal PATH, or - for create's records on stdin")
    if manifest is None and sort_by is not None:
        raise UsageError("--sort-by orders by a manifest column: give the MANIFEST too")
    path = require_file(manifest) if manifest is not None else None
    if journal is None and path is not None:
        journal = default_journal(path)
        if not journal.is_file():
            raise UsageError(f"no journal for {manifest} (looked for {journal}): labels prints what "
                             f"`shipctl create {manifest}` bought; run it first, or pass --journal PATH")
    assert journal is not None
    read = read_journal(journal)
    rows = read.rows if path is None else with_unattempted(read.rows, ManifestFile(path, encoding, sheet))
    return _Source(rows, f"journal {journal}", path, journal, read.target)


def _pick(source: _Source, references: list[str], sort_by: str | None, encoding: str | None,
          sheet: str | None) -> list[LabelRow]:
    from shipctl.jobs.label_rows import ManifestColumn, pick_references, sort_rows

    rows = pick_references(source.rows, references, source.where)
    if sort_by is not None and source.manifest is not None:
        rows = sort_rows(rows, ManifestColumn(source.manifest, sort_by, encoding, sheet))
    return rows


def _check_outputs(request: LabelsRequest, source: _Source) -> None:
    """The file (and a ZPL run's forms file beside it) can be written, and is not the manifest or the journal."""
    from shipctl.cli.create_output import check_outputs

    files: dict[str, Path | None] = {"--out": request.out}
    if request.file_format == "zpl":
        files["the forms file"] = request.forms_out
    inputs = {f"the manifest {source.manifest}": source.manifest, f"the journal {source.journal}": source.journal}
    check_outputs(files, None, inputs)


class _Records:
    """The per-label records on stdout, only when `-o` asks for them (the file is the output)."""

    def __init__(self, stack: contextlib.ExitStack, host: CliHost, wanted: bool) -> None:
        from shipctl.jobs.labels import LABEL_FIELDS

        self._stack = stack
        self._host = host
        self._wanted = wanted
        self._columns = LABEL_FIELDS
        self._writer: Writer | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if not self._wanted:
            return
        if self._writer is None:
            self._writer = self._stack.enter_context(self._host.open_writer(self._columns))
        self._writer.write(record)


def _run(request: LabelsRequest, run: RunOptions) -> int:
    from shipctl.cli.host import CliHost
    from shipctl.cli.unreachable import UnreachableWatch
    from shipctl.jobs.labels import LabelsJob
    from shipctl.jobs.session import open_session

    host = CliHost(run, noun="labels")
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(
            open_session(run.sizing, total=len(request.rows), force_sandbox=run.force_sandbox, announce=host.detail)
        )
        watch = UnreachableWatch(session)
        records = _Records(stack, host, run.output is not None)
        outcome = LabelsJob(request, session, host, records, on_failure=watch.saw).run()
    watch.raise_if_unreachable()
    _report(request, outcome, run)
    return int(outcome.exit_code)


# --- the summary on stderr --------------------------------------------------------------------------------------


def _refs(references: list[str]) -> str:
    shown = ", ".join(references[:_SHOWN])
    return shown + (f" and {len(references) - _SHOWN} more" if len(references) > _SHOWN else "")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _report(request: LabelsRequest, outcome: LabelsOutcome, run: RunOptions) -> None:
    term = terminal()
    left = [f"{len(refs)} {_LEFT_OUT_WORDS.get(status, status.replace('_', ' '))} ({_refs(refs)}"
            f"{_advice(status, len(refs))})" for status, refs in outcome.left_out.items() if refs]
    if outcome.file is None:
        why = "; ".join(left) or ("every label failed" if outcome.failed else "no labels")
        term.info(f"nothing printed ({why}): {request.out} was not written")
    else:
        term.info(_written_line(request, outcome, run.quiet))
        if left and not run.quiet:
            term.info("left out: " + "; ".join(left))
        if not outcome.recorded:
            term.info(f"{request.out} keeps nothing written to it: these labels are not recorded as printed "
                      "(--only-new will print them)")
        if outcome.forms_file is not None and not run.quiet:
            term.info(f"{outcome.forms_file}: the customs forms of international labels (ZPL cannot carry a PDF "
                      "invoice): print it on a sheet printer")
    if run.verbose and outcome.sources:
        term.info("label files: " + ", ".join(f"{n} {_SOURCE_WORDS.get(s, s)}"
                                               for s, n in outcome.sources.most_common()))
    if outcome.failed:
        _report_failed(outcome.failed)
        if outcome.file is not None:
            term.info("the same command with --only-new prints just the labels still missing")


def _written_line(request: LabelsRequest, outcome: LabelsOutcome, quiet: bool) -> str:
    """`50 labels: today.pdf (55 pages, 5 customs forms, 235.5 KiB), 0.9 s` (ZPL: where the forms went)."""
    from shipctl.cli.summary import counted

    unit = "pages" if request.file_format == "pdf" else "ZPL labels"
    parts = [counted(outcome.pages, unit)]
    if outcome.forms:
        forms = counted(outcome.forms, "customs forms")
        parts.append(f"{forms} in {outcome.forms_file}" if outcome.forms_file else forms)
    parts.append(_size(outcome.size))
    left = sum(len(refs) for refs in outcome.left_out.values())
    tail = f", {left} left out" if quiet and left else ""
    return (f"{counted(outcome.labels, 'labels')}: {outcome.file} ({', '.join(parts)}){tail}, "
            f"{outcome.elapsed:.1f} s")


def _report_failed(failed: list[tuple[str, str, str]]) -> None:
    """One line: which labels, the kinds of failure, and the first message of the commonest (the records under
    `-o` have every message)."""
    from shipctl.cli.summary import counted

    codes = Counter(code for _, code, _ in failed)
    common = codes.most_common(1)[0][0]
    example = next(message for _, code, message in failed if code == common)
    kinds = ", ".join(f"{code} ×{n}" for code, n in codes.most_common(3))
    terminal().warn(f"{counted(len(failed), 'labels')} not printed whole ({_refs([ref for ref, _, _ in failed])}): "
                    f"{kinds}; {common}: {example}")


_LEFT_OUT_WORDS = {"not_attempted": "not yet attempted", "invalid": "invalid in the manifest",
                   "printing_elsewhere": "being printed by another run"}


def _advice(status: str, n: int) -> str:
    them = "it" if n == 1 else "them"
    return {"not_attempted": f"; rerun create for {them}", "invalid": f"; fix {them} and rerun create"}.get(status, "")

_SOURCE_WORDS = {"labels_dir": "from create's --labels-dir", "cache": "from the cache",
                 "fetched": "fetched", "converted": "converted by the API and fetched"}
