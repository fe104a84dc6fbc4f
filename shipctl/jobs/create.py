"""The `create` job: quote and buy every valid row of a manifest through the engine, one result per row.

The caller has run the validation pass (`validation.ManifestSource.check`) and found nothing that stops the run.

Phases. A test-mode run pipelines each row (create -> choose -> buy). A run that must know the total before it
spends anything -- production mode, `--max-cost`, `--dry-run` -- quotes every row first (phase one, shipments
journaled with their chosen rates), asks the money guard, and only then buys exactly the rows it quoted
(phase two). The mode comes from the first chunk's shipments, else from what this journal's first run decided,
else from the key (EZTK/EZAK); a mode that cannot be told is treated as production.

Before any row, the run asks the API whose key it holds (`user.retrieve_me`) and opens its reference claims
for that key mode and account (see `claims.py`): a reference another run holds is left alone, one bought
elsewhere is adopted, never bought again.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from shipctl import money
from shipctl.carrier.account import Account, retrieve_account
from shipctl.claims import Claims
from shipctl.engine.failures import CallFailure
from shipctl.engine.runner import Engine
from shipctl.errors import WriteFailure
from shipctl.jobs.host import Host, Spend
from shipctl.jobs.purchase import (
    BOUGHT_NOT_AS_PLANNED,
    NOT_IN_PLAN,
    PurchaseOptions,
    Purchaser,
    Quote,
    record_from_journal,
    row_digest,
)
from shipctl.jobs.session import Session
from shipctl.jobs.validation import ManifestSource
from shipctl.journal import Journal
from shipctl.manifest import ShipmentRow, ValidRow
from shipctl.paths import state_dir
from shipctl.results import ResultRecord
from shipctl.secrets import scrub

if TYPE_CHECKING:  # a plan is `apply`'s: `create` does not load the plan module (`run` imports it for a plan)
    from shipctl.plans import Plan

_T = TypeVar("_T")


class SinkClosed(Exception):
    """Raised by a sink whose reader went away (`| head`): the run stops starting rows, as for Ctrl-C."""


Sink = Callable[[ResultRecord, ValidRow], None]
"""Takes each row's result as it is done (with the row and its manifest line). May raise `SinkClosed` or
`WriteFailure`: both stop the run."""


# Failures that, before any call has ever succeeded, mean no row can succeed: stop instead of failing them all.
_FATAL_CODES = frozenset({"CONNECTION", "TIMEOUT"})
_FATAL_STATUS = frozenset({401, 403})


@dataclass
class CreateOutcome:
    interrupted: bool = False
    refused: str | None = None
    fatal: str | None = None
    write_failure: WriteFailure | None = None
    quoted: int = 0
    estimate: money.Totals = field(default_factory=dict)
    set_aside: Path | None = None
    """`--fresh`: where the previous journal was kept."""
    labels_saved: int = 0
    """Label files this run wrote (a resumed row's file already there is not counted)."""
    overridden_formats: Counter[str] = field(default_factory=Counter)
    """`label_format`s that rows asked for and `--label-format` overrode, with how many rows asked."""
    unverified: int = 0
    """Rows whose destination failed verification and that `--verify warn` did not stop."""
    smartrate_calls: int = 0
    """SmartRate calls made to judge delivery-time rules (a paid call beyond EasyPost's free tier)."""
    wide_looks: tuple[int, int] = (0, 0)
    """Rows that got the reference check's wide look, and the list calls it made (`Purchaser._wide_look`)."""
    insurance: money.Totals = field(default_factory=dict)
    """The insurance fees inside `estimate`."""
    not_in_plan: int = 0
    """`apply`: manifest rows the plan leaves out (skipped, not counted against the run)."""
    off_plan: int = 0
    """`apply`: planned rows that could not be bought as planned this run (failed, held by another run)."""
    planned: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    """A dry run's rows quoted and not bought: (reference, manifest line, why its rate), in the order they ended."""
    unplanned: list[dict[str, str | None]] = field(default_factory=list)
    """A dry run's other rows: what stops each from being planned (failed, bought already, held)."""


@dataclass(frozen=True)
class CreateInputs:
    """What `create` was asked to do, checked: the manifest, the rate rules and where the journal lives."""

    source: ManifestSource
    options: PurchaseOptions
    journal: Path
    fresh: bool = False
    dry_run: bool = False
    max_cost: Decimal | None = None
    plan: Plan | None = None
    """`apply`: the plan being applied (its rows are `options.pins`); checked against the API before the journal
    opens, and every row quoted before any is bought."""
    all_or_nothing: bool = False
    """`apply --all-or-nothing`: one planned row that cannot be bought as planned, and none is."""
    approved_by: str | None = None


@dataclass
class _Item:
    valid: ValidRow
    digest: str


def applied_options(row: ShipmentRow) -> tuple[str | None, str | None]:
    """The row's `insurance` and `options` columns: what its shipment was created and bought with, beyond the
    rate (label_format has its own column and `--label-format` may override it)."""
    sent = {key: value for key, value in row.easypost_options().items() if key != "label_format"}
    if row.is_return:
        sent["is_return"] = True
    # JSON: a value holding `;` or `=` stays readable, and `jq` can take the column apart.
    text = json.dumps(sent, separators=(",", ":"), ensure_ascii=False) if sent else None
    return (f"{row.insurance:.2f}" if row.insurance else None), text


class CreateRun:
    """The phases of one run over an open journal and claims; `CreateJob` opens and closes those around it."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: Any,
        journal: Journal,
        inputs: CreateInputs,
        host: Host,
        sink: Sink,
        expected_mode: str | None = None,
        claims: Claims | None = None,
        scope: str = "",
        stop_grace: float = 30.0,
    ) -> None:
        self.engine = engine
        self.client = client
        self.journal = journal
        self.inputs = inputs
        self.host = host
        self.sink = sink
        self.expected_mode = expected_mode
        self.claims = claims
        self.scope = scope
        """The key's mode; the account is added once the API has named it (never the URL: it has many spellings)."""
        self.stop_grace = stop_grace
        # Two-phase runs: what phase one quoted (reference -> row digest), i.e. exactly what may be bought.
        self._quoted: dict[str, str] = {}
        self._prompting = False
        self.purchaser = Purchaser(engine, client, journal, inputs.options, claims=claims, on_warning=host.warn)
        self.outcome = CreateOutcome()
        self._finished: set[str] = set()
        # Whether rows are bought as they are quoted (test mode) or after a confirmed estimate, once decided.
        self._decided: anyio.Event  # made on the loop, in `_run_phases`
        self._buy_now = False
        self._undecided_firsts: set[int] = set()
        self._interrupts = 0
        self._account: Account | None = None

    # -- plumbing ----------------------------------------------------------------------------------------

    def _items(self) -> Iterator[_Item]:
        """One read of the manifest: the valid rows not yet finished by this run (rows the validation pass
        rejected, the job's extra check included, are never bought)."""
        for valid in self.inputs.source.rows():
            if isinstance(valid, ValidRow) and valid.row.reference not in self._finished:
                yield _Item(valid, row_digest(valid.row))

    def _plan(self, chunk: list[_Item]) -> None:
        try:
            self.journal.plan((i.valid.row.reference, i.valid.line, i.digest) for i in chunk)
        except WriteFailure as failure:
            self._write_failed(failure)

    def _write_failed(self, failure: WriteFailure) -> None:
        """Nothing more can be recorded: stop starting rows. Every shipment was journaled before its buy, so the
        rerun reconciles whatever this row was doing."""
        if self.outcome.write_failure is None:
            self.outcome.write_failure = failure
        self.engine.stop()

    def _done(self, record: ResultRecord, valid: ValidRow) -> None:
        self._finished.add(valid.row.reference)
        record.address_verification = self.purchaser.verification_of(valid.row.reference, record.purchase)
        record.rate_choice = self.purchaser.rate_choice_of(valid.row.reference, record.purchase)
        # What the row's shipment carries is known only where it is this row's, as the manifest says it now: not
        # for a label found bought elsewhere, nor one bought before the row was edited.
        if self.inputs.dry_run:
            self._note_plan(record, valid)
        elif self.inputs.plan is not None:
            self._held_to_plan(record)
        if record.status in ("bought", "planned") and record.purchase != "found" and record.error_code is None:
            record.insurance, record.options = applied_options(valid.row)
        if record.status == "bought":
            # The fee the API's answer charged (kept in the journal for a rerun's "already bought"); for an answer
            # that carried none, this run's purchase is estimated from the account's rate, as its confirmation was.
            record.insurance_fee = self.purchaser.insurance_fee_of(valid.row.reference, record.purchase)
            if record.insurance_fee is None and valid.row.insurance and record.purchase == "new" \
                    and record.error_code is None:
                record.insurance_fee = str((self._account or Account("")).insurance_fee(valid.row.insurance))
        self.engine.stats.record(
            "failed" if record.status == "failed"
            else "skipped" if record.status in ("skipped", "refunded") else "succeeded"
        )
        try:
            self.sink(record, valid)
        except SinkClosed:
            # The reader went away: stop starting rows, as for Ctrl-C; the rest stay resumable.
            self.outcome.interrupted = True
            self.engine.stop()
        except WriteFailure as failure:  # the row's result is journaled; the rerun re-emits it
            self._write_failed(failure)

    def _held_to_plan(self, record: ResultRecord) -> None:
        """`apply`: count what keeps a planned row from being bought as planned, and flag a label bought for it on
        another shipment or at another rate (another plan's apply, a `create` since): bought, but not this plan."""
        assert self.inputs.plan is not None
        pin = self.inputs.options.pins.get(record.reference) if self.inputs.options.pins is not None else None
        if pin is None:
            self.outcome.not_in_plan += record.error_code == NOT_IN_PLAN
            return
        if record.status != "bought":
            self.outcome.off_plan += 1
            return
        same = (record.shipment_id == pin.shipment_id and record.carrier == pin.carrier
                and record.service == pin.service and money.parse_amount(record.rate) == pin.rate)
        if not same and record.error_code is None:
            record.error_code = BOUGHT_NOT_AS_PLANNED
            record.error_message = (
                f"bought, but not as this plan has it ({pin.carrier} {pin.service} "
                f"{money.format_money(pin.rate, pin.currency)} on {pin.shipment_id}): another plan or run bought it "
                "first"
            )

    def _note_plan(self, record: ResultRecord, valid: ValidRow) -> None:
        if record.status == "planned":
            self.outcome.planned.append((record.reference, valid.line, record.rate_choice))
        else:
            self.outcome.unplanned.append({
                "reference": record.reference, "status": record.status, "error_code": record.error_code,
                "error_message": record.error_message,
            })

    def _check_fatal(self, failure: CallFailure) -> None:
        fatal = failure.code in _FATAL_CODES or failure.http_status in _FATAL_STATUS
        if fatal and self.engine.stats.calls_ok == 0 and self.outcome.fatal is None:
            self.outcome.fatal = _fatal_message(failure)
            self.engine.stop()

    async def _quote(self, item: _Item) -> Quote | None:
        """The row's quote; None when the row is already done (resumed, found, failed)."""
        row = item.valid.row
        try:
            result = await self.purchaser.quote(row, item.valid.line, item.digest)
        except WriteFailure:
            raise
        except CallFailure as failure:
            self._check_fatal(failure)
            result = self.purchaser.fail(row.reference, failure.code, failure.message, shipment_id=None)
            result.retryable = failure.transient
        except Exception as exc:  # one row's surprise must not take the whole run (and its journal) down
            result = self.purchaser.fail(row.reference, "INTERNAL_ERROR", _describe(exc), shipment_id=None)
        if isinstance(result, ResultRecord):
            self._done(result, item.valid)
            return None
        return result

    async def _buy(self, item: _Item, quote: Quote) -> None:
        row = item.valid.row
        try:
            record = await self.purchaser.buy(row, quote)
        except WriteFailure:
            raise
        except Exception as exc:
            # Whatever escaped happened after the buy was sent (reconciling it failed, or a bug): the label
            # may exist. Keep the shipment and say so; only a rerun on this journal can settle it.
            if isinstance(exc, CallFailure):
                self._check_fatal(exc)
            record = self.purchaser.unconfirmed(row.reference, _describe(exc), shipment_id=quote.shipment_id)
        if record is not None:  # None: stopped before the buy was sent; not done, the rerun buys it
            self._done(record, item.valid)

    # -- handlers for each phase -------------------------------------------------------------------------

    def _handler(self, step: Callable[[_T], Awaitable[None]]) -> Callable[[_T], Awaitable[None]]:
        """A phase's per-row step, stopping the run when something can no longer be recorded (a full disk)."""

        async def handle(item: _T) -> None:
            try:
                await step(item)
            except WriteFailure as failure:
                self._write_failed(failure)

        return handle

    async def _pipeline(self, item: _Item) -> None:
        quote = await self._quote(item)
        if quote is None:
            return
        wait = self.purchaser.quiet_left(quote)
        if wait > 0:
            # The reference check's quiet wait (`purchase.QUIET_SECONDS`): the row task goes on to other rows.
            self.engine.stats.waiting += 1
            self.engine.later(wait, functools.partial(self._handler(self._buy_quoted), (item, quote)))
        else:
            await self._buy_unless_stopping(item, quote)

    async def _buy_quoted(self, quoted: tuple[_Item, Quote]) -> None:
        self.engine.stats.waiting -= 1
        await self._buy_unless_stopping(*quoted)

    async def _buy_unless_stopping(self, item: _Item, quote: Quote) -> None:
        # Stopping (Ctrl-C, a closed stdout, a full disk) means no new purchase either: a row quoted but not yet
        # sent to `buy` stays journaled as created, and the rerun buys it.
        if not self.engine.stopping:
            await self._buy(item, quote)

    async def _quote_only(self, item: _Item) -> None:
        quote = await self._quote(item)
        if quote is None:
            return
        self.outcome.quoted += 1
        self._quoted[quote.reference] = item.digest
        money.add(self.outcome.estimate, money.currency_of(quote.rate.currency), quote.rate.amount)
        insured = item.valid.row.insurance
        if insured:
            # Insurance is billed at the buy, in USD, on top of the rate: part of what a person approves.
            fee = (self._account or Account("")).insurance_fee(insured)
            money.add(self.outcome.estimate, money.DEFAULT_CURRENCY, fee)
            money.add(self.outcome.insurance, money.DEFAULT_CURRENCY, fee)
        if self.inputs.dry_run:
            entry = self.journal.get(item.valid.row.reference)
            assert entry is not None
            self._done(record_from_journal(entry), item.valid)

    async def _buy_confirmed(self, item: _Item) -> None:
        """Phase two: buy exactly what was quoted and confirmed; a row added or edited since is not bought."""
        row = item.valid.row
        if self._quoted.get(row.reference) != item.digest:
            self._done(
                ResultRecord(
                    reference=row.reference, status="skipped", error_code="NOT_CONFIRMED",
                    error_message="not in the estimate that was confirmed (the manifest changed meanwhile); "
                    "rerun to quote and buy it",
                ),
                item.valid,
            )
            return
        # The shipment is journaled and (in this process) known unbought, so quote() costs no call.
        await self._pipeline(item)

    # -- the run -----------------------------------------------------------------------------------------

    async def run(self) -> CreateOutcome:
        async with anyio.create_task_group() as group:
            # The grace deadline after a Ctrl-C bounds the work, not the signal watcher: a second Ctrl-C must
            # still be heard after the deadline has passed.
            work = anyio.CancelScope()
            group.start_soon(self._watch_signals, work)
            try:
                with work:
                    try:
                        if await self._bind_account():
                            await self._run_phases()
                    except WriteFailure as failure:
                        self._write_failed(failure)
            finally:
                group.cancel_scope.cancel()
        self.outcome.write_failure = self.outcome.write_failure or self.purchaser.write_failure
        self.outcome.labels_saved = self.purchaser.labels_saved
        self.outcome.overridden_formats = Counter(self.purchaser.overridden_formats.values())
        self.outcome.unverified = len(self.purchaser.unverified)
        self.outcome.smartrate_calls = self.purchaser.smartrate_calls
        self.outcome.wide_looks = (self.purchaser.wide_looks, self.purchaser.wide_look_calls)
        return self.outcome

    async def _bind_account(self) -> bool:
        """Name the account behind the key and open the claims for it; False when the API cannot name it."""
        try:
            found = await self.engine.call(retrieve_account, self.client)
        except CallFailure as failure:
            self._check_fatal(failure)
            if self.outcome.fatal is None:
                # Without the account, claims could not keep this run and another of the same account apart:
                # refuse rather than guess a scope of our own.
                self.outcome.fatal = (
                    f"{failure.code}: {failure.message} (the API did not name the account behind the key, which "
                    "shipctl needs to keep references from being bought twice)"
                )
            self.engine.stop()
            return False
        self._account, account = found, found.id
        bound = self.journal.meta("account")
        if bound is None:
            self.journal.set_meta("account", account)
        elif bound != account:
            self.outcome.refused = (
                f"journal {self.journal.path} records purchases of account {bound}, but this key belongs to "
                f"account {account}; nothing was bought — give this account's run its own journal with --journal PATH"
            )
            return False
        if self.claims is not None:
            self.claims.open(f"{self.scope} account {account}")
        return True

    async def _run_phases(self) -> None:
        """Each phase reads the manifest once; no row is bought before the API's mode is known.

        Unless buying waits for a question anyway (a dry run, `--max-cost`, a plan), rows start at once and are
        quoted (creating a shipment spends nothing) while the mode is unknown; the first answer that names it
        decides (else, the first chunk's rows all done: a resumed run whose first rows need no call). Test mode:
        every quoted row goes on to its buy and the rest run whole. Money at stake (production, or unknown): every
        row is quoted, then the estimate is confirmed before the buy phase.
        """
        engine = self.engine
        self._decided = anyio.Event()
        # Stopping (Ctrl-C, a closed reader, a full disk) releases rows waiting for the decision, to buy nothing.
        engine.on_stop(self._decided.set)
        rows = self._items()
        two_phase = self.inputs.dry_run or self.inputs.max_cost is not None or self.inputs.plan is not None
        if two_phase:
            self._decide(buy=False)
            await engine.run(rows, self._handler(self._quote_only), before_chunk=self._plan)
        else:
            first = list(itertools.islice(rows, engine.sizing.chunk_size))
            self._undecided_firsts = {id(item) for item in first}
            self._maybe_decide()
            await engine.run(itertools.chain(first, rows), self._handler(self._opening), before_chunk=self._plan)
            if self._buy_now or engine.stopping:
                return
        mode = self._settle_mode()
        if engine.stopping:
            return
        if self.inputs.dry_run:
            # A rehearsal answers as the real run would: over --max-cost, that run would buy nothing (exit 2).
            over = self._over_limit()
            if over is not None:
                self.outcome.refused = f"dry run: {over}; the real run would buy nothing"
            return
        if self.inputs.all_or_nothing and self.outcome.off_plan:
            self.outcome.refused = (
                f"{self.outcome.off_plan} planned row(s) cannot be bought as planned now (see their error_code); "
                "--all-or-nothing: nothing was bought"
            )
            return
        refusal = await self._money_guard(mode)
        if refusal is None:
            refusal = self._plan_still_holds()
        if refusal is not None:
            self.outcome.refused = refusal
            return
        if not engine.stopping:
            await engine.run(self._items(), self._handler(self._buy_confirmed), before_chunk=self._plan)

    def _decide(self, *, buy: bool) -> None:
        self._buy_now = buy
        self._decided.set()

    def _maybe_decide(self) -> None:
        """Decide once the mode is known: a production key, an API answer, or the first chunk all done."""
        if self._decided.is_set():
            return
        if self.expected_mode == "production" or self.purchaser.mode is not None or not self._undecided_firsts:
            self._decide(buy=not money.needs_approval(self._settle_mode()))

    async def _opening(self, item: _Item) -> None:
        """Quote while the mode is unknown, then buy (test mode) or leave the row quoted for the confirmation."""
        if self._decided.is_set():
            await (self._pipeline(item) if self._buy_now else self._quote_only(item))
            return
        try:
            await self._quote_only(item)
        finally:
            self._undecided_firsts.discard(id(item))
            self._maybe_decide()
        await self._decided.wait()
        # The shipment is journaled and known unbought in this process, so the pipeline's quote costs no call.
        if self._buy_now and not self.engine.stopping and item.valid.row.reference not in self._finished:
            await self._pipeline(item)

    def _plan_still_holds(self) -> str | None:
        """`apply`, after the question (a person may take their time): the plan must not have expired meanwhile; the
        approval is journaled with the plan's digest only now, when buying starts."""
        plan = self.inputs.plan
        if plan is None:
            return None
        now = dt.datetime.now(dt.timezone.utc)
        if now >= plan.expires_at:
            return f"the plan expired at {plan.expires_at.isoformat()} before buying began; nothing was bought"
        if self.inputs.approved_by:
            self.journal.set_meta(f"approved_by:{now.isoformat()}", f"{self.inputs.approved_by} ({plan.digest})")
        return None

    def _settle_mode(self) -> str | None:
        """A production key is production whatever an answer says; otherwise the API's word, else what this
        journal's first run decided (a resumed run whose first rows are all done sees no answer), else the key's."""
        journaled = self.journal.meta("mode")
        mode = "production" if self.expected_mode == "production" else (
            self.purchaser.mode or journaled or self.expected_mode
        )
        if mode is not None and journaled is None:
            self.journal.set_meta("mode", mode)
        return mode

    def _over_limit(self) -> str | None:
        """Why the estimate does not pass `--max-cost` (None: it does, or there is no limit)."""
        quoted, estimate = self.outcome.quoted, dict(self.outcome.estimate)
        limit = self.inputs.max_cost
        if limit is None:
            return None
        if len(estimate) > 1:
            return f"the estimate mixes currencies ({', '.join(sorted(estimate))}); --max-cost cannot compare them"
        total = sum(estimate.values(), Decimal(0))
        if total <= limit:
            return None
        currency = next(iter(estimate), money.DEFAULT_CURRENCY)
        return (f"estimated total {money.format_money(total, currency)} for {quoted} labels is above --max-cost "
                f"{money.format_money(limit, currency)}")

    async def _money_guard(self, mode: str | None) -> str | None:
        quoted, estimate = self.outcome.quoted, dict(self.outcome.estimate)
        over = self._over_limit()
        if over is not None:
            return f"{over}; nothing was bought"
        if not money.needs_approval(mode) or not quoted:
            return None
        # The question blocks on a terminal: ask from a thread so Ctrl-C is still heard on the loop.
        self._prompting = True
        try:
            confirmed = await anyio.to_thread.run_sync(
                self.host.approve,
                Spend("buy", quoted, estimate, mode=mode, smartrate_calls=self.purchaser.smartrate_calls),
                abandon_on_cancel=True,
            )
        finally:
            self._prompting = False
        return None if confirmed else "purchase not confirmed; nothing was bought"

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _signum in signals:
                self._interrupts += 1
                self.outcome.interrupted = True
                if self._prompting:
                    # Nothing is in flight while the question waits; the thread reading the answer cannot be
                    # unblocked, so leave at once.
                    self.host.info("interrupted at the confirmation: nothing was bought")
                    self.host.exit_now()
                    self.engine.stop()
                    scope.cancel()
                    return
                if self._interrupts > 1:
                    self.host.info("second interrupt: stopping now (the journal is consistent; rerun to resume)")
                    # Cancelling would still wait for SDK calls blocked in worker threads; the journal's
                    # commits are atomic, so leaving without them loses nothing a rerun cannot reconcile.
                    self.host.exit_now()
                    scope.cancel()
                    return
                inflight = self.engine.stats.inflight
                self.host.info(
                    f"interrupted: no new rows or purchases will start; waiting for {inflight} calls in flight "
                    f"(up to {self.stop_grace:.0f} s; Ctrl-C again to stop now)"
                )
                self.engine.stop()
                scope.deadline = anyio.current_time() + self.stop_grace


class CreateJob:
    """`create` on a session: opens the journal and the reference claims, runs the phases, closes them again."""

    def __init__(self, inputs: CreateInputs, session: Session, host: Host, sink: Sink) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink

    def run(self) -> CreateOutcome:
        target = self.session.target
        plan = self.inputs.plan
        if plan is not None:
            from shipctl import plans

            # Before the journal opens and before any call: a plan for another API or mode buys nothing.
            plans.check_target(plan, api=target.identity, mode=target.mode)
        journal = Journal(self.inputs.journal, fresh=self.inputs.fresh).open()
        claims = Claims(state_dir(), journal=os.path.abspath(self.inputs.journal))
        try:
            if journal.set_aside is not None:
                self.host.info(f"--fresh: previous journal kept as {journal.set_aside}")
            journal.bind_target(target.identity, legacy=None if target.embedded else target.api_base)
            run = CreateRun(
                engine=self.session.engine, client=self.session.client, journal=journal, inputs=self._resolved(),
                host=self.host, sink=self.sink, expected_mode=target.mode, claims=claims,
                # Not the URL: one API has many spellings (a proxy, a port, letter case); the account is the API's.
                scope=f"{target.mode or 'unknown'}-mode key",
            )

            async def main() -> CreateOutcome:
                self.host.engine_started(self.session.engine.sizing)
                with self.host.progress(self.session.stats):
                    return await run.run()

            outcome = self.session.run(main)
            outcome.set_aside = journal.set_aside
            return outcome
        finally:
            claims.close()
            journal.close()

    def _resolved(self) -> CreateInputs:
        """`--check-references` unset: on unless the key is a test key, and on with `--fresh` (the journal no
        longer knows what was bought, so ask the API too, whatever the key)."""
        options = self.inputs.options
        if options.check_references is not None:
            return self.inputs
        check = self.session.target.mode != "test" or self.inputs.fresh
        return replace(self.inputs, options=replace(options, check_references=check))


def _fatal_message(failure: CallFailure) -> str:
    """Why no call can succeed: an unreachable API's message names the server and what to check already."""
    if failure.code in _FATAL_CODES:
        return f"{failure.code}: {failure.message}"
    return f"{failure.code}: {failure.message} — check EASYPOST_API_KEY"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CallFailure):
        return f"{exc.code}: {exc.message}"
    return scrub(f"{type(exc).__name__}: {exc}")
