"""An output `create` cannot write is refused before anything is bought: one `error:` line naming the flag, the
path and why, exit 2, no journal, nothing in the sandbox's ledger.

Every kind of unwritable place: a file where a folder should be, a folder where a file should be, a device that
refuses every byte (/dev/full), a read-only file system (a real one: a read-only tmpfs in a private mount
namespace) and a folder without write permission (not for root, whom permissions do not stop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False).returncode == 0


def assert_refused(code: int, stdout: str, stderr: str, manifest: Path, *fragments: str) -> None:
    assert code == 2, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not manifest.with_name(manifest.name + ".journal.db").exists()  # nothing was started


Place = Callable[[Path], Path]


def under_a_file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("not a folder")
    return tmp / "a-file" / "sub" / "out.csv"


CASES: list[tuple[str, Place, str]] = [
    ("--results", under_a_file, "a-file is a file, not a folder"),
    ("--failed", under_a_file, "a-file is a file, not a folder"),
    ("--labels-dir", under_a_file, "a-file is a file, not a folder"),
    ("--results", lambda tmp: tmp, "it is a folder"),
    ("--failed", lambda tmp: tmp, "it is a folder"),
]
if Path("/dev/full").exists():
    CASES += [
        ("--results", lambda _tmp: Path("/dev/full"), "No space left on device"),
        ("--failed", lambda _tmp: Path("/dev/full"), "No space left on device"),
        ("--labels-dir", lambda _tmp: Path("/dev/full"), "/dev/full is a file, not a folder"),
    ]


@pytest.mark.parametrize(("flag", "place", "why"), CASES)
def test_an_unwritable_output_is_refused_before_anything_is_bought(
    env: Sandbox, tmp_path: Path, flag: str, place: Place, why: str
) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    target = place(tmp_path)

    result = invoke("create", str(manifest), "-o", "ndjson", flag, str(target))

    assert_refused(result.exit_code, result.stdout, result.stderr, manifest, flag, str(target), why)
    assert env.ledger() == []


@pytest.mark.skipif(not _namespaces_work(), reason="unshare -rm (user + mount namespaces) unavailable")
@pytest.mark.parametrize(("flag", "inside", "why"), [
    ("--results", "r.csv", "Read-only file system"),
    ("--failed", "f.csv", "Read-only file system"),
    ("--labels-dir", ".", "Read-only file system"),
    ("--labels-dir", "labels", "cannot create the folder"),
    ("--results", "new/r.csv", "cannot create the folder"),
])
def test_a_read_only_file_system_is_refused_before_anything_is_bought(
    env: Sandbox, tmp_path: Path, flag: str, inside: str, why: str
) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / inside
    script = f'mount -t tmpfs -o size=64k,ro tmpfs "{ro}" && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", sys.executable, "-m", "shipctl", "create", str(manifest),
         "-o", "ndjson", flag, str(target)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )
    assert_refused(proc.returncode, proc.stdout, proc.stderr, manifest, flag, why)
    assert env.ledger() == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="permissions do not stop root")
@pytest.mark.parametrize("flag", ["--results", "--failed", "--labels-dir"])
def test_a_folder_without_write_permission_is_refused(env: Sandbox, tmp_path: Path, flag: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked if flag == "--labels-dir" else locked / "out.csv"
        result = invoke("create", str(manifest), "-o", "ndjson", flag, str(target))
    finally:
        locked.chmod(0o755)
    assert_refused(result.exit_code, result.stdout, result.stderr, manifest, flag, "Permission denied")
    assert env.ledger() == []


def test_an_existing_results_file_is_checked_without_being_changed(env: Sandbox, tmp_path: Path) -> None:
    """The check writes nothing: a run refused for another output leaves an existing --results as it was."""
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    results = tmp_path / "results.csv"
    results.write_text("kept\n")
    (tmp_path / "a-file").write_text("")
    result = invoke("create", str(manifest), "--results", str(results), "--failed", str(tmp_path / "a-file" / "f"))
    assert result.exit_code == 2, result.stderr
    assert results.read_text() == "kept\n"
