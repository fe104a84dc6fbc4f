"""A full disk under the journal, the labels, `--results` or stdout: one clear line, the summary, exit 4, nothing lost.

The full file system is a real one: a tiny tmpfs mounted in a private mount namespace (`unshare -rm`, no root
needed where user namespaces are allowed) around a real `shipctl create` process; stdout full is `/dev/full`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.manifests import make_manifest

ROWS = 200


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _namespaces_work(), reason="unshare -rm (user + mount namespaces) unavailable")


def create_on_tiny_fs(tiny: Path, size: str, *args: str, setup: str = "") -> subprocess.CompletedProcess[bytes]:
    """`shipctl create ARGS` with a `size` tmpfs mounted at `tiny` for this process alone."""
    tiny.mkdir(exist_ok=True)
    script = f'mount -t tmpfs -o size={size} tmpfs "$1" && shift && {setup} exec "$@"'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(tiny), sys.executable, "-m", "shipctl", "create", *args],
        capture_output=True, stdin=subprocess.DEVNULL, timeout=300, check=False,
    )


def create(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "shipctl", "create", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)


def once_each(sb: Sandbox) -> bool:
    return Counter(e["reference"] for e in sb.ledger()) == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})


def assert_stopped_cleanly(proc: subprocess.CompletedProcess[bytes], what: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert f"cannot write {what}" in err and "nothing bought is lost: make room and rerun the same command" in err
    assert "Traceback" not in err and "unexpected" not in err
    assert f"{ROWS} shipments:" in err  # the summary is still printed
    return err


@needs_tmpfs
@pytest.mark.slow
def test_labels_on_a_full_disk_stop_the_run_and_the_rerun_saves_them(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)  # 3.6 kB labels: a few fit in 12k
    tiny = tmp_path / "tiny"
    full = create_on_tiny_fs(tiny, "12k", str(manifest), "-q", "-o", "ndjson", "--labels-dir", str(tiny / "labels"))
    err = assert_stopped_cleanly(full, "the label file")
    assert "retries 0" in err or "api retries" not in err  # a full disk is not retried label after label
    assert len(env.ledger()) < ROWS  # it stopped starting rows

    labels = tmp_path / "labels"
    again = create(str(manifest), "-q", "-o", "ndjson", "--labels-dir", str(labels))
    assert again.returncode == 0, again.stderr.decode()
    assert once_each(env)
    assert len(list(labels.iterdir())) == ROWS


@needs_tmpfs
@pytest.mark.slow
def test_a_full_disk_under_the_journal_loses_nothing(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    tiny = tmp_path / "tiny"
    # The manifest and so its journal live on the tiny file system; the journal dies with it after the run.
    full = create_on_tiny_fs(tiny, "320k", str(tiny / "orders.csv"), "-q", "-o", "ndjson",
                             setup=f'cp "{manifest}" "$1/orders.csv" &&'.replace("$1", str(tiny)))
    assert_stopped_cleanly(full, "the journal")
    # Even with that journal gone, the claims under the state directory settle every row: once each.
    again = create(str(manifest), "-q", "-o", "ndjson")
    assert again.returncode == 0, again.stderr.decode()
    assert once_each(env)


@needs_tmpfs
@pytest.mark.slow
def test_results_on_a_full_disk(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    tiny = tmp_path / "tiny"
    full = create_on_tiny_fs(tiny, "4k", str(manifest), "-q", "-o", "ndjson", "--results", str(tiny / "r.ndjson"))
    assert_stopped_cleanly(full, "--results")
    again = create(str(manifest), "-q", "-o", "ndjson", "--results", str(tmp_path / "r.ndjson"))
    assert again.returncode == 0, again.stderr.decode()
    assert once_each(env)
    assert len((tmp_path / "r.ndjson").read_text().splitlines()) == ROWS


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_stdout_on_a_full_disk(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    with open("/dev/full", "wb") as full_out:
        full = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-q", "-o", "ndjson"],
                              stdout=full_out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=300,
                              check=False)
    err = full.stderr.decode()
    assert full.returncode == 4, err
    assert "cannot write stdout" in err and "Traceback" not in err
    again = create(str(manifest), "-q", "-o", "ndjson")
    assert again.returncode == 0, again.stderr.decode()
    assert len([json.loads(line) for line in again.stdout.decode().splitlines()]) == ROWS
    assert once_each(env)


def test_an_unwritable_output_is_found_before_anything_is_bought(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for flag in ("--results", "--failed", "--labels-dir"):
        target = blocker / "out.csv" if flag != "--labels-dir" else blocker / "labels"
        proc = create(str(manifest), "-q", flag, str(target))
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert "cannot write" in err and flag in err and "Traceback" not in err
    assert env.ledger() == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_table_on_a_full_stdout_is_reported_with_the_summary(env: Sandbox, tmp_path: Path) -> None:
    """A table is printed when the run ends, after every label was bought: its failure must still be told."""
    manifest = make_manifest(tmp_path / "orders.csv", 5)
    with open("/dev/full", "wb") as full_out:
        full = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "table"],
                              stdout=full_out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=300,
                              check=False)
    err = full.stderr.decode()
    assert full.returncode == 4, err
    assert "cannot write stdout" in err and "unexpected" not in err
    assert "bought  5" in err  # the summary says what was bought
    assert len(env.ledger()) == 5


@pytest.mark.parametrize("labels", [False, True], ids=["no-labels", "labels-dir"])
def test_a_journal_that_cannot_record_a_purchase_still_reports_it_and_its_cost(
    env: Sandbox, tmp_path: Path, labels: bool
) -> None:
    """The buy went through, the journal's commit did not: this run's summary counts it; the rerun records it."""
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    tiny = tmp_path / "tiny"
    if not _namespaces_work():
        pytest.skip("unshare -rm unavailable")
    extra = ["--labels-dir", str(tmp_path / "labels")] if labels else []  # labels on a disk with room
    full = create_on_tiny_fs(tiny, "320k", str(tiny / "orders.csv"), "-o", "ndjson", "--progress", "off", *extra,
                             setup=f'cp "{manifest}" "{tiny}/orders.csv" &&')
    assert full.returncode == 4, full.stderr.decode()
    reported = [json.loads(line) for line in full.stdout.decode().splitlines()]
    bought_now = {r["shipment_id"] for r in reported if r["purchase"] == "new"}
    in_ledger = {e["shipment_id"] for e in env.ledger()}
    assert bought_now == in_ledger  # every label this run bought is in its output (NOT_JOURNALED or not)
