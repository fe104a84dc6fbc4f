"""`shipctl close` from the command line: usage errors before anything starts, what it prints, and, in real
processes, exit codes, two runs at once and a run killed between the form's creation and its journal commit."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.closings import Closings
from shipctl.jobs.close import scope_for
from shipctl.paths import state_dir
from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.close_day import buy, day_rows, form_of, pickups, scan_forms
from tests.gateway import Gateway, gateway_in_front
from tests.manifests import write_manifest
from tests.sdk import sdk
from tests.standalone import sandbox_process, shipctl_env, start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--journal", "nowhere.journal.db"), "journal nowhere.journal.db does not exist"),
        (("--date", "2025-02-30"), "--date must be today, yesterday or YYYY-MM-DD, not '2025-02-30'"),
        (("--date", "last week"), "--date must be today, yesterday or YYYY-MM-DD"),
        (("--pickup-window", "09:00-17:00"), "--pickup-window goes with --pickup"),
        (("--pickup", "--pickup-window", "tomorrow 17:00-09:00"), "ends before it starts"),
        (("--pickup", "--pickup-window", "2001-01-01 09:00-17:00"), "is over already"),
        (("--pickup", "--pickup-window", "soon"), "--pickup-window must look like 'next-business-day 09:00-17:00'"),
        (("--pickup", "--pickup-window", "friday 09:00-12:00"), "day must be today, tomorrow, next-business-day"),
        (("--pickup", "--pickup-window", "tomorrow 25:00-26:00"), "25:00 is not a time of day"),
    ],
)
def test_usage_errors_exit_2_before_anything_starts(env: Sandbox, args: tuple[str, ...], message: str) -> None:
    result = invoke("close", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_forms_dir_that_is_a_file_is_refused(env: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "forms").write_text("not a folder")
    result = invoke("close", "--forms-dir", str(tmp_path / "forms"))
    assert result.exit_code == 2
    assert f"--forms-dir {tmp_path / 'forms'} is not a folder" in result.stderr


def test_close_prints_one_record_per_form_and_a_rerun_makes_none(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=2))

    first = invoke("close", "-o", "csv", "--forms-dir", str(tmp_path / "forms"))

    assert first.exit_code == 0, first.stderr
    rows = list(csv.DictReader(io.StringIO(first.stdout)))
    assert [r["status"] for r in rows] == ["created"] * 4
    assert [r["group"] for r in rows] == ["1", "2", "3", "4"]
    assert all(Path(r["form_file"]).is_file() and r["shipments"] == "2" for r in rows)
    assert "8 labels read: 4 forms created" in first.stderr
    assert len(scan_forms(env)) == 4

    again = invoke("close", "-o", "ndjson", "--forms-dir", str(tmp_path / "forms"))
    assert again.exit_code == 0, again.stderr
    assert [r["status"] for r in ndjson(again.stdout)] == ["already_closed"] * 4
    assert "8 labels read: 4 forms already closed, " in again.stderr  # each label counted once, with its form
    assert "on a form already" not in again.stderr
    assert len(scan_forms(env)) == 4
    assert None not in form_of(env, [str(r["shipment_id"]) for r in bought]).values()


def test_nothing_bought_today_is_said_in_one_line(env: Sandbox) -> None:
    result = invoke("close")
    assert result.exit_code == 0
    assert "nothing to close: no label bought on" in result.stderr
    assert result.stdout == ""


def test_dry_run_prints_the_groups_in_a_table(env: Sandbox, tmp_path: Path) -> None:
    buy(tmp_path / "orders.csv", day_rows(per_group=1))
    result = invoke("close", "--dry-run", "-o", "table")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("would_create") == 4
    assert "4 forms would be created; nothing was created" in result.stderr
    assert scan_forms(env) == []


# -- real processes ------------------------------------------------------------------------------------------


def _records(out: bytes) -> list[dict[str, Any]]:
    return ndjson(out.decode())


def test_two_closes_at_once_make_each_form_once(tmp_path: Path) -> None:
    with sandbox_process("--latency", "fast") as server:
        env, bought = _day_bought(server.api_base, tmp_path, per_group=5)
        ids = [r["shipment_id"] for r in _records(bought)]

        runs = [start(["close", "-o", "ndjson", "--progress", "off"], env) for _ in range(2)]
        outs = [run.communicate(timeout=120) for run in runs]

        codes = [run.returncode for run in runs]
        for code, (out, err) in zip(codes, outs, strict=True):
            assert code in (0, 1), err
            if code == 1:  # the other one held the lock: refused at once, nothing done
                assert b"another shipctl close for this account is running" in err and out == b""
            assert b"left_out" not in out and b"Traceback" not in err
        assert 0 in codes
        assert len(scan_forms(server)) == 4
        on = form_of(server, ids)
        assert None not in on.values() and len(set(on.values())) == 4


def _day_bought(api_base: str, tmp_path: Path, *, per_group: int) -> tuple[dict[str, str], bytes]:
    """A day's labels (`day_rows`) bought by a real `create` process: its environment and its records."""
    env = shipctl_env(api_base, tmp_path / "state")
    manifest = tmp_path / "orders.csv"
    write_manifest(manifest, day_rows(per_group=per_group))
    bought = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "-q"],
                            env=env, capture_output=True, check=False, timeout=120)
    assert bought.returncode == 0, bought.stderr
    return env, bought.stdout


def test_a_close_killed_between_the_call_and_the_commit_is_adopted_by_the_rerun(tmp_path: Path) -> None:
    """kill -9 while the API has made a form but before the run journaled it: the gateway forwards the create
    (the sandbox commits the form), then holds the answer until the process is dead."""
    with sandbox_process() as server:
        env, bought = _day_bought(server.api_base, tmp_path, per_group=2)
        ids = [r["shipment_id"] for r in _records(bought)]

        committed, release = threading.Event(), threading.Event()

        def hold_answer(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
            if method == "POST" and path.startswith("/v2/scan_forms") and answer.status_code == 200:
                committed.set()
                release.wait(60)
            return None

        gateway = Gateway(server.api_base.removesuffix("/v2"), hold_answer)
        try:
            run = start(["close", "-o", "ndjson", "--concurrency", "1", "--progress", "off"],
                        shipctl_env(gateway.api_base, tmp_path / "state"))
            assert committed.wait(60)
            os.kill(run.pid, signal.SIGKILL)
            run.communicate(timeout=30)
            assert run.returncode == -signal.SIGKILL
        finally:
            release.set()
            gateway.close()
        assert len(scan_forms(server)) == 1  # the form the dead run made

        rerun = start(["close", "-o", "ndjson", "--progress", "off"], env)
        out, err = rerun.communicate(timeout=120)

        assert rerun.returncode == 0, err
        statuses = sorted(r["status"] for r in _records(out))
        assert statuses == ["adopted", "created", "created", "created"]
        assert b"was made by a run that stopped before recording it: adopted" in err
        assert b"8 labels read: 3 forms created, 1 form adopted, " in err  # each label once: none "on a form already"
        assert b"on a form already" not in err
        assert len(scan_forms(server)) == 4
        on = form_of(server, ids)
        assert None not in on.values() and len(set(on.values())) == 4


def test_ctrl_c_during_close_prints_the_forms_made_and_what_the_rerun_will_do(tmp_path: Path) -> None:
    """SIGINT while the first form's answer is held at a gateway (the sandbox has made it): the run asks for no
    other form, records the one in flight, prints its record and a line saying what is left, and exits 130; the
    rerun makes the other forms and fetches the PDF."""
    with sandbox_process() as server:
        env, _ = _day_bought(server.api_base, tmp_path, per_group=2)

        code, out, err = _interrupted(server.api_base, tmp_path / "state", ["close"],
                                      lambda method, path: method == "POST" and path.startswith("/v2/scan_forms"))
        assert code == 130, err
        [made] = _records(out)
        assert made["status"] == "created" and made["shipments"] == 2 and made["form_file"] is None
        assert [f.id for f in scan_forms(server)] == [made["form_id"]]  # no form asked for after the Ctrl-C
        assert err.decode().strip().splitlines()[-1] == (
            "interrupted: 1 form created before the interrupt, 6 labels not on a form yet; rerun close to fetch "
            "the PDF of 1 form and close the rest (it makes no form twice)")

        rerun = start(["close", "-o", "ndjson", "--progress", "off"], env)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        statuses = {r["form_id"]: r["status"] for r in _records(out)}
        assert statuses[made["form_id"]] == "already_closed"
        assert sorted(statuses.values()) == ["already_closed", "created", "created", "created"]
        assert all(Path(r["form_file"]).is_file() for r in _records(out))
        assert len(scan_forms(server)) == 4


def _interrupted(api_base: str, state: Path, args: list[str],
                 held: Callable[[str, str], bool]) -> tuple[int, bytes, bytes]:
    """Run shipctl `args` through a gateway that holds the API's first successful answer to a `held` call (the
    sandbox has done it), SIGINT it there, and let the answer go once the run says it stopped asking: its exit
    code, stdout and stderr."""
    committed, release = threading.Event(), threading.Event()

    def hold_answer(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if held(method, path) and answer.status_code == 200 and not committed.is_set():
            committed.set()
            release.wait(60)
        return None

    gateway = Gateway(api_base.removesuffix("/v2"), hold_answer)
    try:
        run = start([*args, "-o", "ndjson", "--concurrency", "1", "--progress", "off"],
                    shipctl_env(gateway.api_base, state))
        assert run.stderr is not None and run.stdout is not None
        assert committed.wait(60)
        run.send_signal(signal.SIGINT)
        heard = []
        while not heard or not heard[-1].startswith(b"interrupted:"):  # the run has stopped asking
            line = run.stderr.readline()
            assert line, b"".join(heard)
            heard.append(line)
        release.set()
        out, rest = run.stdout.read(), run.stderr.read()
        code = run.wait(timeout=60)
    finally:
        release.set()
        gateway.close()
    err = b"".join(heard) + rest
    assert b"Traceback" not in err and b"error: interrupted" not in err
    return code, out, err


def test_ctrl_c_while_a_pickup_is_bought_buys_no_other_pickup(tmp_path: Path) -> None:
    """SIGINT while the first pickup's buy is held at a gateway (the sandbox has booked it): the buys waiting for a
    slot are not sent, the line says what is left, and the rerun books the rest, none twice."""
    with sandbox_process() as server:
        env, _ = _day_bought(server.api_base, tmp_path, per_group=1)

        code, out, err = _interrupted(server.api_base, tmp_path / "state", ["close", "--pickup"],
                                      lambda method, path: method == "POST" and path.endswith("/buy"))
        assert code == 130, err
        booked = [p.id for p in pickups(server) if p.status == "scheduled"]
        assert len(booked) == 1 and len(pickups(server)) == 4  # the one in flight; none bought after the Ctrl-C
        assert {r["pickup_status"] for r in _records(out)} == {"booked", "not_booked"}
        assert "3 pickups not booked" in err.decode().strip().splitlines()[-1]

        rerun = start(["close", "--pickup", "-o", "ndjson", "--progress", "off"], env)
        out, rerun_err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, rerun_err
        assert sorted(r["pickup_status"] for r in _records(out)) == ["booked", "booked", "booked", "booked_earlier"]
        assert sorted(p.id for p in pickups(server) if p.status == "scheduled") == sorted(
            r["pickup_id"] for r in _records(out))


def test_a_second_close_of_the_account_is_refused_while_one_runs(env: Sandbox, tmp_path: Path) -> None:
    bought = buy(tmp_path / "orders.csv", day_rows(per_group=1))
    account = sdk(env).user.retrieve_me().id
    with Closings(state_dir(), scope_for("test", account)).open():  # a run in progress holds the lock
        result = invoke("close", "-o", "ndjson")
    assert result.exit_code == 1
    assert f"another shipctl close for this account is running (pid {os.getpid()})" in result.stderr
    assert result.stdout == "" and scan_forms(env) == []
    assert set(form_of(env, [str(r["shipment_id"]) for r in bought]).values()) == {None}


def test_production_pickups_without_yes_or_a_terminal_are_refused_with_exit_2(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    write_manifest(tmp_path / "orders.csv", day_rows(per_group=2))  # 8 labels on 4 forms: 4 pickups
    assert invoke("create", str(tmp_path / "orders.csv"), "--yes", "-q", "-o", "ndjson").exit_code == 0

    refused = invoke("close", "--pickup", "-o", "ndjson")

    assert refused.exit_code == 2
    assert "production mode: 4 pickups to book, estimated total $13.90" in refused.stderr
    assert ("production mode: refusing to book 4 pickups ($13.90) without confirmation; rerun with --yes to book"
            in refused.stderr)
    assert "labels" not in refused.stderr.split("error:")[0].replace("labels read", "")
    assert "error: no pickup was booked (the forms were made); rerun with --pickup --yes" in refused.stderr
    assert [r["pickup_status"] for r in ndjson(refused.stdout)] == ["not_booked"] * 4
    assert {p.status for p in pickups(env, key=PROD_KEY)} == {"unknown"}

    booked = invoke("close", "--pickup", "--yes", "-o", "ndjson")
    assert booked.exit_code == 0, booked.stderr
    assert [r["pickup_status"] for r in ndjson(booked.stdout)] == ["booked"] * 4
    assert "4 pickups booked" in booked.stderr
    assert {p.status for p in pickups(env, key=PROD_KEY)} == {"scheduled"}


def test_pickups_of_an_unknown_mode_are_asked_about_as_unknown(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipments' answers say no mode (a gateway strips it): the question says so, and never "production"."""
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    write_manifest(tmp_path / "orders.csv", day_rows(per_group=2))
    assert invoke("create", str(tmp_path / "orders.csv"), "--yes", "-q", "-o", "ndjson").exit_code == 0

    def no_mode(method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method == "GET" and path.startswith("/v2/shipments/"):
            shipment = answer.json()
            shipment.pop("mode", None)
            return 200, "application/json", json.dumps(shipment).encode()
        return None

    with gateway_in_front(env, monkeypatch, no_mode):
        refused = invoke("close", "--pickup", "-o", "ndjson")

    assert refused.exit_code == 2
    assert "unknown mode: 4 pickups to book, estimated total $13.90" in refused.stderr
    assert ("unknown mode: refusing to book 4 pickups ($13.90) without confirmation; rerun with --yes to book"
            in refused.stderr)
    assert "production mode" not in refused.stderr
    assert {p.status for p in pickups(env, key=PROD_KEY)} == {"unknown"}  # quoted, never bought


def test_a_refused_shipment_ends_the_process_with_exit_3(tmp_path: Path) -> None:
    with sandbox_process("--refuse-form", "ORD-00002") as server:
        env = shipctl_env(server.api_base, tmp_path / "state")
        write_manifest(tmp_path / "orders.csv", day_rows(per_group=2))
        bought = subprocess.run([sys.executable, "-m", "shipctl", "create", str(tmp_path / "orders.csv"), "-q",
                                 "-o", "ndjson"], env=env, capture_output=True, check=False, timeout=120)
        assert bought.returncode == 0, bought.stderr
        offender = next(r for r in _records(bought.stdout) if r["reference"] == "ORD-00002")

        run = start(["close", "-o", "ndjson", "--progress", "off"], env)
        out, err = run.communicate(timeout=120)

        assert run.returncode == 3, err
        records = _records(out)
        assert sorted(r["status"] for r in records) == ["created"] * 4 + ["left_out"]
        [left] = [r for r in records if r["status"] == "left_out"]
        assert left["shipment_ids"] == [offender["shipment_id"]]
        # Named as the clerk knows the parcel, with the carrier's reason once (not the id three times over).
        assert (left["reference"], left["tracking_code"]) == ("ORD-00002", offender["tracking_code"])
        assert left["error_message"] == "refused by the carrier for a scan form"
        assert (f"warning: 1 label left out: ORD-00002 ({offender['tracking_code']}): refused by the carrier for "
                "a scan form").encode() in err
        assert b"8 labels read: 4 forms created, 1 label left out" in err
        assert len(scan_forms(server)) == 4


def test_an_unreachable_api_is_one_line_and_exit_1(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", "http://127.0.0.1:1/v2")
    result = invoke("close", "--concurrency", "1")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: cannot reach the API at http://127.0.0.1:1/v2 (connection refused): check EASYPOST_API_BASE and "
        "the network"]
    assert result.stdout == ""


def test_the_readme_dry_run_sample(tmp_path: Path) -> None:
    """The README's `close --dry-run` sample is what the built-in sandbox prints after the example manifest."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    command = "shipctl close --dry-run -o table"
    shown = readme[readme.index(f"$ {command}\n") + len(command) + 3:].split("```", 1)[0]
    env = {k: v for k, v in os.environ.items()
           if k not in ("EASYPOST_API_KEY", "EASYPOST_API_BASE", "SHIPCTL_FROM", "NO_COLOR")}
    env["SHIPCTL_STATE_DIR"] = str(tmp_path / "state")
    examples = Path(__file__).resolve().parents[1] / "examples" / "manifest.csv"
    bought = subprocess.run([sys.executable, "-m", "shipctl", "create", str(examples), "-q", "-o", "ndjson",
                             "--journal", str(tmp_path / "examples.journal.db")],
                            env=env, capture_output=True, check=False, timeout=120)
    assert bought.returncode == 0, bought.stderr
    done = subprocess.run([sys.executable, "-m", "shipctl", *command.split()[1:]], env=env, capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    first, *_, last = done.stderr.splitlines()

    def mask(text: str) -> list[str]:
        text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", re.sub(r"\d+\.\d s\b", "T s", text))
        return [line.rstrip() for line in text.strip("\n").splitlines()]

    assert mask("\n".join([first, done.stdout.rstrip("\n"), last])) == mask(shown)


def test_the_last_line_says_what_the_pickups_cost(env: Sandbox, tmp_path: Path) -> None:
    """A test key is never asked before pickups are bought: the last line is where their cost shows, summed
    from the records' rates."""
    from decimal import Decimal

    write_manifest(tmp_path / "orders.csv", day_rows(per_group=2))  # 8 labels on 4 forms: 4 pickups
    assert invoke("create", str(tmp_path / "orders.csv"), "-q", "-o", "ndjson").exit_code == 0

    booked = invoke("close", "--pickup", "-o", "ndjson")

    assert booked.exit_code == 0, booked.stderr
    records = ndjson(booked.stdout)
    assert [r["pickup_status"] for r in records] == ["booked"] * 4
    total = sum((Decimal(str(r["pickup_rate"])) for r in records), Decimal(0))
    assert total > 0
    assert f"4 pickups booked (${total:,.2f})" in booked.stderr.splitlines()[-1], booked.stderr
