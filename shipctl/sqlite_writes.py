"""One rule for every SQLite file shipctl commits to (journal, claims): a write the disk refuses is a `WriteFailure`,
processes opening one file at once wait for each other (`open_wal`; the sandbox's state opens so too), and a
transaction is `BEGIN IMMEDIATE` (the write lock taken at once, so two processes never deadlock upgrading).

"database or disk is full", a read-only file system or an I/O error stops the run with the file's name and exit 4,
not a traceback. "locked"/"busy" is another process holding the file: that is not a full disk, it stays as it is.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from types import TracebackType

from shipctl.errors import WriteFailure

# Both are classes, not @contextmanager generators: `create` enters one about ten times a row (journal and claims),
# and a generator-based one costs three times the CPU of a class's __enter__/__exit__.


class writing(contextlib.AbstractContextManager[None]):
    """A write whose `sqlite3.OperationalError` (other than "locked"/"busy") becomes a `WriteFailure` naming `what`."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, sqlite3.OperationalError):
            _refused(exc, self.what)


class transaction(contextlib.AbstractContextManager[None]):
    """One write transaction on `db`, rolled back if the body fails; its failed writes name `what`."""

    __slots__ = ("db", "what")

    def __init__(self, db: sqlite3.Connection, what: str) -> None:
        self.db = db
        self.what = what

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            _refused(exc, self.what)
            raise

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        db = self.db
        try:
            if exc is None:
                db.execute("COMMIT")
            elif db.in_transaction:  # a failed COMMIT or statement may already have ended it
                db.execute("ROLLBACK")
        except sqlite3.OperationalError as failed:
            _refused(failed, self.what)
            raise
        if isinstance(exc, sqlite3.OperationalError):
            _refused(exc, self.what)


def _refused(exc: sqlite3.OperationalError, what: str) -> None:
    """Raise the `WriteFailure` a refused write is; return for "locked"/"busy" (another process: raised as it is)."""
    if "locked" in str(exc) or "busy" in str(exc):
        return
    raise WriteFailure(what, str(exc)) from None


def open_wal(path: Path, schema: str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open a SQLite file shared by processes, in WAL mode, with `schema` applied.

    Several processes opening one file at once race to set WAL mode, and SQLite answers that race "locked" at
    once instead of waiting out the busy timeout: retry it for as long as the timeout would have waited.
    """
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=timeout)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(schema)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # backoff between attempts, not synchronisation


def read_only_uri(path: Path) -> str:
    """The URI that opens `path` read-only (`mode=ro`): no lock taken, no file made, a running writer never held up."""
    from urllib.parse import quote

    return f"file:{quote(str(path.resolve()))}?mode=ro"


def open_read_only(path: Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """`path` (a journal, the claims file) opened read-only: what report, reconcile and the indexes read."""
    return sqlite3.connect(read_only_uri(path), uri=True, timeout=timeout)
