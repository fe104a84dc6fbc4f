"""One rule for every SQLite file shipctl commits to (journal, claims): a write the disk refuses is a `WriteFailure`,
and a transaction is `BEGIN IMMEDIATE` (the write lock taken at once, so two processes never deadlock upgrading).

"database or disk is full", a read-only file system or an I/O error stops the run with the file's name and exit 4,
not a traceback. "locked"/"busy" is another process holding the file: that is not a full disk, it stays as it is.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from shipctl.errors import WriteFailure


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise WriteFailure(what, str(exc)) from None


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, what: str) -> Iterator[None]:
    """One write transaction on `db`, rolled back if the body fails; its failed writes name `what`."""
    with writing(what):
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if db.in_transaction:  # a failed COMMIT or statement may already have ended it
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
