"""Accounts in the sandbox: `GET /v2/users`, shipments scoped to the key's account, the access key that the
embedded sandbox requires, label downloads that send the key only to the API's own origin, and the warning of
`sandbox serve` on a non-loopback interface. The real SDK over real HTTP throughout."""

from __future__ import annotations

import http.server
import json
import os
import selectors
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests
from easypost.errors import NotFoundError, UnauthorizedError

from shipctl.carrier.account import retrieve_account
from shipctl.carrier.client import make_client
from shipctl.carrier.shipments import download
from shipctl.sandbox import Sandbox, start_sandbox
from shipctl.sandbox.examples import shipment_params
from shipctl.sandbox.model import DEFAULT_ACCOUNT, account_for_key
from shipctl.target import api_target

KEY_A = "EZTKaccountA0000000000000000000"
KEY_B = "EZTKaccountB0000000000000000000"


@contextmanager
def sdk(key: str, sb: Sandbox) -> Iterator[easypost.EasyPostClient]:
    c = easypost.EasyPostClient(key, api_base=sb.api_base)
    try:
        yield c
    finally:
        c._requests_session.close()


def _get(url: str, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    with requests.Session() as s:
        return s.get(url, headers=headers, timeout=10)


def _error_code(response: requests.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --------------------------------------------------------------------------- users


def test_retrieve_me_names_one_account_per_key_body(sandbox: Sandbox) -> None:
    with sdk(KEY_A, sandbox) as a, sdk("EZAK" + KEY_A[4:], sandbox) as a_live, sdk(KEY_B, sandbox) as b:
        me = a.user.retrieve_me()
        assert type(me).__name__ == "User" and me.object == "User"
        assert me.id.startswith("user_") and me.id == account_for_key(KEY_A)
        assert me.email and me.name and me.children == []
        # EasyPost gives an account a test and a production key: one account, whichever prefix.
        assert a_live.user.retrieve_me().id == me.id
        assert b.user.retrieve_me().id not in (me.id, DEFAULT_ACCOUNT)
        assert retrieve_account(a).id == me.id
        assert a.user.retrieve(me.id).id == me.id
        with pytest.raises(NotFoundError):
            b.user.retrieve(me.id)


def test_the_account_id_is_stable_and_hides_the_key() -> None:
    assert account_for_key(KEY_A) == account_for_key(KEY_A) == account_for_key("EZAK" + KEY_A[4:])
    assert account_for_key(KEY_A) != account_for_key(KEY_B)
    assert KEY_A[4:] not in account_for_key(KEY_A)


# --------------------------------------------------------------------------- shipments scoped to an account


def test_two_accounts_use_one_reference_independently_and_never_see_each_other(sandbox: Sandbox) -> None:
    with sdk(KEY_A, sandbox) as a, sdk(KEY_B, sandbox) as b:
        mine = a.shipment.create(**shipment_params("order-1"))
        theirs = b.shipment.create(**shipment_params("order-1"))
        assert a.shipment.retrieve("order-1").id == mine.id
        assert b.shipment.retrieve("order-1").id == theirs.id

        bought = b.shipment.buy(theirs.id, rate=theirs.lowest_rate())
        for attempt in (
            lambda: a.shipment.retrieve(theirs.id),
            lambda: a.shipment.buy(theirs.id, rate=theirs.lowest_rate()),
            lambda: a.shipment.refund(theirs.id),
            lambda: a.shipment.label(theirs.id, file_format="PDF"),
            lambda: a.shipment.insure(theirs.id, amount="50"),
            lambda: a.shipment.regenerate_rates(theirs.id),
            lambda: a.address.retrieve(theirs.to_address.id),
            lambda: a.rate.retrieve(theirs.rates[0].id),
        ):
            with pytest.raises(NotFoundError):
                attempt()
        # The refusals changed nothing of B's shipment.
        again = b.shipment.retrieve(theirs.id)
        assert again.refund_status is None and again.insurance is None
        assert again.tracking_code == bought.tracking_code

        assert [s.id for s in a.shipment.all(page_size=100)["shipments"]] == [mine.id]
        assert [s.id for s in b.shipment.all(page_size=100, reference="order-1")["shipments"]] == [theirs.id]
        assert {adr.id for adr in a.address.all(page_size=100)["addresses"]}.isdisjoint(
            {theirs.to_address.id, theirs.from_address.id})

        # B's label's tracker is B's: A tracking the same code gets a tracker of its own.
        theirs_tracker = b.tracker.create(tracking_code=bought.tracking_code)
        mine_tracker = a.tracker.create(tracking_code=bought.tracking_code)
        assert mine_tracker.id != theirs_tracker.id and mine_tracker.shipment_id is None

    [entry] = sandbox.ledger()
    assert entry["shipment_id"] == theirs.id and entry["account"] == account_for_key(KEY_B)


def test_accounts_persist_in_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with start_sandbox(state_path=state) as sb, sdk(KEY_A, sb) as a, sdk(KEY_B, sb) as b:
        mine = a.shipment.create(**shipment_params("kept"))
        a.shipment.buy(mine.id, rate=mine.lowest_rate())
        theirs = b.shipment.create(**shipment_params("kept"))
    with start_sandbox(state_path=state) as sb, sdk(KEY_A, sb) as a, sdk(KEY_B, sb) as b:
        assert a.shipment.retrieve("kept").id == mine.id
        assert b.shipment.retrieve("kept").id == theirs.id
        with pytest.raises(NotFoundError):
            b.shipment.refund(mine.id)
        assert a.shipment.refund("kept").refund_status == "submitted"
        assert [e["account"] for e in sb.ledger()] == [account_for_key(KEY_A)]


# The objects table and a ledger row as a state file held them before accounts existed.
_OLD_SCHEMA = """
CREATE TABLE objects (id TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL, reference TEXT,
                      data TEXT NOT NULL);
CREATE INDEX objects_kind ON objects (kind, seq);
CREATE TABLE ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, shipment_id TEXT UNIQUE, data TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _write_pre_account_state(path: Path) -> tuple[str, str]:
    """A state file in the old layout holding one bought shipment (reference "legacy"); its id and tracking code."""
    made = path.with_name("made.sqlite3")
    with start_sandbox(state_path=made) as sb, sdk(KEY_A, sb) as a:
        shp = a.shipment.create(**shipment_params("legacy"))
        code = a.shipment.buy(shp.id, rate=shp.lowest_rate()).tracking_code
    new, old = sqlite3.connect(made), sqlite3.connect(path)
    try:
        old.executescript(_OLD_SCHEMA)
        old.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?)",
                        new.execute("SELECT id, kind, seq, reference, data FROM objects"))
        for (data,) in new.execute("SELECT data FROM ledger"):
            entry = json.loads(data)
            del entry["account"]
            old.execute("INSERT INTO ledger (shipment_id, data) VALUES (?, ?)",
                        (entry["shipment_id"], json.dumps(entry)))
        old.executemany("INSERT INTO meta VALUES (?, ?)", new.execute("SELECT key, value FROM meta"))
        old.commit()
    finally:
        new.close()
        old.close()
    return shp.id, code


def test_a_state_file_from_before_accounts_loads_into_the_default_account(tmp_path: Path) -> None:
    state = tmp_path / "old.sqlite3"
    shp_id, code = _write_pre_account_state(state)
    with start_sandbox(state_path=state, access_key="the-one-key") as sb, sdk("the-one-key", sb) as mine:
        assert mine.shipment.retrieve("legacy").id == shp_id
        assert mine.shipment.retrieve(shp_id).tracking_code == code
        assert [(e["shipment_id"], e["account"]) for e in sb.ledger()] == [(shp_id, DEFAULT_ACCOUNT)]
        made = mine.shipment.create(**shipment_params("after"))
    # Keys without an access key name other accounts: the old objects are not theirs.
    with start_sandbox(state_path=state) as sb, sdk(KEY_A, sb) as a:
        with pytest.raises(NotFoundError):
            a.shipment.retrieve("legacy")
        with pytest.raises(NotFoundError):
            a.shipment.retrieve(made.id)
    columns = {row[1] for row in sqlite3.connect(state).execute("PRAGMA table_info(objects)")}
    assert "account" in columns


# --------------------------------------------------------------------------- the access key


def test_with_an_access_key_only_that_key_is_served(tmp_path: Path) -> None:
    key = "sandbox-access-key-0123456789"
    with start_sandbox(access_key=key) as sb, sdk(key, sb) as right, sdk(KEY_A, sb) as wrong:
        assert right.user.retrieve_me().id == DEFAULT_ACCOUNT
        shp = right.shipment.create(**shipment_params("guarded"))
        label = right.shipment.buy(shp.id, rate=shp.lowest_rate()).postage_label.label_url
        assert label.startswith(sb.url + "/labels/")

        with pytest.raises(UnauthorizedError):
            wrong.user.retrieve_me()
        with pytest.raises(UnauthorizedError):
            wrong.shipment.retrieve(shp.id)
        with pytest.raises(UnauthorizedError):
            wrong.shipment.create(**shipment_params("intruder"))

        ledger = sb.url + "/v2/_sandbox/ledger"
        for bad in (None, KEY_A, key + "x", key[:-1]):
            assert _get(ledger, bad).status_code == 401
            refused = _get(label, bad)
            assert refused.status_code == 401 and refused.content[:4] != b"\x89PNG"
        assert _error_code(_get(ledger, KEY_A)) == "APIKEY.INACTIVE"
        assert _error_code(_get(label)) == "APIKEY.REQUIRED"

        entries = _get(ledger, key).json()["ledger"]
        assert [(e["shipment_id"], e["account"]) for e in entries] == [(shp.id, DEFAULT_ACCOUNT)]
        served = _get(label, key)
        assert served.status_code == 200 and served.content[:4] == b"\x89PNG"
        # Nothing the wrong key sent was acted on.
        assert [s.reference for s in right.shipment.all(page_size=100)["shipments"]] == ["guarded"]


def test_an_empty_access_key_is_refused() -> None:
    with pytest.raises(ValueError, match="access_key"):
        Sandbox(access_key="")
    with pytest.raises(ValueError, match="access_key"):
        Sandbox(access_key=" padded ")


def test_the_embedded_sandbox_answers_only_its_own_runs_key(no_key: Path) -> None:
    with api_target() as first:
        assert first.embedded and len(first.api_key) >= 40
        assert first.api_key not in repr(first)
        me = _get(first.api_base + "/users", first.api_key)
        assert me.status_code == 200 and me.json()["id"] == DEFAULT_ACCOUNT
        for other in ("sandbox-no-real-key", KEY_A):
            assert _get(first.api_base + "/users", other).status_code == 401
            assert _get(first.api_base.removesuffix("/v2") + "/v2/_sandbox/ledger", other).status_code == 401
        c = make_client(first.api_key, first.api_base, pool_size=2)
        try:
            made = c.shipment.create(**shipment_params("embedded-1"))
        finally:
            c._requests_session.close()
    # A later command: another key and port, the same account, so what the first made is still there.
    with api_target() as second:
        assert second.api_key != first.api_key
        assert _get(second.api_base + "/shipments/embedded-1", first.api_key).status_code == 401
        found = _get(second.api_base + "/shipments/embedded-1", second.api_key)
        assert found.status_code == 200 and found.json()["id"] == made.id


# --------------------------------------------------------------------------- label downloads


class _Recorder(http.server.ThreadingHTTPServer):
    """Another origin (loopback, another port) serving a label and remembering the headers it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append({k.lower(): v for k, v in self.headers.items()})
                body = b"elsewhere"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)


@contextmanager
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_label_download_sends_the_key_to_the_api_origin_only(tmp_path: Path) -> None:
    key = "download-access-key-0123456789"
    with start_sandbox(access_key=key) as sb, recorder() as other:
        client = make_client(key, sb.api_base, pool_size=2)
        try:
            shp = client.shipment.create(**shipment_params("dl"))
            url = client.shipment.buy(shp.id, rate=shp.lowest_rate()).postage_label.label_url
            # The sandbox refuses the file without the key: the download succeeding means it was sent.
            assert _get(url).status_code == 401
            label = download(client, url, tmp_path / "labels" / "dl.png")
            assert label.read_bytes()[:4] == b"\x89PNG"

            elsewhere = f"http://127.0.0.1:{other.server_address[1]}/labels/x.png"
            assert download(client, elsewhere, tmp_path / "x.png").read_bytes() == b"elsewhere"
            assert len(other.seen) == 1 and "authorization" not in other.seen[0]
        finally:
            client._requests_session.close()


# --------------------------------------------------------------------------- sandbox serve


def _first_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("no first line on stdout within the timeout")
    return proc.stdout.readline().strip()


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "shipctl", "sandbox", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        yield proc, _first_line(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.mark.slow
def test_serve_on_every_interface_warns_that_anyone_can_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPCTL_SANDBOX_KEY", raising=False)
    with serve("--host", "0.0.0.0") as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "/users", KEY_A).json()["id"] == account_for_key(KEY_A)  # open to any key
        err = _stop(proc)
    assert "WARNING" in err and "0.0.0.0" in err
    assert "read the ledger" in err and "names and addresses" in err and "refund labels" in err
    with serve("--host", "127.0.0.1") as (proc, _):
        assert "WARNING" not in _stop(proc)


@pytest.mark.slow
def test_serve_with_an_access_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "serve-access-key-0123456789"
    with serve("--host", "0.0.0.0", env={"SHIPCTL_SANDBOX_KEY": key}) as (proc, url):
        assert _get(url + "/users", KEY_A).status_code == 401
        assert _get(url + "/_sandbox/ledger").status_code == 401
        assert _get(url + "/users", key).json()["id"] == DEFAULT_ACCOUNT
        err = _stop(proc)
    assert "WARNING" not in err and "access key" in err and key not in err
    with serve("--access-key", " ") as (proc, line):
        assert line == "" and proc.wait(timeout=30) == 2
