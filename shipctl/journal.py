"""The SQLite run journal: what was planned, created and bought, so a rerun never buys twice.

Protocol (ARCHITECTURE.md, "Never twice, never lost"): a row is journaled `planned` before any call; the
shipment id is committed (`created`) before `buy` is called; `buy` is only ever called on that journaled
shipment; after `buy` the tracking code, rate and label URL are committed (`bought`) before the row counts
as done.

WAL mode with synchronous=NORMAL: each commit survives a crash or kill -9 of the process (only an OS crash
could lose the last commits, and then the next run reconciles through the API). The file is created 0600.
One process at a time: an exclusive `flock` on `<journal>.lock`, released by the OS if the process dies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shipctl import safefiles
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.sqlite_writes import transaction, writing
from shipctl.stamps import utc_millis as _now

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    reference     TEXT PRIMARY KEY,
    line          INTEGER,
    digest        TEXT,
    state         TEXT NOT NULL CHECK (state IN ('planned', 'created', 'bought', 'failed')),
    shipment_id   TEXT,
    rate_id       TEXT,
    carrier       TEXT,
    service       TEXT,
    rate          TEXT,
    currency      TEXT,
    delivery_days INTEGER,
    tracking_code TEXT,
    label_url     TEXT,
    label_path    TEXT,
    error_code    TEXT,
    error_message TEXT,
    refund_status TEXT,
    updated_at    TEXT NOT NULL,
    bought_at     TEXT,
    retail_rate   TEXT,
    list_rate     TEXT
);
"""


@dataclass
class JournalRow:
    reference: str
    line: int | None
    digest: str | None
    state: str
    shipment_id: str | None = None
    rate_id: str | None = None
    carrier: str | None = None
    service: str | None = None
    rate: str | None = None
    currency: str | None = None
    delivery_days: int | None = None
    tracking_code: str | None = None
    label_url: str | None = None
    label_path: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    refund_status: str | None = None
    updated_at: str | None = None


# Not a `JournalRow` field: readers that select every field from a journal they do not migrate (`labels` reads one
# without its lock) must keep working on journals written before it. Set once, when the row is first recorded
# `bought` (a purchase, or a label adopted from another run): unlike `updated_at`, a refund or a label saved later
# never moves it. Old journals gain it on their next open (`_migrate`).
_BOUGHT_AT = "bought_at"

# Not `JournalRow` fields either, for the same readers: EasyPost's retail and list prices of the chosen rate, where
# its answer carried them (`report`'s savings). NULL in rows journaled before these columns: never guessed.
RATE_PRICES = ("retail_rate", "list_rate")


_COLUMNS = tuple(f.name for f in fields(JournalRow))


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a journal written by an older shipctl up to this schema, in place (under the journal's lock)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(rows)")}
    if "bought_at" not in columns:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("ALTER TABLE rows ADD COLUMN bought_at TEXT")
            # The best time such a row has: its last change, frozen from now on so a later refund cannot move it.
            db.execute("UPDATE rows SET bought_at = updated_at WHERE state = 'bought'")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    for column in RATE_PRICES:
        if column not in columns:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(f"ALTER TABLE rows ADD COLUMN {column} TEXT")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


BOUGHT_TIME = "COALESCE(bought_at, updated_at)"
"""A row's purchase time in SQL, for readers that open journals read-only (an old one may lack `bought_at`:
`bought_time_sql` says which to use)."""


def bought_time_sql(db: sqlite3.Connection, schema: str = "main") -> str:
    """The SQL for a bought row's time in the journal attached to `db` as `schema`: `bought_at` (set once when the
    row was first recorded bought) where the file has it, else its last change, `updated_at`."""
    columns = {str(row[1]) for row in db.execute(f"PRAGMA {schema}.table_info(rows)")}
    return BOUGHT_TIME if "bought_at" in columns else "updated_at"


_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_or_empty(path: Path) -> bool:
    """Whether `path` could be a journal: an SQLite file, an empty or missing one (a journal not yet written), or
    one that cannot be read to tell (then the caller's own reason stands). Only a regular file is read: opening a
    pipe would wait for a writer."""
    try:
        if not path.is_file():
            return True
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError:
        return True
    return not head or head == _SQLITE_HEADER


class JournalLocked(ShipctlError):
    exit_code = ExitCode.ERROR


class Journal:
    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self.fresh = fresh
        self.set_aside: Path | None = None
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> Journal:
        try:
            return self._open()
        except OSError as exc:  # a folder that is a file, a read-only file system: said plainly, nothing bought
            raise ShipctlError(self._refusal(exc), ExitCode.USAGE) from None

    def _refusal(self, exc: OSError) -> str:
        """Why the journal cannot be used, in words. The lock file beside it is created first, so an error on it
        is about the journal's folder, or a file that is no journal at all (`/proc/version`, in a folder that
        takes no new files): the bare OS error would seem to say the journal itself is missing."""
        reason = exc.strerror or str(exc)
        lock = self._lock_path()
        if exc.filename is None or Path(os.fsdecode(exc.filename)) != lock:
            return f"cannot use the journal {self.path}: {reason}"
        if not sqlite_or_empty(self.path):
            return f"journal {self.path} is not a shipctl journal: it is not an SQLite database"
        if exc.errno == errno.ENOENT and lock.parent.is_dir():
            reason = f"{lock.parent} takes no new files"
        return (f"cannot use the journal {self.path}: cannot create its lock file {lock} ({reason}); a journal "
                "must be in a folder shipctl can create files in")

    def _open(self) -> Journal:
        for folder in (self.path.parent, *self.path.parent.parents):
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite follows links for the journal and puts its WAL and SHM files beside the link's target: judge
        # all of them before SQLite (or --fresh's set-aside) opens anything.
        safefiles.check_links(self.path)
        for base in dict.fromkeys((str(self.path), str(self.path.resolve()))):
            for suffix in ("-wal", "-shm"):
                safefiles.check_links(Path(base + suffix))
        self._acquire_lock()
        try:
            if self.fresh and self.path.exists():
                self.set_aside = self._set_aside()
            if not self.path.exists():
                # Create it 0600 before SQLite touches it; the WAL and SHM files inherit the mode.
                os.close(safefiles.open_fd(self.path, mode=safefiles.PRIVATE, truncate=False))
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            _migrate(db)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (_now(),))
            self._db = db
        except sqlite3.DatabaseError as exc:
            self._release_lock()
            raise ShipctlError(f"journal {self.path} is not usable: {exc}") from None
        except BaseException:
            # Whatever stopped the opening (--fresh's set-aside refused, the file not creatable): no lock file is
            # left behind for a journal that was never used.
            self._release_lock()
            raise
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._release_lock()

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _set_aside(self) -> Path:
        """--fresh: keep the old journal (it records real purchases) under a dated name, never delete it."""
        old = sqlite3.connect(self.path)
        try:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            old.close()
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # two --fresh in one second keep both
        backup = self.path.with_name(f"{self.path.name}.{stamp}.bak")
        os.replace(self.path, backup)
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        return backup

    def bind_target(self, identity: str, *, legacy: str | None = None) -> None:
        """A journal belongs to one API and key mode: resuming it against another would lie about purchases.

        `legacy` is the same target as journals written before the key mode was part of the identity named
        it (the bare URL); such a journal is re-bound in place rather than refused. So is one that holds no
        shipment from its target (a run whose key was mistyped, or whose API was unreachable): no buy is ever
        sent before its shipment id is journaled, so such a journal records no purchase to lie about.
        """
        bound = self.meta("target")
        if bound == identity:
            return
        if bound is None or (legacy is not None and bound == legacy) or not self._holds_shipments():
            self.set_meta("target", identity)
        else:
            raise ShipctlError(
                f"journal {self.path} records purchases made against {bound}, but this run targets {identity}; "
                "pass --journal PATH to keep a separate journal for this API and key",
                ExitCode.USAGE,
            )

    def _holds_shipments(self) -> bool:
        return self.db.execute("SELECT 1 FROM rows WHERE shipment_id IS NOT NULL LIMIT 1").fetchone() is not None

    def _lock_path(self) -> Path:
        """Beside the journal's real file: a symlink to the journal (or a second spelling of its path) must meet the
        same lock, or two runs would write one journal at once."""
        real = Path(os.path.realpath(self.path))
        return real.with_name(real.name + ".lock")

    def _acquire_lock(self) -> None:
        lock_path = self._lock_path()
        try:
            import fcntl
        except ImportError:  # Windows: SQLite's own locking still keeps the file consistent
            self._lock_fd = safefiles.open_fd(lock_path, mode=safefiles.PRIVATE, truncate=False, flags=os.O_RDWR)
            return
        while True:
            fd = safefiles.open_fd(lock_path, mode=safefiles.PRIVATE, truncate=False, flags=os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
                os.close(fd)
                # Not "use another --journal": a second journal knows nothing of this one's purchases and
                # would buy the same rows again.
                raise JournalLocked(
                    f"journal {self.path} is in use by another shipctl process (pid {holder}); "
                    "wait for it to finish, then rerun the same command"
                ) from None
            # A holder unlinks the file before letting go of it: a lock won on that unlinked file (or on one
            # replaced since we opened it) guards nothing, so lock whatever the name holds now instead.
            if safefiles.same_file(fd, lock_path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            lock_path = self._lock_path()
            # Removed while still held, so no one can lock it in the meantime and then lose it to the unlink;
            # only if it is still ours (someone may have deleted it and another run made a new one).
            if safefiles.same_file(self._lock_fd, lock_path):
                with contextlib.suppress(OSError):  # Windows cannot remove an open file: it stays, harmless
                    lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("journal is not open")
        return self._db

    # -- meta --------------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- rows --------------------------------------------------------------------------------------------

    def get(self, reference: str) -> JournalRow | None:
        cur = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM rows WHERE reference = ?", (reference,))
        row = cur.fetchone()
        return None if row is None else JournalRow(*row)

    def all(self) -> Iterator[JournalRow]:
        cur = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM rows ORDER BY line, reference")
        for row in cur:
            yield JournalRow(*row)

    def plan(self, rows: Iterable[tuple[str, int, str]]) -> None:
        """Record (reference, line, digest) as planned in one transaction; rows already known are kept."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO rows (reference, line, digest, state, updated_at) VALUES (?, ?, ?, 'planned', ?) "
                "ON CONFLICT(reference) DO UPDATE SET line = excluded.line",
                [(ref, line, digest, _now()) for ref, line, digest in rows],
            )

    def update(self, reference: str, *, meta: Mapping[str, str] | None = None, **values: Any) -> None:
        """Set a row's columns; with `meta`, those meta keys too, in the same commit (one write to the disk)."""
        unknown = set(values) - set(_COLUMNS) - {_BOUGHT_AT, *RATE_PRICES}
        if unknown:
            raise ValueError(f"unknown journal columns: {sorted(unknown)}")
        values["updated_at"] = now = _now()
        assignments = ", ".join(f"{k} = ?" for k in values)
        params = list(values.values())
        if values.get("state") == "bought" and _BOUGHT_AT not in values:
            # Set once: the purchase's time, which a refund or a label saved later must not move.
            assignments += ", bought_at = COALESCE(bought_at, ?)"
            params.append(now)
        if not meta:
            with self._writing():
                self.db.execute(f"UPDATE rows SET {assignments} WHERE reference = ?", (*params, reference))
            return
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            self.db.execute(f"UPDATE rows SET {assignments} WHERE reference = ?", (*params, reference))

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return writing(f"the journal {self.path}")

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self.db, f"the journal {self.path}")
