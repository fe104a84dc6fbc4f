"""Never twice across journals: two runs at once on copies, symlinks and stdin; reruns of either settle the rest.

Real processes against a standalone sandbox process; its ledger is the truth about what was bought.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.carrier import shipments
from tests.cli import PROD_KEY, TEST_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import make_manifest, row, write_manifest
from tests.standalone import Server, sandbox_process, shipctl_env, start

ROWS = 40


def records(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def two_machines(tmp_path: Path, api_base: str) -> list[tuple[Path, dict[str, str]]]:
    """Two copies of the same 5 orders, each with a state directory of its own (two machines), a production key."""
    machines = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        orders = make_manifest(tmp_path / name / "orders.csv", 5)
        machines.append((orders, shipctl_env(api_base, tmp_path / f"state-{name}", PROD_KEY)))
    return machines


def run(manifest: Path, env: dict[str, str], *more: str) -> tuple[int, list[dict[str, Any]]]:
    """A `create` of `manifest` that ends done or partial (held rows): its exit code and its records."""
    proc = start(["create", str(manifest), "-o", "ndjson", "--progress", "off", *more], env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 3), err.decode()
    return proc.returncode, records(out)


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
def test_the_run_whose_shipment_another_machine_outdated_gives_way_and_its_rerun_adopts(tmp_path: Path) -> None:
    """Two state directories (two machines): no claim is shared, only the API, which answers a reference with its
    newest shipment. Machine A made its shipments first (a dry run), machine B after it (B's dry run, another copy
    of the orders, not looking first): A's buy finds B's newer unbought shipment and holds every row, since B sees
    only its own and will buy it; B buys; A's rerun adopts B's labels. Before, A bought them too."""
    with sandbox_process("--latency", "none") as sb:
        (a_orders, a_env), (b_orders, b_env) = two_machines(tmp_path, sb.api_base)
        run(a_orders, a_env, "--dry-run")
        run(b_orders, b_env, "--dry-run", "--no-check-references")
        code, held = run(a_orders, a_env, "--yes")
        assert code == 3 and {r["error_code"] for r in held} == {"HELD_BY_OTHER_RUN"}
        assert all("another machine or state directory" in r["error_message"] for r in held)
        assert sb.ledger() == []
        code, bought = run(b_orders, b_env, "--yes")
        assert code == 0 and [r["purchase"] for r in bought] == ["new"] * 5
        code, adopted = run(a_orders, a_env, "--yes")
        assert code == 0 and [r["purchase"] for r in adopted] == ["found"] * 5
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


@pytest.mark.slow
def test_a_machine_that_finds_another_machines_unbought_shipment_holds_the_row_until_it_is_bought(
    tmp_path: Path,
) -> None:
    """Machine A has made its shipments (here a dry run: A is between its create and its buy). Machine B, started
    then, must not make its own: B's would be the newest, and once A has bought, B's last look would see only B's
    (measured before: B started 0.5–3 s after A bought 4–22 of 40 rows twice). B holds every row and creates
    nothing; A buys; B's rerun adopts A's labels."""
    with sandbox_process("--latency", "none") as sb:
        (a_orders, a_env), (b_orders, b_env) = two_machines(tmp_path, sb.api_base)
        _, planned = run(a_orders, a_env, "--dry-run")
        a_shipments = {r["reference"]: r["shipment_id"] for r in planned}
        code, held = run(b_orders, b_env, "--yes")
        assert code == 3 and [r["error_code"] for r in held] == ["HELD_BY_OTHER_RUN"] * 5
        assert all(a_shipments[r["reference"]] in r["error_message"] for r in held)
        assert all(r["shipment_id"] is None for r in held)  # B made no shipment of its own
        assert sb.ledger() == []
        code, bought = run(a_orders, a_env, "--yes")
        assert code == 0 and [r["purchase"] for r in bought] == ["new"] * 5
        assert {r["reference"]: r["shipment_id"] for r in bought} == a_shipments
        code, adopted = run(b_orders, b_env, "--yes")
        assert code == 0 and [r["purchase"] for r in adopted] == ["found"] * 5
        assert {r["reference"]: r["shipment_id"] for r in adopted} == a_shipments
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


def shipment_made_at(api_base: str, shipment_id: str) -> dt.datetime:
    answer = requests.get(f"{api_base}/shipments/{shipment_id}", headers={"Authorization": f"Bearer {TEST_KEY}"},
                          timeout=30)
    answer.raise_for_status()
    return dt.datetime.fromisoformat(answer.json()["created_at"].replace("Z", "+00:00"))


@pytest.mark.slow
def test_with_the_reference_check_a_buy_waits_the_quiet_period_after_its_create(tmp_path: Path) -> None:
    """Two machines on one reference can each miss the other's label only when one's create and last look both
    fall between the other's first look and create. Every last look waits `--reference-quiet` after its create,
    so that takes a first look older than it (then the wide look runs). At latency none, without the wait, a buy
    comes milliseconds after its create."""
    with sandbox_process("--latency", "none") as sb:
        orders = make_manifest(tmp_path / "orders.csv", 3)
        env = shipctl_env(sb.api_base, tmp_path / "state", TEST_KEY)
        code, bought = run(orders, env, "--check-references", "--reference-quiet", "2")
        assert code == 0 and [r["purchase"] for r in bought] == ["new"] * 3
        for entry in sb.ledger():
            waited = dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")) - shipment_made_at(
                sb.api_base, entry["shipment_id"])
            assert waited >= dt.timedelta(seconds=2)  # created_at is whole seconds: rounded down, never up


@pytest.mark.slow
def test_rows_waiting_out_the_quiet_period_are_shown_as_waiting(tmp_path: Path) -> None:
    """A short run's rows all wait at the end: its progress says so rather than looking stuck at nothing in flight."""
    with sandbox_process("--latency", "none") as sb:
        orders = make_manifest(tmp_path / "orders.csv", 4)
        env = shipctl_env(sb.api_base, tmp_path / "state", TEST_KEY)
        proc = start(["create", str(orders), "--check-references", "--reference-quiet", "3", "-o", "ndjson",
                      "--progress", "plain", "--progress-interval", "0.5"], env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        waiting = [line for line in err.decode().splitlines() if "waiting for the reference check" in line]
        assert waiting and " 0/4 done" in waiting[0]
        assert len(records(out)) == 4


@pytest.mark.slow
def test_two_machines_in_lockstep_with_the_reference_check_buy_each_order_once(tmp_path: Path) -> None:
    """Test keys with `--check-references` buy each row as soon as it is quoted; two machines started together on
    the same 40 orders bought 9 of them twice before the quiet wait (latency realistic, each of two tries)."""
    with sandbox_process("--latency", "fast") as sb:
        envs = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            orders = make_manifest(tmp_path / name / "orders.csv", 40)
            envs.append((orders, shipctl_env(sb.api_base, tmp_path / f"state-{name}", TEST_KEY)))
        both = [start(["create", str(orders), "--check-references", "-o", "ndjson", "--progress", "off"], env)
                for orders, env in envs]
        for proc in both:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode in (0, 3), err.decode()
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(40)})


@pytest.mark.slow
def test_a_first_look_older_than_the_quiet_period_finds_what_another_machine_bought_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Machine B's first looks find nothing; before B's creates go out, machine A (another state directory) makes
    and buys its own labels for the same orders. B's shipments are then the newest, hiding A's labels from B's
    last look: B's first look is older than the quiet period, so B reads the account's shipments made since (the
    wide look), finds A's labels and adopts them. Before, B bought every order a second time."""
    with sandbox_process("--latency", "none") as sb:
        (a_orders, a_env), (b_orders, b_env) = two_machines(tmp_path, sb.api_base)
        for name in ("EASYPOST_API_BASE", "EASYPOST_API_KEY", "SHIPCTL_STATE_DIR"):
            monkeypatch.setenv(name, b_env[name])
        monkeypatch.delenv("SHIPCTL_FROM", raising=False)
        real_create = shipments.create_shipment
        machine_a: list[tuple[int, list[dict[str, Any]]]] = []
        one_at_a_time = threading.Lock()

        def create_after_machine_a(client: Any, params: dict[str, Any]) -> Any:
            with one_at_a_time:  # B's first create runs machine A whole; B's others wait for it
                if not machine_a:
                    machine_a.append(run(a_orders, a_env, "--yes"))
            return real_create(client, params)

        monkeypatch.setattr(shipments, "create_shipment", create_after_machine_a)
        result = invoke("create", str(b_orders), "--yes", "-o", "ndjson", "--progress", "off")
        assert result.exit_code == 0, result.output
        (a_code, a_records), = machine_a
        assert a_code == 0 and [r["purchase"] for r in a_records] == ["new"] * 5
        adopted = ndjson(result.stdout)
        assert [r["purchase"] for r in adopted] == ["found"] * 5
        assert {r["reference"]: r["shipment_id"] for r in adopted} == {
            r["reference"]: r["shipment_id"] for r in a_records}
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


@pytest.mark.slow
def test_a_label_bought_while_the_wide_look_reads_is_never_bought_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Machine A makes its shipments between B's first looks and B's creates (a dry run here), and its buys land
    while B's wide look reads the account's list, after B's first read. Read bought shipments first, A's were in
    neither read (unbought in the first, bought by the second) and B bought those orders too. Unbought first, the
    row whose read came first gives way to A's shipment (A may have looked last before B's create) and adopts
    its label once bought; the rest find it bought."""
    with sandbox_process("--latency", "none") as sb:
        (a_orders, a_env), (b_orders, b_env) = two_machines(tmp_path, sb.api_base)
        for name in ("EASYPOST_API_KEY", "SHIPCTL_STATE_DIR"):
            monkeypatch.setenv(name, b_env[name])
        monkeypatch.delenv("SHIPCTL_FROM", raising=False)
        real_create = shipments.create_shipment
        a_made: dict[str, str] = {}
        one_at_a_time = threading.Lock()

        def create_after_machine_a(client: Any, params: dict[str, Any]) -> Any:
            with one_at_a_time:
                if not a_made:
                    _, quoted = run(a_orders, a_env, "--dry-run")
                    a_made.update({r["reference"]: r["shipment_id"] for r in quoted})
            return real_create(client, params)

        def a_buys_after_the_first_read(method: str, path: str, answer: Any) -> None:
            if method == "GET" and path.startswith("/v2/shipments?") and a_made and not a_bought:
                headers = {"Authorization": f"Bearer {PROD_KEY}"}
                for shipment_id in a_made.values():
                    shipment = requests.get(f"{sb.api_base}/shipments/{shipment_id}", headers=headers, timeout=30)
                    cheapest = min(shipment.json()["rates"], key=lambda rate: float(rate["rate"]))
                    requests.post(f"{sb.api_base}/shipments/{shipment_id}/buy", headers=headers, timeout=30,
                                  json={"rate": {"id": cheapest["id"]}}).raise_for_status()
                a_bought.append(path)

        a_bought: list[str] = []
        monkeypatch.setattr(shipments, "create_shipment", create_after_machine_a)
        with gateway_in_front(sb, monkeypatch, a_buys_after_the_first_read):  # type: ignore[arg-type]
            # A's dry run takes under a second: B's quiet period is shorter still, so its first looks are too old.
            result = invoke("create", str(b_orders), "--yes", "--reference-quiet", "0.2", "-o", "ndjson",
                            "--progress", "off")
        assert result.exit_code == 0, result.output
        assert a_bought, "B's wide look read nothing"
        assert [r["purchase"] for r in ndjson(result.stdout)] == ["found"] * 5
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


@pytest.mark.slow
def test_a_machine_that_gives_way_adopts_the_other_machines_labels_in_the_same_run(tmp_path: Path) -> None:
    """Machine B's first looks find machine A's shipments made and not yet bought. B makes none of its own and
    watches them: once A buys, B records A's labels in the same run (exit 0), rather than holding every row for
    a rerun."""
    with sandbox_process("--latency", "none") as sb:
        (a_orders, a_env), (b_orders, b_env) = two_machines(tmp_path, sb.api_base)
        _, planned = run(a_orders, a_env, "--dry-run")
        machine_b = start(["create", str(b_orders), "--yes", "-o", "ndjson", "--progress", "plain",
                           "--progress-interval", "0.2"], b_env)
        assert machine_b.stderr is not None
        for line in machine_b.stderr:  # B is watching A's shipments now
            if b"waiting for the reference check" in line:
                break
        code, bought = run(a_orders, a_env, "--yes")
        assert code == 0 and [r["purchase"] for r in bought] == ["new"] * 5
        out, err = machine_b.communicate(timeout=120)
        assert machine_b.returncode == 0, err.decode()
        assert {r["reference"]: (r["purchase"], r["shipment_id"]) for r in records(out)} == {
            r["reference"]: ("found", r["shipment_id"]) for r in planned}
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(5)})


@pytest.mark.slow
def test_shipments_this_machine_made_for_the_orders_never_hold_its_buy(tmp_path: Path) -> None:
    """A dry run's shipments (this state directory's own) and a `rates --deliver-within` run's (quotes: they carry
    no reference) are newer than nothing another machine made: the production run after them buys every row."""
    with sandbox_process("--latency", "none") as sb:
        manifest = make_manifest(tmp_path / "orders.csv", 3)
        env = shipctl_env(sb.api_base, tmp_path / "state", PROD_KEY)
        for args in (["create", str(manifest), "--dry-run"], ["rates", str(manifest), "--deliver-within", "5"]):
            done = start([*args, "-o", "ndjson", "--progress", "off"], env)
            _, err = done.communicate(timeout=120)
            assert done.returncode == 0, err.decode()
        run = start(["create", str(manifest), "--yes", "-o", "ndjson", "--progress", "off"], env)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
        assert [r["purchase"] for r in records(out)] == ["new"] * 3
        assert sb.bought() == Counter({f"ORD-{i:05d}": 1 for i in range(3)})


@pytest.mark.slow
def test_a_strict_run_never_buys_a_shipment_made_unverified(tmp_path: Path) -> None:
    """A dry run under `--verify off` journaled a shipment to a ZIP that is not in its state; the `--verify strict`
    run on the same journal does not reuse it unverified: it makes verified ones, refuses that row, buys the good."""
    with sandbox_process("--latency", "none") as sb:
        rows = [row(0), row(1, to_state="TX", to_zip="02134")]
        manifest = write_manifest(tmp_path / "orders.csv", rows)
        env = shipctl_env(sb.api_base, tmp_path / "state", PROD_KEY)
        b = start(["create", str(manifest), "--dry-run", "--verify", "off", "-o", "ndjson", "--progress", "off"], env)
        _, err = b.communicate(timeout=120)
        assert b.returncode == 0, err.decode()
        a = start(["create", str(manifest), "--verify", "strict", "--yes", "-o", "ndjson", "--progress", "off"], env)
        out, err = a.communicate(timeout=120)
        assert a.returncode == 3, err.decode()
        by_ref = {r["reference"]: r for r in records(out)}
        assert by_ref["ORD-00000"]["status"] == "bought"
        assert by_ref["ORD-00001"]["status"] == "failed"
        assert sb.bought() == Counter({"ORD-00000": 1})


@pytest.mark.slow
def test_a_strict_run_waits_for_a_buy_of_an_unverified_shipment_that_may_still_land(tmp_path: Path) -> None:
    """A `--verify off` run made a shipment, sent its buy and died: that buy may land. The `--verify strict` run
    does not reuse the unverified shipment, and must not make and buy a second one meanwhile either."""
    with sandbox_process("--latency", "none") as sb:
        manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
        env = shipctl_env(sb.api_base, tmp_path / "state", PROD_KEY)
        common = ["-o", "ndjson", "--progress", "off"]
        dry = start(["create", str(manifest), "--dry-run", "--verify", "off", *common], env)
        _, err = dry.communicate(timeout=120)
        assert dry.returncode == 0, err.decode()
        with sqlite3.connect(tmp_path / "state" / "claims.sqlite3") as claims:  # as the dead run's send stamped it
            claims.execute("UPDATE claim_shipments SET buy_sent_at = ?", (time.time() - 2,))
        claims.close()
        strict = start(["create", str(manifest), "--verify", "strict", "--yes", *common], env)
        out, err = strict.communicate(timeout=120)
        assert strict.returncode == 3, err.decode()
        assert [r["error_code"] for r in records(out)] == ["PREVIOUS_BUY_UNSETTLED"]
        assert sb.ledger() == []


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
