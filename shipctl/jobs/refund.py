"""The `refund` job: void labels bought by mistake, by shipment id or from a `create` run's journal.

Idempotent. Every shipment is read first (one concurrent pass): one already refunded or submitted for refund is
reported as such and never asked again, one never bought is reported, and the mode of the rest tells whether
real money is involved (`money.needs_approval`: anything the API does not call test mode, an unknown mode
included, is asked about first, as `create` does before buying). Only then are the refunds requested,
concurrently through the engine. A refund whose answer is lost is settled by reading the shipment again, never
by asking twice blindly. With a journal, each row's refund status is written back to it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from shipctl.carrier.refunds import (
    Label,
    Refund,
    after_refund,
    before_refund,
    failed,
    refund_by_codes,
    refund_shipment,
    refund_window_days,
    retrieve_label,
)
from shipctl.carrier.shipments import Shipment, api_time, retrieve_shipment
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host, Spend
from shipctl.jobs.session import InOrder, Session
from shipctl.journal import Journal, JournalRow
from shipctl.money import Totals, add, needs_approval

if TYPE_CHECKING:
    from shipctl.jobs.reconcile import JournalLabel

REFUND_FIELDS = (
    "reference", "shipment_id", "tracking_code", "carrier", "cost", "currency", "status", "refund_status",
    "error_code", "error_message",
)
"""The keys of every result the job hands its sink, in the order the data formats print them."""

_SHIPMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_RECONCILE_ATTEMPTS = 3
"""Refund requests per shipment while the answers stay unclear and a re-read shows no refund under way."""

Sink = Callable[[dict[str, Any]], None]


def require_journal(path: Path) -> None:
    """Refuse a journal that is not there: opening one would create it, empty, and say there is nothing to do."""
    if not path.is_file():
        raise UsageError(f"journal {path} does not exist")


@dataclass(frozen=True)
class RefundInputs:
    """What to refund: `shipment_ids`, or the rows of `journal` (only `references` when given)."""

    shipment_ids: tuple[str, ...] = ()
    journal: Path | None = None
    references: tuple[str, ...] = ()


@dataclass
class RefundOutcome:
    """How the run ended: shipments considered, how many ended in each reported status, how many failed."""

    shipments: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    submitted: Totals = field(default_factory=dict)
    """What this run's refunds ask back (`submitted` or `refunded` now, not ones already under way), by currency."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed else ExitCode.OK


@dataclass
class _Target:
    index: int
    shipment_id: str
    reference: str | None = None
    required: bool = True
    """Asked for by name (an id, or a reference): not having a label is a failure. A journal row swept up by the
    whole journal whose buy never completed is just skipped."""
    result: Refund | None = None
    shipment: Shipment | None = None
    """As the first pass read it; set for exactly the targets that pass leaves to be voided."""
    status: str = ""


def targets_from_journal(journal: Journal, references: Sequence[str], identity: str,
                         on_info: Callable[[str], None]) -> list[_Target]:
    """The journal's bought (or possibly bought) rows, or exactly `references`; checks the journal belongs here."""
    bound = journal.meta("target")
    if bound is not None and bound != identity:
        raise UsageError(
            f"journal {journal.path} records purchases made against {bound}, but this run targets {identity}; "
            "nothing was refunded"
        )
    rows = {row.reference: row for row in journal.all()}
    missing = [r for r in references if r not in rows]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"not in journal {journal.path}: {shown}; nothing was refunded")
    if references:
        return [_named_target(i, rows[ref]) for i, ref in enumerate(references)]
    # A `created` row may have been bought just before a crash: read it, refund it if it was.
    kept = [row for row in rows.values() if row.shipment_id and row.state in ("bought", "created")]
    targets = [_Target(i, row.shipment_id or "", row.reference, required=row.state == "bought")
               for i, row in enumerate(kept)]
    if unbought := len(rows) - len(targets):
        on_info(f"{unbought} journal rows were never bought; nothing to refund for them")
    return targets


def _named_target(index: int, row: JournalRow) -> _Target:
    # Asked for by name, any row with a shipment is read, and one without a label is reported, not skipped.
    return _Target(index, row.shipment_id or "", row.reference)


class RefundJob:
    """One refund run on `session`: read every shipment, ask about real money once, void the rest.

    Results reach `sink` in input order, one dict with `REFUND_FIELDS` per shipment. Raises `UsageError` for a
    journal that is missing, bound to another API, or lacking a reference, and `ShipctlError` (exit 2) when the
    host does not approve: then nothing was refunded and nothing reached the sink.
    """

    def __init__(self, inputs: RefundInputs, session: Session, host: Host, sink: Sink) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink
        self.outcome = RefundOutcome()
        self._journal: Journal | None = None
        self._targets: list[_Target] = []
        self._order: InOrder[_Target] = InOrder(self._emit)
        self._known: dict[Path, list[tuple[str, str]]] = {}
        """Refunds asked for by id: the journals of this API on this machine naming any of the ids, each with its
        (reference, shipment id) rows."""

    def run(self) -> RefundOutcome:
        with contextlib.ExitStack() as stack:
            if self.inputs.journal is not None:
                require_journal(self.inputs.journal)
                self._journal = stack.enter_context(Journal(self.inputs.journal))
            self._targets = self._collect()
            self.outcome.shipments = self.session.stats.total = len(self._targets)
            if not self._targets:
                self.host.info("nothing to refund")
                return self.outcome
            self.session.run(self._main)
            if self._journal is None:
                self._record_in_known_journals()
        return self.outcome

    def _record_in_known_journals(self) -> None:
        """Refunds asked for by id: every journal on this machine that records one of these shipments (those the
        claims file names, bound to this API and key mode) gets its refund status, as a refund from the journal
        does; its rerun, `report` and `labels` then see the label void, not bought."""
        statuses = {t.result.shipment_id: t.result.refund_status for t in self._targets
                    if t.result is not None and t.result.shipment_id and t.result.refund_status}
        by_journal = {path: [(reference, statuses[sid]) for reference, sid in rows if sid in statuses]
                      for path, rows in self._known.items()}
        _record_refunds({path: rows for path, rows in by_journal.items() if rows}, self.host.warn)

    def _journal_rows(self, ids: Sequence[str]) -> dict[Path, list[tuple[str, str]]]:
        """The journals on this machine bound to this API (and key mode) that name any of `ids`: their
        (reference, shipment id) rows. Read before any call, without the journals' locks."""
        from shipctl.jobs.reconcile import discover_journals
        from shipctl.paths import state_dir
        from shipctl.sqlite_writes import open_read_only

        marks = ", ".join("?" * len(ids))
        by_journal: dict[Path, list[tuple[str, str]]] = {}
        for path in discover_journals(state_dir(), lambda _: None):
            try:
                db = open_read_only(path)
                try:
                    target = db.execute("SELECT value FROM meta WHERE key = 'target'").fetchone()
                    found = db.execute(f"SELECT reference, shipment_id FROM rows WHERE shipment_id IN ({marks})",
                                       list(ids)).fetchall()
                finally:
                    db.close()
            except sqlite3.DatabaseError:
                continue  # not a journal (any more): nothing of ours in it
            if found and target is not None and target[0] == self.session.target.identity:
                by_journal[path] = [(reference, sid) for reference, sid in found]
        return by_journal

    def _collect(self) -> list[_Target]:
        if self._journal is None:
            ids = list(dict.fromkeys(self.inputs.shipment_ids))
            # A shipment a journal here bought is reported under its reference, as a refund from that journal
            # is; one no journal names gets the API's own when the shipment is read (`_read`).
            self._known = self._journal_rows(ids) if ids else {}
            references: dict[str, str] = {}
            for rows in self._known.values():
                for reference, sid in rows:
                    references.setdefault(sid, reference)
            return [_Target(i, sid, references.get(sid)) for i, sid in enumerate(ids)]
        return targets_from_journal(self._journal, list(dict.fromkeys(self.inputs.references)),
                                    self.session.target.identity, self.host.info)

    async def _main(self) -> None:
        engine, stats = self.session.engine, self.session.stats
        self.host.engine_started(engine.sizing)
        with self.host.progress(stats):
            await engine.run(self._targets, self._read)
        to_void = [t for t in self._targets if t.result is None]
        await self._approve(to_void)
        for target in self._targets:  # what the first pass settled is reported in input order with the rest
            if target.result is not None:
                self._finish(target)
        with self.host.progress(stats):
            await engine.run(to_void, self._void_and_finish)

    async def _approve(self, to_void: list[_Target]) -> None:
        """One question for every label that may be real money (production, or a mode the API left unsaid)."""
        asking = sum(1 for t in to_void if t.shipment is not None and needs_approval(t.shipment.mode))
        if not asking:
            return
        async with anyio.create_task_group() as group:
            if threading.current_thread() is threading.main_thread():  # only there can signals be received
                group.start_soon(self._leave_on_interrupt)
            # The question blocks on a terminal: ask from a thread so that Ctrl-C is still heard on the loop.
            approved = await anyio.to_thread.run_sync(self.host.approve, Spend("refund", asking),
                                                      abandon_on_cancel=True)
            group.cancel_scope.cancel()
        if not approved:
            raise ShipctlError("nothing was refunded", ExitCode.USAGE)

    async def _leave_on_interrupt(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _signum in signals:
                # Nothing is in flight while the question waits, and the thread reading the answer cannot be
                # unblocked: leave at once.
                self.host.info("interrupted at the confirmation: nothing was refunded")
                self.host.exit_now()
                raise ShipctlError("interrupted at the confirmation: nothing was refunded", ExitCode.INTERRUPTED)

    # -- first pass: what is each shipment's state? ----------------------------------------------------------

    async def _read(self, target: _Target) -> None:
        """Settle everything that needs no refund call; leave `result` unset (and `shipment` read) for the rest."""
        sid = target.shipment_id
        if not sid:
            target.result = Refund(shipment_id="", outcome="not_bought", refund_status=None,
                                   error_code="SHIPMENT.NOT_BOUGHT",
                                   error_message="the journal has no shipment for this row")
        elif not _SHIPMENT_ID.fullmatch(sid):
            target.result = Refund(shipment_id=sid, outcome="failed", refund_status=None,
                                   error_code="SHIPMENT.INVALID_ID", error_message=f"{sid!r} is not a shipment id")
        else:
            try:
                target.shipment = await self.session.engine.call(retrieve_shipment, self.session.client, sid)
            except CallFailure as failure:
                target.result = failed(sid, failure)
                return
            target.reference = target.reference or target.shipment.reference or None
            target.result = before_refund(target.shipment)

    # -- second pass: void, reconciling unclear answers through a re-read ------------------------------------

    async def _void_and_finish(self, target: _Target) -> None:
        assert target.shipment is not None  # the first pass read every shipment it left unsettled
        target.result = await self._void(target.shipment.id)
        self._finish(target)

    async def _void(self, sid: str) -> Refund:
        for _ in range(_RECONCILE_ATTEMPTS):
            try:
                shipment = await self.session.engine.call(refund_shipment, self.session.client, sid,
                                                          retry_unknown=False)
            except CallFailure as failure:
                settled = await self._reconcile(sid, failure)
                if settled is None:
                    continue  # the API shows no refund under way: the request never landed, ask again
                return settled
            return after_refund(shipment)
        return Refund(shipment_id=sid, outcome="failed", refund_status=None, error_code="REFUND.UNKNOWN",
                      error_message="no clear answer from the API; run refund again to check")

    async def _reconcile(self, sid: str, failure: CallFailure) -> Refund | None:
        """What a failed refund call amounts to, from the shipment as it is now; None to ask again.

        An unknown outcome (a timeout, a lost answer) may hide our own refund; a 422 may be a refund requested
        meanwhile by someone else: both are settled by the shipment's refund status, not by the error.
        """
        if not (failure.outcome_unknown or failure.http_status == 422):
            return failed(sid, failure)
        try:
            current = await self.session.engine.call(retrieve_shipment, self.session.client, sid)
        except CallFailure as again:
            return failed(sid, again)
        settled = before_refund(current)
        if settled is None:
            return None if failure.outcome_unknown else failed(sid, failure)
        if failure.outcome_unknown and settled.outcome.startswith("already_"):
            return after_refund(current)  # most likely our own request went through
        return settled

    # -- results -----------------------------------------------------------------------------------------

    def _finish(self, target: _Target) -> None:
        """Count the shipment, record its refund status in the journal, and queue it for the sink."""
        result = target.result
        assert result is not None
        if result.outcome == "not_bought" and not target.required:
            target.status = "skipped"
            self.session.stats.record("skipped")
        else:
            target.status = result.outcome
            self.session.stats.record("succeeded" if result.ok else "failed")
            if not result.ok:
                self.outcome.failed += 1
        self.outcome.statuses[target.status] += 1
        if result.outcome in ("submitted", "refunded") and result.cost is not None:
            add(self.outcome.submitted, result.currency or "USD", _amount(result.cost))
        if self._journal is not None and target.reference and result.refund_status:
            self._journal.update(target.reference, refund_status=result.refund_status)
        self._order.put(target.index, target)

    def _emit(self, target: _Target) -> None:
        result = target.result
        assert result is not None
        self.sink({
            "reference": target.reference, "shipment_id": result.shipment_id or None,
            "tracking_code": result.tracking_code, "carrier": result.carrier, "cost": result.cost,
            "currency": result.currency, "status": target.status,
            "refund_status": result.refund_status, "error_code": result.error_code,
            "error_message": result.error_message,
        })


# -- `refund --unused`: labels never scanned, old enough, still inside their carrier's window -------------------

UNUSED_FIELDS = (
    "reference", "shipment_id", "tracking_code", "carrier", "service", "cost", "currency", "label_date", "age_days",
    "status", "refund_status", "journal", "error_code", "error_message",
)
"""The keys of every `refund --unused` record, in the order the data formats print them."""
BULK_CODES = 100
"""Tracking codes per `POST /refunds` request."""


_AGE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.ASCII)
_AGE_UNITS = {"s": 1 / 86400, "m": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0, "": 1.0}
MAX_AGE_DAYS = 3650
MIN_UNUSED_AGE = dt.timedelta(days=1)
"""The youngest a label `--unused` may take: one bought this afternoon has no scan because it waits in the
outgoing cart for the carrier, not because it went unused; `--older-than 0` would refund the whole day's labels,
printed and on forms."""


def parse_age(text: str, option: str = "--older-than") -> dt.timedelta:
    """`7d`, `36h`, `2w`, `90m`, `30s`, or a number of days. Only ASCII digits and a dot: `float()` would also take
    `1_0`, `+7`, `nan` or digits of other scripts, none of which a person means as an age."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"{option} {text!r}: give a duration such as 7d, 36h or 2w")
    days = float(match.group(1)) * _AGE_UNITS[match.group(2)]
    if days > MAX_AGE_DAYS:
        raise UsageError(f"{option} {text!r}: at most {MAX_AGE_DAYS} days")
    return dt.timedelta(days=days)


@dataclass(frozen=True)
class UnusedInputs:
    older_than: dt.timedelta
    journals: tuple[Path, ...] = ()
    dry_run: bool = False
    state_directory: Path | None = None


DONE = ("submitted", "refunded")
"""Answers that mean the label is (being) voided: only these are counted and summed as refunded."""
JOURNALED = ("submitted", "refunded", "rejected")
"""Refund statuses written back to the journals: the ones the account shows on the shipment afterwards. The
carrier's `not_applicable` to a bulk request names no refund the shipment holds, so it is not one."""
UNREADABLE = "unreadable"
NO_TRACKING_CODE = "no_tracking_code"


@dataclass
class _Unused:
    """One shipment, however many journal rows name it (a manifest bought once, adopted by a second journal)."""

    index: int
    row: JournalLabel
    """The first journal row naming the shipment: the reference and journal its record shows."""
    rows: list[JournalLabel] = field(default_factory=list)
    """Every journal row naming the shipment: each gets the refund status."""
    label: Label | None = None
    status: str = ""
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class UnusedOutcome:
    considered: int = 0
    chosen: int = 0
    totals: Totals = field(default_factory=dict)
    """What the chosen labels cost: the dry run's amount, and the production question's."""
    refunded: int = 0
    refunded_totals: Totals = field(default_factory=dict)
    """What the labels the API answered `submitted` or `refunded` for cost: what the run got back."""
    skipped: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> Counter[str]:
        """The chosen labels the API did not take back, by what it answered (`failed`, `rejected`, ...)."""
        return Counter({s: n for s, n in self.statuses.items() if s not in (*DONE, "would_refund")})

    @property
    def exit_code(self) -> ExitCode:
        # A label whose tracking could not be read may be one to refund: a cron job must notice.
        return ExitCode.PARTIAL if self.failures or self.skipped[UNREADABLE] else ExitCode.OK


class UnusedRefundJob:
    """Refund, in bulk by carrier, the journals' labels the carrier never scanned that are older than
    `older_than` and still inside their carrier's refund window. Every label is read from the API first (its
    tracking, its refund status, its date); production labels are asked about once, with the amount."""

    def __init__(self, inputs: UnusedInputs, session: Session, host: Host, sink: Sink) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink
        self.outcome = UnusedOutcome()
        self._now = dt.datetime.now(dt.timezone.utc)

    def run(self) -> UnusedOutcome:
        self.session.run(self._main)
        return self.outcome

    async def _main(self) -> None:
        from shipctl.carrier.account import retrieve_account
        from shipctl.jobs.reconcile import journal_labels
        from shipctl.paths import state_dir

        engine = self.session.engine
        self.host.engine_started(engine.sizing)
        try:
            account = (await engine.call(retrieve_account, self.session.client)).id
        except CallFailure as failure:
            raise ShipctlError(f"the API did not answer ({failure.code}: {failure.message}); nothing was refunded",
                               ExitCode.ERROR) from None
        rows = journal_labels(self.inputs.journals, self.inputs.state_directory or state_dir(),
                              self.session.target.identity, account, self.host.info, self.host.detail)
        items = _by_shipment(rows)
        self.outcome.considered = self.session.stats.total = len(items)
        with self.host.progress(self.session.stats):
            await engine.run(items, self._read)
        chosen = [item for item in items if item.status == "chosen"]
        for item in items:
            if item.status != "chosen":
                self.outcome.skipped[item.status] += 1
        # Found refunded on the account (elsewhere, or by a run whose write-back was lost): the journals must stop
        # counting that spend.
        if not self.inputs.dry_run:
            self._write_back([item for item in items if item.status.startswith("already_")],
                             lambda item: item.status.removeprefix("already_"))
        self.outcome.chosen = len(chosen)
        for item in chosen:
            assert item.label is not None
            add(self.outcome.totals, item.label.currency or "USD", _amount(item.label.rate))
        if not chosen:
            return
        if self.inputs.dry_run:
            for item in chosen:
                item.status = "would_refund"
                self._emit(item)
            return
        await self._refund_all(chosen)

    async def _refund_all(self, chosen: list[_Unused]) -> None:
        modes = {item.label.mode for item in chosen if item.label is not None}
        if any(needs_approval(m) for m in modes):
            mode = "production" if "production" in modes else None
            spend = Spend("refund", len(chosen), dict(self.outcome.totals), noun="unused labels", mode=mode)
            approved = await anyio.to_thread.run_sync(self.host.approve, spend, abandon_on_cancel=True)
            if not approved:
                raise ShipctlError("nothing was refunded", ExitCode.USAGE)
        by_carrier: dict[str, list[_Unused]] = {}
        for item in chosen:
            assert item.label is not None
            by_carrier.setdefault(item.label.carrier or "", []).append(item)
        batches = [(carrier, group[i:i + BULK_CODES]) for carrier, group in by_carrier.items()
                   for i in range(0, len(group), BULK_CODES)]
        for carrier, batch in batches:  # one request per carrier and hundred codes
            await self._refund(carrier, batch)
        self._write_back(chosen, lambda item: item.status)
        for item in sorted(chosen, key=lambda it: it.index):
            self._emit(item)
            if item.status in DONE:
                assert item.label is not None
                self.outcome.refunded += 1
                add(self.outcome.refunded_totals, item.label.currency or "USD", _amount(item.label.rate))

    async def _read(self, item: _Unused) -> None:
        try:
            label = await self.session.engine.call(retrieve_label, self.session.client, item.row.shipment_id)
        except CallFailure as failure:
            item.status = UNREADABLE
            self.session.stats.record("failed")
            self.host.warn(f"{item.row.reference} ({item.row.shipment_id}): could not be read ({failure.code}: "
                           f"{failure.message}); not refunded")
            return
        item.label = label
        self.session.stats.record("succeeded")
        age = self._now - (api_time(label.label_date) or self._now)
        if not label.bought:
            item.status = "not_bought"
        elif label.refund_status:
            item.status = "already_" + label.refund_status
        elif label.scanned:
            item.status = "scanned"
        elif age < self.inputs.older_than:
            item.status = "younger"
        elif age > dt.timedelta(days=refund_window_days(label.carrier)):
            item.status = "outside_window"
        elif not label.tracking_code:
            # EasyPost's bulk refund names labels by tracking code: this one can only be refunded by its id.
            item.status = NO_TRACKING_CODE
            self.host.warn(f"{item.row.reference} ({item.row.shipment_id}): unused, but it has no tracking code; "
                           f"not refunded (refund it by id: shipctl refund {item.row.shipment_id})")
        else:
            item.status = "chosen"

    async def _refund(self, carrier: str, batch: list[_Unused]) -> None:
        pending: dict[str, _Unused] = {item.label.tracking_code: item for item in batch
                                       if item.label and item.label.tracking_code}
        for _ in range(_RECONCILE_ATTEMPTS):
            if not pending:
                return
            try:
                answers = await self.session.engine.call(refund_by_codes, self.session.client, carrier,
                                                         list(pending), retry_unknown=False)
            except CallFailure as failure:
                if not failure.outcome_unknown:
                    for item in pending.values():
                        item.status, item.error_code, item.error_message = "failed", failure.code, failure.message
                    return
                await self._settle(pending)  # the refunds may have landed: what the shipments say now
                continue
            for answer in answers:
                answered = pending.pop(answer.tracking_code or "", None)
                if answered is None:
                    continue
                item = answered
                if answer.shipment_id and answer.shipment_id != item.row.shipment_id:
                    # The carrier refunded a label by this code, but not ours: nothing to record against our row.
                    item.status, item.error_code = "failed", "REFUND.OTHER_SHIPMENT"
                    item.error_message = (f"the API answered for shipment {answer.shipment_id}, not "
                                          f"{item.row.shipment_id}; run refund --unused again to check")
                    continue
                item.status = answer.status or "submitted"
                if item.status not in DONE:
                    item.error_code = f"REFUND.{item.status.upper()}"
                    item.error_message = f"the carrier answered {item.status}"
            for item in pending.values():
                item.status, item.error_code = "failed", "REFUND.NO_ANSWER"
                item.error_message = "the API's answer did not name this tracking code"
            return
        for item in pending.values():
            item.status, item.error_code = "failed", "REFUND.UNKNOWN"
            item.error_message = "no clear answer from the API; run refund --unused again to check"

    async def _settle(self, pending: dict[str, _Unused]) -> None:
        for code, item in list(pending.items()):
            try:
                label = await self.session.engine.call(retrieve_label, self.session.client, item.row.shipment_id)
            except CallFailure:
                continue
            if label.refund_status:
                item.status = label.refund_status
                del pending[code]

    def _write_back(self, items: list[_Unused], status_of: Callable[[_Unused], str]) -> None:
        """Each item's refund status into every journal row that names its shipment."""
        by_journal: dict[Path, list[tuple[str, str]]] = {}
        for item in items:
            status = status_of(item)
            if status in JOURNALED:
                for row in item.rows:
                    by_journal.setdefault(row.journal, []).append((row.reference, status))
        _record_refunds(by_journal, self.host.warn)

    def _emit(self, item: _Unused) -> None:
        label = item.label
        assert label is not None
        self.outcome.statuses[item.status] += 1
        when = api_time(label.label_date)
        self.sink({
            "reference": item.row.reference, "shipment_id": label.shipment_id, "tracking_code": label.tracking_code,
            "carrier": label.carrier, "service": label.service, "cost": label.rate, "currency": label.currency,
            "label_date": label.label_date,
            "age_days": None if when is None else round((self._now - when).total_seconds() / 86400, 1),
            "status": item.status,
            "refund_status": item.status if item.status in JOURNALED else None,
            "journal": str(item.row.journal), "error_code": item.error_code, "error_message": item.error_message,
        })


def _record_refunds(by_journal: dict[Path, list[tuple[str, str]]], warn: Callable[[str], None]) -> None:
    """(reference, refund status) pairs written into each journal; one a run holds now is named in a warning."""
    from shipctl.journal import JournalLocked

    for path, updates in by_journal.items():
        try:
            with Journal(path) as journal:
                for reference, status in updates:
                    journal.update(reference, refund_status=status)
        except JournalLocked:
            warn(f"journal {path} is in use by a run; its refund statuses were not recorded (the API has them: "
                 "`shipctl reconcile` finds them)")


def _by_shipment(rows: Sequence[JournalLabel]) -> list[_Unused]:
    """One item per shipment that a journal row records bought and without a refund status, in journal order,
    holding every row that names the shipment."""
    naming: dict[str, list[JournalLabel]] = {}
    for row in rows:
        naming.setdefault(row.shipment_id, []).append(row)
    items: list[_Unused] = []
    for group in naming.values():
        # A label some journal already records refunded is read again only if another still counts it.
        open_rows = [r for r in group if r.state == "bought" and not r.refund_status]
        if open_rows:
            items.append(_Unused(len(items), open_rows[0], rows=group))
    return items


def _amount(rate: str | None) -> Decimal:
    try:
        return Decimal(rate or "0")
    except ArithmeticError:
        return Decimal(0)
