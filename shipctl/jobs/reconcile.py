"""The `reconcile` job: the journals on this machine against the account's purchased labels.

The account's side is `GET /shipments?purchased=true` over the date range, paged newest first with `before_id`,
at most `LIST_CALLS_PER_SECOND` list calls a second (EasyPost's list rate limit). The journals' side is every
journal a claim names (`claims.known_journals`) or the ones given, read without their lock. What does not match:

* `not_in_journal`: a label the account bought in the range that no journal names (another tool, a colleague,
  a bug) -- the check that makes "never twice" auditable;
* `unknown_to_account`: a journal row bought as a shipment the account answers 404 for;
* `not_bought`: a journal row bought as a shipment the account holds unbought;
* `journal_behind`: a journal row the journal never saw bought (a crash after the buy) that the account shows
  bought -- money spent the journal does not count yet (a rerun of its `create` settles it);
* `refund_changed`: a label whose refund status the account reports differently from the journal.

A journal row bought but not in the listed range is read on its own (`GET /shipments/:id`), unless the journal
recorded it bought before the range (`bought_at`, else its last change, `updated_at`): that is never before the
purchase, so such a label was created before it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from shipctl.carrier.account import retrieve_account
from shipctl.carrier.refunds import Label, purchased_page, retrieve_label
from shipctl.carrier.shipments import api_time
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.jobs.close_inputs import DAY_WORDS, day_bounds, parse_date
from shipctl.jobs.host import Host
from shipctl.jobs.session import Session
from shipctl.journal import bought_time_sql
from shipctl.sqlite_writes import open_read_only

LIST_CALLS_PER_SECOND = 5.0
PAGE_SIZE = 100
RECONCILE_FIELDS = (
    "status", "reference", "shipment_id", "tracking_code", "carrier", "service", "cost", "currency", "created_at",
    "refund_status", "journal_refund_status", "journal", "detail",
)
"""The keys of every record the job hands its sink, in the order the data formats print them."""

Sink = Callable[[dict[str, Any]], None]


# -- journals ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JournalLabel:
    """A journal row with a shipment: what `create` recorded for it."""

    journal: Path
    reference: str
    shipment_id: str
    state: str
    carrier: str | None
    service: str | None
    rate: str | None
    currency: str | None
    tracking_code: str | None
    refund_status: str | None
    updated_at: str | None
    """When the journal recorded it bought (`bought_at`); in a journal older than that column, its last change."""


def discover_journals(directory: Path, on_info: Callable[[str], None]) -> list[Path]:
    """Every journal the claims name that is still there; a gone one is skipped with a note."""
    from shipctl.claims import known_journals

    found = []
    for path in known_journals(directory):
        if path.is_file():
            found.append(path)
        else:
            on_info(f"journal {path} is gone; skipped")
    return found


class OtherAccount(Exception):
    """A journal found (not given) records another API's or account's purchases: skipped, counted by the caller."""


def read_journal(path: Path, identity: str, account: str, *, explicit: bool,
                 on_info: Callable[[str], None]) -> list[JournalLabel]:
    """The rows of `path` that name a shipment, read-only and without the journal's lock (a running `create` is
    not held up). A journal of another API or account is an error when given, and `OtherAccount` when found."""
    try:
        db = open_read_only(path)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute(
                "SELECT reference, shipment_id, state, carrier, service, rate, currency, tracking_code, "
                f"refund_status, {bought_time_sql(db)} FROM rows WHERE shipment_id IS NOT NULL ORDER BY line, reference"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if explicit:
            raise UsageError(f"journal {path} is not usable: {exc}") from None
        on_info(f"journal {path} is not usable ({exc}); skipped")
        return []
    other = (f"purchases made against {meta['target']}" if meta.get("target") not in (None, identity)
             else f"purchases of account {meta['account']}" if meta.get("account") not in (None, account) else None)
    if other is not None:
        if explicit:
            raise UsageError(f"journal {path} records {other}, not this key's")
        raise OtherAccount(other)
    return [JournalLabel(path, *row) for row in rows]


def journal_labels(paths: Sequence[Path], directory: Path, identity: str, account: str,
                   on_info: Callable[[str], None], on_detail: Callable[[str], None]) -> list[JournalLabel]:
    """The labels of the journals given, else of every journal found of this API and account. Found journals of
    other accounts or APIs are normal on a machine shared by accounts (a 3PL's clients, test and production):
    one line counts them (`on_detail`, which `-q` silences), not a line per journal on every run."""
    explicit = bool(paths)
    chosen = list(paths) or discover_journals(directory, on_info)
    labels: list[JournalLabel] = []
    others = 0
    for path in dict.fromkeys(p.resolve() for p in chosen):
        try:
            labels.extend(read_journal(path, identity, account, explicit=explicit, on_info=on_info))
        except OtherAccount:
            others += 1
    if others:
        on_detail(f"{others:,} journal{'' if others == 1 else 's'} of other accounts or APIs skipped")
    return labels


# -- dates ---------------------------------------------------------------------------------------------------

def parse_day(text: str, option: str, *, end: bool = False) -> dt.datetime:
    """A day alone (`2025-03-08`, `20250308`, `today`, `yesterday`): its local midnight, as `report` and `close`
    take a day (UTC midnight would put a person east of UTC's own today in the future); with `end`, the last
    instant of that day. Else an ISO 8601 time (without an offset: UTC)."""
    day: dt.date | None = None
    if text.strip().lower() in DAY_WORDS:
        day = parse_date(text, option)
    else:
        with contextlib.suppress(ValueError):
            day = dt.date.fromisoformat(text.strip())
    if day is not None:
        start, after = day_bounds(day)
        return after - dt.timedelta(microseconds=1) if end else start
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a date (YYYY-MM-DD, today, yesterday) or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the job -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReconcileInputs:
    since: dt.datetime
    until: dt.datetime
    journals: tuple[Path, ...] = ()
    state_directory: Path | None = None
    page_size: int = PAGE_SIZE


@dataclass
class ReconcileOutcome:
    listed: int = 0
    journal_rows: int = 0
    list_calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.statuses else ExitCode.OK


class _Pacer:
    """At most `per_second` calls a second: each waits for its slot (EasyPost limits list calls, not others)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next_at = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            await anyio.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


class ReconcileJob:
    def __init__(self, inputs: ReconcileInputs, session: Session, host: Host, sink: Sink) -> None:
        self.inputs = inputs
        self.session = session
        self.host = host
        self.sink = sink
        self.outcome = ReconcileOutcome()

    def run(self) -> ReconcileOutcome:
        if self.inputs.until < self.inputs.since:
            raise UsageError("--until is before --since")
        self.session.run(self._main)
        return self.outcome

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await self.session.engine.call(fn, *args, **kwargs)
        except CallFailure as failure:
            raise ShipctlError(f"the API did not answer ({failure.code}: {failure.message}); nothing was compared",
                               ExitCode.ERROR) from None

    async def _main(self) -> None:
        from shipctl.paths import state_dir

        client = self.session.client
        self.host.engine_started(self.session.engine.sizing)
        account = (await self._call(retrieve_account, client)).id
        directory = self.inputs.state_directory or state_dir()
        rows = journal_labels(self.inputs.journals, directory, self.session.target.identity, account,
                              self.host.info, self.host.detail)
        self.outcome.journal_rows = len(rows)
        listed = await self._list()
        self.outcome.listed = len(listed)
        by_id = {label.shipment_id: label for label in listed}
        # Every row naming a shipment is compared: one label can be in two journals (a manifest adopted by a
        # second `create --journal`), and a refund recorded in one but not the other is a mismatch.
        journaled: dict[str, list[JournalLabel]] = {}
        for row in rows:
            journaled.setdefault(row.shipment_id, []).append(row)
        for label in listed:  # newest first, as the account lists them
            naming = journaled.get(label.shipment_id)
            if not naming:
                self._emit("not_in_journal", label, None, "bought in the range; no journal on this machine names it")
            for row in naming or ():
                self._compare(row, label)
        since = _iso(self.inputs.since)
        for sid, naming in journaled.items():
            if sid in by_id:
                continue
            # Never bought as far as the journals know, or bought before the range.
            if any(row.state == "bought" and not (row.updated_at and row.updated_at < since) for row in naming):
                await self._check_alone(naming)

    async def _list(self) -> list[Label]:
        pacer = _Pacer(LIST_CALLS_PER_SECOND)
        labels: list[Label] = []
        before: str | None = None
        while True:
            await pacer.wait()
            page, more = await self._call(purchased_page, self.session.client, start=_iso(self.inputs.since),
                                          end=_iso(self.inputs.until), before_id=before,
                                          page_size=self.inputs.page_size)
            self.outcome.list_calls += 1
            labels.extend(page)
            if not more or not page:
                return labels
            before = page[-1].shipment_id

    async def _check_alone(self, naming: list[JournalLabel]) -> None:
        """Read a shipment the listing did not show, and compare it with every journal row naming it."""
        sid = naming[0].shipment_id
        try:
            label = await self.session.engine.call(retrieve_label, self.session.client, sid)
        except CallFailure as failure:
            if failure.http_status == 404:
                for row in naming:
                    self._emit("unknown_to_account", None, row, "the account has no such shipment")
                return
            raise ShipctlError(f"the API did not answer for {sid} ({failure.code}: {failure.message})",
                               ExitCode.ERROR) from None
        created = api_time(label.created_at)
        if not label.bought:
            for row in naming:
                if row.state == "bought":
                    self._emit("not_bought", label, row, "the journal says bought; the account holds it unbought")
        elif created is None or self.inputs.since <= created <= self.inputs.until:
            for row in naming:
                self._compare(row, label)
        # Bought, and created outside the range: the range's business is elsewhere.

    def _compare(self, row: JournalLabel, label: Label) -> None:
        if row.state != "bought":
            self._emit("journal_behind", label, row, f"bought on the account; the journal still says {row.state}")
        elif (row.refund_status or None) != (label.refund_status or None):
            self._emit("refund_changed", label, row,
                       f"refund status {row.refund_status or 'none'} in the journal, "
                       f"{label.refund_status or 'none'} on the account")

    def _emit(self, status: str, label: Label | None, row: JournalLabel | None, detail: str) -> None:
        self.outcome.statuses[status] += 1
        self.sink({
            "status": status,
            "reference": label.reference if label is not None and label.reference else row and row.reference,
            "shipment_id": label.shipment_id if label is not None else row and row.shipment_id,
            "tracking_code": label.tracking_code if label is not None else row and row.tracking_code,
            "carrier": label.carrier if label is not None else row and row.carrier,
            "service": label.service if label is not None else row and row.service,
            "cost": label.rate if label is not None else row and row.rate,
            "currency": label.currency if label is not None else row and row.currency,
            "created_at": label.created_at if label is not None else None,
            "refund_status": label.refund_status if label is not None else None,
            "journal_refund_status": row.refund_status if row is not None else None,
            "journal": str(row.journal) if row is not None else None,
            "detail": detail,
        })
