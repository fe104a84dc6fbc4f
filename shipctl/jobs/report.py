"""`shipctl report`: what the journals say was bought and spent, grouped by day, week, month, carrier or service.

Local only: no API call. The journals are the ones `create` opened on this machine (the claims file's journal
index and every journal a claim names, `claims.known_journals`) or the ones given. Each is attached read-only
(`mode=ro`), so a `create` running on it is never held up, and its bought and failed rows are copied into one
in-memory table, every per-row value (the group's key, the local day, cents, void or not) worked out once as they go
in. The same shipment found in several journals (a second run adopts a label the first bought) is counted once
(`_merge_repeats`); only ids that actually repeat are touched. Then one index, by group, currency, kind and cents,
is the report's one sort: the group sums are read along it and each median is found in it by position; the totals
are the groups' sums. Python only folds the few group rows and turns them into `Decimal` amounts.

Each journal's labels are test or production money (`journal_mode`: its meta `mode`, else its target; the built-in
sandbox is test), and everything is grouped and totalled per mode as it is per currency: test spend is never added
to production spend.

A label's time is the journal's `bought_at` (set once, when the row was first recorded bought; a later refund or
label save does not move it), or in a journal older than that column its last change, `updated_at`.

Savings: the journal keeps EasyPost's `retail_rate` and `list_rate` of the chosen rate where the API's answer carried
them (journals older than those columns, and rows journaled before them, have none). A group's `retail` (`list`) is
their sum over its paid labels that carried one, and `savings_vs_retail` (`savings_vs_list`) that sum less what those
same labels cost: a label without the price is left out of both sides, never counted as saving nothing. None (not
zero) when no paid label in the group carried it. Refunded labels are not spend, so they save nothing either.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from shipctl import startup
from shipctl.errors import UsageError
from shipctl.journal import RATE_PRICES, bought_time_sql, sqlite_or_empty
from shipctl.sqlite_writes import read_only_uri

GroupBy = Literal["day", "week", "month", "carrier", "service"]
GROUP_BYS: tuple[GroupBy, ...] = ("day", "week", "month", "carrier", "service")

REPORT_FIELDS = (
    "section", "by", "group", "currency", "labels", "spend", "average", "median",
    "refunds", "refunded", "refunds_pending", "refund_pending", "failed",
    "retail_labels", "retail", "savings_vs_retail", "list_labels", "list", "savings_vs_list", "insurance", "mode",
)
"""One record's fields, in every machine format: `section` is `group`, `failed` (one per error code) or `total`.
Fields added later come last (the savings, `insurance`, `mode`), so readers of the columns before them by
position are unaffected."""

Mode = Literal["production", "test"]
MODES: tuple[Mode, ...] = ("production", "test")
"""Spend is never added across modes, as it is never added across currencies: a test key's labels (the built-in
sandbox's included) cost nothing real."""

_CENT = Decimal("0.01")
# A group's key from the row's local day (worked out once per row, as it is copied in: 'localtime' is the
# costly part) or its rate. A week is named by its Monday.
_KEYS: dict[str, str] = {
    "day": "{day}",
    "week": "date({day}, 'weekday 0', '-6 days')",
    "month": "substr({day}, 1, 7)",
    "carrier": "COALESCE({carrier}, '')",
    "service": "TRIM(COALESCE({carrier}, '') || ' ' || COALESCE({service}, ''))",
}
_DAYS = frozenset({"day", "week", "month"})

# `kind`, decided once per row as it is copied in: a label that cost money (0), one refunded (1) or with a refund
# asked for (2) -- voided, not spend -- one bought at no known price (3), a failed row (-1). `rejected` and
# `not_applicable` refunds leave the label bought and paid for (as `create` and `labels` judge it).
_PAID, _REFUNDED, _PENDING, _UNPRICED, _FAILED = 0, 1, 2, 3, -1

_TABLE = """
CREATE TABLE r (
    kind          INTEGER NOT NULL,
    g             TEXT,
    currency      TEXT NOT NULL,
    cents         INTEGER,
    carrier       TEXT,
    service       TEXT,
    day           TEXT,
    at            REAL,
    error_code    TEXT,
    sid           TEXT,
    t             TEXT,
    retail        INTEGER,
    list          INTEGER,
    fee           INTEGER,
    mode          TEXT NOT NULL
)
"""
# Rates are text ("7.80"): x*100 is within a rounding error of a whole number of cents, so ROUND makes it exact.
# {t} is the row's purchase time (`bought_at`, else `updated_at` in a journal older than that column). {day} and
# {at} are worked out only when something needs them, and {sid} and {t} (what merges a label found in several
# journals) only when there are several: NULL otherwise, as every value copied costs. The usual currency is
# recognised before it is normalised, for the same reason.
_COPY = """
INSERT INTO r
SELECT kind, {g}, currency, cents, {carrier}, {service}, {day_column}, at, error_code, sid, t, retail, list, fee,
       :mode
FROM (
    SELECT CASE WHEN state = 'failed' THEN -1 WHEN refund_status = 'refunded' THEN 1
                WHEN refund_status = 'submitted' THEN 2 WHEN rate IS NULL THEN 3 ELSE 0 END AS kind,
           CASE currency WHEN 'USD' THEN 'USD' ELSE COALESCE(NULLIF(UPPER(TRIM(currency)), ''), 'USD') END
               AS currency,
           CAST(ROUND(CAST(rate AS REAL) * 100) AS INTEGER) AS cents, carrier, service,
           {day} AS day, {at} AS at, error_code, {sid} AS sid, {t} AS t, {retail} AS retail, {list} AS list,
           CASE WHEN COALESCE(NULLIF(UPPER(TRIM(currency)), ''), 'USD') = 'USD' THEN
               (SELECT CAST(ROUND(CAST(NULLIF(TRIM(value), '') AS REAL) * 100) AS INTEGER) FROM j.meta
                WHERE key = 'insurance_fee:' || reference) END AS fee
    FROM j.rows WHERE state IN ('bought', 'failed')
) WHERE {window}
"""
_DAY = "date({t}, 'localtime')"
# A price the journal may hold (`retail_rate`, `list_rate`), in cents; blank is absent, not zero.
_PRICE = "CAST(ROUND(CAST(NULLIF(TRIM({column}), '') AS REAL) * 100) AS INTEGER)"
_AT = "(julianday({t}) - 2440587.5) * 86400.0"


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
    retail_labels: int = 0
    retail_total: Decimal | None = None
    savings_vs_retail: Decimal | None = None
    """The paid labels whose rate carried EasyPost's `retail_rate`, those retail prices added up, and that less what
    the same labels cost. None when no paid label carried one."""
    list_labels: int = 0
    list_total: Decimal | None = None
    savings_vs_list: Decimal | None = None
    """The same against `list_rate`."""
    insurance: Decimal | None = None
    """The insurance fees the paid labels were charged besides their rates (USD, as EasyPost bills them; journaled
    from its answers since shipctl kept them), not in `spend`. None when no paid label carried one."""
    mode: Mode = "production"
    """Whose money: `production`, or `test` (a test key, the built-in sandbox: nothing real was spent)."""
    sums: tuple[int, ...] = field(default=(), repr=False, compare=False)
    """The same in whole cents, as summed (labels, spend, priced, refunds, refunded, pending, pending cents, then
    per price: labels carrying it, its sum, what those labels cost; then the paid labels charged an insurance fee,
    and those fees)."""
    middle: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)
    """The cents of the middle label (or of the two middle ones added) and how many: the median's parts."""

    def record(self, section: str = "group") -> dict[str, Any]:
        return {
            "section": section, "by": self.by, "group": self.group, "currency": self.currency,
            "labels": self.labels, "spend": self.spend, "average": self.average, "median": self.median,
            "refunds": self.refunds, "refunded": self.refunded, "refunds_pending": self.refunds_pending,
            "refund_pending": self.refund_pending, "failed": None,
            "retail_labels": self.retail_labels, "retail": self.retail_total,
            "savings_vs_retail": self.savings_vs_retail,
            "list_labels": self.list_labels, "list": self.list_total, "savings_vs_list": self.savings_vs_list,
            "insurance": self.insurance, "mode": self.mode,
        }


@dataclass
class Report:
    by: GroupBy
    groups: list[Group] = field(default_factory=list)
    totals: list[Group] = field(default_factory=list)
    """One per mode and currency, production first."""
    failed: list[tuple[Mode, str, int]] = field(default_factory=list)
    """Failed rows per mode and error code, most first in each mode."""
    also: dict[str, list[Group]] = field(default_factory=dict)
    journals: list[Path] = field(default_factory=list)
    """The journals read."""
    skipped: list[Path] = field(default_factory=list)
    """The journals that are gone (or not readable as a journal)."""

    def records(self) -> list[dict[str, Any]]:
        """One record per group, then one per failure reason, then the totals (one per mode and currency)."""
        out = [g.record() for g in self.groups]
        for mode, code, count in self.failed:
            out.append({**dict.fromkeys(REPORT_FIELDS), "section": "failed", "by": "error_code", "group": code,
                        "failed": count, "mode": mode})
        out.extend({**g.record("total"), "failed": sum(n for m, _, n in self.failed if m == g.mode)}
                   for g in self.totals)
        return out

    def modes(self) -> list[Mode]:
        """The modes with labels or failed rows, production first."""
        found = {g.mode for g in self.groups} | {mode for mode, _, _ in self.failed}
        return [m for m in MODES if m in found]

    def of_mode(self, mode: Mode) -> Report:
        """This report's part for one mode: what a table per mode shows."""
        return Report(
            self.by, groups=[g for g in self.groups if g.mode == mode],
            totals=[t for t in self.totals if t.mode == mode],
            failed=[f for f in self.failed if f[0] == mode],
            also={by: [g for g in groups if g.mode == mode] for by, groups in self.also.items()},
            journals=self.journals, skipped=self.skipped,
        )


def journals_to_read(given: Sequence[Path], state: Callable[[], Path]) -> list[Path]:
    """The given journals, else every journal `create` wrote on this machine; each once."""
    if given:
        return list(dict.fromkeys(Path(p).absolute() for p in given))
    from shipctl.claims import known_journals

    return known_journals(state())


def build_report(query: ReportQuery, journals: Sequence[Path], *, given: bool = False) -> Report:
    """Each journal's bought and failed rows are copied once into one in-memory table, every per-row value (the
    group's key, the local day, cents, void or not) worked out as they go in. A shipment in more than one journal
    is merged only where one actually repeats. Then one index, (group, currency, kind, cents), is the only sort
    the grouping needs: the group sums are read along it, and each group's median is found in it by position. The
    totals are the groups' sums; the total median merges the groups' runs read along that index.

    A journal that cannot be read is skipped (`Report.skipped`) when it was found, and a `UsageError` naming it
    when `given`: a person who names a file expects it reported on, not a note and an empty report, exit 0."""
    startup.work_begins()
    report = Report(query.by)
    db = sqlite3.connect(":memory:")
    try:
        db.execute(_TABLE)
        lo, hi = _bounds(query.since, query.until)
        # The columns the charts' groupings are made of, beyond the report's own key.
        parts = {part for by in query.also if by != query.by for part in _PARTS[by]}
        # With one journal nothing can repeat, so the window is applied as the rows are read; with several, a
        # copy outside it can still decide a repeated label (a refund recorded by the run that adopted it).
        several = len(journals) > 1
        timed = lo is not None or hi is not None
        for path in journals:
            why = _copy(db, path, query.by, parts=parts, timed=timed, several=several,
                        window=(None, None) if several else (lo, hi))
            if why is None:
                report.journals.append(path)
            elif given:
                raise UsageError(f"journal {path} {why}")
            else:
                report.skipped.append(path)
        if len(report.journals) > 1:
            _merge_repeats(db, query.by)
        if several and timed:  # copied whole: the window is applied now
            with db:
                db.execute("DELETE FROM r WHERE NOT (" + _window_sql(lo, hi, "at") + ")")
        report.groups = _groups(db, query.by)
        report.totals = _totals(db, report.groups)
        # The charts show spend alone: no median to find.
        report.also = _spend(db, [by for by in dict.fromkeys(query.also) if by != query.by])
        if query.by in query.also:
            report.also[query.by] = report.groups
        report.failed = [(_mode(mode), str(code), int(n)) for mode, code, n in db.execute(
            f"SELECT mode, COALESCE(error_code, ''), COUNT(*) AS n FROM r WHERE kind = {_FAILED} "
            "GROUP BY 1, 2 ORDER BY mode = 'test', n DESC, 2",
        )]
    finally:
        db.close()
    return report


def _copy(db: sqlite3.Connection, path: Path, by: GroupBy, *, parts: set[str], timed: bool, several: bool,
          window: tuple[float | None, float | None]) -> str | None:
    """Copy one journal's bought and failed rows in; None when done, else why not, in words that follow "journal
    PATH" (it is gone, or is not a journal)."""
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    try:
        db.execute("ATTACH DATABASE ? AS j", (read_only_uri(path),))
    except sqlite3.DatabaseError as exc:
        if not sqlite_or_empty(path):  # a CSV given by mistake: say what it is not, not SQLite's "not a database"
            return "is not a shipctl journal: it is not an SQLite database"
        return f"cannot be opened ({exc})"
    try:
        t = bought_time_sql(db, "j")
        columns = {str(row[1]) for row in db.execute("PRAGMA j.table_info(rows)")}
        # A journal older than the price columns is read as it is (read-only, never migrated): no prices, no savings.
        prices = {c: _PRICE.format(column=c) if c in columns else "NULL" for c in RATE_PRICES}
        sql = _COPY.format(
            retail=prices["retail_rate"], list=prices["list_rate"],
            g=_KEYS[by].format(day="day", carrier="carrier", service="service"), t=t if several else "NULL",
            day=_DAY.format(t=t) if by in _DAYS or "day" in parts else "NULL",
            day_column="day" if "day" in parts else "NULL", carrier="carrier" if "carrier" in parts else "NULL",
            service="service" if "service" in parts else "NULL",
            at=_AT.format(t=t) if timed else "NULL", sid="shipment_id" if several else "NULL",
            window=_window_sql(*window, "at"),
        )
        with db:
            db.execute(sql, {"mode": journal_mode(dict(db.execute(
                "SELECT key, value FROM j.meta WHERE key IN ('mode', 'target')"
            ).fetchall()))})
        return None
    except sqlite3.DatabaseError as exc:  # not a journal (no `rows` table), or damaged
        return f"is not a shipctl journal ({exc})"
    finally:
        db.execute("DETACH DATABASE j")


def _merge_repeats(db: sqlite3.Connection, by: GroupBy) -> None:
    """A shipment found in several journals (a second run adopted a label the first bought) counts once: as the
    copy that knows the most (a refund done over one asked for over none, over a failed row; then the one recorded
    later), at the earliest time any copy recorded it bought (the purchase; an adopting run records it later).

    Only the ids that repeat are touched: found by a set over the ids, not by sorting the table."""
    # One string split here costs half of fetching the ids row by row. A shipment id has no control characters.
    joined = db.execute("SELECT group_concat(sid, char(31)) FROM r WHERE sid IS NOT NULL").fetchone()[0]
    ids = joined.split("\x1f") if joined else []
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    repeats = [(sid,) for sid in {sid for sid in ids if sid in seen or seen.add(sid)}]  # type: ignore[func-returns-value]
    rank = {_FAILED: 0, _PAID: 1, _UNPRICED: 1, _PENDING: 2, _REFUNDED: 3}
    with db:
        db.execute("CREATE TEMP TABLE d (sid TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO d VALUES (?)", repeats)
        copies: dict[str, list[tuple[int, float, int, str]]] = {}
        prices: dict[str, list[int | None]] = {}
        for rowid, sid, kind, when, t, retail, listed in db.execute(
            "SELECT rowid, sid, kind, COALESCE(julianday(t), 0), t, retail, list FROM r WHERE sid IN d"
        ):
            copies.setdefault(sid, []).append((rank[kind], when, rowid, t))
            known = prices.setdefault(sid, [None, None])
            known[0] = known[0] if known[0] is not None else retail
            known[1] = known[1] if known[1] is not None else listed
        for sid, found in copies.items():
            best = max(found)
            db.executemany("DELETE FROM r WHERE rowid = ?", ((c[2],) for c in found if c is not best))
            # The run that adopted a label journals no retail or list price: the run that chose the rate did.
            db.execute("UPDATE r SET retail = COALESCE(retail, ?), list = COALESCE(list, ?) WHERE rowid = ?",
                       (*prices[sid], best[2]))
            bought = [(c[1], c[3]) for c in found if c[0] > 0 and c[1]]
            if best[0] > 0 and bought:
                t = min(bought)[1]
                day = _DAY.format(t="?1")
                key = _KEYS[by].format(day=day) if by in _DAYS else "g"
                db.execute(
                    f"UPDATE r SET t = ?1, g = {key}, day = CASE WHEN day IS NULL THEN NULL ELSE {day} END, "
                    f"at = CASE WHEN at IS NULL THEN NULL ELSE {_AT.format(t='?1')} END WHERE rowid = ?2",
                    (t, best[2]),
                )
        db.execute("DROP TABLE temp.d")


def _bounds(since: dt.date | None, until: dt.date | None) -> tuple[float | None, float | None]:
    """The local days from `since` to `until`, both included, as epoch seconds [lo, hi)."""
    return (None if since is None else _midnight(since),
            None if until is None else _midnight(until + dt.timedelta(days=1)))


def _window_sql(lo: float | None, hi: float | None, column: str) -> str:
    # Numbers this module worked out, written as literals (repr of a float reads back exactly).
    clauses = ["1"]
    if lo is not None:
        clauses.append(f"{column} >= {lo!r}")
    if hi is not None:
        clauses.append(f"{column} < {hi!r}")
    return " AND ".join(clauses)


def _midnight(day: dt.date) -> float:
    # Local midnight as the OS knows it (a DST day is 23 or 25 hours long), as SQLite's 'localtime' does.
    return dt.datetime.combine(day, dt.time()).astimezone().timestamp()


def _groups(db: sqlite3.Connection, by: GroupBy) -> list[Group]:
    # The one sort: afterwards the sums are read along the index in order (per kind, folded here: fewer sums for
    # SQLite to work out per row) and each median is a seek into it.
    # The prices ride along at the index's end, so the sums still need nothing but the index.
    db.execute(f"CREATE INDEX rg ON r (mode, g, currency, kind, cents, retail, list, fee) WHERE kind >= {_PAID}")
    found: dict[tuple[str, str, str], list[int]] = {}
    for mode, g, currency, kind, n, cents, *prices in db.execute(
        f"SELECT mode, g, currency, kind, COUNT(*), COALESCE(SUM(cents), 0), {_PRICE_SUMS} FROM r INDEXED BY rg "
        f"WHERE kind >= {_PAID} GROUP BY mode, g, currency, kind"
    ):
        _fold(found.setdefault((mode, str(g), currency), [0] * _SUMS), kind, n, cents, *prices)
    where = f"mode = ? AND g = ? AND currency = ? AND kind >= {_PAID}"
    return [_group(by, g, currency, sums, _median(db, where, (mode, g, currency), sums[2], "rg"), _mode(mode))
            for (mode, g, currency), sums in sorted(found.items(), key=_production_first)]


# Per price (retail, list): the labels carrying it, its sum, and what those same labels cost; in cents.
_PRICE_SUMS = ", ".join(
    f"COUNT({p}), COALESCE(SUM({p}), 0), COALESCE(SUM(CASE WHEN {p} IS NOT NULL THEN cents END), 0)"
    for p in ("retail", "list")
) + ", COUNT(fee), COALESCE(SUM(fee), 0)"  # then the insurance fees the paid labels were charged (USD)
_SUMS = 15
"""How many sums a group keeps (`Group.sums`)."""


def _fold(sums: list[int], kind: int, n: int, cents: int, *prices: int) -> None:
    """Add one kind's count and cents to a group's (labels, spend, priced, refunds, refunded, pending, pending
    cents), and for paid labels their `_PRICE_SUMS`."""
    sums[0] += n
    if kind == _PAID:
        sums[1] += cents
        sums[2] += n
        for i, value in enumerate(prices):
            sums[7 + i] += int(value)
    elif kind in (_REFUNDED, _PENDING):
        sums[3] += n
        sums[4] += cents
        if kind == _PENDING:
            sums[5] += n
            sums[6] += cents


def _totals(db: sqlite3.Connection, groups: list[Group]) -> list[Group]:
    """One per mode and currency: the groups' sums added up, and the median of all their paid labels."""
    per: dict[tuple[str, str, str], list[int]] = {}
    for g in groups:
        sums = per.setdefault((g.mode, "total", g.currency), [0] * _SUMS)
        for i, value in enumerate(g.sums):
            sums[i] += value
    out = []
    for (mode, _, currency), sums in sorted(per.items(), key=_production_first):
        alone = [g for g in groups if g.currency == currency and g.mode == mode]
        middle = alone[0].middle if len(alone) == 1 else _merged_median(db, mode, currency, sums[2])
        out.append(_group("total", "total", currency, sums, middle, _mode(mode)))
    return out


def _production_first(item: tuple[tuple[str, str, str], list[int]]) -> tuple[bool, str, str]:
    (mode, g, currency), _ = item
    return mode == "test", g, currency


def _mode(value: object) -> Mode:
    return "test" if value == "test" else "production"


def journal_mode(meta: dict[str, str]) -> Mode:
    """Whose money a journal's labels cost, from its meta: the mode its first run settled (a production key, else
    the API's answers), else its target's (the built-in sandbox, or the key's mode in the target's name: a
    journal that bought nothing yet). Unknown is production: money that may be real is never hidden as a test's."""
    mode = meta.get("mode")
    if mode in MODES:
        return _mode(mode)
    target = meta.get("target") or ""
    return "test" if target == "sandbox" or target.endswith("(test key)") else "production"


def _merged_median(db: sqlite3.Connection, mode: str, currency: str, n: int) -> tuple[int, int]:
    """The median of a currency's paid labels across its groups, from the groups' index: read along it, they come
    as one run in cents order per group, and merging sorted runs (Python's sort finds and merges them) is no
    second full sort."""
    if not n:
        return 0, 0
    cents = [c for (c,) in db.execute(  # `kind >= 0` as the partial index says it, so SQLite may use it
        f"SELECT cents FROM r INDEXED BY rg WHERE mode = ? AND currency = ? AND kind >= {_PAID} AND kind = {_PAID}",
        (mode, currency),
    )]
    cents.sort()
    middle = cents[(n - 1) // 2: n // 2 + 1]
    return sum(middle), len(middle)


def _spend(db: sqlite3.Connection, bys: Sequence[GroupBy]) -> dict[str, list[Group]]:
    """Groupings for the charts, the sums alone: one pass sums by every column a key is made of (a few hundred
    rows: days times services), and each grouping adds those up."""
    if not bys:
        return {}
    columns = [c for c in ("day", "carrier", "service") if any(c in _PARTS[by] for by in bys)]
    folded: dict[str, dict[tuple[str, str, str], list[int]]] = {by: {} for by in bys}
    for mode, *parts, currency, kind, n, cents in db.execute(
        f"SELECT mode, {', '.join(columns)}, currency, kind, COUNT(*), COALESCE(SUM(cents), 0) FROM r "
        f"WHERE kind >= {_PAID} GROUP BY mode, {', '.join(columns)}, currency, kind"
    ):
        row = dict(zip(columns, parts, strict=True))
        for by in bys:
            _fold(folded[by].setdefault((mode, _key(by, row), currency), [0] * _SUMS), kind, n, cents)
    return {by: [_group(by, g, currency, sums, (0, 0), _mode(mode))
                 for (mode, g, currency), sums in sorted(groups.items(), key=_production_first)]
            for by, groups in folded.items()}


# What each key is made of, and the key in Python: as `_KEYS` makes it in SQL.
_PARTS: dict[str, tuple[str, ...]] = {
    "day": ("day",), "week": ("day",), "month": ("day",), "carrier": ("carrier",), "service": ("carrier", "service"),
}


def _key(by: GroupBy, row: dict[str, str | None]) -> str:
    day = row.get("day") or ""
    if by == "day":
        return day
    if by == "week":
        return "" if not day else (dt.date.fromisoformat(day) - dt.timedelta(
            days=dt.date.fromisoformat(day).weekday())).isoformat()
    if by == "month":
        return day[:7]
    if by == "carrier":
        return row.get("carrier") or ""
    return f"{row.get('carrier') or ''} {row.get('service') or ''}".strip(" ")


def _median(db: sqlite3.Connection, where: str, params: tuple[str, ...], n: int, index: str) -> tuple[int, int]:
    """The cents of the middle paid label of those `where` picks (of the two middle ones, for an even count) and
    how many were added: found by position along `index`, which holds them in cents order."""
    if not n:
        return 0, 0
    halves = 2 - n % 2
    found = db.execute(
        f"SELECT SUM(cents), COUNT(*) FROM (SELECT cents FROM r INDEXED BY {index} WHERE {where} AND kind = {_PAID} "
        "ORDER BY cents LIMIT ? OFFSET ?)", (*params, halves, (n - 1) // 2),
    ).fetchone()
    return int(found[0]), int(found[1])


def _group(by: str, g: object, currency: str, sums: Sequence[int | None], middle: tuple[int, int],
           mode: Mode = "production") -> Group:
    labels, spend, priced, refunds, refunded, pending, pending_cents, *prices = (int(v or 0) for v in sums)
    prices += [0] * (_SUMS - 7 - len(prices))
    retail_n, retail, retail_paid, list_n, listed, list_paid, insured, fees = prices
    return Group(
        by=by, group=str(g), currency=currency, labels=labels, spend=_money(spend),
        average=(_money(spend) / priced).quantize(_CENT, ROUND_HALF_UP) if priced else None,
        median=(_money(middle[0]) / middle[1]).quantize(_CENT, ROUND_HALF_UP) if middle[1] else None,
        refunds=refunds, refunded=_money(refunded), refunds_pending=pending, refund_pending=_money(pending_cents),
        retail_labels=retail_n, retail_total=_money(retail) if retail_n else None,
        savings_vs_retail=_money(retail - retail_paid) if retail_n else None,
        list_labels=list_n, list_total=_money(listed) if list_n else None,
        savings_vs_list=_money(listed - list_paid) if list_n else None,
        insurance=_money(fees) if insured else None, mode=mode,
        sums=(labels, spend, priced, refunds, refunded, pending, pending_cents, *prices), middle=middle,
    )


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(_CENT)
