"""The `labels` job: the labels `create` bought, checked with the API, fetched once, put into one print-ready file.

Every label to print is read from the API first (concurrently, through the engine): one refunded since — by
`shipctl refund`, by id, from EasyPost's dashboard — is left out like one the journal knows is void. Its file is
then taken from the first place that has it in a format the output can use: the `--labels-dir` file `create`
saved (the journal's `label_path`), the cache under the state directory, the label's own URL, or the API's
conversion (`GET /shipments/:id/label?file_format=...`) when it exists in no usable format; whatever is fetched is
kept in the cache (`printing.cache`). International shipments' forms are fetched the same way.

Then the file is built in the order given (manifest order, or `--sort-by`'s), written whole or not at all
(`printing.replace`), and its labels are recorded as printed (`printing.printed`, for `--only-new`; not when the
file is the null device, which keeps nothing). A run stopped before its labels were all fetched writes no file: a
pile missing labels nobody notices is worse than none. `--only-new` claims the labels it prints before it reads
any from the API, so two such runs at once never both print one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipctl.carrier.labels import FormFile, Printable, retrieve_printable, url_format
from shipctl.carrier.shipments import download, label_url
from shipctl.engine.failures import CallFailure
from shipctl.errors import UsageError, WriteFailure
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.label_rows import LabelRow
from shipctl.jobs.session import Session
from shipctl.printing.cache import LabelCache
from shipctl.printing.pages import Sheet, UnreadableFile
from shipctl.printing.printed import Label, PrintedLog
from shipctl.printing.replace import Written, discards, replacing
from shipctl.printing.sniff import file_kind

OutputFormat = Literal["pdf", "zpl"]

LABEL_FIELDS = (
    "reference", "shipment_id", "tracking_code", "carrier", "status", "page", "pages", "forms", "source",
    "error_code", "error_message",
)
"""The keys of every record the job hands its sink, in the order the data formats print them."""

LEFT_OUT = ("voided", "not_bought", "not_attempted", "invalid", "printed_before", "printing_elsewhere")
"""Statuses of rows deliberately not in the file (failures aside)."""
_NOT_NEW = ("printed_before", "printing_elsewhere")
"""What `--only-new` leaves out: not this run's to print, and no failure even when named."""

_USABLE = {"pdf": ("PDF", "PNG", "IMAGE"), "zpl": ("ZPL",)}
"""File kinds each output can take a label from."""
_FETCH_ORDER = {"pdf": ("PDF", "PNG"), "zpl": ("ZPL",)}
"""Label formats each output asks the API for, best first: a PDF label is drawn, a PNG one only pictured."""

Sink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class LabelsRequest:
    """What to print (`rows`, in the order wanted) and where."""

    rows: tuple[LabelRow, ...]
    out: Path
    file_format: OutputFormat
    page: str = "4x6"
    only_new: bool = False
    named: bool = False
    """The rows were named one by one (`--reference`): one that cannot be printed makes the run partial."""
    journal: Path | None = None
    journal_target: str | None = None
    """The API the journal's purchases were made against: another API's shipments are not this one's."""

    @property
    def forms_out(self) -> Path:
        """Where a ZPL run puts the international labels' forms (ZPL has no place for a PDF invoice)."""
        return self.out.with_suffix(".forms.pdf")


@dataclass
class LabelsOutcome:
    """What the run came to; `file` is None when nothing was written."""

    file: Path | None = None
    size: int = 0
    forms_file: Path | None = None
    labels: int = 0
    pages: int = 0
    forms: int = 0
    left_out: dict[str, list[str]] = field(default_factory=lambda: {status: [] for status in LEFT_OUT})
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    """(reference, error code, message) of every label that could not be put in the file, or whose forms could not."""
    sources: Counter[str] = field(default_factory=Counter)
    named_left_out: int = 0
    recorded: bool = True
    """False when the file is the null device: its labels are not recorded as printed."""
    stopped: bool = False
    elapsed: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        # A manifest row create never reached has no label anywhere: the pile is short, as with a failed label.
        unattempted = self.left_out["not_attempted"]
        return ExitCode.PARTIAL if self.failed or self.named_left_out or unattempted else ExitCode.OK


@dataclass
class _Item:
    index: int
    row: LabelRow
    status: str = ""
    label: Path | None = None
    source: str | None = None
    forms: list[tuple[FormFile, Path]] = field(default_factory=list)
    page: int | None = None
    pages: int = 0
    form_count: int = 0
    elsewhere_pid: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    def fail(self, code: str, message: str) -> None:
        self.status, self.error_code, self.error_message = "failed", code, message

    def learn(self, shipment: Printable) -> None:
        """What the API knows better than a record piped in (a bare shipment id has no reference)."""
        row = self.row
        if shipment.reference and row.reference == row.shipment_id:
            row.reference = shipment.reference
        row.tracking_code = shipment.tracking_code or row.tracking_code
        row.carrier = shipment.carrier or row.carrier

    @property
    def title(self) -> str:
        return f"{self.row.reference} · {self.row.tracking_code or self.row.shipment_id}"


class LabelsJob:
    """One `labels` run on `session`; records reach `sink` in the file's order once the file is written.

    `on_failure` sees each failed fetch's record as it happens (the CLI stops a run whose API cannot be reached).
    Raises `UsageError` for a journal of another API and `WriteFailure` when the file, or a label into the cache,
    cannot be written (then no file is written).
    """

    def __init__(self, request: LabelsRequest, session: Session, host: Host, sink: Sink,
                 on_failure: Sink | None = None) -> None:
        self.request = request
        self.session = session
        self.host = host
        self.sink = sink
        self.on_failure = on_failure
        self.outcome = LabelsOutcome()
        self.cache = LabelCache(Path())
        self.write_failure: WriteFailure | None = None
        self._items = [_Item(i, row) for i, row in enumerate(request.rows)]

    def run(self) -> LabelsOutcome:
        started = time.monotonic()
        self._check_target()
        self.cache = LabelCache.for_identity(self.session.target.identity)
        self.cache.prune()
        # Closed however the run ends: its claims are let go, so an interrupted run's labels stay new.
        with PrintedLog(self.cache.root) as log:
            self._print(log)
        self._tally()
        self.outcome.elapsed = time.monotonic() - started
        if not self.outcome.stopped:
            for item in self._items:
                self.sink(_record(item))
        return self.outcome

    def _print(self, log: PrintedLog) -> None:
        self._settle_without_api(log)
        todo = [item for item in self._items if not item.status]
        self.session.stats.total = len(todo)
        if todo:
            self.session.run(lambda: self._fetch_all(todo))
        if self.write_failure is not None:
            raise self.write_failure
        self.outcome.stopped = self.session.engine.stopping
        ready = [item for item in self._items if item.status == "fetched"]
        if not ready or self.outcome.stopped:
            return
        self._build(ready, lambda path, written: log.writing(_printed(ready), path, written))
        if self.outcome.file is None:
            return
        if discards(self.outcome.file):
            # /dev/null keeps nothing: recorded as printed, its labels would never come out of `--only-new`.
            self.outcome.recorded = False
            return
        log.record(_printed(ready), self.outcome.file.resolve())

    def _check_target(self) -> None:
        bound, identity = self.request.journal_target, self.session.target.identity
        if bound is not None and bound != identity:
            raise UsageError(f"journal {self.request.journal} records purchases made against {bound}, but this run "
                             f"targets {identity}; nothing was printed")

    def _settle_without_api(self, log: PrintedLog) -> None:
        """What the input already says: void, never bought, or (`--only-new`) printed by an earlier run or being
        printed by another; the rest `--only-new` claims for this run."""
        for item in self._items:
            if item.row.state != "bought":
                item.status = item.row.state
        if self.request.only_new:
            candidates = [i for i in self._items if not i.status and i.row.shipment_id]
            claimed = log.claim(i.row.shipment_id or "" for i in candidates)
            for item in candidates:
                sid = item.row.shipment_id or ""
                if sid in claimed.printed:
                    item.status = "printed_before"
                elif sid in claimed.elsewhere:
                    item.status, item.elsewhere_pid = "printing_elsewhere", claimed.elsewhere[sid]

    # -- fetching ------------------------------------------------------------------------------------------

    async def _fetch_all(self, todo: list[_Item]) -> None:
        engine = self.session.engine
        self.host.engine_started(engine.sizing)
        with self.host.progress(self.session.stats):
            await engine.run(todo, self._fetch)

    async def _fetch(self, item: _Item) -> None:
        try:
            shipment = await self.session.engine.call(retrieve_printable, self.session.client, item.row.shipment_id)
            item.learn(shipment)
            if shipment.void:
                item.status = "voided"
            elif not shipment.bought:
                item.status = "not_bought"
            else:
                await self._label(item, shipment)
                await self._forms(item, shipment)
                item.status = "fetched"
        except CallFailure as failure:
            item.fail(failure.code, failure.message)
        except WriteFailure as failure:
            # A full disk fails every label after this one too: stop starting them.
            self.write_failure = self.write_failure or failure
            self.session.engine.stop()
            item.fail("LABEL_NOT_SAVED", failure.message)
        self.session.stats.record("failed" if item.status == "failed" else
                                  "succeeded" if item.status == "fetched" else "skipped")
        if item.status == "failed" and self.on_failure is not None:
            self.on_failure(_record(item))

    async def _label(self, item: _Item, shipment: Printable) -> None:
        """The label's file in a kind the output takes: on disk already, cached, fetched or converted."""
        fmt, usable = self.request.file_format, _USABLE[self.request.file_format]
        saved = Path(item.row.label_path) if item.row.label_path else None
        if saved is not None and file_kind(saved) in usable:
            item.label, item.source = saved, "labels_dir"
            return
        for kind in _FETCH_ORDER[fmt]:
            cached = self.cache.label(shipment.id, kind)
            if self.cache.present(cached) and file_kind(cached) in usable:
                self.cache.touch(cached)
                item.label, item.source = cached, "cache"
                return
        for kind in _FETCH_ORDER[fmt]:
            url = shipment.urls.get(kind)
            if url:
                item.label = await self._download(url, self.cache.label(shipment.id, kind), usable)
                item.source = "fetched"
                return
        kind = _FETCH_ORDER[fmt][0]
        url = await self.session.engine.call(label_url, self.session.client, shipment.id, kind)
        item.label = await self._download(url, self.cache.label(shipment.id, kind), usable)
        item.source = "converted"

    async def _forms(self, item: _Item, shipment: Printable) -> None:
        for index, form in enumerate(shipment.forms):
            extension = "." + (url_format(form.url) or "PDF").lower()
            dest = self.cache.form(shipment.id, form.id, index, extension)
            if not (self.cache.present(dest) and file_kind(dest) in _USABLE["pdf"]):
                await self._download(form.url, dest, _USABLE["pdf"])
            item.forms.append((form, dest))

    async def _download(self, url: str, dest: Path, usable: tuple[str, ...]) -> Path:
        await self.session.engine.call(download, self.session.client, url, dest)
        kind = file_kind(dest)
        if kind not in usable:
            self.cache.discard(dest)  # an error page served as a file: not a label, and not to be kept
            wanted = " or ".join(k for k in usable if k != "IMAGE")
            raise CallFailure(code="LABEL_FILE_INVALID", message=f"the file the API gave is not {wanted} "
                              f"({kind or 'unknown content'})")
        return dest

    # -- the file ------------------------------------------------------------------------------------------

    def _build(self, ready: list[_Item], on_written: Written) -> None:
        from shipctl.printing.pdf import PdfDocument
        from shipctl.printing.zpl import ZplDocument

        request = self.request
        title = f"shipctl labels: {len(ready)} labels"
        forms: PdfDocument | None = None
        if request.file_format == "pdf":
            pdf = PdfDocument(Sheet(request.page), title)
            document: PdfDocument | ZplDocument = pdf
            for item in ready:
                self._add_pdf(pdf, item)
            self.outcome.pages = pdf.pages
        else:
            forms = PdfDocument(Sheet("letter"), title + " (forms)")
            zpl = ZplDocument()
            document = zpl
            for item in ready:
                self._add_zpl(zpl, forms, item)
            self.outcome.pages = zpl.formats
        if not any(item.status == "printed" for item in ready):
            return
        self.outcome.size = _write(document, request.out, f"--out {request.out}", on_written)
        self.outcome.file = request.out
        if forms is not None and forms.pages:
            _write(forms, request.forms_out, f"the forms file {request.forms_out}")
            self.outcome.forms_file = request.forms_out

    def _add_pdf(self, document: Any, item: _Item) -> None:
        data = self._read(item, item.label)
        if data is None:
            return
        try:
            before = document.pages
            item.page, bookmark = document.add_label(data, item.title)
        except UnreadableFile as exc:
            self._unreadable(item, item.label, str(exc))
            return
        item.status = "printed"
        for form, path in item.forms:
            self._add_form(document, item, form, path, bookmark, form.title)
        item.pages = document.pages - before

    def _add_zpl(self, zpl: Any, forms: Any, item: _Item) -> None:
        """The label's ZPL into the file; its forms into the PDF beside it."""
        data = self._read(item, item.label)
        if data is None:
            return
        try:
            item.page, item.pages = zpl.add_label(data)
        except UnreadableFile as exc:
            self._unreadable(item, item.label, str(exc))
            return
        item.status = "printed"
        for form, path in item.forms:
            self._add_form(forms, item, form, path, None, f"{item.title} · {form.title}")

    def _add_form(self, document: Any, item: _Item, form: FormFile, path: Path, parent: Any, title: str) -> None:
        try:
            document.add_form(path.read_bytes(), title, parent)
            item.form_count += 1
        except (OSError, UnreadableFile) as exc:
            self.cache.discard(path)
            item.error_code = "FORM_UNREADABLE"
            item.error_message = f"printed without its {form.title}: {exc}; rerun to fetch it again"

    def _read(self, item: _Item, path: Path | None) -> bytes | None:
        try:
            return path.read_bytes() if path is not None else None
        except OSError as exc:
            self._unreadable(item, path, exc.strerror or str(exc))
            return None

    def _unreadable(self, item: _Item, path: Path | None, why: str) -> None:
        if item.source == "labels_dir":
            # The user's own file: never deleted here; once it is gone, the rerun fetches the label.
            advice = "remove it and rerun to fetch the label from the API"
        else:
            advice = "rerun to fetch it again"
            if path is not None:
                self.cache.discard(path)
        item.fail("LABEL_FILE_UNREADABLE", f"the label file {path} cannot be used: {why}; {advice}")

    def _tally(self) -> None:
        outcome = self.outcome
        for item in self._items:
            if item.status in LEFT_OUT:
                outcome.left_out[item.status].append(item.row.reference)
                outcome.named_left_out += self.request.named and item.status not in _NOT_NEW
            elif item.status == "failed" or item.error_code:
                outcome.failed.append((item.row.reference, item.error_code or "FAILED", item.error_message or ""))
            if item.status == "printed":
                outcome.labels += 1
                outcome.forms += item.form_count
                outcome.sources[item.source or ""] += 1


def _printed(ready: list[_Item]) -> list[Label]:
    return [(i.row.shipment_id or "", i.row.reference, i.row.tracking_code) for i in ready if i.status == "printed"]


def _write(document: Any, out: Path, what: str, on_written: Written | None = None) -> int:
    with replacing(out, what, on_written) as fh:
        document.write(fh)
    try:
        return out.stat().st_size
    except OSError:
        return 0


def _record(item: _Item) -> dict[str, Any]:
    row = item.row
    code, message = item.error_code, item.error_message
    if item.status == "voided":
        code, message = "REFUNDED", "the label was refunded: a void label is never printed"
    elif item.status == "not_bought":
        code, message = "NOT_BOUGHT", "no label was bought for this row"
    elif item.status == "printing_elsewhere":
        pid = f" (pid {item.elsewhere_pid})" if item.elsewhere_pid else ""
        code, message = "PRINTING_ELSEWHERE", f"another `labels --only-new` run{pid} is printing this label"
    elif item.status == "not_attempted":
        code, message = "NOT_ATTEMPTED", ("the journal has no record of this manifest row: create stopped before "
                                          "it; rerun create")
    elif item.status == "invalid":
        code, message = "INVALID_ROW", ("this manifest row is invalid, so create bought nothing for it: fix it "
                                        "(validate names its problems) and rerun create")
    return {
        "reference": row.reference, "shipment_id": row.shipment_id, "tracking_code": row.tracking_code,
        "carrier": row.carrier, "status": item.status, "page": item.page, "pages": item.pages or None,
        "forms": item.form_count or None, "source": item.source if item.status == "printed" else None,
        "error_code": code, "error_message": message,
    }
