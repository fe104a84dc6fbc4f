"""`shipctl report --delivery`: were the labels the journals bought delivered, and on time?

Every label the journals bought (not refunded, inside `--since`/`--until`, of this key's API and account) is
tracked through the `track` job's first pass (`jobs/track.py:Tracking`: the engine, one tracker per code, grouped by
carrier), and counted per carrier and service: delivered on time, late, in transit, not yet scanned, other endings
(returned, failed), and not trackable; the median and average days in transit of the delivered ones.

On time: delivered within the rate's `delivery_days` (journaled per row) business days of the purchase, a business
day being a weekday (public holidays are not known here) after the purchase's local day, up to and including the
delivery's. The purchase is the earlier of the journal's time for the row and the tracker's first event: the
journal's time can move later (a label file saved, a rerun) and the first event ("label created") is the carrier's
record of the purchase, when it has one. Days in transit are calendar days from the purchase to the delivery event.

Answers are kept in `<state>/tracking.sqlite3` (0600, WAL), per API scope (identity, key mode, an HMAC of the key
under a secret kept in the file, the account) and code: a final status (delivered, returned, failed) for good, any
other for the TTL (10 minutes), so a second report soon after asks the API nothing for those codes.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipctl.cache_files import CacheFile
from shipctl.carrier.trackers import FINAL_STATUSES
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError, WriteFailure
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.session import Session
from shipctl.sqlite_writes import open_read_only, transaction

DEFAULT_TTL = 10 * 60.0
"""Seconds a status that is not final answers from the cache: a parcel moves on over hours, not minutes."""
FILE_NAME = "tracking.sqlite3"
SCHEMA_VERSION = "1"

DELIVERY_FIELDS = (
    "section", "by", "group", "carrier", "service", "labels", "delivered", "on_time", "late", "in_transit",
    "not_scanned", "other", "untracked", "median_days", "average_days",
)
"""One `section: delivery` record's fields: per carrier and service (`by: service`), then the total (`by: total`)."""

IN_TRANSIT = frozenset({"in_transit", "out_for_delivery", "available_for_pickup"})
NOT_SCANNED = frozenset({"pre_transit", "unknown"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracking (
    scope        TEXT NOT NULL,
    code         TEXT NOT NULL,
    status       TEXT NOT NULL,
    first_at     REAL,
    delivered_at REAL,
    fetched_at   REAL NOT NULL,
    final        INTEGER NOT NULL,
    PRIMARY KEY (scope, code)
);
CREATE INDEX IF NOT EXISTS tracking_age ON tracking (final, fetched_at);
"""


# -- what the journals bought --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoughtLabel:
    reference: str
    shipment_id: str
    tracking_code: str
    carrier: str
    service: str
    delivery_days: int | None
    bought_at: float | None
    """The journal's time for the row (seconds since the epoch)."""


def read_labels(journals: Sequence[Path], identity: str, account: str, *, since: dt.date | None = None,
                until: dt.date | None = None, on_info: Callable[[str], None] = lambda _m: None) -> list[BoughtLabel]:
    """The journals' bought labels with a tracking code, not refunded (nor asked to be), of this API and account,
    whose journal time falls on the local days `since`..`until`; a shipment in several journals once."""
    found: dict[str, BoughtLabel] = {}
    voided: set[str] = set()
    others = 0
    for path in journals:
        try:
            db = open_read_only(Path(path))
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                rows = db.execute(
                    "SELECT reference, shipment_id, tracking_code, carrier, service, delivery_days, updated_at, "
                    "refund_status FROM rows WHERE state = 'bought' AND shipment_id IS NOT NULL ORDER BY line"
                ).fetchall()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            on_info(f"journal {path} is not usable ({exc}); its labels are not tracked")
            continue
        if meta.get("target") not in (None, identity) or meta.get("account") not in (None, account):
            # Another API's or account's codes: tracking them with this key would make (and, at EasyPost, bill)
            # trackers for labels this account never bought.
            others += 1  # counted in one line: a machine shared by accounts has many, every run
            continue
        for reference, shipment_id, code, carrier, service, days, updated_at, refund in rows:
            if refund in ("submitted", "refunded"):
                voided.add(shipment_id)
            if not code:
                continue
            at = _epoch(updated_at)
            if not _within(at, since, until):
                continue
            found.setdefault(shipment_id, BoughtLabel(
                str(reference), str(shipment_id), str(code), str(carrier or ""), str(service or ""),
                int(days) if days is not None else None, at))
    if others:
        on_info(f"{others:,} journal{'' if others == 1 else 's'} of other accounts or APIs: "
                f"{'its' if others == 1 else 'their'} labels are not tracked")
    return [label for sid, label in found.items() if sid not in voided]


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _within(at: float | None, since: dt.date | None, until: dt.date | None) -> bool:
    if since is None and until is None:
        return True
    if at is None:
        return False
    day = dt.datetime.fromtimestamp(at).date()  # a local day, as the spend report's days
    return (since is None or day >= since) and (until is None or day <= until)


# -- the rule --------------------------------------------------------------------------------------------------

def business_days(start: dt.date, end: dt.date) -> int:
    """Weekdays after `start` up to and including `end` (0 when `end` is not after `start`)."""
    if end <= start:
        return 0
    weeks, rest = divmod((end - start).days, 7)
    return weeks * 5 + sum((start + dt.timedelta(days=weeks * 7 + i)).weekday() < 5 for i in range(1, rest + 1))


@dataclass(frozen=True)
class Scan:
    """What tracking says of one code, as the cache keeps it."""

    status: str
    first_at: float | None
    """The tracker's first event."""
    delivered_at: float | None
    """Its first `delivered` event."""


def scan_of(tracking: Any) -> Scan:
    """The parts of a `carrier.trackers.Tracking` the report needs."""
    times = [(e.status, _epoch(e.datetime)) for e in tracking.events]
    first = next((t for _, t in times if t is not None), None)
    delivered = next((t for status, t in times if status == "delivered" and t is not None), None)
    return Scan(str(tracking.status), first, delivered)


@dataclass
class DeliveryGroup:
    carrier: str
    service: str
    labels: int = 0
    delivered: int = 0
    on_time: int = 0
    late: int = 0
    in_transit: int = 0
    not_scanned: int = 0
    other: int = 0
    """Returned to sender, failed, cancelled: ended without a delivery."""
    untracked: int = 0
    """Tracking failed (the call, or a code the API refused)."""
    days: list[float] = field(default_factory=list)

    @property
    def median_days(self) -> float | None:
        return round(statistics.median(self.days), 1) if self.days else None

    @property
    def average_days(self) -> float | None:
        return round(statistics.fmean(self.days), 1) if self.days else None

    def count(self, label: BoughtLabel, scan: Scan | None) -> None:
        self.labels += 1
        if scan is None:
            self.untracked += 1
        elif scan.status == "delivered":
            self.delivered += 1
            starts = [t for t in (label.bought_at, scan.first_at) if t is not None]
            if scan.delivered_at is None or not starts:
                return  # delivered, but when (or since when) is not known: no days, no verdict
            start = min(starts)
            self.days.append(max(0.0, scan.delivered_at - start) / 86400.0)
            if label.delivery_days is not None:
                taken = business_days(dt.datetime.fromtimestamp(start).date(),
                                      dt.datetime.fromtimestamp(scan.delivered_at).date())
                if taken <= label.delivery_days:
                    self.on_time += 1
                else:
                    self.late += 1
        elif scan.status in IN_TRANSIT:
            self.in_transit += 1
        elif scan.status in NOT_SCANNED:
            self.not_scanned += 1
        else:
            self.other += 1

    def record(self, by: str = "service") -> dict[str, Any]:
        return {
            "section": "delivery", "by": by,
            "group": "total" if by == "total" else f"{self.carrier} {self.service}".strip() or "(unknown)",
            "carrier": self.carrier or None, "service": self.service or None, "labels": self.labels,
            "delivered": self.delivered, "on_time": self.on_time, "late": self.late, "in_transit": self.in_transit,
            "not_scanned": self.not_scanned, "other": self.other, "untracked": self.untracked,
            "median_days": self.median_days, "average_days": self.average_days,
        }


@dataclass
class DeliveryReport:
    groups: list[DeliveryGroup] = field(default_factory=list)
    total: DeliveryGroup = field(default_factory=lambda: DeliveryGroup("", ""))
    tracked: int = 0
    """Codes asked of the API in this run."""
    cached: int = 0
    """Codes answered from the tracking cache."""
    cache_error: str | None = None

    def records(self) -> list[dict[str, Any]]:
        return [*(g.record() for g in self.groups), self.total.record("total")]


def summarise(labels: Iterable[BoughtLabel], scans: dict[str, Scan | None]) -> DeliveryReport:
    report = DeliveryReport()
    groups: dict[tuple[str, str], DeliveryGroup] = {}
    for label in labels:
        scan = scans.get(label.tracking_code)
        key = (label.carrier, label.service)
        if key not in groups:
            groups[key] = DeliveryGroup(*key)
        groups[key].count(label, scan)
        report.total.count(label, scan)
    report.groups = [groups[k] for k in sorted(groups)]
    return report


# -- the cache ---------------------------------------------------------------------------------------------------

class TrackingCache(CacheFile):
    """`<state>/tracking.sqlite3`: what tracking said of each code, per API scope. `now` is the wall clock."""

    kind = "tracking cache"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION

    def __init__(self, path: Path, ttl: float = DEFAULT_TTL, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(path, ttl, now=now)

    @classmethod
    def in_state_dir(cls, ttl: float = DEFAULT_TTL) -> TrackingCache:
        from shipctl.paths import state_dir

        return cls(state_dir() / FILE_NAME, ttl).open()

    def prune(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM tracking WHERE final = 0 AND fetched_at <= ?", (self.now() - self.ttl,))

    def scope(self, identity: str, mode: str | None, api_key: str | None, account: str) -> str:
        """Whose codes: the API, its key mode, a keyed digest of the key (none for the built-in sandbox, whose key
        is made anew each run) and the account. The key itself is never stored."""
        return self.scope_of(identity, mode, api_key, account)

    def get(self, scope: str, codes: Iterable[str]) -> dict[str, Scan]:
        """The fresh answers among `codes`: final ones whatever their age, others younger than the TTL."""
        db, now, found = self._conn(), self.now(), {}
        for code in codes:
            row = db.execute("SELECT status, first_at, delivered_at, fetched_at, final FROM tracking "
                             "WHERE scope = ? AND code = ?", (scope, code)).fetchone()
            if row is None:
                continue
            status, first_at, delivered_at, fetched_at, final = row
            if final or 0 <= now - float(fetched_at) < self.ttl:  # a clock set back makes an entry of the future
                found[code] = Scan(str(status), first_at, delivered_at)
        return found

    def put(self, scope: str, scans: dict[str, Scan]) -> None:
        """Keep this run's answers; a write the disk refuses leaves the report as it is (`write_error`)."""
        if not scans:
            return
        now = self.now()
        try:
            with transaction(self._conn(), self.what):
                self._conn().executemany(
                    "INSERT OR REPLACE INTO tracking VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(scope, code, s.status, s.first_at, s.delivered_at, now, int(s.status in FINAL_STATUSES))
                     for code, s in scans.items()])
        except (WriteFailure, sqlite3.Error) as exc:
            self.write_error = str(exc)


# -- the job -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryQuery:
    since: dt.date | None = None
    until: dt.date | None = None


class DeliveryJob:
    """Track the journals' labels (those the cache cannot answer) and count them per carrier and service."""

    def __init__(self, query: DeliveryQuery, journals: Sequence[Path], session: Session, host: Host,
                 cache: TrackingCache | None) -> None:
        self.query = query
        self.journals = journals
        self.session = session
        self.host = host
        self.cache = cache

    def run(self) -> DeliveryReport:
        return self.session.run(self._main)

    async def _main(self) -> DeliveryReport:
        from shipctl.carrier.account import retrieve_account
        from shipctl.jobs.track import Tracking, TrackInputs

        engine, target = self.session.engine, self.session.target
        self.host.engine_started(engine.sizing)
        try:
            account = (await engine.call(retrieve_account, self.session.client)).id
        except CallFailure as failure:
            raise ShipctlError(f"the API did not answer ({failure.code}: {failure.message}); nothing was tracked",
                               ExitCode.ERROR) from None
        labels = read_labels(self.journals, target.identity, account, since=self.query.since,
                             until=self.query.until, on_info=self.host.info)
        codes = list(dict.fromkeys(label.tracking_code for label in labels))
        scope = "" if self.cache is None else self.cache.scope(
            target.identity, target.mode, None if target.embedded else target.api_key, account)
        scans: dict[str, Scan | None] = dict(self.cache.get(scope, codes)) if self.cache is not None else {}
        cached = len(scans)
        by_carrier: dict[str, list[str]] = {}
        carrier_of = {label.tracking_code: label.carrier for label in labels}
        for code in codes:
            if code not in scans:
                by_carrier.setdefault(carrier_of[code], []).append(code)
        self.session.stats.total = sum(len(c) for c in by_carrier.values())
        fresh: dict[str, Scan] = {}
        for carrier, group in by_carrier.items():  # the carrier named, so the API need not guess it
            job = Tracking(TrackInputs(tuple(group), carrier=carrier or None), self.session, self.host,
                           lambda _row: None)
            await job.first_pass()
            for state in job.codes:
                if state.tracking is not None and not state.failed:
                    fresh[state.code] = scan_of(state.tracking)
                else:
                    self.host.warn(f"{state.code}: {state.error_code}: {state.error_message}; not tracked")
                    scans[state.code] = None
        scans.update(fresh)
        report = summarise(labels, scans)
        report.cached, report.tracked = cached, self.session.stats.total or 0
        if self.cache is not None:
            self.cache.put(scope, fresh)
            report.cache_error = self.cache.write_error
        return report
