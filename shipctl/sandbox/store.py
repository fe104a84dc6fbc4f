"""The sandbox's state: in-memory dicts under one lock, optionally written through to a SQLite file.

With a `state_path`, every object write goes to SQLite too (WAL mode), and on start the file is loaded back,
so what one process bought the next can retrieve, label, track or refund. A purchase runs inside
`BEGIN IMMEDIATE` and re-reads the shipment from the file, so two processes sharing one state file still
cannot buy the same shipment twice. The ledger is also appended as JSON lines to `ledger_path`.
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

from shipctl.sandbox.model import JSON

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL, reference TEXT, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_kind ON objects (kind, seq);
CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, shipment_id TEXT UNIQUE, data TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, state_path: Path | None = None, ledger_path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, JSON] = {}
        self.kinds: dict[str, list[str]] = {}  # kind -> ids in creation order
        self.by_reference: dict[str, str] = {}  # shipment reference -> newest shipment id
        self.trackers_by_code: dict[str, str] = {}
        self.ledger: list[JSON] = []
        self._seq = 0
        self.ledger_path = ledger_path
        self._db: sqlite3.Connection | None = None
        self.salt = secrets.randbelow(10**6)
        self.serial = 0
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(state_path), check_same_thread=False, isolation_level=None,
                                       timeout=30.0)
            with contextlib.suppress(OSError):
                os.chmod(state_path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._load()

    # ------------------------------------------------------------------ persistence

    def _load(self) -> None:
        assert self._db is not None
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            if key == "salt":
                self.salt = int(value)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('salt', ?)", (str(self.salt),))
        for oid, kind, seq, _ref, data in self._db.execute(
                "SELECT id, kind, seq, reference, data FROM objects ORDER BY seq"):
            self._remember(kind, json.loads(data))
            self._seq = max(self._seq, seq)
            del oid
        self.ledger = [json.loads(d) for (d,) in self._db.execute("SELECT data FROM ledger ORDER BY seq")]
        row = self._db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
        self.serial = int(row[0]) if row else 0

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _remember(self, kind: str, obj: JSON) -> None:
        oid = obj["id"]
        if oid not in self.objects:
            self.kinds.setdefault(kind, []).append(oid)
        self.objects[oid] = obj
        if kind == "shipment" and obj.get("reference"):
            self.by_reference[str(obj["reference"])] = oid
        elif kind == "tracker":
            self.trackers_by_code.setdefault(obj["tracking_code"], oid)

    # ------------------------------------------------------------------ objects

    def put(self, kind: str, obj: JSON) -> JSON:
        """Insert or replace `obj` (keyed by its id); returns it."""
        with self.lock:
            new = obj["id"] not in self.objects
            self._remember(kind, obj)
            if self._db is not None:
                if new:
                    self._seq += 1
                ref = obj.get("reference") if kind == "shipment" else None
                self._db.execute(
                    "INSERT INTO objects (id, kind, seq, reference, data) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET data = excluded.data, reference = excluded.reference",
                    (obj["id"], kind, self._seq, ref, json.dumps(obj)))
        return obj

    def get(self, oid: str) -> JSON | None:
        obj = self.objects.get(oid)
        if obj is None and self._db is not None:
            with self.lock:  # another process sharing the file may have made it
                row = self._db.execute("SELECT kind, data FROM objects WHERE id = ?", (oid,)).fetchone()
                if row is not None:
                    obj = json.loads(row[1])
                    self._remember(row[0], obj)
        return obj

    def shipment_by_reference(self, reference: str) -> JSON | None:
        oid = self.by_reference.get(reference)
        if oid is None and self._db is not None:
            with self.lock:
                row = self._db.execute(
                    "SELECT id FROM objects WHERE kind = 'shipment' AND reference = ? ORDER BY seq DESC LIMIT 1",
                    (reference,)).fetchone()
                oid = row[0] if row else None
        return self.get(oid) if oid else None

    def listing(self, kind: str) -> list[str]:
        with self.lock:
            return list(self.kinds.get(kind, ()))

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
                row = self._db.execute("SELECT data FROM objects WHERE id = ?", (shipment_id,)).fetchone()
                if row is not None:
                    self._remember("shipment", json.loads(row[0]))
                srow = self._db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
                self.serial = max(self.serial, int(srow[0]) if srow else 0)
                yield self.objects.get(shipment_id)
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
                return [json.loads(d) for (d,) in self._db.execute("SELECT data FROM ledger ORDER BY seq")]
            return [dict(e) for e in self.ledger]
