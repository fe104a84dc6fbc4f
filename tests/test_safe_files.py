"""Files shipctl writes are never reached through another user's symbolic link (issue 9, defect 9).

A planted link is made as another user would make it: a link owned by uid 65534 (nobody), which takes root to
create -- so these tests run as root, as CI does, and are skipped elsewhere. shipctl runs as a real process.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shipctl.journal import Journal
from shipctl.sandbox import Sandbox
from tests.cli import ndjson
from tests.manifests import row, write_manifest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a link another user owns takes root"
)

OTHER_UID = 65534
PRECIOUS = "the victim's own file, never to be touched by shipctl\n"


def shipctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipctl", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, umask=0o022,
    )


def planted_link(link: Path, target: Path) -> Path:
    """A link as another local user would plant it in a shared folder."""
    link.symlink_to(target)
    os.chown(link, OTHER_UID, OTHER_UID, follow_symlinks=False)
    assert link.lstat().st_uid == OTHER_UID
    return link


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim" / "notes.txt"
    path.parent.mkdir()
    path.write_text(PRECIOUS)
    return path


def assert_refused(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert str(path) in result.stderr and "symbolic link" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def references(env: Sandbox) -> list[Any]:
    return sorted(entry["reference"] for entry in env.ledger())


def test_a_rejects_file_planted_as_another_users_link_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, weight="heavy")])
    target = victim(tmp_path)
    rejects = planted_link(tmp_path / "orders.csv.rejects.csv", target)  # the default --rejects path
    result = shipctl("create", str(manifest), "--skip-invalid", "-q")
    assert_refused(result, rejects)
    assert target.read_text() == PRECIOUS
    assert env.ledger() == []  # refused before anything was bought


def test_a_results_file_planted_as_another_users_link_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    target = victim(tmp_path)
    results = planted_link(tmp_path / "results.csv", target)
    result = shipctl("create", str(manifest), "--results", str(results), "-q")
    assert_refused(result, results)
    assert target.read_text() == PRECIOUS
    assert env.ledger() == []


def test_a_failed_file_planted_as_another_users_link_is_refused(env: Sandbox, tmp_path: Path) -> None:
    # Pinned to a carrier the API does not offer: the row fails and would go to --failed.
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1, carrier="NoSuchCarrier")])
    target = victim(tmp_path)
    failed = planted_link(tmp_path / "failed.csv", target)
    result = shipctl("create", str(manifest), "--failed", str(failed), "-q")
    assert_refused(result, failed)
    assert target.read_text() == PRECIOUS
    assert env.ledger() == []  # refused before anything was bought


def test_a_dangling_journal_link_of_another_user_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    target = tmp_path / "victim" / "created-for-the-attacker.db"
    target.parent.mkdir()
    journal = planted_link(tmp_path / "shared.journal.db", target)
    result = shipctl("create", str(manifest), "--journal", str(journal), "-q")
    assert_refused(result, journal)
    assert not target.exists()
    assert env.ledger() == []


@pytest.mark.parametrize("suffix", [".lock", "-wal", "-shm"])
def test_a_journal_sibling_planted_as_another_users_link_is_refused(
    env: Sandbox, tmp_path: Path, suffix: str
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    target = victim(tmp_path)
    sibling = planted_link(tmp_path / f"orders.csv.journal.db{suffix}", target)
    result = shipctl("create", str(manifest), "-q")
    assert_refused(result, sibling)
    assert target.read_text() == PRECIOUS
    assert env.ledger() == []


def test_links_of_your_own_and_roots_are_followed_and_others_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    # /dev/stdout is root's link to /proc/self/fd/1, which is ours: the protected_symlinks rule follows both.
    own = shipctl("create", str(manifest), "-q", "-o", "csv", "--results", "/dev/stdout")
    assert own.returncode == 0, own.stderr
    assert own.stdout.count("ORD-00001") == 2  # once from -o csv, once from --results
    target = victim(tmp_path)
    mine = tmp_path / "mine.ndjson"
    mine.symlink_to(target)  # owned by us: followed
    again = shipctl("create", str(manifest), "-q", "--results", str(mine))
    assert again.returncode == 0, again.stderr
    assert {r["reference"] for r in ndjson(target.read_text())} == {"ORD-00000", "ORD-00001"}
    target.write_text(PRECIOUS)
    theirs = tmp_path / "theirs" / "mine.ndjson"  # our own link into a folder where the next hop is theirs
    theirs.parent.mkdir()
    planted_link(theirs, target)
    hop = tmp_path / "via.ndjson"
    hop.symlink_to(theirs)
    refused = shipctl("create", str(manifest), "-q", "--results", str(hop))
    assert_refused(refused, hop)
    assert target.read_text() == PRECIOUS
    assert references(env) == ["ORD-00000", "ORD-00001"]


def test_the_lock_file_is_removed_and_files_get_their_modes(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    labels = tmp_path / "labels"
    result = shipctl("create", str(manifest), "-q", "-o", "ndjson", "--labels-dir", str(labels))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "orders.csv.journal.db.lock").exists()
    assert stat.S_IMODE((tmp_path / "orders.csv.journal.db").stat().st_mode) == 0o600  # names what was bought
    label = Path(ndjson(result.stdout)[0]["label_path"])
    assert stat.S_IMODE(label.stat().st_mode) == 0o644  # the user's file: what the umask leaves
    assert list(labels.iterdir()) == [label]  # no temporary file left behind


def test_a_lock_won_on_a_replaced_lock_file_is_taken_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between our open and our flock the previous holder finished: it unlinked the file, another run made a
    new one. A lock on the unlinked file guards nothing; the journal must hold the file the name gives now."""
    path = tmp_path / "j.db"
    lock_path = tmp_path / "j.db.lock"
    real_flock = fcntl.flock
    replaced: list[bool] = []

    def flock_after_replacement(fd: int, operation: int) -> None:
        if not replaced and lock_path.exists():
            replaced.append(True)
            lock_path.unlink()
            lock_path.write_text("")
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_replacement)
    with Journal(path):
        monkeypatch.setattr(fcntl, "flock", real_flock)
        assert replaced
        with lock_path.open("rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not lock_path.exists()


def test_a_journal_in_use_says_to_wait_and_rerun_never_to_use_another_journal(
    env: Sandbox, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with Journal(tmp_path / "orders.csv.journal.db"):
        result = shipctl("create", str(manifest), "-q")
    assert result.returncode == 1
    assert "in use by another shipctl process" in result.stderr
    assert "rerun the same command" in result.stderr
    assert "--journal" not in result.stderr  # a second journal would buy the same rows again
    assert env.ledger() == []
