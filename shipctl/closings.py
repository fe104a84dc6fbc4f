"""The forms journal: every end-of-day form and pickup `close` asked for, so a rerun never makes a second one.

One file per user (`closings.sqlite3` under the state directory), rows keyed by the claims' scope (key mode and
account). Protocol (ARCHITECTURE.md, "close: never twice"): an *attempt* is committed `pending` with the exact
shipment ids before `scan_form.create` is sent; the form's id after (`created`), or the API's refusal
(`refused`). A `pending` attempt found by a later run is settled through the API before anything else: a form
the shipments are on is adopted, and an attempt whose shipments are on no form never landed (`abandoned`).

A pickup goes `creating` (before `pickup.create`) -> `created` (its id: nothing is booked yet) -> `buying` (before
`pickup.buy`) -> `bought`; a later run finding `buying` reads the pickup before it would buy again.

Two `close` runs of one scope never overlap: each holds an exclusive `flock` on `closings/<scope digest>.lock`
from before its first read of the shipments to its end (the kernel drops it however the process dies); a second
run is refused at once rather than left waiting behind a run that may take minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shipctl import safefiles
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.sqlite_writes import open_wal, transaction, writing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    attempt       INTEGER PRIMARY KEY AUTOINCREMENT,
    scope         TEXT NOT NULL,
    grp           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'created', 'refused', 'abandoned')),
    shipments     TEXT NOT NULL,
    form_id       TEXT,
    form_url      TEXT,
    form_path     TEXT,
    error_code    TEXT,
    error_message TEXT,
    run_id        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_state ON attempts (scope, state);
CREATE TABLE IF NOT EXISTS pickups (
    scope         TEXT NOT NULL,
    form_id       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('creating', 'created', 'buying', 'bought', 'failed')),
    pickup_id     TEXT,
    carrier       TEXT,
    service       TEXT,
    rate          TEXT,
    currency      TEXT,
    confirmation  TEXT,
    window_start  TEXT,
    window_end    TEXT,
    error_code    TEXT,
    error_message TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (scope, form_id)
) WITHOUT ROWID;
"""

AttemptState = Literal["pending", "created", "refused", "abandoned"]
PickupState = Literal["creating", "created", "buying", "bought", "failed"]


@dataclass(frozen=True)
class Attempt:
    attempt: int
    group: str
    state: AttemptState
    shipment_ids: tuple[str, ...]
    form_id: str | None = None
    form_url: str | None = None
    form_path: str | None = None


@dataclass(frozen=True)
class PickupRow:
    form_id: str
    state: PickupState
    pickup_id: str | None
    carrier: str | None
    service: str | None
    rate: str | None
    currency: str | None
    confirmation: str | None


class CloseRunning(ShipctlError):
    exit_code = ExitCode.ERROR


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Closings:
    """This run's view of the forms journal for one scope; every method commits before it returns."""

    def __init__(self, directory: Path, scope: str) -> None:
        self.directory = directory
        self.scope = scope
        self.path = directory / "closings.sqlite3"
        self.run_id = uuid.uuid4().hex
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock_path = directory / "closings" / (hashlib.sha256(scope.encode()).hexdigest()[:16] + ".lock")

    def open(self, *, lock: bool = True) -> Closings:
        """Open the file; `lock` (every run that may write) first takes this scope's run lock."""
        if lock:
            self._acquire_lock()
        try:
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):
                    os.close(safefiles.open_fd(self.path, mode=safefiles.PRIVATE, truncate=False))
            self._db = open_wal(self.path, _SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            self.close()
            raise ShipctlError(f"the forms journal {self.path} is not usable: {exc}") from None
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            # Removed while still held (and only if still ours), as the journal does with its lock.
            if safefiles.same_file(self._lock_fd, self._lock_path):
                with contextlib.suppress(OSError):
                    self._lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Closings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the forms journal is not open")
        return self._db

    # -- attempts ------------------------------------------------------------------------------------------

    def pending(self) -> list[Attempt]:
        return self._attempts("state = 'pending'", ())

    def created_for(self, shipment_ids: Iterable[str]) -> list[Attempt]:
        """The forms this journal made (or adopted) holding any of `shipment_ids`, oldest first."""
        wanted = json.dumps(sorted(set(shipment_ids)))
        return self._attempts(
            "state = 'created' AND EXISTS (SELECT 1 FROM json_each(shipments) AS s "
            "WHERE s.value IN (SELECT value FROM json_each(?)))", (wanted,),
        )

    def intend(self, group: str, shipment_ids: Sequence[str]) -> int:
        """Commit the attempt before `scan_form.create` is sent: its exact shipments, so a rerun can settle it."""
        now = _now()
        with self._transaction():
            cursor = self.db.execute(
                "INSERT INTO attempts (scope, grp, state, shipments, run_id, started_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                (self.scope, group, json.dumps(sorted(shipment_ids)), self.run_id, now, now),
            )
        return int(cursor.lastrowid or 0)

    def created(self, attempt: int, form_id: str, form_url: str | None) -> None:
        self._update(attempt, state="created", form_id=form_id, form_url=form_url, error_code=None,
                     error_message=None)

    def refused(self, attempt: int, code: str, message: str) -> None:
        self._update(attempt, state="refused", error_code=code, error_message=message)

    def abandoned(self, attempt: int) -> None:
        """A pending attempt whose shipments the API shows on no form: its call never landed."""
        self._update(attempt, state="abandoned")

    def adopt(self, group: str, shipment_ids: Sequence[str], form_id: str, form_url: str | None) -> int:
        """A form found in the API for shipments this journal had no finished attempt for (a lost answer)."""
        attempt = self.intend(group, shipment_ids)
        self.created(attempt, form_id, form_url)
        return attempt

    def saved(self, form_id: str, form_url: str | None, path: Path) -> None:
        with self._writing():
            self.db.execute(
                "UPDATE attempts SET form_path = ?, form_url = COALESCE(?, form_url), updated_at = ? "
                "WHERE scope = ? AND form_id = ?", (str(path), form_url, _now(), self.scope, form_id),
            )

    def _attempts(self, where: str, params: tuple[object, ...]) -> list[Attempt]:
        rows = self.db.execute(
            "SELECT attempt, grp, state, shipments, form_id, form_url, form_path FROM attempts "
            f"WHERE scope = ? AND {where} ORDER BY attempt", (self.scope, *params),
        ).fetchall()
        return [Attempt(a, g, s, tuple(json.loads(ids)), f, u, p) for a, g, s, ids, f, u, p in rows]

    def _update(self, attempt: int, **values: object) -> None:
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._writing():
            self.db.execute(
                f"UPDATE attempts SET {assignments}, updated_at = ? WHERE attempt = ?",
                (*values.values(), _now(), attempt),
            )

    # -- pickups ---------------------------------------------------------------------------------------------

    def pickup(self, form_id: str) -> PickupRow | None:
        row = self.db.execute(
            "SELECT form_id, state, pickup_id, carrier, service, rate, currency, confirmation FROM pickups "
            "WHERE scope = ? AND form_id = ?", (self.scope, form_id),
        ).fetchone()
        return None if row is None else PickupRow(*row)

    def pickup_creating(self, form_id: str, window: tuple[str, str]) -> None:
        """Before `pickup.create`: a rerun looks for the pickup (by its reference, the form id) before another."""
        with self._writing():
            self.db.execute(
                "INSERT INTO pickups (scope, form_id, state, window_start, window_end, updated_at) "
                "VALUES (?, ?, 'creating', ?, ?, ?) ON CONFLICT (scope, form_id) DO UPDATE SET state = 'creating', "
                "pickup_id = NULL, window_start = excluded.window_start, window_end = excluded.window_end, "
                "error_code = NULL, error_message = NULL, updated_at = excluded.updated_at",
                (self.scope, form_id, *window, _now()),
            )

    def pickup_created(self, form_id: str, pickup_id: str) -> None:
        self._pickup(form_id, state="created", pickup_id=pickup_id)

    def pickup_buying(self, form_id: str, carrier: str, service: str, rate: str, currency: str) -> None:
        """Before `pickup.buy`: a rerun reads the pickup (bought or not) before it would buy again."""
        self._pickup(form_id, state="buying", carrier=carrier, service=service, rate=rate, currency=currency)

    def pickup_bought(self, form_id: str, confirmation: str | None) -> None:
        self._pickup(form_id, state="bought", confirmation=confirmation, error_code=None, error_message=None)

    def pickup_failed(self, form_id: str, code: str, message: str) -> None:
        """A definite refusal: nothing is booked; the next run starts this form's pickup afresh."""
        self._pickup(form_id, state="failed", error_code=code, error_message=message)

    def _pickup(self, form_id: str, **values: object) -> None:
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._writing():
            self.db.execute(
                f"UPDATE pickups SET {assignments}, updated_at = ? WHERE scope = ? AND form_id = ?",
                (*values.values(), _now(), self.scope, form_id),
            )

    # -- helpers ---------------------------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            import fcntl
        except ImportError:  # Windows: no run lock; the API still refuses a shipment on a second form
            return
        while True:
            fd = safefiles.open_fd(self._lock_path, mode=safefiles.PRIVATE, truncate=False, flags=os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise CloseRunning(
                    f"another shipctl close for this account is running (pid {holder}); "
                    "wait for it to finish, then rerun the same command"
                ) from None
            if safefiles.same_file(fd, self._lock_path):  # not a file its last holder unlinked meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return writing(f"the forms journal {self.path}")

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self.db, f"the forms journal {self.path}")
