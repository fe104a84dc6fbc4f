"""The `create` run: validate, then quote and buy every row through the engine, emitting one result per row.

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

import itertools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from shipctl.carrier.account import retrieve_account
from shipctl.claims import Claims
from shipctl.engine.failures import CallFailure
from shipctl.engine.runner import Engine
from shipctl.errors import WriteFailure
from shipctl.journal import Journal
from shipctl.manifest import Address, ShipmentRow, ValidRow, iter_rows
from shipctl.purchase import PurchaseOptions, Purchaser, Quote, record_from_journal, row_digest
from shipctl.results import ResultRecord
from shipctl.secrets import scrub

Emit = Callable[[ResultRecord, ShipmentRow], None]
# Called (from a worker thread) with (row count, totals by currency); True to buy. Raises to refuse with a message.
Guard = Callable[[int, dict[str, Decimal]], bool]


@dataclass
class ManifestSource:
    path: Path
    fmt: str | None = None
    encoding: str | None = None
    default_from: Address | None = None
    extra_check: Callable[[ValidRow], list[Any]] | None = None
    """The validation pass's extra row check: rows it flagged were rejected there, so they are not bought here."""

    def valid_rows(self) -> Iterator[ValidRow]:
        for item in iter_rows(self.path, fmt=self.fmt, encoding=self.encoding,  # type: ignore[arg-type]
                              default_from=self.default_from):
            if isinstance(item, ValidRow) and not (self.extra_check is not None and self.extra_check(item)):
                yield item


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
    estimate: dict[str, Decimal] = field(default_factory=dict)
    mode: str | None = None


@dataclass
class _Item:
    valid: ValidRow
    digest: str


class CreateRun:
    def __init__(
        self,
        *,
        engine: Engine,
        client: Any,
        journal: Journal,
        source: ManifestSource,
        options: PurchaseOptions,
        emit: Emit,
        guard: Guard,
        dry_run: bool = False,
        max_cost: Decimal | None = None,
        on_warning: Callable[[str], None] = lambda _m: None,
        on_info: Callable[[str], None] = lambda _m: None,
        stop_grace: float = 30.0,
        hard_stop: Callable[[], None] | None = None,
        expected_mode: str | None = None,
        claims: Claims | None = None,
        scope: str = "",
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.source = source
        self.emit = emit
        self.guard = guard
        self.dry_run = dry_run
        self.max_cost = max_cost
        self.on_info = on_info
        self.stop_grace = stop_grace
        self.hard_stop = hard_stop
        self.expected_mode = expected_mode
        # Two-phase runs: what phase one quoted (reference -> row digest), i.e. exactly what may be bought.
        self._quoted: dict[str, str] = {}
        self._prompting = False
        self.client = client
        self.claims = claims
        self.scope = scope
        """The key's mode; the account is added once the API has named it (never the URL: it has many spellings)."""
        self.purchaser = Purchaser(engine, client, journal, options, claims=claims, on_warning=on_warning)
        self.outcome = CreateOutcome()
        self._finished: set[str] = set()
        self._interrupts = 0

    # -- plumbing ----------------------------------------------------------------------------------------

    def _items(self, skip: int = 0) -> Iterator[_Item]:
        for n, valid in enumerate(self.source.valid_rows()):
            if n >= skip and valid.row.reference not in self._finished:
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

    def _done(self, record: ResultRecord, row: ShipmentRow) -> None:
        self._finished.add(row.reference)
        stats = self.engine.stats
        stats.done += 1
        if record.status == "failed":
            stats.failed += 1
        elif record.status in ("skipped", "refunded"):
            stats.skipped += 1
        else:
            stats.succeeded += 1
        self.emit(record, row)

    def _check_fatal(self, failure: CallFailure) -> None:
        fatal = failure.code in _FATAL_CODES or failure.http_status in _FATAL_STATUS
        if fatal and self.engine.stats.calls_ok == 0 and self.outcome.fatal is None:
            self.outcome.fatal = f"{failure.code}: {failure.message}"
            self.engine.stop()

    async def _quote(self, item: _Item) -> Quote | None:
        try:
            return await self._quote_or_finish(item)
        except WriteFailure as failure:
            self._write_failed(failure)
            return None

    async def _quote_or_finish(self, item: _Item) -> Quote | None:
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
            self._done(result, row)
            return None
        return result

    async def _buy(self, item: _Item, quote: Quote) -> None:
        try:
            await self._buy_and_finish(item, quote)
        except WriteFailure as failure:
            self._write_failed(failure)

    async def _buy_and_finish(self, item: _Item, quote: Quote) -> None:
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
            self._done(record, row)

    # -- handlers for each phase -------------------------------------------------------------------------

    async def _pipeline(self, item: _Item) -> None:
        quote = await self._quote(item)
        # Stopping (Ctrl-C, a closed stdout, a full disk) means no new purchase either: a row quoted but not yet
        # sent to `buy` stays journaled as created, and the rerun buys it.
        if quote is not None and not self.engine.stopping:
            await self._buy(item, quote)

    async def _quote_only(self, item: _Item) -> None:
        quote = await self._quote(item)
        if quote is None:
            return
        self.outcome.quoted += 1
        self._quoted[quote.reference] = item.digest
        currency = quote.rate.currency
        self.outcome.estimate[currency] = self.outcome.estimate.get(currency, Decimal(0)) + quote.rate.amount
        if self.dry_run:
            entry = self.journal.get(item.valid.row.reference)
            assert entry is not None
            self._done(record_from_journal(entry), item.valid.row)

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
                row,
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
        return self.outcome

    async def _bind_account(self) -> bool:
        """Name the account behind the key and open the claims for it; False when the API cannot name it."""
        try:
            account = await self.engine.call(retrieve_account, self.client)
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
        engine = self.engine
        first = self.engine.sizing.chunk_size
        # Probe: quote the first chunk only, to learn the API's mode before anything is bought.
        await engine.run(itertools.islice(self._items(), first), self._quote_only, before_chunk=self._plan)
        # A production key is production whatever an answer says; otherwise the API's word, else what this journal's
        # first run decided (a resumed run whose first rows are all done sees no answer), else the key's.
        journaled = self.journal.meta("mode")
        if self.expected_mode == "production":
            mode: str | None = "production"
        else:
            mode = self.purchaser.mode or journaled or self.expected_mode
        if mode is not None and journaled is None:
            self.journal.set_meta("mode", mode)
        self.outcome.mode = mode
        if engine.stopping:
            return
        # Money is at stake unless the API (or the key) says test mode: when in doubt, quote all and confirm.
        if not (self.dry_run or self.max_cost is not None or mode != "test"):
            await engine.run(self._items(), self._pipeline, before_chunk=self._plan)
            return
        await engine.run(self._items(skip=first), self._quote_only, before_chunk=self._plan)
        if engine.stopping or self.dry_run:
            return
        refusal = await self._money_guard(mode)
        if refusal is not None:
            self.outcome.refused = refusal
            return
        if not engine.stopping:
            await engine.run(self._items(), self._buy_confirmed, before_chunk=self._plan)

    async def _money_guard(self, mode: str | None) -> str | None:
        quoted, estimate = self.outcome.quoted, dict(self.outcome.estimate)
        if self.max_cost is not None:
            if len(estimate) > 1:
                return (
                    f"the estimate mixes currencies ({', '.join(sorted(estimate))}); --max-cost cannot compare "
                    "them, nothing was bought"
                )
            total = sum(estimate.values(), Decimal(0))
            if total > self.max_cost:
                return (
                    f"estimated total {total:.2f} for {quoted} labels is above --max-cost "
                    f"{self.max_cost:.2f}; nothing was bought"
                )
        if mode == "test" or not quoted:
            return None
        # The question blocks on a terminal: ask from a thread so Ctrl-C is still heard on the loop.
        self._prompting = True
        try:
            confirmed = await anyio.to_thread.run_sync(self.guard, quoted, estimate, abandon_on_cancel=True)
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
                    self.on_info("interrupted at the confirmation: nothing was bought")
                    if self.hard_stop is not None:
                        self.hard_stop()
                    self.engine.stop()
                    scope.cancel()
                    return
                if self._interrupts > 1:
                    self.on_info("second interrupt: stopping now (the journal is consistent; rerun to resume)")
                    if self.hard_stop is not None:
                        # Cancelling would still wait for SDK calls blocked in worker threads; the journal's
                        # commits are atomic, so leaving without them loses nothing a rerun cannot reconcile.
                        self.hard_stop()
                    scope.cancel()
                    return
                inflight = self.engine.stats.inflight
                self.on_info(
                    f"interrupted: no new rows or purchases will start; waiting for {inflight} calls in flight "
                    f"(up to {self.stop_grace:.0f} s; Ctrl-C again to stop now)"
                )
                self.engine.stop()
                scope.deadline = anyio.current_time() + self.stop_grace


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CallFailure):
        return f"{exc.code}: {exc.message}"
    return scrub(f"{type(exc).__name__}: {exc}")
