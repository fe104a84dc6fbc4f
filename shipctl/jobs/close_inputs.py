"""What `close` works on: the day, the pickup window, and the shipments bought on this machine.

"Today" is the machine's local calendar day (its time zone, `TZ` included): a label belongs to day D when the
API says it was bought (`postage_label.created_at`) at or after D 00:00 and before D+1 00:00 local time. The
claims file names every reference bought for a scope, with the time its claim last changed (never before the
purchase): the candidates are those changed since D 00:00, and the API's purchase time then decides.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shipctl.claims import bought_since
from shipctl.errors import UsageError

_WINDOW = re.compile(r"(?:(?P<day>\S+)\s+)?(?P<start>\d{1,2}:\d\d)\s*-\s*(?P<end>\d{1,2}:\d\d)")
DEFAULT_WINDOW = "next-business-day 09:00-17:00"


DAY_WORDS = ("today", "yesterday")
"""The days `parse_date` takes by name (`reconcile --since/--until` too)."""


def parse_date(text: str, flag: str, today: dt.date | None = None) -> dt.date:
    """`today`, `yesterday` or `YYYY-MM-DD`, a local day (`close --date`, `report --since/--until`)."""
    today = today or dt.date.today()
    word = text.strip().lower()
    if word == "today":
        return today
    if word == "yesterday":
        return today - dt.timedelta(days=1)
    try:
        return dt.date.fromisoformat(word)
    except ValueError:
        raise UsageError(f"{flag} must be today, yesterday or YYYY-MM-DD, not {text!r}") from None


def parse_day(text: str, today: dt.date | None = None) -> dt.date:
    """`close --date`: see `parse_date`."""
    return parse_date(text, "--date", today)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight to the next local midnight, as aware times (a DST day is 23 or 25 hours long)."""
    start = dt.datetime.combine(day, dt.time()).astimezone()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).astimezone()
    return start, end


def next_business_day(today: dt.date) -> dt.date:
    """The next Monday to Friday after `today` (carriers' holidays are not known here)."""
    day = today + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class PickupWindow:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, text: str, now: dt.datetime | None = None) -> PickupWindow:
        """`[DAY ]HH:MM-HH:MM`, local time; DAY is `today`, `tomorrow`, `next-business-day` (the default) or a
        date. The window must end after it starts, and in the future."""
        now = now or dt.datetime.now().astimezone()
        found = _WINDOW.fullmatch(text.strip())
        if found is None:
            raise UsageError(f"--pickup-window must look like '{DEFAULT_WINDOW}', not {text!r}")
        day = _window_day(found["day"], now.date())
        start, end = (_at(day, found[part], text) for part in ("start", "end"))
        if end <= start:
            raise UsageError(f"--pickup-window {text!r} ends before it starts")
        if end <= now:
            raise UsageError(f"--pickup-window {text!r} is over already")
        return cls(start, end)

    def iso(self) -> tuple[str, str]:
        return self.start.isoformat(timespec="seconds"), self.end.isoformat(timespec="seconds")


def _window_day(word: str | None, today: dt.date) -> dt.date:
    name = (word or "next-business-day").lower()
    if name == "next-business-day":
        return next_business_day(today)
    if name == "tomorrow":
        return today + dt.timedelta(days=1)
    if name == "today":
        return today
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        raise UsageError(
            f"--pickup-window's day must be today, tomorrow, next-business-day or YYYY-MM-DD, not {word!r}"
        ) from None


def _at(day: dt.date, hhmm: str, text: str) -> dt.datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    try:
        return dt.datetime.combine(day, dt.time(hour, minute)).astimezone()
    except ValueError:
        raise UsageError(f"--pickup-window {text!r}: {hhmm} is not a time of day") from None


# -- candidates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    shipment_id: str
    reference: str | None
    sent_at: dt.datetime | None = None
    """When this machine last sent a buy for it (the claims' record); the API's purchase time comes first."""


def from_claims(directory: Path, scope: str, since: dt.datetime) -> list[Candidate]:
    return [
        Candidate(c.shipment_id, c.reference,
                  None if c.buy_sent_at is None else dt.datetime.fromtimestamp(c.buy_sent_at, dt.timezone.utc))
        for c in bought_since(directory, scope, since)
    ]


def require_journals(paths: Sequence[Path]) -> None:
    """Before the API is started: a journal that is not there is a typo, not an empty day."""
    for path in paths:
        if not path.is_file():
            raise UsageError(f"journal {path} does not exist")


def from_journal(path: Path, identity: str, account: str) -> list[Candidate]:
    """A `create` journal's rows with a shipment (`created` ones too: the buy may have landed before a crash; the
    API says whether it did). Read without its lock: a `create` still running on it is not stopped by `close`."""
    try:
        db = sqlite3.connect(str(path), timeout=30.0)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute(
                "SELECT reference, shipment_id FROM rows WHERE shipment_id IS NOT NULL "
                "AND state IN ('bought', 'created') ORDER BY line, reference"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"journal {path} is not usable: {exc}") from None
    _check_bound(path, meta, identity, account)
    return [Candidate(sid, ref) for ref, sid in rows]


def _check_bound(path: Path, meta: dict[str, str], identity: str, account: str) -> None:
    if meta.get("target") not in (None, identity):
        raise UsageError(f"journal {path} records purchases made against {meta['target']}, but this run targets "
                         f"{identity}; nothing was closed")
    if meta.get("account") not in (None, account):
        raise UsageError(f"journal {path} records purchases of account {meta['account']}, but this key belongs to "
                         f"account {account}; nothing was closed")
