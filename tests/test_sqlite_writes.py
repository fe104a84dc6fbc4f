"""`sqlite_writes.writing` and `transaction`: a write the disk refuses is a `WriteFailure` naming the file, another
process's lock stays what it is, and a transaction whose body fails is rolled back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipctl.errors import WriteFailure
from shipctl.sqlite_writes import transaction, writing


class _Refusing:
    """A connection whose `sql` fails with `message` (an OperationalError), every other statement run for real."""

    def __init__(self, db: sqlite3.Connection, sql: str, message: str) -> None:
        self.db, self.sql, self.message = db, sql, message

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == self.sql:
            raise sqlite3.OperationalError(self.message)
        return self.db.execute(sql, *args)


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    db.execute("CREATE TABLE t (v INTEGER)")
    return db


def test_a_refused_write_names_what_it_writes_and_locks_stay_as_they_are() -> None:
    with pytest.raises(WriteFailure) as failure, writing("the journal j.db"):
        raise sqlite3.OperationalError("database or disk is full")
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
    assert "the journal j.db" in str(failure.value) and "database or disk is full" in str(failure.value)
    with pytest.raises(sqlite3.OperationalError, match="locked"), writing("the journal j.db"):
        raise sqlite3.OperationalError("database is locked")
    with pytest.raises(KeyError), writing("the journal j.db"):
        raise KeyError("not a write")


def test_a_transaction_commits_or_rolls_back_whole(db: sqlite3.Connection) -> None:
    with transaction(db, "x"):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(WriteFailure), transaction(db, "x"):
        db.execute("INSERT INTO t VALUES (2)")
        raise sqlite3.OperationalError("disk I/O error")
    with pytest.raises(ValueError), transaction(db, "x"):
        db.execute("INSERT INTO t VALUES (3)")
        raise ValueError("a bug")
    assert not db.in_transaction
    assert db.execute("SELECT v FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("sql", ["BEGIN IMMEDIATE", "COMMIT"])
def test_a_refused_begin_or_commit_is_a_write_failure(db: sqlite3.Connection, sql: str) -> None:
    refusing = _Refusing(db, sql, "database or disk is full")
    with pytest.raises(WriteFailure), transaction(refusing, "x"):  # type: ignore[arg-type]
        db.execute("INSERT INTO t VALUES (1)")
    busy = _Refusing(db, sql, "database is busy")
    if db.in_transaction:
        db.execute("ROLLBACK")
    with pytest.raises(sqlite3.OperationalError, match="busy"), transaction(busy, "x"):  # type: ignore[arg-type]
        db.execute("INSERT INTO t VALUES (1)")
