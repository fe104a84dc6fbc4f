"""Never twice across journals: two runs at once on copies, symlinks and stdin; reruns of either settle the rest.

Real processes against a standalone sandbox process; its ledger is the truth about what was bought.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli import PROD_KEY, TEST_KEY
from tests.manifests import make_manifest
from tests.standalone import Server, sandbox_process, shipctl_env, start

ROWS = 40


def records(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


@pytest.fixture(params=["fast", "realistic"])
def server(request: pytest.FixtureRequest) -> Any:
    with sandbox_process("--latency", request.param) as sb:
        yield sb


def second_input(how: str, manifest: Path, tmp_path: Path) -> tuple[list[str], Any]:
    """The same orders reached another way: a copy, a symlink in another folder, or stdin."""
    if how == "copy":
        copy = tmp_path / "export-copy.csv"
        copy.write_bytes(manifest.read_bytes())
        return [str(copy)], subprocess.DEVNULL
    if how == "symlink":
        other = tmp_path / "elsewhere"
        other.mkdir()
        link = other / "orders-link.csv"
        link.symlink_to(manifest)
        return [str(link)], subprocess.DEVNULL
    return ["-"], manifest.open("rb")


@pytest.mark.slow
@pytest.mark.parametrize("key", [TEST_KEY, PROD_KEY], ids=["test-key", "production-key"])
@pytest.mark.parametrize("how", ["copy", "symlink", "stdin"])
def test_two_runs_at_once_buy_each_reference_exactly_once(server: Server, tmp_path: Path, key: str, how: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    env = shipctl_env(server.api_base, tmp_path / "state", key)
    common = ["-o", "ndjson", "--progress", "off", "--yes"]
    args, stdin = second_input(how, manifest, tmp_path)
    procs = [start(["create", str(manifest), *common], env), start(["create", *args, *common], env, stdin=stdin)]
    outs = [p.communicate(timeout=240) for p in procs]
    if stdin is not subprocess.DEVNULL:
        stdin.close()

    assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})  # each exactly once
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode in (0, 3), err.decode()
        if proc.returncode == 3:
            # The rows it left alone are the other run's, and it says so.
            held = [r for r in records(out) if r["error_code"] == "HELD_BY_OTHER_RUN"]
            assert held and b"another shipctl run is buying them" in err
            assert all(r["status"] == "skipped" and "pid" in r["error_message"] for r in held)
    new = Counter(r["reference"] for out, _ in outs for r in records(out) if r["purchase"] == "new")
    assert new == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})  # each bought by exactly one of the two

    # A rerun of either settles what it left: the other run's labels are adopted, nothing is bought.
    again_stdin = manifest.open("rb") if how == "stdin" else subprocess.DEVNULL
    rerun = start(["create", *args, *common], env, stdin=again_stdin)
    out, err = rerun.communicate(timeout=240)
    if again_stdin is not subprocess.DEVNULL:
        again_stdin.close()
    assert rerun.returncode == 0, err.decode()
    assert {r["status"] for r in records(out)} == {"bought"}
    assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})


@pytest.mark.slow
def test_two_machines_at_once_buy_each_reference_once(server: Server, tmp_path: Path) -> None:
    """Two state directories (two machines, or cron with another HOME): no claim is shared, only the API. With a
    production key each run asks the API for the reference before it creates and again before it buys; a run that
    finds another's fresh unbought shipment buys that one too (the API refuses the second purchase), and a run
    whose shipment is older than another's gives way. Before, about 8 in 10 references were bought twice."""
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(manifest.read_bytes())
    common = ["-o", "ndjson", "--progress", "off", "--yes"]
    envs = [shipctl_env(server.api_base, tmp_path / name, PROD_KEY) for name in ("machine-a", "machine-b")]
    procs = [start(["create", str(path), *common], env) for path, env in zip((manifest, copy), envs, strict=True)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})  # each exactly once
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode in (0, 3), err.decode()
        held = [r for r in records(out) if r["error_code"] == "HELD_BY_OTHER_RUN"]
        assert all("another machine or state directory" in r["error_message"] for r in held)
    for path, env in zip((manifest, copy), envs, strict=True):  # each machine's rerun settles what it left
        rerun = start(["create", str(path), *common], env)
        out, err = rerun.communicate(timeout=240)
        assert rerun.returncode == 0, err.decode()
        assert {r["status"] for r in records(out)} == {"bought"}
    assert server.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})


@pytest.mark.slow
def test_two_accounts_on_one_machine_do_not_block_each_other(tmp_path: Path) -> None:
    """A 3PL runs client accounts side by side; their order numbers collide, their claims must not."""
    other_key = "EZTK" + "c" * 28
    with sandbox_process("--latency", "fast") as sb:
        manifest = make_manifest(tmp_path / "orders.csv", ROWS)
        copy = tmp_path / "client-b" / "orders.csv"
        copy.parent.mkdir()
        copy.write_bytes(manifest.read_bytes())
        common = ["-o", "ndjson", "--progress", "off"]
        procs = [
            start(["create", str(manifest), *common], shipctl_env(sb.api_base, tmp_path / "state", TEST_KEY)),
            start(["create", str(copy), *common], shipctl_env(sb.api_base, tmp_path / "state", other_key)),
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err.decode()
        for out, _ in outs:
            assert {r["purchase"] for r in records(out)} == {"new"}
        by_account = Counter((e["account"], e["reference"]) for e in sb.ledger())
        assert len({account for account, _ in by_account}) == 2
        assert set(by_account.values()) == {1} and len(by_account) == 2 * ROWS


@pytest.mark.slow
def test_two_stdin_jobs_run_at_once(tmp_path: Path) -> None:
    """Two different exports piped at the same time: two jobs, each with its own journal, both finish."""
    with sandbox_process("--latency", "realistic") as sb:
        env = shipctl_env(sb.api_base, tmp_path / "state")
        first = make_manifest(tmp_path / "a.csv", 20)
        second = tmp_path / "b.csv"
        second.write_text(first.read_text().replace("ORD-", "WEB-"))
        inputs = [first.open("rb"), second.open("rb")]
        procs = [start(["create", "-", "-o", "ndjson", "--progress", "off"], env, stdin=fh) for fh in inputs]
        outs = [p.communicate(timeout=240) for p in procs]
        for fh in inputs:
            fh.close()
        for proc, (out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err.decode()
            assert len(records(out)) == 20
        assert len(sb.bought()) == 40 and set(sb.bought().values()) == {1}
        assert len(list((tmp_path / "state" / "journals").glob("stdin-*.journal.db"))) == 2


@pytest.mark.slow
def test_two_runs_on_the_built_in_sandbox_at_once_never_double(tmp_path: Path) -> None:
    """No key: each process runs its own built-in sandbox on one state file, which must stay the one truth."""
    env = shipctl_env("", tmp_path / "state")
    del env["EASYPOST_API_BASE"], env["EASYPOST_API_KEY"]
    manifest = make_manifest(tmp_path / "orders.csv", ROWS)
    heavier = tmp_path / "b" / "orders.csv"  # the same orders, edited: they cannot adopt each other's labels
    heavier.parent.mkdir()
    make_manifest(heavier, ROWS)
    heavier.write_text(heavier.read_text().replace("Customer", "Client"))
    common = ["-o", "ndjson", "--progress", "off", "--concurrency", "4"]
    procs = [start(["create", str(manifest), *common], env), start(["create", str(heavier), *common], env)]
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode in (0, 3), err.decode()
    state = sqlite3.connect(tmp_path / "state" / "sandbox.sqlite3")
    ledger = Counter(json.loads(data)["reference"] for (data,) in state.execute("SELECT data FROM ledger"))
    state.close()
    assert ledger and set(ledger.values()) == {1}, ledger.most_common(3)
    new = [r["shipment_id"] for out, _ in outs for r in records(out) if r["purchase"] == "new"]
    assert len(new) == len(set(new)) == len(ledger)  # one "new" per label bought, never two


@pytest.mark.slow
def test_two_spellings_of_one_api_share_the_claims(tmp_path: Path) -> None:
    """A proxy URL in cron, the direct one in a shell: one API, one account, so one set of claims."""
    with sandbox_process("--latency", "fast") as sb:
        manifest = make_manifest(tmp_path / "orders.csv", ROWS)
        copy = tmp_path / "copy.csv"
        copy.write_bytes(manifest.read_bytes())
        other_spelling = sb.api_base.replace("127.0.0.1", "localhost")
        common = ["-o", "ndjson", "--progress", "off"]
        procs = [
            start(["create", str(manifest), *common], shipctl_env(sb.api_base, tmp_path / "state")),
            start(["create", str(copy), *common], shipctl_env(other_spelling, tmp_path / "state")),
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode in (0, 3), err.decode()
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(ROWS)})


@pytest.mark.slow
def test_runs_starting_at_once_on_a_new_state_directory_all_start(tmp_path: Path) -> None:
    """The first runs race to create the claims file; none may fail with "database is locked"."""
    with sandbox_process("--latency", "none") as sb:
        env = shipctl_env(sb.api_base, tmp_path / "state")
        manifests = []
        for n in range(4):
            m = make_manifest(tmp_path / f"m{n}.csv", 3)
            m.write_text(m.read_text().replace("ORD-", f"B{n}-"))
            manifests.append(m)
        procs = [start(["create", str(m), "-q", "-o", "ndjson"], env) for m in manifests]
        for proc in procs:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err.decode()
        assert len(sb.bought()) == 12
