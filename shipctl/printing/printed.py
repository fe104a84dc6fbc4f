"""Which labels `shipctl labels` has put in a file: what `--only-new` leaves out.

One SQLite file per API identity, beside its cached label files (`<state>/label-files/<hash>/printed.sqlite3`),
keyed by shipment id, so it serves every way of naming the labels (a manifest, a journal, records on stdin). A
label is recorded only once the file holding it is in place under its final name; reprinting one updates when and
where it was last printed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from shipctl.sqlite_writes import open_wal, transaction, writing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS printed (
    shipment_id   TEXT PRIMARY KEY,
    reference     TEXT,
    tracking_code TEXT,
    file          TEXT NOT NULL,
    first_at      TEXT NOT NULL,
    last_at       TEXT NOT NULL,
    times         INTEGER NOT NULL DEFAULT 1
);
"""
_CHUNK = 500  # SQLite's limit on bound parameters is 999 in old builds


class PrintedLog:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "printed.sqlite3"

    def _open(self) -> sqlite3.Connection:
        with writing(self.what):
            return open_wal(self.path, _SCHEMA)

    @property
    def what(self) -> str:
        return f"the record of printed labels {self.path}"


    def printed(self, shipment_ids: Iterable[str]) -> set[str]:
        """Those of `shipment_ids` already put in a file by an earlier run."""
        ids = list(dict.fromkeys(shipment_ids))
        found: set[str] = set()
        db = self._open()
        try:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(f"SELECT shipment_id FROM printed WHERE shipment_id IN ({marks})", chunk)
                found.update(str(row[0]) for row in rows)
        finally:
            db.close()
        return found

    def record(self, labels: Iterable[tuple[str, str | None, str | None]], file: Path) -> None:
        """(shipment id, reference, tracking code) of each label now in `file`."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows = [(sid, ref, code, str(file), now, now) for sid, ref, code in labels]
        db = self._open()
        try:
            with transaction(db, self.what):
                db.executemany(
                    "INSERT INTO printed (shipment_id, reference, tracking_code, file, first_at, last_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(shipment_id) DO UPDATE SET file = excluded.file, "
                    "last_at = excluded.last_at, times = times + 1",
                    rows,
                )
        finally:
            db.close()
