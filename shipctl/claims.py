"""Reference claims: "never twice" on this machine, whatever the journal.

A journal knows only its own runs. Two copies of one export, a symlink, stdin, `--fresh` or a `--failed` file
each get a journal of their own, so the journal alone cannot stop two of them buying the same order. The
claims file (`claims.sqlite3` under the state directory, one per user) can: before a run creates a shipment
for a reference, it claims `(scope, reference)` in one SQLite transaction. The scope is the key's mode and the
account the API names for the key (EasyPost's `user.retrieve_me`) -- not the URL, which can be spelt many ways
for one API -- so two client accounts of a 3PL never block each other and two spellings of one API never miss
each other.

A claim moves `claimed` -> `bought`, or is `released` when the row failed with nothing bought. Every shipment
a claim ever named is kept (`claim_shipments`), with the time a buy was last sent for it: a shipment is never
forgotten while a buy sent for it might still land. What a second run sees:

* `bought`: it adopts that label (retrieves the shipment and records it in its own journal), never buys.
* `claimed` by a run that is alive: the row is held by that run; it is not touched.
* `claimed` by a run that died (kill -9, a crash, a power cut), or `released`: the claim is taken over, and
  the taker reconciles every shipment ever made for the reference before it may make another -- buying the
  same shipment twice is refused by the API, so a buy the dead run sent just before it died cannot make a
  second label; a shipment that cannot be reused but had a buy sent recently makes the row wait. With the
  reference check on, a run also marks each create it sends (`create_marks`) until a shipment is attached: a
  taker then knows the shipment a create made whose answer the dead run never recorded (`Claim.creates`).

Whether a run is alive is told by an exclusive `flock` each run holds on `runs/<run id>.lock` while it runs:
the kernel drops it when the process dies, however it dies, and a reused pid cannot fake it. Only a lock file
that is gone, or that nobody holds, means dead; any other doubt means alive (a held row is safe, a doubled
label is not). Where `flock` does not exist (Windows), the run's pid is asked of the OS instead. The rule is
`shipctl.run_locks`, which `labels`' print claims share.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shipctl import run_locks
from shipctl.errors import ShipctlError
from shipctl.references import reference_key
from shipctl.run_locks import RunLock
from shipctl.sqlite_writes import open_read_only, open_wal, transaction, writing
from shipctl.stamps import utc_millis as _now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    scope       TEXT NOT NULL,
    reference   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'bought', 'released')),
    run_id      TEXT NOT NULL,
    pid         INTEGER,
    journal     TEXT,
    shipment_id TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (scope, reference)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claim_shipments (
    scope       TEXT NOT NULL,
    reference   TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    attached_at REAL NOT NULL,
    buy_sent_at REAL,
    PRIMARY KEY (scope, reference, shipment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS create_marks (
    scope       TEXT NOT NULL,
    reference   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    looked_at   REAL,
    first_sent  REAL NOT NULL,
    last_sent   REAL NOT NULL,
    PRIMARY KEY (scope, reference, run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journals (
    path        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (path, scope)
) WITHOUT ROWID;
"""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

Outcome = Literal["claimed", "held", "bought"]


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    """`claimed`: this run may ship the reference; `held`: a live run is shipping it, leave it alone;
    `bought`: it was bought as `shipment_id`, adopt that label."""
    shipment_id: str | None = None
    """The shipment the claim names now (the bought one, for `bought`)."""
    holder: str | None = None
    """Who holds it, for messages: `pid 123, journal /x/orders.csv.journal.db`."""
    history: tuple[tuple[str, float | None], ...] = field(default=())
    """Every shipment ever made for this reference, newest first, with the seconds since a buy was last sent
    for it (None: never). All must be reconciled before another shipment is made."""
    journal: str | None = None
    """The journal of the run that holds (or bought) it."""
    creates: tuple[CreateSent, ...] = field(default=())
    """Creates a run sent for this reference whose shipment no claim names yet (its answer was never recorded: the
    run was killed, or the create failed with its outcome unknown), for a taker to recognise that shipment."""


@dataclass(frozen=True)
class CreateSent:
    """A run sent `shipment.create` for a reference: for the row of which digest (`jobs.purchase.row_digest`), when
    its first and last attempts went out, and when its first look at the reference went out before them (epoch
    seconds, this machine's clock; None: no first look)."""

    digest: str
    looked_at: float | None
    first_sent: float
    last_sent: float


@dataclass(frozen=True)
class Sent:
    reference: str
    shipment_id: str
    before: float | None


class Claims:
    """This run's view of the claims file. Opened once per run; every method commits before it returns."""

    def __init__(self, directory: Path, *, journal: str) -> None:
        self.directory = directory
        self.journal = journal
        self.run_id = uuid.uuid4().hex
        self.scope: str | None = None
        self._db: sqlite3.Connection | None = None
        self._run_lock: RunLock | None = None
        self._dead: set[str] = set()
        # Named in every write's failure message: made once, not per transaction (several a row).
        self._what = f"the claims file {directory / 'claims.sqlite3'}"

    def open(self, scope: str) -> Claims:
        self.scope = scope
        self._run_lock = RunLock(self.directory / "runs", self.run_id)
        path = self.directory / "claims.sqlite3"
        try:
            if not path.exists():
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600))
            self._db = _connect(path)
            self._register_journal()
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            raise ShipctlError(f"the claims file {path} is not usable: {exc}") from None
        except BaseException:  # a full disk refusing the registration: no run lock left behind
            self.close()
            raise
        return self

    def _register_journal(self) -> None:
        """The journal index `report` and `reconcile` read: a claim names only the journal that last settled it,
        so a journal whose labels a later run adopted would otherwise never be found again."""
        if not self.journal:
            return
        now = _now()
        self._execute(
            "INSERT INTO journals (path, scope, first_seen, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (path, scope) DO UPDATE SET last_seen = excluded.last_seen",
            (self.journal, self.scope, now, now),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None or self.scope is None:
            raise RuntimeError("claims are not open")
        return self._db

    # -- the protocol ------------------------------------------------------------------------------------

    def claim(self, reference: str) -> Claim:
        """Claim `reference` for this run, or say who holds it (see the module docstring)."""
        reference = reference_key(reference)
        with self._transaction():
            row = self.db.execute(
                "SELECT state, run_id, pid, journal, shipment_id FROM claims WHERE scope = ? AND reference = ?",
                (self.scope, reference),
            ).fetchone()
            if row is None:
                self._write(reference, "claimed", None, insert=True)
                return Claim("claimed")
            state, run_id, pid, journal, shipment_id = row
            holder = f"pid {pid}, journal {journal}"
            history = self._history(reference)
            if state == "bought":
                return Claim("bought", shipment_id, holder, history, journal)
            if state == "claimed" and run_id != self.run_id and self._alive(run_id, pid):
                return Claim("held", shipment_id, holder, history, journal)
            # Released, ours already, or its run is dead: take it over. Its shipments must be reconciled (and, if
            # unbought, reused) rather than replaced.
            self._write(reference, "claimed", shipment_id)
            return Claim("claimed", shipment_id, holder, history, creates=self._creates(reference))

    def attach(self, reference: str, shipment_id: str) -> bool:
        """The shipment this run will buy for `reference`, committed before `buy` is called.

        False when the claim is no longer this run's (another run judged it dead): then nothing may be bought.
        """
        reference = reference_key(reference)
        with self._transaction():
            mine = self.db.execute(
                "UPDATE claims SET shipment_id = ?, updated_at = ? "
                "WHERE scope = ? AND reference = ? AND run_id = ? AND state = 'claimed'",
                (shipment_id, _now(), self.scope, reference, self.run_id),
            ).rowcount
            if mine:
                self.db.execute(
                    "INSERT INTO claim_shipments (scope, reference, shipment_id, attached_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING", (self.scope, reference, shipment_id, time.time()),
                )
                self._forget_creates(reference)
        return bool(mine)

    def creating(self, reference: str, digest: str, looked_at: float | None) -> None:
        """A `shipment.create` for `reference` (the row `digest`) is about to be sent (each attempt): marked first,
        so that if its answer is never recorded, whoever takes the claim over can tell the shipment it made
        (`Claim.creates`)."""
        reference = reference_key(reference)
        now = time.time()
        self._execute(
            "INSERT INTO create_marks (scope, reference, run_id, digest, looked_at, first_sent, last_sent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, reference, run_id) DO UPDATE SET "
            "last_sent = excluded.last_sent, digest = excluded.digest, "
            "looked_at = coalesce(create_marks.looked_at, excluded.looked_at)",
            (self.scope, reference, self.run_id, digest, looked_at, now, now),
        )

    def not_creating(self, reference: str) -> None:
        """No create this run sent for `reference` can have made a shipment (each was refused: a 429, a 4xx): its
        mark goes, so nothing is ever taken for what it made."""
        self._execute("DELETE FROM create_marks WHERE scope = ? AND reference = ? AND run_id = ?",
                      (self.scope, reference_key(reference), self.run_id))

    def buying(self, reference: str, shipment_id: str) -> Sent | None:
        """A buy of `shipment_id` is about to be sent: marked first, so a taker knows it may still land.

        None when the claim is no longer this run's: the buy must not be sent. Otherwise what to hand `refused`
        if the API definitely refuses it.
        """
        reference = reference_key(reference)
        with self._transaction():
            mine = self.db.execute(
                "SELECT 1 FROM claims WHERE scope = ? AND reference = ? AND run_id = ? AND state = 'claimed' "
                "AND shipment_id = ?", (self.scope, reference, self.run_id, shipment_id),
            ).fetchone()
            if not mine:
                return None
            before = self.db.execute(
                "SELECT buy_sent_at FROM claim_shipments WHERE scope = ? AND reference = ? AND shipment_id = ?",
                (self.scope, reference, shipment_id),
            ).fetchone()
            self.db.execute(
                "UPDATE claim_shipments SET buy_sent_at = ? WHERE scope = ? AND reference = ? AND shipment_id = ?",
                (time.time(), self.scope, reference, shipment_id),
            )
        return Sent(reference, shipment_id, before[0] if before else None)

    def refused(self, sent: Sent) -> None:
        """The API definitely refused our buy: it will not land, so the mark goes back to what it was before (a
        buy an earlier, dead run sent may still be in flight)."""
        self._execute(
            "UPDATE claim_shipments SET buy_sent_at = ? WHERE scope = ? AND reference = ? AND shipment_id = ?",
            (sent.before, self.scope, sent.reference, sent.shipment_id),
        )

    def settle(self, reference: str, shipment_id: str) -> None:
        """`reference` is bought as `shipment_id`: every later run adopts it. The truth, whoever holds the claim."""
        reference = reference_key(reference)
        with self._transaction():
            self.db.execute(
                "INSERT INTO claims (scope, reference, state, run_id, pid, journal, shipment_id, updated_at) "
                "VALUES (?, ?, 'bought', ?, ?, ?, ?, ?) ON CONFLICT (scope, reference) DO UPDATE SET "
                "state = 'bought', shipment_id = excluded.shipment_id, updated_at = excluded.updated_at",
                (self.scope, reference, self.run_id, os.getpid(), self.journal, shipment_id, _now()),
            )
            self.db.execute(
                "INSERT INTO claim_shipments (scope, reference, shipment_id, attached_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", (self.scope, reference, shipment_id, time.time()),
            )
            self._forget_creates(reference)

    def forget(self, reference: str, shipment_id: str | None) -> None:
        """A claimed purchase the API does not know (404: a wiped sandbox): the claim is stale."""
        reference = reference_key(reference)
        self._execute(
            "UPDATE claims SET state = 'released', updated_at = ? "
            "WHERE scope = ? AND reference = ? AND state = 'bought' AND shipment_id IS ?",
            (_now(), self.scope, reference, shipment_id),
        )

    def release(self, reference: str) -> None:
        """Nothing was bought for `reference` (a definite refusal): another run may try it (its shipments stay
        on record, to be reconciled by whoever claims it next)."""
        reference = reference_key(reference)
        self._execute(
            "UPDATE claims SET state = 'released', updated_at = ? "
            "WHERE scope = ? AND reference = ? AND run_id = ? AND state = 'claimed'",
            (_now(), self.scope, reference, self.run_id),
        )

    # -- helpers -----------------------------------------------------------------------------------------

    def knows(self, reference: str, shipment_id: str) -> bool:
        """Whether a run of this state directory made (or adopted) `shipment_id` for `reference`."""
        reference = reference_key(reference)
        return self.db.execute(
            "SELECT 1 FROM claim_shipments WHERE scope = ? AND reference = ? AND shipment_id = ?",
            (self.scope, reference, shipment_id),
        ).fetchone() is not None

    def journal_of(self, reference: str) -> str | None:
        """The journal of the run that last held or settled `reference` (for messages), None when unclaimed."""
        found = self.db.execute("SELECT journal FROM claims WHERE scope = ? AND reference = ?",
                                (self.scope, reference_key(reference))).fetchone()
        return None if found is None else str(found[0])

    def _history(self, reference: str) -> tuple[tuple[str, float | None], ...]:
        now = time.time()
        rows = self.db.execute(
            "SELECT shipment_id, buy_sent_at FROM claim_shipments WHERE scope = ? AND reference = ? "
            "ORDER BY attached_at DESC", (self.scope, reference),
        ).fetchall()
        return tuple((sid, None if sent is None else max(0.0, now - sent)) for sid, sent in rows)

    def _creates(self, reference: str) -> tuple[CreateSent, ...]:
        rows = self.db.execute(
            "SELECT digest, looked_at, first_sent, last_sent FROM create_marks WHERE scope = ? AND reference = ? "
            "ORDER BY first_sent", (self.scope, reference),
        ).fetchall()
        return tuple(CreateSent(digest, looked, first, last) for digest, looked, first, last in rows)

    def _forget_creates(self, reference: str) -> None:
        """The reference names a shipment now: what its unanswered creates made is for that claim's history to
        settle, not for a taker to reuse."""
        self.db.execute("DELETE FROM create_marks WHERE scope = ? AND reference = ?", (self.scope, reference))

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._writing():
            self.db.execute(sql, params)

    def _write(self, reference: str, state: str, shipment_id: str | None, *, insert: bool = False) -> None:
        values = (state, self.run_id, os.getpid(), self.journal, shipment_id, _now(), self.scope, reference)
        if insert:
            self.db.execute(
                "INSERT INTO claims (state, run_id, pid, journal, shipment_id, updated_at, scope, reference) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values,
            )
        else:
            self.db.execute(
                "UPDATE claims SET state = ?, run_id = ?, pid = ?, journal = ?, shipment_id = ?, updated_at = ? "
                "WHERE scope = ? AND reference = ?", values,
            )

    def _alive(self, run_id: str, pid: int | None) -> bool:
        if run_id in self._dead:
            return False
        if run_locks.alive(self.directory / "runs", run_id, pid):
            return True
        self._dead.add(run_id)  # a run found dead stays dead: its lock file is gone
        return False

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return writing(self._what)

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self.db, self._what)


@dataclass(frozen=True)
class BoughtClaim:
    reference: str
    shipment_id: str
    journal: str | None
    buy_sent_at: float | None
    """When a buy was last sent for it from this machine (epoch seconds); None when it was adopted, not bought."""


def bought_since(directory: Path, scope: str, since: dt.datetime) -> list[BoughtClaim]:
    """Read only (`close`): the references of `scope` marked bought at or after `since`. A claim's time is its last
    change, never before the purchase, so nothing bought since then is missed; one adopted later is included too,
    and the caller judges each by the API's purchase time."""
    path = directory / "claims.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(str(path), timeout=30.0)
    try:
        rows = db.execute(
            "SELECT c.reference, c.shipment_id, c.journal, s.buy_sent_at FROM claims AS c "
            "LEFT JOIN claim_shipments AS s "
            "ON s.scope = c.scope AND s.reference = c.reference AND s.shipment_id = c.shipment_id "
            "WHERE c.scope = ? AND c.state = 'bought' AND c.shipment_id IS NOT NULL AND c.updated_at >= ? "
            "ORDER BY c.updated_at, c.reference",
            (scope, since.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ShipctlError(f"the claims file {path} is not usable: {exc}") from None
    finally:
        db.close()
    return [BoughtClaim(*row) for row in rows]


def known_journals(directory: Path) -> list[Path]:
    """Read only (`report`, `reconcile`): every journal a `create` run opened (the `journals` index) and every
    journal a claim names (claims older than the index), whatever its scope or state, each once, in name order.
    Opened `mode=ro` so a running `create` is never held up; no claims file means no journals."""

    path = directory / "claims.sqlite3"
    if not path.exists():
        return []
    try:
        db = open_read_only(path)
        try:
            # A file no `create` has opened since the index was added has no `journals` table (read-only: not
            # made here).
            indexed = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journals'").fetchone()
            rows = db.execute(
                ("SELECT path FROM journals WHERE path != '' UNION " if indexed else "")
                + "SELECT DISTINCT journal FROM claims WHERE journal IS NOT NULL AND journal != '' ORDER BY 1"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ShipctlError(f"the claims file {path} is not usable: {exc}") from None
    return [Path(journal) for (journal,) in rows]


def _connect(path: Path) -> sqlite3.Connection:
    return open_wal(path, _SCHEMA)
