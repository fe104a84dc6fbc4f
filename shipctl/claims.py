"""Reference claims: "never twice" on this machine, whatever the journal.

A journal knows only its own runs. Two copies of one export, a symlink, stdin, `--fresh` or a `--failed` file
each get a journal of their own, so the journal alone cannot stop two of them buying the same order. The
claims file (`claims.sqlite3` under the state directory, one per user) can: before a run creates a shipment
for a reference, it claims `(scope, reference)` in one SQLite transaction. The scope is the API, the key's
mode and the account (EasyPost's `user.retrieve_me`), so two client accounts of a 3PL never block each other.

A claim moves `claimed` -> (`claimed` + shipment id, committed before `buy` is called) -> `bought`, or is
`released` when the row failed with nothing bought. What a second run sees:

* `bought`: it adopts that label (retrieves the shipment and records it in its own journal), never buys.
* `claimed` by a run that is alive: the row is held by that run; it is not touched.
* `claimed` by a run that died (kill -9, a crash, a power cut): the claim is taken over with its shipment
  id, and the taker reconciles that very shipment -- buying the same shipment twice is refused by the API,
  so even a buy the dead run sent just before it died cannot make a second label.
* `released` or no claim: it claims the reference for itself.

Whether a run is alive is told by an exclusive `flock` each run holds on `runs/<run id>.lock` while it runs:
the kernel drops it when the process dies, however it dies, and a reused pid cannot fake it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shipctl.errors import ShipctlError
from shipctl.sqlite_writes import writing

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
"""

Outcome = Literal["claimed", "held", "bought"]


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    """`claimed`: this run may ship the reference; `held`: a live run is shipping it, leave it alone;
    `bought`: it was bought as `shipment_id`, adopt that label."""
    shipment_id: str | None = None
    """A shipment already made for this reference (by this or another run): reconcile it before anything else."""
    holder: str | None = None
    """Who holds it, for messages: `pid 123, journal /x/orders.csv.journal.db`."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Claims:
    """This run's view of the claims file. Opened once per run; every method commits before it returns."""

    def __init__(self, directory: Path, *, journal: str) -> None:
        self.directory = directory
        self.journal = journal
        self.run_id = uuid.uuid4().hex
        self.scope: str | None = None
        self._db: sqlite3.Connection | None = None
        self._run_lock: int | None = None
        self._run_lock_path = directory / "runs" / f"{self.run_id}.lock"
        self._dead: set[str] = set()

    def open(self, scope: str) -> Claims:
        self.scope = scope
        runs = self._run_lock_path.parent
        runs.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._run_lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
        _lock(fd, exclusive=True)
        self._run_lock = fd
        path = self.directory / "claims.sqlite3"
        try:
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            raise ShipctlError(f"the claims file {path} is not usable: {exc}") from None
        self._db = db
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._run_lock is not None:
            # Unlinked before the lock is let go: a run that finds the file gone knows this one has ended.
            self._run_lock_path.unlink(missing_ok=True)
            os.close(self._run_lock)
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
            if state == "bought":
                return Claim("bought", shipment_id, holder=holder)
            if state == "released":
                self._write(reference, "claimed", None)
                return Claim("claimed")
            if run_id != self.run_id and self._alive(run_id):
                return Claim("held", shipment_id, holder=holder)
            # Ours already, or its run is dead: take it over with the shipment it names, which must be
            # reconciled (and, if unbought, bought) rather than replaced.
            self._write(reference, "claimed", shipment_id)
            return Claim("claimed", shipment_id, holder=holder)

    def attach(self, reference: str, shipment_id: str) -> None:
        """The shipment this run will buy for `reference`: committed before `buy` is called."""
        self._execute(
            "UPDATE claims SET shipment_id = ?, updated_at = ? WHERE scope = ? AND reference = ? AND run_id = ?",
            (shipment_id, _now(), self.scope, reference, self.run_id),
        )

    def settle(self, reference: str, shipment_id: str) -> None:
        """`reference` is bought as `shipment_id`: every later run adopts it."""
        self._execute(
            "INSERT INTO claims (scope, reference, state, run_id, pid, journal, shipment_id, updated_at) "
            "VALUES (?, ?, 'bought', ?, ?, ?, ?, ?) ON CONFLICT (scope, reference) DO UPDATE SET "
            "state = 'bought', shipment_id = excluded.shipment_id, updated_at = excluded.updated_at",
            (self.scope, reference, self.run_id, os.getpid(), self.journal, shipment_id, _now()),
        )

    def forget(self, reference: str, shipment_id: str | None) -> None:
        """A claimed purchase the API does not know (a wiped sandbox, state from elsewhere): the claim is stale."""
        self._execute(
            "UPDATE claims SET state = 'released', shipment_id = NULL, updated_at = ? "
            "WHERE scope = ? AND reference = ? AND state = 'bought' AND shipment_id IS ?",
            (_now(), self.scope, reference, shipment_id),
        )

    def release(self, reference: str) -> None:
        """Nothing was bought for `reference` (a definite refusal): another run may try it."""
        self._execute(
            "UPDATE claims SET state = 'released', shipment_id = NULL, updated_at = ? "
            "WHERE scope = ? AND reference = ? AND run_id = ? AND state = 'claimed'",
            (_now(), self.scope, reference, self.run_id),
        )

    # -- helpers -----------------------------------------------------------------------------------------

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

    def _alive(self, run_id: str) -> bool:
        if run_id in self._dead:
            return False
        path = self.directory / "runs" / f"{run_id}.lock"
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            self._dead.add(run_id)  # removed when its run ended
            return False
        try:
            if _try_lock(fd):
                # Nobody holds it: its run died without cleaning up. Remove the leftover.
                with contextlib.suppress(OSError):
                    path.unlink()
                self._dead.add(run_id)
                return False
            return True
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._writing():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return writing(f"the claims file {self.directory / 'claims.sqlite3'}")


def _lock(fd: int, *, exclusive: bool) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: liveness falls back to "alive" (see _try_lock)
        return
    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


def _try_lock(fd: int) -> bool:
    """True when a shared lock could be taken, i.e. no live run holds the file."""
    try:
        import fcntl
    except ImportError:
        return False  # cannot tell: treat the holder as alive (a held row is safe; a doubled label is not)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True
