"""Which labels `shipctl labels` has put in a file (what `--only-new` leaves out), and which a run is printing now.

One SQLite file per API identity, beside its cached label files (`<state>/label-files/<hash>/printed.sqlite3`),
keyed by shipment id, so it serves every way of naming the labels (a manifest, a journal, records on stdin). A
label is recorded only once the file holding it is in place under its final name; reprinting one updates when and
where it was last printed.

Two `--only-new` runs at once (two packing stations, cron and a clerk) must not both print a label, so each
claims the labels it will print in one `BEGIN IMMEDIATE` transaction (`claim`): a label printed before, or claimed
by a run that is alive, is not its to print. Liveness is the claims' rule (`run_locks`: a `flock` each run holds
on `runs/<run id>.lock`). A run ending in any way but a kill lets go of its claims (`close`); a killed run's
claims are let go by the next run that finds it dead, so its labels are printed again — its file never reached
its name, or did so only in the last instant: for that instant, just before its file is renamed into place the run
notes the file's identity (device, inode, size, time: `writing`), and a run finding such a note of a dead run
records its labels as printed when that very file is under the name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shipctl import run_locks
from shipctl.errors import WriteFailure
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
CREATE TABLE IF NOT EXISTS claims (
    shipment_id TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    pid         INTEGER,
    claimed_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS writes (
    run_id   TEXT PRIMARY KEY,
    pid      INTEGER,
    file     TEXT NOT NULL,
    device   INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    labels   TEXT NOT NULL
);
"""
_CHUNK = 500  # SQLite's limit on bound parameters is 999 in old builds

Label = tuple[str, str | None, str | None]
"""(shipment id, reference, tracking code)."""


@dataclass
class Claimed:
    """What `claim` found: labels put in a file before, and labels a live run is printing (with its pid)."""

    printed: set[str] = field(default_factory=set)
    elsewhere: dict[str, int | None] = field(default_factory=dict)


class PrintedLog:
    """One `labels` run's view of the record; `open` it (its run lock), `close` it in every case."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "printed.sqlite3"
        self.runs = folder / "runs"
        self.run_id = uuid.uuid4().hex
        self._lock: run_locks.RunLock | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def what(self) -> str:
        return f"the record of printed labels {self.path}"

    def open(self) -> PrintedLog:
        try:
            self._lock = run_locks.RunLock(self.runs, self.run_id)
        except OSError as exc:
            raise WriteFailure.from_os(f"the run lock {self.runs}", exc) from None
        try:
            with writing(self.what):
                self._db = open_wal(self.path, _SCHEMA)
            with transaction(self.db, self.what):
                self._settle_dead()  # a killed run's file under its name: recorded before this run overwrites it
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Let go of this run's claims; a file noted by `writing` but not yet `record`ed is settled as a dead run's
        would be. A write refused here leaves the claims to the liveness rule: the next run finds this one dead."""
        if self._db is not None:
            with contextlib.suppress(WriteFailure, sqlite3.Error), transaction(self._db, self.what):
                self._settle_writes([self.run_id])
                self._db.execute("DELETE FROM claims WHERE run_id = ?", (self.run_id,))
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> PrintedLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "PrintedLog used before open()"
        return self._db

    def claim(self, shipment_ids: Iterable[str]) -> Claimed:
        """Claim for this run each of `shipment_ids` that no earlier run put in a file and no live run claims."""
        ids = list(dict.fromkeys(shipment_ids))
        found = Claimed()
        now = _now()
        with transaction(self.db, self.what):
            self._settle_dead()
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                found.printed.update(str(sid) for (sid,) in self.db.execute(
                    f"SELECT shipment_id FROM printed WHERE shipment_id IN ({marks})", chunk))
                found.elsewhere.update((str(sid), pid) for sid, pid in self.db.execute(
                    f"SELECT shipment_id, pid FROM claims WHERE run_id != ? AND shipment_id IN ({marks})",
                    (self.run_id, *chunk)))
            free = [sid for sid in ids if sid not in found.printed and sid not in found.elsewhere]
            self.db.executemany(
                "INSERT OR REPLACE INTO claims (shipment_id, run_id, pid, claimed_at) VALUES (?, ?, ?, ?)",
                [(sid, self.run_id, os.getpid(), now) for sid in free],
            )
        return found

    def writing(self, labels: list[Label], file: Path, written: os.stat_result) -> None:
        """`file` (not yet under its name: `written` is its identity) is about to become `labels`' print file.
        Noted absolute: the run that settles a dead run's note may start in another folder (cron's is $HOME)."""
        with transaction(self.db, self.what):
            self.db.execute(
                "INSERT OR REPLACE INTO writes (run_id, pid, file, device, inode, size, mtime_ns, labels) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run_id, os.getpid(), str(file.resolve()), written.st_dev, written.st_ino, written.st_size,
                 written.st_mtime_ns, json.dumps(labels)),
            )

    def record(self, labels: Iterable[Label], file: Path) -> None:
        """Each of `labels` is now in `file`: printed, and no longer claimed."""
        with transaction(self.db, self.what):
            self._record(list(labels), str(file))
            self.db.execute("DELETE FROM writes WHERE run_id = ?", (self.run_id,))
            self.db.execute("DELETE FROM claims WHERE run_id = ?", (self.run_id,))

    # -- inside a transaction ----------------------------------------------------------------------------------

    def _record(self, labels: list[Label], file: str) -> None:
        now = _now()
        self.db.executemany(
            "INSERT INTO printed (shipment_id, reference, tracking_code, file, first_at, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(shipment_id) DO UPDATE SET file = excluded.file, "
            "last_at = excluded.last_at, times = times + 1",
            [(sid, ref, code, file, now, now) for sid, ref, code in labels],
        )

    def _settle_dead(self) -> None:
        """Let go of the claims of runs that died, and settle their noted files."""
        dead = {run_id for run_id, pid in self._other_runs() if not run_locks.alive(self.runs, run_id, pid)}
        self._settle_writes(sorted(dead))
        self.db.executemany("DELETE FROM claims WHERE run_id = ?", [(run_id,) for run_id in sorted(dead)])

    def _other_runs(self) -> Iterator[tuple[str, int | None]]:
        yield from self.db.execute(
            "SELECT run_id, pid FROM claims WHERE run_id != ?1 UNION SELECT run_id, pid FROM writes WHERE run_id != ?1",
            (self.run_id,),
        ).fetchall()

    def _settle_writes(self, run_ids: list[str]) -> None:
        """Each noted file of `run_ids` that is under its name is recorded as printed; the notes go."""
        for run_id in run_ids:
            noted = self.db.execute("SELECT file, device, inode, size, mtime_ns, labels FROM writes WHERE run_id = ?",
                                    (run_id,)).fetchone()
            if noted is None:
                continue
            file, *identity, labels = noted
            if _is_file(Path(file), tuple(identity)):
                self._record([(sid, ref, code) for sid, ref, code in json.loads(labels)], file)
            self.db.execute("DELETE FROM writes WHERE run_id = ?", (run_id,))


def _is_file(path: Path, identity: tuple[int, ...]) -> bool:
    """Whether `path` is the very file noted (a rename keeps device, inode, size and modification time)."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == identity


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
