"""The `track` job: a tracker for every code through the engine, then, when watching, poll rounds until each is final.

The first pass creates (or finds: EasyPost answers with the tracker it has) one tracker per code and hands every
code's rows to the sink in input order. A watch then re-reads only the codes not final yet, once a round, and
hands on only those whose status, estimate or events changed, so a long watch prints news, not the same rows
again. A code that fails for good while watched counts as failed from then on; a transient failure is retried
at the next round.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from shipctl.carrier import trackers
from shipctl.engine.failures import CallFailure
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.session import InOrder, Session

if TYPE_CHECKING:
    pass

TRACK_COLUMNS = (
    "tracking_code", "carrier", "status", "status_detail", "est_delivery_date",
    "last_event", "last_event_at", "last_location", "error_code", "error_message",
)
HISTORY_COLUMNS = (
    "tracking_code", "carrier", "datetime", "status", "status_detail", "message", "location",
    "error_code", "error_message",
)
INVALID_CODE = "TRACKING_CODE.INVALID"
STAMP = "%Y-%m-%d %H:%M:%S"
"""Local date and time on each watch line (ISO 8601 with a space), as on the plain progress lines."""

Row = dict[str, Any]
Sink = Callable[[Row], None]


@dataclass(frozen=True)
class TrackInputs:
    """What to track: `codes` as typed (spaces are removed here), and how. `timeout` only bounds a watch."""

    codes: tuple[str, ...]
    carrier: str | None = None
    history: bool = False
    watch: bool = False
    interval: float = 60.0
    timeout: float | None = None


@dataclass
class CodeState:
    """One code through the run: its latest tracker, or why it has none, and what of it was handed out."""

    index: int
    code: str
    tracking: trackers.Tracking | None = None
    error_code: str | None = None
    error_message: str | None = None
    shown_events: int = 0
    signature: tuple[object, ...] | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    def fail(self, code: str, message: str) -> None:
        self.error_code, self.error_message = code, message

    def seen(self, tracking: trackers.Tracking) -> bool:
        """Keep `tracking`; True when it differs from the last one seen (the first one always does)."""
        self.tracking = tracking
        signature = tracking.signature()
        if signature == self.signature:
            return False
        self.signature = signature
        return True

    def summary_row(self) -> Row:
        t = self.tracking
        if t is None:
            return _only(TRACK_COLUMNS, {"tracking_code": self.code, "error_code": self.error_code,
                                         "error_message": self.error_message})
        last = t.last_event
        return {
            "tracking_code": t.tracking_code or self.code, "carrier": t.carrier, "status": t.status,
            "status_detail": t.status_detail, "est_delivery_date": t.est_delivery_date,
            "last_event": last.message if last else None, "last_event_at": last.datetime if last else None,
            "last_location": last.location if last else None,
            "error_code": self.error_code, "error_message": self.error_message,
        }

    def history_rows(self) -> list[Row]:
        """The events not handed out yet (all of them the first time), oldest first."""
        t, since = self.tracking, self.shown_events
        if t is None:
            return [_only(HISTORY_COLUMNS, {"tracking_code": self.code, "error_code": self.error_code,
                                            "error_message": self.error_message})]
        self.shown_events = len(t.events)
        code = t.tracking_code or self.code
        if not t.events:  # a code with no events yet still gets one row, the first time
            return [] if since else [_only(HISTORY_COLUMNS, {"tracking_code": code, "carrier": t.carrier,
                                                             "status": t.status, "status_detail": t.status_detail})]
        return [
            _only(HISTORY_COLUMNS, {"tracking_code": code, "carrier": t.carrier, "datetime": e.datetime,
                                    "status": e.status, "status_detail": e.status_detail, "message": e.message,
                                    "location": e.location})
            for e in t.events[since:]
        ]


@dataclass(frozen=True)
class TrackOutcome:
    """What the run came to: the counts, the statuses seen (most common first) and, for a watch, how it ended."""

    codes: int
    tracked: int
    failed: int
    statuses: tuple[tuple[str, int], ...]
    elapsed: float
    watched: bool
    polls: int
    timed_out: bool
    not_final: int

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed or self.timed_out else ExitCode.OK


class Tracking:
    """The track job. `run()` does it all; `first_pass()` and `poll_round()` are its steps, to be awaited on the
    session's loop by whoever drives a watch by hand (a test moving a parcel on between them).

    Every row goes to `sink` in input order. `end_round`, when given, is called after the first pass and after
    each poll round (a table is printed per round: it sizes its columns from all of a round's rows).
    """

    def __init__(self, inputs: TrackInputs, session: Session, host: Host, sink: Sink,
                 *, end_round: Callable[[], None] | None = None) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink
        self.end_round = end_round
        self.codes = [CodeState(i, trackers.normalize_code(c)) for i, c in enumerate(inputs.codes)]
        self.pending: dict[int, CodeState] = {}
        """Codes still watched: tracked, not final, not failed for good."""
        self.deadline: float | None = None
        self.polls = 0
        self.timed_out = False

    def run(self) -> TrackOutcome:
        self.session.run(self.main)
        return self.outcome()

    async def main(self) -> None:
        self.host.engine_started(self.session.engine.sizing)
        await self.first_pass()
        if self.inputs.watch:
            await self.watch()

    # -- the first pass ------------------------------------------------------------------------------------

    async def first_pass(self) -> None:
        in_order: InOrder[list[Row]] = InOrder(self._hand_out)
        with self._round(), self.host.progress(self.session.stats):
            await self.session.engine.run(self.codes, lambda state: self._track(state, in_order))
        self.pending = {s.index: s for s in self.codes if s.tracking is not None and not s.tracking.final}

    async def _track(self, state: CodeState, in_order: InOrder[list[Row]]) -> None:
        problem = trackers.code_problem(state.code)
        if problem:
            state.fail(INVALID_CODE, problem)
        else:
            try:
                # Looked up at call time, like every carrier call here, so a test can stand in for the carrier.
                state.seen(await self.session.engine.call(
                    trackers.create_tracker, self.session.client, state.code, self.inputs.carrier))
            except CallFailure as failure:
                state.fail(failure.code, failure.message)
        self.session.stats.record("failed" if state.failed else "succeeded")
        in_order.put(state.index, self._rows(state))

    # -- watching ------------------------------------------------------------------------------------------

    async def watch(self) -> None:
        """Poll rounds `interval` apart until every code is final, or `timeout` (from now) runs out."""
        timeout = self.inputs.timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending:
            wait = self._next_wait()
            if wait is None:
                break
            # Dated: a watch runs for days. Seconds to one decimal, as every duration shipctl prints.
            self.host.detail(f"{time.strftime(STAMP)} {codes_phrase(len(self.pending))} not final yet; "
                             f"next poll in {wait:.1f} s")
            await anyio.sleep(wait)
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.timed_out = True
                break
            await self.poll_round()

    def _next_wait(self) -> float | None:
        """Seconds to the next round, or None (and `timed_out`) when the deadline has passed."""
        if self.deadline is None:
            return self.inputs.interval
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            return None
        return min(self.inputs.interval, left)

    async def poll_round(self) -> list[CodeState]:
        """Re-read every pending code once; hand out and return those that changed, in input order."""
        changed: dict[int, CodeState] = {}

        async def poll(state: CodeState) -> None:
            if await self._poll(state):
                changed[state.index] = state

        await self.session.engine.run(list(self.pending.values()), poll)
        self.polls += 1
        news = [changed[i] for i in sorted(changed)]
        with self._round():
            for state in news:
                self._hand_out(self._rows(state))
                if state.failed:
                    # Counted as tracked in the first pass, it failed for good in this round.
                    self.session.stats.revise("succeeded", "failed")
        for state in news:
            if state.failed or (state.tracking is not None and state.tracking.final):
                self.pending.pop(state.index, None)
        return news

    async def _poll(self, state: CodeState) -> bool:
        """True when the code has news: a changed tracker, or a failure that will not pass."""
        if state.tracking is None:  # never pending: only tracked codes are watched
            return False
        try:
            tracking = await self.session.engine.call(trackers.retrieve_tracker, self.session.client,
                                                      state.tracking.id)
        except CallFailure as failure:
            if failure.transient:
                self.host.warn(f"{state.code}: {failure.code}: {failure.message} (will poll again)")
                return False
            state.fail(failure.code, failure.message)
            return True
        return state.seen(tracking)

    # -- results -------------------------------------------------------------------------------------------

    def _rows(self, state: CodeState) -> list[Row]:
        return state.history_rows() if self.inputs.history else [state.summary_row()]

    def _hand_out(self, rows: list[Row]) -> None:
        for row in rows:
            self.sink(row)

    @contextlib.contextmanager
    def _round(self) -> Iterator[None]:
        try:
            yield
        finally:  # an interrupted round still ends (what was handed out is printed)
            if self.end_round is not None:
                self.end_round()

    def outcome(self) -> TrackOutcome:
        stats = self.session.stats
        statuses = Counter(s.tracking.status for s in self.codes if s.tracking is not None and not s.failed)
        return TrackOutcome(
            codes=len(self.codes), tracked=stats.succeeded, failed=stats.failed,
            statuses=tuple(statuses.most_common()), elapsed=stats.elapsed(), watched=self.inputs.watch,
            polls=self.polls, timed_out=self.timed_out, not_final=len(self.pending),
        )


def codes_phrase(n: int) -> str:
    return f"{n} code" if n == 1 else f"{n} codes"


def _only(columns: tuple[str, ...], row: Row) -> Row:
    return {c: row.get(c) for c in columns}
