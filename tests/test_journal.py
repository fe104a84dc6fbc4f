"""The SQLite journal: durable states, 0600, one process at a time, bound to one API target."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shipctl.errors import ShipctlError
from shipctl.journal import Journal, JournalLocked
from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.journals import old_schema
from tests.manifests import make_manifest


def test_states_survive_reopening_and_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "run.journal.db"
    with Journal(path) as journal:
        journal.plan([("A-1", 2, "d1"), ("A-2", 3, "d2")])
        journal.update("A-1", state="created", shipment_id="shp_1")
        journal.update("A-1", state="bought", tracking_code="EZ1", rate="7.58")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Journal(path) as journal:
        a1, a2 = journal.get("A-1"), journal.get("A-2")
        assert a1 is not None and a2 is not None
        assert (a1.state, a1.shipment_id, a1.tracking_code, a1.rate) == ("bought", "shp_1", "EZ1", "7.58")
        assert a2.state == "planned"
        assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_meta_given_with_a_row_update_is_written_in_the_same_commit(tmp_path: Path) -> None:
    import sqlite3

    with Journal(tmp_path / "j.db") as journal:
        journal.plan([("A", 2, "d")])
        journal.update("A", meta={"address_verification:A": "verified"}, state="created", shipment_id="shp_a")
        assert journal.meta("address_verification:A") == "verified"
        # A row update the database refuses (the state's CHECK) leaves its meta unwritten: one commit, or none.
        with pytest.raises(sqlite3.IntegrityError):
            journal.update("A", meta={"address_verification:A": "corrected"}, state="no-such-state")
        assert journal.meta("address_verification:A") == "verified"
        row = journal.get("A")
        assert row is not None and row.state == "created"


def test_planning_again_keeps_what_is_known(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.plan([("A", 2, "d")])
        journal.update("A", state="bought", shipment_id="shp_x")
        journal.plan([("A", 5, "d")])
        row = journal.get("A")
        assert row is not None and row.state == "bought" and row.shipment_id == "shp_x" and row.line == 5


def open_in_another_process(path: Path) -> subprocess.CompletedProcess[str]:
    """Open the journal at `path` from a second process: exit 7 and the refusal on stdout when it is locked."""
    code = (
        "import sys; from pathlib import Path; from shipctl.journal import Journal, JournalLocked\n"
        "try:\n    Journal(Path(sys.argv[1])).open()\n"
        "except JournalLocked as e:\n    print(e.message); sys.exit(7)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


def test_a_second_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path):
        proc = open_in_another_process(path)
        assert proc.returncode == 7
        assert f"pid {os.getpid()}" in proc.stdout
    with Journal(path):  # released on close
        pass


def test_a_symlink_to_a_journal_in_use_is_refused_too(tmp_path: Path) -> None:
    """The lock is beside the journal's real file: a run reaching it through a link (or another spelling of its
    path) waits for the run holding it, instead of writing the same journal at once."""
    path = tmp_path / "j.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "link.db"
    link.symlink_to(path)
    with Journal(path):
        proc = open_in_another_process(link)
        assert proc.returncode == 7, proc.stderr
        assert f"pid {os.getpid()}" in proc.stdout
    with Journal(link):  # released on close, whichever name took it
        pass
    assert not list(elsewhere.glob("*.lock")) and not list(tmp_path.glob("*.lock"))


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    code = (
        "import sys, os; from pathlib import Path; from shipctl.journal import Journal\n"
        "Journal(Path(sys.argv[1])).open(); print('locked', flush=True); sys.stdin.read(); os._exit(0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(JournalLocked):
        Journal(path).open()
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.stdin is not None
    proc.stdin.close()
    with Journal(path):
        pass


def test_bound_to_one_target_once_it_holds_a_shipment(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.bind_target("sandbox")
        journal.plan([("A", 2, "d")])
        journal.update("A", state="failed")  # a create that failed: nothing of the target's is held yet
        journal.bind_target("https://elsewhere.example/v2 (test key)")
        assert journal.meta("target") == "https://elsewhere.example/v2 (test key)"
        journal.update("A", state="created", shipment_id="shp_1")
        journal.bind_target("https://elsewhere.example/v2 (test key)")
        with pytest.raises(ShipctlError, match="--journal PATH"):
            journal.bind_target("https://api.easypost.com/v2 (production key)")
        assert journal.meta("target") == "https://elsewhere.example/v2 (test key)"


def test_a_journal_named_by_url_alone_is_rebound_to_url_and_key_mode(tmp_path: Path) -> None:
    url = "https://api.easypost.com/v2"
    with Journal(tmp_path / "j.db") as journal:
        journal.bind_target(url)  # as journals were bound before the key's mode was part of the name
        journal.plan([("A", 2, "d")])
        journal.update("A", state="bought", shipment_id="shp_1")
        journal.bind_target(f"{url} (production key)", legacy=url)
        assert journal.meta("target") == f"{url} (production key)"
        with pytest.raises(ShipctlError):
            journal.bind_target(f"{url} (test key)", legacy=url)


def test_fresh_sets_the_old_journal_aside(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.plan([("A", 2, "d")])
        journal.update("A", state="bought")
    with Journal(path, fresh=True) as journal:
        assert journal.get("A") is None
        assert journal.set_aside is not None
        kept = journal.set_aside
    with Journal(kept) as old:
        row = old.get("A")
        assert row is not None and row.state == "bought"


def _bought_at(journal: Journal, reference: str) -> str | None:
    row = journal.db.execute("SELECT bought_at FROM rows WHERE reference = ?", (reference,)).fetchone()
    return None if row is None else row[0]


def test_bought_at_is_set_once_when_a_row_is_first_bought(tmp_path: Path) -> None:
    """A refund or a label saved later moves `updated_at`, never the purchase's time."""
    with Journal(tmp_path / "j.db") as journal:
        journal.plan([("A", 2, "d")])
        journal.update("A", state="created", shipment_id="shp_a")
        assert _bought_at(journal, "A") is None
        journal.update("A", state="bought", tracking_code="EZ1")
        row = journal.get("A")
        assert row is not None and _bought_at(journal, "A") == row.updated_at
        bought = "2000-01-01T00:00:00.000+00:00"  # bought long ago, as far as the later updates can tell
        journal.db.execute("UPDATE rows SET bought_at = ?, updated_at = ?", (bought, bought))
        journal.update("A", refund_status="submitted")
        journal.update("A", state="bought", label_path="/labels/A.pdf")  # a rerun saving its label
        row = journal.get("A")
        assert row is not None and row.updated_at is not None and row.updated_at > bought
        assert _bought_at(journal, "A") == bought


def test_an_old_journal_gains_bought_at_when_opened(tmp_path: Path) -> None:
    """Written before `bought_at`: the column is added in place, its bought rows' time frozen at their last change."""
    import sqlite3

    path = tmp_path / "old.journal.db"
    db = sqlite3.connect(path)
    try:
        db.executescript(
            old_schema()
            + "INSERT INTO rows (reference, line, state, updated_at) VALUES "
            "('B', 1, 'bought', '2024-03-01T10:00:00.000Z'), ('P', 2, 'planned', '2024-03-01T10:00:01.000Z');"
        )
        db.commit()
    finally:
        db.close()
    with Journal(path) as journal:
        assert (_bought_at(journal, "B"), _bought_at(journal, "P")) == ("2024-03-01T10:00:00.000Z", None)
        journal.update("B", refund_status="refunded")
        assert _bought_at(journal, "B") == "2024-03-01T10:00:00.000Z"
        journal.update("P", state="bought")
        assert _bought_at(journal, "P") is not None
    with Journal(path) as journal:  # opened again: nothing to migrate
        assert _bought_at(journal, "B") == "2024-03-01T10:00:00.000Z"


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="no /proc")
def test_a_journal_that_is_no_journal_or_in_a_folder_that_takes_no_files_is_said_so(
    env: Sandbox, tmp_path: Path
) -> None:
    """`/proc/version` exists, yet its lock file cannot be created beside it: the error said "No such file or
    directory". It is no SQLite file, and a new journal under /proc can have no lock file: each said as it is."""
    manifest = make_manifest(tmp_path / "orders.csv", 2)

    not_one = invoke("create", str(manifest), "-o", "ndjson", "--journal", "/proc/version")
    no_files = invoke("create", str(manifest), "-o", "ndjson", "--journal", "/proc/shipctl-test.journal.db")

    assert not_one.exit_code == 2, not_one.stderr
    assert "error: journal /proc/version is not a shipctl journal: it is not an SQLite database\n" in not_one.stderr
    assert no_files.exit_code == 2, no_files.stderr
    assert ("error: cannot use the journal /proc/shipctl-test.journal.db: cannot create its lock file "
            "/proc/shipctl-test.journal.db.lock (/proc takes no new files)") in no_files.stderr
    for result in (not_one, no_files):
        assert "No such file or directory" not in result.stderr and "Traceback" not in result.stderr
    assert env.ledger() == []
