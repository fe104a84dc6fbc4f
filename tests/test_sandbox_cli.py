"""`shipctl sandbox serve` as a real subprocess: URL first on stdout, the SDK works, clean exit on signals."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import easypost
import pytest
import requests

from shipctl.sandbox.examples import shipment_params

pytestmark = pytest.mark.slow


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("no first line on stdout within the timeout")
    return proc.stdout.readline()


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-m", "shipctl", "sandbox", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, _read_line(proc).strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_first_and_exits_0_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    ledger = tmp_path / "ledger.ndjson"
    with serve("--ledger", str(ledger), "--seed", "1", "--latency", "none") as (proc, url):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        client = easypost.EasyPostClient("EZTKcli", api_base=url)
        try:
            shp = client.shipment.create(**shipment_params("cli-1"))
            bought = client.shipment.buy(shp.id, rate=shp.lowest_rate())
        finally:
            client._requests_session.close()
        with requests.Session() as s:
            listed = s.get(url + "/_sandbox/ledger", timeout=10).json()["ledger"]
        assert [e["shipment_id"] for e in listed] == [shp.id]
        assert listed[0]["reference"] == "cli-1" and bought.tracking_code
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out == ""  # nothing after the URL line on stdout
        assert "no real labels" in err
    assert [json.loads(line)["shipment_id"] for line in ledger.read_text().splitlines()] == [shp.id]


def test_serve_rejects_bad_options() -> None:
    for args in (["--latency", "slow"], ["--faults", "bogus=1"], ["--max-inflight", "0"]):
        proc = subprocess.run([sys.executable, "-m", "shipctl", "sandbox", "serve", "--port", "0", *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == "" and "error" in proc.stderr


def test_serve_with_state_file_keeps_purchases(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite"
    with serve("--state", str(state)) as (proc, url):
        c = easypost.EasyPostClient("EZTKstate", api_base=url)
        try:
            shp = c.shipment.create(**shipment_params("kept"))
            code = c.shipment.buy(shp.id, rate=shp.lowest_rate()).tracking_code
        finally:
            c._requests_session.close()
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    with serve("--state", str(state)) as (proc, url):
        c = easypost.EasyPostClient("EZTKstate", api_base=url)
        try:
            assert c.shipment.retrieve("kept").tracking_code == code
        finally:
            c._requests_session.close()
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 0


def test_serve_rejects_a_bad_clock_shift() -> None:
    for bad in ("soon", "8x", "-20000d"):
        proc = subprocess.run([sys.executable, "-m", "shipctl", "sandbox", "serve", "--port", "0",
                               "--shift-clock", bad], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert proc.stdout == "" and "--shift-clock" in proc.stderr


def test_parse_shift() -> None:
    from shipctl.cli.sandbox import parse_shift

    assert [parse_shift(t) for t in ("8d", "-2d", "+1w", "36h", "-8", "0")] == [8.0, -2.0, 7.0, 1.5, -8.0, 0.0]


def test_serve_shift_clock_dates_labels_in_the_past(tmp_path: Path) -> None:
    """`sandbox serve --shift-clock -8d`: a label bought through it by `shipctl create` is dated 8 days ago, so
    `refund --unused --older-than 7d` finds it, as a person trying it by hand would."""
    import datetime as dt

    from tests.cli import TEST_KEY
    from tests.manifests import row, write_manifest
    from tests.standalone import sandbox_process, shipctl_env

    manifest = write_manifest(tmp_path / "old.csv", [row(0, reference="AGED-0")])
    with sandbox_process("--port", "0", "--shift-clock", "-8d") as server:
        env = shipctl_env(server.api_base, tmp_path / "state")
        bought = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson", "-q"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert bought.returncode == 0, bought.stderr
        shipment_id = json.loads(bought.stdout.splitlines()[0])["shipment_id"]
        client = easypost.EasyPostClient(TEST_KEY, api_base=server.api_base)
        try:
            shp = client.shipment.retrieve(shipment_id)
        finally:
            client._requests_session.close()
        label_date = dt.datetime.fromisoformat(str(shp.postage_label.label_date).replace("Z", "+00:00"))
        age = dt.datetime.now(dt.timezone.utc) - label_date
        assert dt.timedelta(days=7.9) < age < dt.timedelta(days=8.1), label_date
        dry = subprocess.run([sys.executable, "-m", "shipctl", "refund", "--unused", "--older-than", "7d",
                              "--dry-run", "-o", "ndjson"], capture_output=True, text=True, env=env, timeout=120)
        assert dry.returncode == 0, dry.stderr
        assert [json.loads(line)["reference"] for line in dry.stdout.splitlines()] == ["AGED-0"]
