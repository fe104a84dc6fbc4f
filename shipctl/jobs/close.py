"""The `close` job: one end-of-day form per origin and carrier for the day's labels, and a pickup for each on request.

In order: name the account behind the key (the claims' scope); take this scope's run lock (closings.py); collect
the candidates (the claims' references bought since the day began, or the rows of `--journal`s); read every
candidate, and every shipment of an attempt a dead run left pending, concurrently (the API is the truth); settle
the pending attempts (adopt the form the API shows them on, else abandon them); keep the day's labels that are
bought, not refunded and on no form; group them by origin, carrier and carrier account; one form per group,
journaled before the call; fetch each form's PDF; then, with a pickup window, book and buy a pickup per form
(`jobs/pickups.py`).

A group the API refuses is split until the shipments it refuses are found. When the refusal names some of the
group's shipments (EasyPost's "2 of the specified shipments were not found: shp_…"), those are left out and the
rest sent again together: one form for the driver. When it names none, the group is halved and each half sent:
a half that is accepted is a form of its own (a form cannot be taken back, so a probe that succeeds is final).
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from shipctl.carrier.account import retrieve_account
from shipctl.carrier.closing import (
    ClosingShipment,
    Origin,
    ScanForm,
    create_scan_form,
    retrieve_for_close,
    retrieve_scan_form,
)
from shipctl.carrier.refunds import REFUND_DONE
from shipctl.carrier.shipments import download
from shipctl.closings import Attempt, Closings
from shipctl.engine.failures import CallFailure, Stopped
from shipctl.errors import ShipctlError, WriteFailure
from shipctl.exit_codes import ExitCode
from shipctl.jobs.close_inputs import Candidate, PickupWindow, day_bounds, from_claims, from_journal
from shipctl.jobs.host import Host
from shipctl.jobs.session import Session
from shipctl.money import Totals
from shipctl.paths import state_dir

CLOSE_FIELDS = (
    "group", "status", "origin", "carrier", "carrier_account_id", "shipments", "form_id", "form_file",
    "pickup_status", "pickup_id", "pickup_confirmation", "pickup_rate", "pickup_currency", "shipment_ids",
    "reference", "tracking_code", "error_code", "error_message",
)
"""The keys of every record the job hands its sink: one per form, and one per shipment or group left out
(`reference` and `tracking_code` are a left-out shipment's: what finds its parcel in the pile)."""

_SEND_ATTEMPTS = 3
"""`scan_form.create` sends per attempt while the answers stay unclear and no form shows up for the shipments."""
_READY_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Seconds between reads of a form the API is still `creating` (about a minute in all)."""
_SPLITTABLE = frozenset({400, 409, 422})
_UNREACHABLE = frozenset({"CONNECTION", "TIMEOUT"})
_ON_FORM = "on a form already"
_REFUSAL = re.compile(r"of the specified shipments (?:was|were|has|have|is|are) (?P<why>[^:]+):")
"""EasyPost's refusal of a form, `Unable to create manifest. 1 of the specified shipments was refused by the
carrier for a scan form: shp_…`: `why` is what it says of each shipment it names."""
"""Refusals that can be about the shipments; others (auth, payment, not found) would refuse any half too."""


_STOPPED = CallFailure("INTERRUPTED", "not sent: the run was interrupted")
"""What `_attempt` answers for a group it did not send after Ctrl-C: neither a form nor a refusal."""


def _unsettled() -> CallFailure:
    return CallFailure("SCAN_FORM.UNKNOWN", "no clear answer from the API; rerun close to settle this group")


Record = dict[str, Any]
Sink = Callable[[Record], None]


@dataclass(frozen=True)
class CloseInputs:
    """`journals`: close these journals' labels only (else the claims' for this key's account). `day`: labels
    bought that local day only (None: whatever the day). `pickup`: a window to book a pickup per form in."""

    journals: tuple[Path, ...] = ()
    day: dt.date | None = None
    forms_dir: Path | None = None
    pickup: PickupWindow | None = None
    dry_run: bool = False


@dataclass
class Group:
    index: int
    origin: Origin
    carrier: str
    carrier_account_id: str | None
    shipments: list[ClosingShipment] = field(default_factory=list)
    """The ones this run puts on a form."""

    @property
    def key(self) -> str:
        return f"{self.origin.key}|{self.carrier}|{self.carrier_account_id or ''}"


@dataclass
class PickupResult:
    status: str
    """`booked`, `booked_earlier`, `would_book`, `not_booked` (declined) or `failed`."""
    pickup_id: str | None = None
    confirmation: str | None = None
    rate: str | None = None
    currency: str | None = None
    failure: CallFailure | None = None


@dataclass
class FormResult:
    group: Group
    status: str
    """`created`, `adopted` (a dead run's, or a lost answer's), `already_closed` (an earlier run's), `would_create`."""
    shipment_ids: tuple[str, ...]
    sample: ClosingShipment
    """One of its shipments: the mode and the origin address (for a pickup) of them all."""
    form_id: str | None = None
    form_url: str | None = None
    batch_id: str | None = None
    path: Path | None = None
    failure: CallFailure | None = None
    """Why its PDF is missing."""
    pickup: PickupResult | None = None


@dataclass
class LeftOut:
    group: Group
    shipment_ids: tuple[str, ...]
    failure: CallFailure
    status: str = "left_out"
    """`left_out` (the API refused exactly this one) or `failed` (the group could not be sent: no clear answer)."""
    reference: str | None = None
    tracking_code: str | None = None


@dataclass(frozen=True)
class VoidOnForm:
    """A label refunded after it went on a form: the form cannot change, so its parcel must leave the pile."""

    shipment_id: str
    reference: str | None
    tracking_code: str | None
    form_id: str


@dataclass
class CloseOutcome:
    shipments: int = 0
    forms: Counter[str] = field(default_factory=Counter)
    left_out: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    """Why the labels on no form of this run's records were not put on one, counted once each."""
    void_on_form: int = 0
    """Refunded labels on a form (a person must pull the parcel or tell the driver)."""
    problems: int = 0
    """Unread shipments, forms without their PDF, pickups that failed: the run did not finish everything."""
    pickups: Counter[str] = field(default_factory=Counter)
    pickup_spend: dict[str, Totals] = field(default_factory=dict)
    """What the `booked` and `booked_earlier` pickups cost, by currency (`pickups.pickup_spend`)."""
    refused: str | None = None
    """Set when the pickups were not approved: nothing was spent."""
    write_failure: WriteFailure | None = None
    """A form's PDF could not be written (the form stands; a rerun fetches it)."""
    interrupted: bool = False
    """Ctrl-C or SIGTERM: no form was asked for after it; what was made is still reported."""
    without_pdf: int = 0
    """Forms whose PDF is not saved (an interrupted run does not fetch them)."""
    not_closed: int = 0
    """After an interrupt: labels not read, or read and put on no form and not left out."""

    @property
    def exit_code(self) -> ExitCode:
        if self.write_failure:
            return ExitCode.WRITE_FAILED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.refused:
            return ExitCode.USAGE
        return ExitCode.PARTIAL if self.left_out or self.problems or self.void_on_form else ExitCode.OK


def scope_for(mode: str | None, account: str) -> str:
    """The claims' scope, spelt as `create` spells it: the key's mode and the account the API names."""
    return f"{mode or 'unknown'}-mode key account {account}"


class CloseJob:
    """One `close` run on `session`. Records reach `sink` at the end, groups in order (origin, carrier).

    Ctrl-C (or SIGTERM) stops it asking for forms: calls in flight are waited for (up to `stop_grace` seconds) so
    a form made is recorded, no PDF or pickup is fetched, and the records of what was made are still handed out.
    A second one leaves at once (the forms journal settles whatever was in flight on the next run)."""

    def __init__(self, inputs: CloseInputs, session: Session, host: Host, sink: Sink,
                 stop_grace: float = 30.0) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink
        self.outcome = CloseOutcome()
        self.forms: list[FormResult] = []
        self.left_out: list[LeftOut] = []
        self._journal: Closings | None = None
        self._read: dict[str, ClosingShipment] = {}
        self._references: dict[str, str] = {}
        """Each candidate's reference, as this machine bought it (the API's when it has none)."""
        self.void_on_form: list[VoidOnForm] = []
        self._groups_by_key: dict[str, Group] = {}
        self._placed: set[str] = set()
        """Shipments found on this run's form after a refusal: never sent again, nor reported left out."""
        self.stop_grace = stop_grace
        self._interrupts = 0
        self._booking: Any = None
        """The pickups being booked (`jobs.pickups.Pickups`), whose question a Ctrl-C must not wait for."""
        self._groups_made: list[Group] = []
        self._reads = 0

    def run(self) -> CloseOutcome:
        self.session.run(self._main)
        return self.outcome

    @property
    def journal(self) -> Closings:
        assert self._journal is not None
        return self._journal

    async def _main(self) -> None:
        self.host.engine_started(self.session.engine.sizing)
        async with anyio.create_task_group() as watching:
            # The grace after a Ctrl-C bounds the work, not the watcher: a second Ctrl-C is still heard.
            work = anyio.CancelScope()
            if threading.current_thread() is threading.main_thread():  # only there can signals be received
                watching.start_soon(self._watch_signals, work)
            try:
                with work:
                    await self._work()
            finally:
                watching.cancel_scope.cancel()
        if self.outcome.interrupted:
            self._count_unfinished()
        self._emit()
        self._warn_left_out()
        self._warn_void_on_form()

    async def _work(self) -> None:
        account = await self._account()
        scope = scope_for(self.session.target.mode, account)
        with Closings(state_dir(), scope).open(lock=not self.inputs.dry_run) as journal:
            self._journal = journal
            candidates = self._candidates(scope, account)
            pending = journal.pending()
            with self.host.progress(self.session.stats):
                await self._read_all(candidates, [sid for a in pending for sid in a.shipment_ids])
                if not self.inputs.dry_run:
                    self._settle_pending(pending)
                groups = self._groups(self._of_the_day(candidates))
                self._groups_made = list(groups)
                await self._close(groups)
            await self._finish()

    async def _watch_signals(self, work: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _signum in signals:
                self._interrupts += 1
                self.outcome.interrupted = True
                if self._booking is not None and self._booking.asking:
                    # The thread reading the answer cannot be unblocked; nothing is in flight while it waits.
                    self.host.info("interrupted at the question: no pickup was booked; the forms are made and "
                                   "journaled: rerun close --pickup to list them and book their pickups")
                    self.host.exit_now()
                    self.session.engine.stop()
                    work.cancel()
                    return
                if self._interrupts > 1:
                    self.host.info("second interrupt: stopping now (the forms journal is consistent; rerun close "
                                   "to finish: it makes no form twice)")
                    self.host.exit_now()
                    work.cancel()
                    return
                n = self.session.stats.inflight
                self.host.info(
                    f"interrupted: no new form or pickup will be asked for; waiting for {n} "
                    f"{'call' if n == 1 else 'calls'} in flight (up to {self.stop_grace:.0f} s; Ctrl-C again to stop "
                    "now)")
                self.session.engine.stop()
                work.deadline = anyio.current_time() + self.stop_grace

    def _count_unfinished(self) -> None:
        """What an interrupted run leaves for the rerun: forms without their PDF, labels on no form yet."""
        self.outcome.without_pdf = sum(1 for f in self.forms if self._needs_pdf(f))
        done = {sid for f in self.forms for sid in f.shipment_ids} | \
               {sid for x in self.left_out for sid in x.shipment_ids}
        waiting = {s.id for g in self._groups_made for s in g.shipments} - done
        self.outcome.not_closed = len(waiting) + max(0, self.outcome.shipments - self._reads)

    async def _account(self) -> str:
        try:
            return (await self.session.engine.call(retrieve_account, self.session.client)).id
        except CallFailure as failure:
            if failure.code in _UNREACHABLE:  # its message already says where and what to check
                raise ShipctlError(failure.message, ExitCode.ERROR) from None
            raise ShipctlError(
                f"{failure.code}: {failure.message} (the API did not name the account behind the key, which "
                "shipctl needs to find the labels bought for it); nothing was closed", ExitCode.ERROR,
            ) from None

    def _candidates(self, scope: str, account: str) -> list[Candidate]:
        if self.inputs.journals:
            found = [c for path in self.inputs.journals
                     for c in from_journal(path, self.session.target.identity, account)]
        else:
            since = day_bounds(self.inputs.day or dt.date.today())[0]
            found = from_claims(state_dir(), scope, since)
        unique = {c.shipment_id: c for c in found}
        self._references = {sid: c.reference for sid, c in unique.items() if c.reference}
        return list(unique.values())

    # -- reading -------------------------------------------------------------------------------------------

    async def _read_all(self, candidates: Sequence[Candidate], pending_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys([c.shipment_id for c in candidates] + list(pending_ids)))
        self.outcome.shipments = self.session.stats.total = len(ids)
        await self.session.engine.run(ids, self._read_one)

    async def _read_one(self, shipment_id: str) -> None:
        self._reads += 1
        try:
            shipment = await self.session.engine.call(retrieve_for_close, self.session.client, shipment_id)
        except CallFailure as failure:
            self.session.stats.record("failed")
            if failure.http_status == 404:
                self.outcome.excluded["not found by the API"] += 1
                self.host.warn(f"shipment {shipment_id} is not known to the API (404): left out")
            else:
                self.outcome.problems += 1
                self.host.warn(f"shipment {shipment_id} could not be read: {failure}; left out, rerun to close it")
            return
        self.session.stats.record("succeeded")
        self._read[shipment_id] = shipment

    def _settle_pending(self, pending: Sequence[Attempt]) -> None:
        """A dead run's attempts: adopt the form the API shows their shipments on, or mark them never landed."""
        for attempt in pending:
            shipments = [self._read.get(sid) for sid in attempt.shipment_ids]
            if any(s is None for s in shipments):
                continue  # not all readable now: left pending for a run that can read them
            forms = Counter(s.scan_form_id for s in shipments if s is not None and s.scan_form_id)
            if not forms:
                self.journal.abandoned(attempt.attempt)
                continue
            for n, (form_id, _count) in enumerate(forms.most_common()):
                on_form = [s for s in shipments if s is not None and s.scan_form_id == form_id]
                ids = tuple(s.id for s in on_form)
                if n == 0:
                    self.journal.created(attempt.attempt, form_id, None)
                else:
                    self.journal.adopt(attempt.group, ids, form_id, None)
                self.host.info(f"form {form_id} for {len(ids)} labels was made by a run that stopped before "
                               "recording it: adopted")
                self.forms.append(FormResult(self._group_of(on_form[0]), "adopted", ids, on_form[0],
                                             form_id=form_id))
                self.outcome.forms["adopted"] += 1

    # -- which labels, in which groups ---------------------------------------------------------------------

    def _of_the_day(self, candidates: Sequence[Candidate]) -> list[ClosingShipment]:
        """The candidates to close, counting why each other one is not."""
        bounds = day_bounds(self.inputs.day) if self.inputs.day else None
        keep: list[ClosingShipment] = []
        on_form: list[ClosingShipment] = []
        for candidate in candidates:
            shipment = self._read.get(candidate.shipment_id)
            if shipment is None:
                continue
            why = self._excluded(shipment, candidate, bounds)
            if why == _ON_FORM:
                on_form.append(shipment)
            elif why:
                self.outcome.excluded[why] += 1
            else:
                keep.append(shipment)
        self._known_forms(candidates, bounds)
        self._count_on_forms(on_form)
        return keep

    def _count_on_forms(self, on_form: Sequence[ClosingShipment]) -> None:
        """A label on a form this run reports (adopted, already closed) is counted with that form, not again; a
        refunded one, wherever its form, is named: the driver would otherwise take a void label's parcel."""
        listed = {sid for form in self.forms for sid in form.shipment_ids}
        for shipment in on_form:
            assert shipment.scan_form_id is not None
            if shipment.id not in listed:
                self.outcome.excluded[_ON_FORM] += 1
            if shipment.refund_status in REFUND_DONE:
                self.void_on_form.append(VoidOnForm(shipment.id, self._reference(shipment), shipment.tracking_code,
                                                    shipment.scan_form_id))
        self.outcome.void_on_form = len(self.void_on_form)

    def _reference(self, shipment: ClosingShipment) -> str | None:
        return self._references.get(shipment.id) or shipment.reference

    @staticmethod
    def _excluded(shipment: ClosingShipment, candidate: Candidate,
                  bounds: tuple[dt.datetime, dt.datetime] | None) -> str | None:
        bought_at = shipment.bought_at or candidate.sent_at
        if bounds is not None and bought_at is not None and not bounds[0] <= bought_at < bounds[1]:
            return "bought another day"
        if not shipment.bought:
            return "not bought"
        if shipment.scan_form_id:  # refunded or not: it is on the driver's manifest
            return _ON_FORM
        if shipment.refund_status in REFUND_DONE:
            return "refunded (never put on a form)"
        if shipment.is_return:
            return "a return label (it ships from the customer, not from this dock)"
        if not shipment.origin or not shipment.carrier:
            return "without an origin or carrier in the API's answer"
        return None

    def _known_forms(self, candidates: Sequence[Candidate], bounds: tuple[dt.datetime, dt.datetime] | None) -> None:
        """The day's labels already on a form this journal made: reported again, their PDF fetched if missing."""
        on_form = {c.shipment_id: s for c in candidates if (s := self._read.get(c.shipment_id)) and s.scan_form_id
                   and (bounds is None or s.bought_at is None or bounds[0] <= s.bought_at < bounds[1])}
        seen = {f.form_id for f in self.forms}
        for attempt in self.journal.created_for(on_form):
            if attempt.form_id is None or attempt.form_id in seen:
                continue
            mine = tuple(sid for sid in attempt.shipment_ids if sid in on_form
                         and on_form[sid].scan_form_id == attempt.form_id)
            if not mine:
                continue
            seen.add(attempt.form_id)
            group = self._group_of(on_form[mine[0]])
            self.forms.append(FormResult(
                group, "already_closed", mine, on_form[mine[0]], form_id=attempt.form_id,
                form_url=attempt.form_url, path=Path(attempt.form_path) if attempt.form_path else None,
            ))
            self.outcome.forms["already_closed"] += 1

    def _group_of(self, shipment: ClosingShipment) -> Group:
        assert shipment.origin is not None
        probe = Group(0, shipment.origin, shipment.carrier or "", shipment.carrier_account_id)
        found = self._groups_by_key.get(probe.key)
        if found is None:
            found = self._groups_by_key[probe.key] = probe
        return found

    def _groups(self, shipments: Sequence[ClosingShipment]) -> list[Group]:
        """One group per origin, carrier and carrier account (as the carrier requires), numbered in that order."""
        for shipment in shipments:
            self._group_of(shipment).shipments.append(shipment)
        ordered = sorted(self._groups_by_key.values(),
                         key=lambda g: (str(g.origin), g.origin.key, g.carrier, g.carrier_account_id or ""))
        for index, group in enumerate(ordered, 1):
            group.index = index
        return [g for g in ordered if g.shipments]

    # -- forms ----------------------------------------------------------------------------------------------

    async def _close(self, groups: Sequence[Group]) -> None:
        if self.inputs.dry_run:
            for group in groups:
                self.forms.append(FormResult(group, "would_create", tuple(s.id for s in group.shipments),
                                             group.shipments[0]))
                self.outcome.forms["would_create"] += 1
            return
        await self.session.engine.run(groups, self._close_group)

    async def _close_group(self, group: Group) -> None:
        await self._submit(group, tuple(sorted(s.id for s in group.shipments)))

    async def _submit(self, group: Group, ids: tuple[str, ...]) -> None:
        """One form for `ids`, or, refused, the offenders found and the rest on as few forms as can be."""
        failure = await self._attempt(group, ids)
        if failure is None or failure is _STOPPED:
            return
        ids = tuple(sid for sid in ids if sid not in self._placed)
        if not ids:
            return
        if failure.http_status not in _SPLITTABLE:
            self._leave_out(group, ids, failure, "failed")
            return
        if len(ids) == 1:
            self._leave_out(group, ids, failure)
            return
        named = self._named(group, ids, failure.message)
        if named:
            self._leave_out(group, named, failure)
            rest = tuple(sid for sid in ids if sid not in named)
            if rest:
                await self._submit(group, rest)
            return
        half = len(ids) // 2
        async with anyio.create_task_group() as halves:
            halves.start_soon(self._submit, group, ids[:half])
            halves.start_soon(self._submit, group, ids[half:])

    @staticmethod
    def _named(group: Group, ids: tuple[str, ...], message: str) -> tuple[str, ...]:
        """The shipments a refusal names, by id or tracking code."""
        codes = {s.id: s.tracking_code for s in group.shipments}
        return tuple(sid for sid in ids if sid in message or (codes.get(sid) and str(codes[sid]) in message))

    def _leave_out(self, group: Group, ids: tuple[str, ...], failure: CallFailure, status: str = "left_out") -> None:
        """A refused shipment is a record of its own, named as the clerk knows it and with the carrier's reason
        once; a group with no clear answer stays one record."""
        self.outcome.left_out += len(ids)
        if status != "left_out":
            self.left_out.append(LeftOut(group, ids, failure, status))
            return
        found = _REFUSAL.search(failure.message)
        reason = failure if found is None else CallFailure(failure.code, found["why"].strip(),
                                                           http_status=failure.http_status)
        codes = {s.id: s.tracking_code for s in group.shipments}
        for sid in ids:
            shipment = self._read.get(sid)
            reference = self._references.get(sid) or (shipment.reference if shipment else None)
            self.left_out.append(LeftOut(group, (sid,), reason, status, reference, codes.get(sid)))

    async def _attempt(self, group: Group, ids: tuple[str, ...]) -> CallFailure | None:
        """Journal the attempt, send it, and record what came of it; the refusal, if it was refused."""
        if self.session.engine.stopping:
            return _STOPPED
        attempt = self.journal.intend(group.key, ids)
        uncertain = False  # an earlier send had no clear answer: it may have made the form after all
        for _ in range(_SEND_ATTEMPTS):
            try:
                form = await self.session.engine.call(create_scan_form, self.session.client, ids,
                                                      retry_unknown=False, unless_stopping=True)
            except Stopped:
                if not uncertain:  # never sent: nothing for a rerun to settle
                    self.journal.abandoned(attempt)
                return _STOPPED  # an unclear earlier send stays pending: the rerun reads where it went
            except CallFailure as failure:
                if not failure.outcome_unknown:
                    if uncertain:
                        # A refusal after an unclear send may be of shipments our first send put on a form
                        # ("already on a scan form"), which the read before the resend did not show yet.
                        return await self._refused_after_unclear(group, attempt, ids, failure)
                    self.journal.refused(attempt, failure.code, failure.message)
                    return failure
                uncertain = True
                landed = await self._landed(ids)
                if landed is None:
                    continue  # on no form: the request never landed, and a late landing would be refused
                form = landed
            form = await self._until_ready(form)
            if form.status == "failed":
                refusal = CallFailure("SCAN_FORM.FAILED", form.message or "the API could not make the form",
                                      http_status=422)
                self.journal.refused(attempt, refusal.code, refusal.message)
                return refusal
            self.journal.created(attempt, form.id, form.form_url)
            self.forms.append(FormResult(group, "created", ids, group.shipments[0], form_id=form.id,
                                         form_url=form.form_url, batch_id=form.batch_id))
            self.outcome.forms["created"] += 1
            return None
        return _unsettled()

    async def _refused_after_unclear(self, group: Group, attempt: int, ids: tuple[str, ...],
                                     failure: CallFailure) -> CallFailure | None:
        """Every shipment read again: a form they are on is ours (the run lock rules out anyone else) and is
        recorded like a success; the refusal stands for the rest. Unreadable: the attempt stays pending (a rerun
        settles it first) and the group is reported unsettled."""
        try:
            current = [await self.session.engine.call(retrieve_for_close, self.session.client, sid) for sid in ids]
        except CallFailure:
            return _unsettled()
        forms = list(dict.fromkeys(s.scan_form_id for s in current if s.scan_form_id))
        whole = len(forms) == 1 and all(s.scan_form_id for s in current)
        for form_id in forms:
            on_form = [s for s in current if s.scan_form_id == form_id]
            placed = tuple(s.id for s in on_form)
            try:
                form: ScanForm | None = await self._until_ready(
                    await self.session.engine.call(retrieve_scan_form, self.session.client, form_id))
            except CallFailure:
                form = None  # the form stands: its PDF is fetched after the forms (or by a rerun)
            url = form.form_url if form else None
            if whole:
                self.journal.created(attempt, form_id, url)
            else:
                self.journal.adopt(group.key, placed, form_id, url)
            self._placed.update(placed)
            self.forms.append(FormResult(group, "created", placed, on_form[0], form_id=form_id, form_url=url,
                                         batch_id=form.batch_id if form else None))
            self.outcome.forms["created"] += 1
        if whole:
            return None
        self.journal.refused(attempt, failure.code, failure.message)
        return failure

    async def _landed(self, ids: tuple[str, ...]) -> ScanForm | None:
        """After an unclear answer: the form the shipments are on now, if our request made one."""
        try:
            first = await self.session.engine.call(retrieve_for_close, self.session.client, ids[0])
            if first.scan_form_id is None:
                return None
            return await self.session.engine.call(retrieve_scan_form, self.session.client, first.scan_form_id)
        except CallFailure:
            return None

    async def _until_ready(self, form: ScanForm) -> ScanForm:
        """EasyPost makes a form in the background: read it until it is `created` or `failed` (or give up waiting;
        the form stands, and a rerun fetches its PDF)."""
        for wait in _READY_WAITS:
            if form.status != "creating":
                return form
            # Polling the API's background work, not synchronisation; a Ctrl-C ends the wait (a rerun fetches it).
            if not await self.session.engine.pause(wait):
                return form
            try:
                form = await self.session.engine.call(retrieve_scan_form, self.session.client, form.id)
            except CallFailure:
                continue
        return form

    # -- after the forms -----------------------------------------------------------------------------------

    async def _finish(self) -> None:
        if self.outcome.interrupted:
            return  # the PDFs and pickups are the rerun's: the person asked the run to stop
        if self.inputs.dry_run:
            if self.inputs.pickup is not None:
                for form in self.forms:
                    form.pickup = self._pickup_preview(form)
            return
        await self.session.engine.run([f for f in self.forms if self._needs_pdf(f)], self._fetch_pdf)
        if self.inputs.pickup is not None:
            from shipctl.jobs.pickups import Pickups, pickup_spend

            booking = self._booking = Pickups(self.session, self.host, self.journal, self.inputs.pickup)
            self.outcome.refused = await booking.book(self.forms)
            self.outcome.pickups.update(f.pickup.status for f in self.forms if f.pickup is not None)
            self.outcome.pickup_spend = pickup_spend(self.forms)
            self.outcome.problems += sum(1 for f in self.forms if f.pickup is not None and f.pickup.status == "failed")

    def _pickup_preview(self, form: FormResult) -> PickupResult:
        row = self.journal.pickup(form.form_id) if form.form_id else None
        if row is not None and row.state == "bought":
            return PickupResult("booked_earlier", row.pickup_id, row.confirmation, row.rate, row.currency)
        return PickupResult("would_book")

    @staticmethod
    def _needs_pdf(form: FormResult) -> bool:
        return form.form_id is not None and (form.path is None or not form.path.is_file())

    async def _fetch_pdf(self, form: FormResult) -> None:
        assert form.form_id is not None
        forms_dir = self.inputs.forms_dir or state_dir() / "forms"
        dest = forms_dir / f"{form.form_id}.pdf"
        try:
            if not form.form_url:
                current = await self.session.engine.call(retrieve_scan_form, self.session.client, form.form_id)
                form.form_url, form.batch_id = current.form_url, form.batch_id or current.batch_id
            if not form.form_url:
                raise CallFailure("SCAN_FORM.NOT_READY", "the API has not made the form's file yet; rerun close to "
                                  "fetch it")
            form.path = await self.session.engine.call(download, self.session.client, form.form_url, dest)
        except CallFailure as failure:
            form.failure = failure
            self.outcome.problems += 1
            return
        except WriteFailure as failure:  # the disk, not the API: every other PDF would fail the same way
            form.failure = CallFailure("WRITE_FAILED", failure.message)
            self.outcome.write_failure = failure
            return
        self.journal.saved(form.form_id, form.form_url, form.path)

    # -- what a person must act on ----------------------------------------------------------------------------

    def _warn_left_out(self) -> None:
        """`1 label left out: ORD-1004 (9400…): refused by the carrier for a scan form`, a line per reason."""
        by_reason: dict[str, list[str]] = {}
        for left in self.left_out:
            if left.status == "left_out":
                name = left.reference or left.shipment_ids[0]
                named = f"{name} ({left.tracking_code})" if left.tracking_code else name
                by_reason.setdefault(left.failure.message, []).append(named)
        for reason, names in by_reason.items():
            count = f"{len(names)} label{'' if len(names) == 1 else 's'}"
            self.host.warn(f"{count} left out: {', '.join(names)}: {reason}")

    def _warn_void_on_form(self) -> None:
        """One line per form holding refunded labels, each named by reference and tracking code."""
        by_form: dict[str, list[str]] = {}
        for void in self.void_on_form:
            name = void.reference or void.shipment_id
            by_form.setdefault(void.form_id, []).append(f"{name} ({void.tracking_code})" if void.tracking_code
                                                        else name)
        for form_id, names in by_form.items():
            one = len(names) == 1
            parcel = "its parcel" if one else "their parcels"
            self.host.warn(f"form {form_id} holds {len(names)} refunded label{'' if one else 's'}: "
                           f"{', '.join(names)}; a form cannot be changed, so pull {parcel} before the pickup or "
                           "tell the driver")

    # -- records ----------------------------------------------------------------------------------------------

    def _emit(self) -> None:
        items: list[tuple[int, int, Record]] = [(f.group.index, 0, form_record(f)) for f in self.forms]
        items += [(x.group.index, 1, left_out_record(x)) for x in self.left_out]
        for _group, _kind, record in sorted(items, key=lambda item: (item[0], item[1])):
            self.sink(record)


def _base(group: Group, status: str, ids: Sequence[str]) -> Record:
    return {"group": group.index, "status": status, "origin": str(group.origin), "carrier": group.carrier,
            "carrier_account_id": group.carrier_account_id, "shipments": len(ids), "shipment_ids": list(ids)}


def form_record(form: FormResult) -> Record:
    record = _base(form.group, form.status, form.shipment_ids)
    record.update(form_id=form.form_id, form_file=str(form.path) if form.path else None)
    pickup = form.pickup
    if pickup is not None:
        record.update(pickup_status=pickup.status, pickup_id=pickup.pickup_id, pickup_confirmation=pickup.confirmation,
                      pickup_rate=pickup.rate, pickup_currency=pickup.currency)
    failure = form.failure or (pickup.failure if pickup is not None else None)
    if failure is not None:
        record.update(error_code=failure.code, error_message=failure.message)
    return {key: record.get(key) for key in CLOSE_FIELDS}


def left_out_record(left: LeftOut) -> Record:
    record = _base(left.group, left.status, left.shipment_ids)
    record.update(reference=left.reference, tracking_code=left.tracking_code, error_code=left.failure.code,
                  error_message=left.failure.message)
    return {key: record.get(key) for key in CLOSE_FIELDS}
