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


def test_planning_again_keeps_what_is_known(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.plan([("A", 2, "d")])
        journal.update("A", state="bought", shipment_id="shp_x")
        journal.plan([("A", 5, "d")])
        row = journal.get("A")
        assert row is not None and row.state == "bought" and row.shipment_id == "shp_x" and row.line == 5


def test_a_second_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path):
        code = (
            "import sys; from pathlib import Path; from shipctl.journal import Journal, JournalLocked\n"
            "try:\n    Journal(Path(sys.argv[1])).open()\n"
            "except JournalLocked as e:\n    print(e.message); sys.exit(7)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 7
        assert f"pid {os.getpid()}" in proc.stdout
    with Journal(path):  # released on close
        pass


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


def test_bound_to_one_target(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        journal.bind_target("sandbox")
        journal.bind_target("sandbox")
        with pytest.raises(ShipctlError, match="--journal PATH"):
            journal.bind_target("https://api.easypost.com/v2 (production key)")


def test_a_journal_named_by_url_alone_is_rebound_to_url_and_key_mode(tmp_path: Path) -> None:
    url = "https://api.easypost.com/v2"
    with Journal(tmp_path / "j.db") as journal:
        journal.bind_target(url)  # as journals were bound before the key's mode was part of the name
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
