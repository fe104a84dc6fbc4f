"""`shipctl report`: what the journals say was bought and spent, grouped by day, week, month, carrier or service.

Local only: no API call. The journals are the ones `create` wrote on this machine (every journal a claim names,
`claims.known_journals`) or the ones given. Each is attached read-only (`mode=ro`), so a `create` running on it
is never held up, and its bought and failed rows are copied into one in-memory table: the same shipment found in
two journals (a second run adopts a label the first bought) is counted once, from the copy that knows the most
(a refund asked for beats none). Everything after that is SQL over that table: sums in integer cents, the median
from window functions; Python only turns the few group rows into `Decimal` amounts.

What the journal does not store cannot be reported: it keeps one time per row, `updated_at`, its last change
(README, "shipctl report", says which changes move it), and no retail or list rate, so there are no savings.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from shipctl.errors import UsageError

GroupBy = Literal["day", "week", "month", "carrier", "service"]
GROUP_BYS: tuple[GroupBy, ...] = ("day", "week", "month", "carrier", "service")

REPORT_FIELDS = (
    "section", "by", "group", "currency", "labels", "spend", "average", "median",
    "refunds", "refunded", "refunds_pending", "refund_pending", "failed",
)
"""One record's fields, in every machine format: `section` is `group`, `failed` (one per error code) or `total`."""

_CENT = Decimal("0.01")
# A group's key from the row's local day (worked out once per row, as it is copied in: 'localtime' is the
# costly part) or its rate. A week is named by its Monday.
_KEYS: dict[str, str] = {
    "day": "day",
    "week": "date(day, 'weekday 0', '-6 days')",
    "month": "substr(day, 1, 7)",
    "carrier": "COALESCE(carrier, '')",
    "service": "TRIM(COALESCE(carrier, '') || ' ' || COALESCE(service, ''))",
}
# A refund asked for (`submitted`) or done (`refunded`) voids the label: not spend. `rejected` and
# `not_applicable` leave it bought and paid for (as `create` and `labels` judge it).
_VOID = "(COALESCE(refund_status, '') IN ('submitted', 'refunded'))"

_TABLE = """
CREATE TABLE r (
    key           TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    carrier       TEXT,
    service       TEXT,
    cents         INTEGER,
    currency      TEXT NOT NULL,
    refund_status TEXT,
    error_code    TEXT,
    at            REAL,
    day           TEXT,
    updated_at    TEXT,
    rank          INTEGER NOT NULL
)
"""
# Rates are text ("7.80"): x*100 is within a rounding error of a whole number of cents, so ROUND makes it exact.
# `rank` picks which copy of a shipment found in several journals counts: a voided label over a bought one over a
# failed row, then the later change.
_COPY = """
INSERT INTO r
SELECT COALESCE(shipment_id, ? || char(31) || reference), state, carrier, service,
       CAST(ROUND(CAST(rate AS REAL) * 100) AS INTEGER),
       COALESCE(NULLIF(UPPER(TRIM(currency)), ''), 'USD'), refund_status, error_code,
       (julianday(updated_at) - 2440587.5) * 86400.0, date(updated_at, 'localtime'), updated_at,
       CASE WHEN state = 'failed' THEN 0 WHEN refund_status = 'refunded' THEN 3
            WHEN refund_status = 'submitted' THEN 2 ELSE 1 END
FROM j.rows WHERE state IN ('bought', 'failed')
ON CONFLICT (key) DO UPDATE SET
    state = excluded.state, carrier = excluded.carrier, service = excluded.service, cents = excluded.cents,
    currency = excluded.currency, refund_status = excluded.refund_status, error_code = excluded.error_code,
    at = excluded.at, day = excluded.day, updated_at = excluded.updated_at, rank = excluded.rank
WHERE excluded.rank > r.rank OR (excluded.rank = r.rank AND excluded.updated_at > r.updated_at)
"""


@dataclass(frozen=True)
class ReportQuery:
    journals: tuple[Path, ...] = ()
    """Given with `--journal`; empty: every journal the claims file names."""
    since: dt.date | None = None
    until: dt.date | None = None
    """Inclusive local days."""
    by: GroupBy = "day"
    also: tuple[GroupBy, ...] = ()
    """Other groupings to compute as well (the terminal's charts: per day and per carrier)."""


@dataclass(frozen=True)
class Group:
    """One group (or the total) in one currency."""

    by: str
    group: str
    currency: str
    labels: int
    """Labels bought, refunded ones included."""
    spend: Decimal
    """What the labels not refunded cost."""
    average: Decimal | None
    median: Decimal | None
    refunds: int
    refunded: Decimal
    """Labels refunded or with a refund asked for (`submitted`), and their cost: not spend."""
    refunds_pending: int
    refund_pending: Decimal
    """Of those, the ones still `submitted`: the money is not back yet."""

    def record(self, section: str = "group") -> dict[str, Any]:
        return {
            "section": section, "by": self.by, "group": self.group, "currency": self.currency,
            "labels": self.labels, "spend": self.spend, "average": self.average, "median": self.median,
            "refunds": self.refunds, "refunded": self.refunded, "refunds_pending": self.refunds_pending,
            "refund_pending": self.refund_pending, "failed": None,
        }


@dataclass
class Report:
    by: GroupBy
    groups: list[Group] = field(default_factory=list)
    totals: list[Group] = field(default_factory=list)
    """One per currency."""
    failed: list[tuple[str, int]] = field(default_factory=list)
    """Failed rows per error code, most first."""
    also: dict[str, list[Group]] = field(default_factory=dict)
    journals: list[Path] = field(default_factory=list)
    """The journals read."""
    skipped: list[Path] = field(default_factory=list)
    """The journals that are gone (or not readable as a journal)."""

    def records(self) -> list[dict[str, Any]]:
        """One record per group, then one per failure reason, then the totals (one per currency)."""
        out = [g.record() for g in self.groups]
        for code, count in self.failed:
            out.append({**dict.fromkeys(REPORT_FIELDS), "section": "failed", "by": "error_code", "group": code,
                        "failed": count})
        out.extend({**g.record("total"), "failed": sum(n for _, n in self.failed)} for g in self.totals)
        return out


def parse_date(text: str, flag: str, today: dt.date | None = None) -> dt.date:
    """`today`, `yesterday` or `YYYY-MM-DD`, a local day."""
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


def journals_to_read(given: Sequence[Path], state: Callable[[], Path]) -> list[Path]:
    """The given journals, else every journal `create` wrote on this machine; each once."""
    if given:
        return list(dict.fromkeys(Path(p).absolute() for p in given))
    from shipctl.claims import known_journals

    return known_journals(state())


def build_report(query: ReportQuery, journals: Sequence[Path]) -> Report:
    report = Report(query.by)
    db = sqlite3.connect("file:report?mode=memory", uri=True)
    try:
        db.execute(_TABLE)
        for number, path in enumerate(journals):
            if _copy(db, path, number):
                report.journals.append(path)
            else:
                report.skipped.append(path)
        where, params = _window(query.since, query.until)
        report.groups = _groups(db, query.by, where, params)
        report.totals = _groups(db, None, where, params)
        # The charts show spend alone: no median to sort for.
        report.also = {by: _groups(db, by, where, params, medians=False) for by in query.also if by != query.by}
        if query.by in query.also:
            report.also[query.by] = report.groups
        report.failed = [(str(code), int(n)) for code, n in db.execute(
            f"SELECT COALESCE(error_code, ''), COUNT(*) AS n FROM r WHERE state = 'failed' AND {where} "
            "GROUP BY 1 ORDER BY n DESC, 1", params,
        )]
    finally:
        db.close()
    return report


def _copy(db: sqlite3.Connection, path: Path, number: int) -> bool:
    """Copy one journal's bought and failed rows in; False when it is gone or is not a journal."""
    if not path.is_file():
        return False
    try:
        db.execute("ATTACH DATABASE ? AS j", (f"file:{quote(str(path.resolve()))}?mode=ro",))
    except sqlite3.DatabaseError:
        return False
    try:
        with db:
            db.execute(_COPY, (str(number),))
        return True
    except sqlite3.DatabaseError:  # not a journal (no `rows` table), or damaged
        return False
    finally:
        db.execute("DETACH DATABASE j")


def _window(since: dt.date | None, until: dt.date | None) -> tuple[str, tuple[float, ...]]:
    """The rows whose time falls on the local days from `since` to `until`, both included."""
    clauses, params = ["1"], []
    if since is not None:
        clauses.append("at >= ?")
        params.append(_midnight(since))
    if until is not None:
        clauses.append("at < ?")
        params.append(_midnight(until + dt.timedelta(days=1)))
    return " AND ".join(clauses), tuple(params)


def _midnight(day: dt.date) -> float:
    # Local midnight as the OS knows it (a DST day is 23 or 25 hours long), as SQLite's 'localtime' does.
    return dt.datetime.combine(day, dt.time()).astimezone().timestamp()


def _groups(db: sqlite3.Connection, by: GroupBy | None, where: str, params: tuple[float, ...], *,
            medians: bool = True) -> list[Group]:
    key = _KEYS[by] if by is not None else "'total'"
    paid = f"cents IS NOT NULL AND NOT {_VOID}"
    rows = db.execute(
        f"SELECT {key} AS g, currency, COUNT(*), COALESCE(SUM(CASE WHEN {paid} THEN cents END), 0), "
        f"COUNT(CASE WHEN {paid} THEN 1 END), SUM({_VOID}), COALESCE(SUM(CASE WHEN {_VOID} THEN cents END), 0), "
        "SUM(refund_status = 'submitted'), COALESCE(SUM(CASE WHEN refund_status = 'submitted' THEN cents END), 0) "
        f"FROM r WHERE state = 'bought' AND {where} GROUP BY g, currency ORDER BY g, currency", params,
    ).fetchall()
    middles = _medians(db, key, where, params) if medians else {}
    groups = []
    for g, currency, labels, spend, priced, refunds, refunded, pending, pending_cents in rows:
        middle, halves = middles.get((g, currency), (0, 0))
        groups.append(Group(
            by=by or "total", group=str(g), currency=currency, labels=labels, spend=_money(spend),
            average=(_money(spend) / priced).quantize(_CENT, ROUND_HALF_UP) if priced else None,
            median=_money(middle) / halves if halves else None,
            refunds=int(refunds or 0), refunded=_money(refunded),
            refunds_pending=int(pending or 0), refund_pending=_money(pending_cents),
        ))
    return groups


def _medians(db: sqlite3.Connection, key: str, where: str,
             params: tuple[float, ...]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per group: the cents of its middle label (or of its two middle ones, for an even count) and how many.

    The labels that cost money are sorted once into a table numbered in that order; each group's middle rows are
    then found by number. SQLite's window functions take about twice as long for the same answer."""
    db.execute("DROP TABLE IF EXISTS temp.m")
    db.execute("CREATE TEMP TABLE m (i INTEGER PRIMARY KEY, g TEXT, currency TEXT, cents INTEGER)")
    db.execute(
        f"INSERT INTO m (g, currency, cents) SELECT {key}, currency, cents FROM r "
        f"WHERE state = 'bought' AND cents IS NOT NULL AND NOT {_VOID} AND {where} ORDER BY 1, 2, 3", params,
    )
    found = {(g, currency): (int(total), int(n)) for g, currency, total, n in db.execute(
        "WITH k AS (SELECT g, currency, MIN(i) AS lo, COUNT(*) AS n FROM m GROUP BY g, currency) "
        "SELECT k.g, k.currency, SUM(m.cents), COUNT(*) FROM k JOIN m ON m.i IN (k.lo + (k.n - 1) / 2, k.lo + k.n / 2) "
        "GROUP BY k.g, k.currency"
    )}
    db.execute("DROP TABLE temp.m")
    return found


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(_CENT)
