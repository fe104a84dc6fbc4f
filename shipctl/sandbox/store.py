"""The sandbox's state: in-memory dicts under one lock, optionally written through to a SQLite file.

With a `state_path`, every object write goes to SQLite too (WAL mode), and on start the file is loaded back,
so what one process bought the next can retrieve, label, track or refund. A purchase runs inside
`BEGIN IMMEDIATE` and re-reads the shipment from the file, so two processes sharing one state file still
cannot buy the same shipment twice. The ledger is also appended as JSON lines to `ledger_path`.

Every object belongs to one account (`model.account_for_key`): lookups that pass an account see only that
account's objects, and references are unique per account. A state file written before accounts existed gains
the `account` column on open; its objects belong to `model.DEFAULT_ACCOUNT`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipctl.sandbox.model import DEFAULT_ACCOUNT, JSON
from shipctl.sqlite_writes import open_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL, reference TEXT, data TEXT NOT NULL, account TEXT
);
CREATE INDEX IF NOT EXISTS objects_kind ON objects (kind, seq);
CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, shipment_id TEXT UNIQUE, data TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# After the migration: an index on a column an old file lacks cannot be in _SCHEMA.
_INDEXES = "CREATE INDEX IF NOT EXISTS objects_reference ON objects (account, reference) WHERE kind = 'shipment';"


class Store:
    def __init__(self, state_path: Path | None = None, ledger_path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, JSON] = {}
        self.owner: dict[str, str] = {}  # id -> account
        self.kinds: dict[str, list[str]] = {}  # kind -> ids in creation order
        self.kinds_of: dict[tuple[str, str], list[str]] = {}  # (kind, account) -> ids in creation order
        # (account, mode, shipment reference) -> newest shipment id: a test key never sees production objects, nor
        # the other way round, as with EasyPost.
        self.by_reference: dict[tuple[str, str, str], str] = {}
        self.trackers_by_code: dict[tuple[str, str], str] = {}  # (account, tracking code) -> tracker id
        self.ledger: list[JSON] = []
        self._seq = 0
        self.ledger_path = ledger_path
        self._db: sqlite3.Connection | None = None
        self.salt = secrets.randbelow(10**6)
        self.serial = 0
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            # Two commands starting at once share this file (each runs its own built-in sandbox).
            self._db = open_wal(state_path, _SCHEMA)
            with contextlib.suppress(OSError):
                os.chmod(state_path, 0o600)
            self._migrate()
            self._db.executescript(_INDEXES)
            self._load()

    # ------------------------------------------------------------------ persistence

    def _migrate(self) -> None:
        """Give a state file from before accounts its `account` column (inside a write transaction, so two
        processes opening one old file at once do it once)."""
        assert self._db is not None

        def has_column() -> bool:
            assert self._db is not None
            return any(row[1] == "account" for row in self._db.execute("PRAGMA table_info(objects)"))

        if has_column():  # every open but the first: no write lock taken
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not has_column():
                self._db.execute("ALTER TABLE objects ADD COLUMN account TEXT")
                self._db.execute("UPDATE objects SET account = ?", (DEFAULT_ACCOUNT,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _load(self) -> None:
        assert self._db is not None
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            if key == "salt":
                self.salt = int(value)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (str(self.salt),))
        for kind, seq, account, data in self._db.execute(
                "SELECT kind, seq, account, data FROM objects ORDER BY seq"):
            self._remember(kind, json.loads(data), account or DEFAULT_ACCOUNT)
            self._seq = max(self._seq, seq)
        self.ledger = [_entry(d) for (d,) in self._db.execute("SELECT data FROM ledger ORDER BY seq")]
        row = self._db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
        self.serial = int(row[0]) if row else 0

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _remember(self, kind: str, obj: JSON, account: str) -> None:
        oid = obj["id"]
        if oid not in self.objects:
            self.kinds.setdefault(kind, []).append(oid)
            self.kinds_of.setdefault((kind, account), []).append(oid)
            self.owner[oid] = account
        self.objects[oid] = obj
        if kind == "shipment" and obj.get("reference"):
            self.by_reference[(account, str(obj.get("mode")), str(obj["reference"]))] = oid
        elif kind == "tracker":
            self.trackers_by_code.setdefault((account, obj["tracking_code"]), oid)

    # ------------------------------------------------------------------ objects

    def put(self, kind: str, obj: JSON, account: str = DEFAULT_ACCOUNT) -> JSON:
        """Insert or replace `obj` (keyed by its id); returns it. An object keeps the account it was made in."""
        with self.lock:
            new = obj["id"] not in self.objects
            account = self.owner.get(obj["id"], account)
            self._remember(kind, obj, account)
            if self._db is not None:
                if new:
                    self._seq += 1
                ref = obj.get("reference") if kind == "shipment" else None
                self._db.execute(
                    "INSERT INTO objects (id, kind, seq, reference, data, account) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET data = excluded.data, reference = excluded.reference",
                    (obj["id"], kind, self._seq, ref, json.dumps(obj), account))
        return obj

    def get(self, oid: str, account: str | None = None) -> JSON | None:
        """The object `oid`; with an account, only if it belongs to that account (another's is not found)."""
        obj = self.objects.get(oid)
        if self._db is not None:
            # The file is the truth: another process sharing it may have made, bought or refunded this object
            # since we last saw it (two shipctl runs each with a built-in sandbox on one state file).
            with self.lock:
                row = self._db.execute("SELECT kind, account, data FROM objects WHERE id = ?", (oid,)).fetchone()
                if row is not None:
                    obj = json.loads(row[2])
                    self._remember(row[0], obj, row[1] or DEFAULT_ACCOUNT)
        if obj is not None and account is not None and self.owner.get(oid) != account:
            return None
        return obj

    def shipment_by_reference(self, reference: str, account: str, mode: str) -> JSON | None:
        """The newest shipment of `account` in `mode` ('test' or 'production') carrying `reference`."""
        oid = self.by_reference.get((account, mode, reference))
        if self._db is not None:  # the newest may be another process's
            with self.lock:
                rows = self._db.execute(
                    "SELECT id, data FROM objects WHERE kind = 'shipment' AND account = ? AND reference = ? "
                    "ORDER BY seq DESC", (account, reference))
                oid = next((found for found, data in rows if json.loads(data).get("mode") == mode), None)
        return self.get(oid, account) if oid else None

    def tracker_for_code(self, code: str, account: str) -> str | None:
        return self.trackers_by_code.get((account, code))

    def listing(self, kind: str, account: str | None = None) -> list[str]:
        """Ids of the objects of `kind`, oldest first: `account`'s, or with None every account's."""
        with self.lock:
            return list(self.kinds.get(kind, ()) if account is None else self.kinds_of.get((kind, account), ()))

    # ------------------------------------------------------------------ purchases

    @contextlib.contextmanager
    def purchase(self, shipment_id: str) -> Iterator[JSON | None]:
        """Hold the purchase lock (and a SQLite write transaction) around a buy; yields the fresh shipment."""
        with self.lock:
            if self._db is None:
                yield self.objects.get(shipment_id)
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT account, data FROM objects WHERE id = ?", (shipment_id,)).fetchone()
                if row is not None:
                    self._remember("shipment", json.loads(row[1]), row[0] or DEFAULT_ACCOUNT)
                srow = self._db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
                self.serial = max(self.serial, int(srow[0]) if srow else 0)
                yield self.objects.get(shipment_id)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and, with a state file, one SQLite write transaction: checks and the writes they allow
        (a shipment goes on one scan form only) do not interleave with another process sharing the file."""
        with self.lock:
            if self._db is None or self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def next_serial(self) -> int:
        with self.lock:
            self.serial += 1
            if self._db is not None:
                self._db.execute("INSERT INTO meta VALUES ('serial', ?) "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(self.serial),))
            return self.serial

    def record_purchase(self, entry: JSON) -> None:
        with self.lock:
            self.ledger.append(entry)
            line = json.dumps(entry)
            if self._db is not None:
                self._db.execute("INSERT INTO ledger (shipment_id, data) VALUES (?, ?)", (entry["shipment_id"], line))
            if self.ledger_path is not None:
                with self.ledger_path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                    fh.flush()

    def ledger_copy(self) -> list[dict[str, Any]]:
        with self.lock:
            if self._db is not None:
                return [_entry(d) for (d,) in self._db.execute("SELECT data FROM ledger ORDER BY seq")]
            return [dict(e) for e in self.ledger]


def _entry(data: str) -> JSON:
    """A ledger entry as stored; one written before accounts existed was the default account's."""
    entry: JSON = json.loads(data)
    entry.setdefault("account", DEFAULT_ACCOUNT)
    return entry
