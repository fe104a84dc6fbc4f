"""A private SQLite cache under the state directory, scoped per API and key: what the quote cache and the tracking
cache share.

The file is created 0600 before SQLite opens it (its WAL and SHM files inherit that), symbolic links other users
could plant are refused, and what has gone stale is pruned on opening. A random secret kept in the file keys the
digest of an API key, so entries of two accounts on one API stay apart while the key itself is never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from shipctl import safefiles
from shipctl.errors import ShipctlError
from shipctl.sqlite_writes import open_wal, transaction, writing

C = TypeVar("C", bound="CacheFile")


class CacheFile:
    """One cache file open for one run; `now` is the wall clock (entries outlive the process)."""

    kind: ClassVar[str] = "cache"
    schema: ClassVar[str] = ""
    schema_version: ClassVar[str] = "1"
    unusable_hint: ClassVar[str] = "remove it"

    def __init__(self, path: Path, ttl: float, *, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.ttl = ttl
        self.now = now
        self._db: sqlite3.Connection | None = None
        self._secret = b""
        self.write_error: str | None = None
        """Why an answer could not be kept (a full disk, a file locked too long): the answers stand, the run goes on."""

    @property
    def what(self) -> str:
        return f"the {self.kind} {self.path}"

    def prune(self, db: sqlite3.Connection) -> None:
        """Delete what has gone stale (inside the opening transaction)."""

    def open(self: C) -> C:
        try:
            safefiles.check_links(self.path)
            for suffix in ("-wal", "-shm"):
                safefiles.check_links(Path(str(self.path) + suffix))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):
                    os.close(safefiles.open_fd(self.path, mode=safefiles.PRIVATE, truncate=False))
            with writing(self.what):
                db = open_wal(self.path, self.schema)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ShipctlError(f"{self.what} is not usable: {exc} ({self.unusable_hint})") from None
        self._db = db
        try:
            with transaction(db, self.what):
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (self.schema_version,))
                db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
                self.prune(db)
            row = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        except BaseException:
            self.close()
            raise
        self._secret = bytes.fromhex(row[0])
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"the {self.kind} is not open")
        return self._db

    def scope_of(self, identity: str, mode: str | None, api_key: str | None, *more: str) -> str:
        """Whose entries: the API, its key mode, a keyed digest of the key (pass none where one account answers to
        per-run keys, the built-in sandbox, or its entries would never be found again), and `more`."""
        self._conn()
        keyed = hmac.new(self._secret, api_key.encode(), hashlib.sha256).hexdigest() if api_key else ""
        return json.dumps([identity, mode or "unknown", keyed, *more])
