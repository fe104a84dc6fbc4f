"""A bought label whose file cannot be fetched: `bought` + LABEL_NOT_SAVED, exit 3, and the rerun saves it.

A gateway in front of the sandbox serves the label files too (it rewrites the label URLs in the API's answers to
point at itself, as a CDN in front of EasyPost would be), and answers the download of one label with an error
until the test heals it. The real `shipctl create` runs as a subprocess; the sandbox's ledger is the truth.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.sandbox import Sandbox
from tests.gateway import Gateway, gateway_in_front
from tests.manifests import row, write_manifest


class BrokenLabel:
    """Label URLs rewritten to the gateway; the first label file asked for fails (500) until `healed`."""

    def __init__(self, sandbox_origin: str) -> None:
        self.sandbox_origin = sandbox_origin.encode()
        self.gateway_origin = b""
        self.broken: str | None = None
        self.healed = False
        self.refused = 0
        self.served: list[str] = []
        self.lock = threading.Lock()

    def rule(self, method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        body = answer.content
        if self.sandbox_origin + b"/labels/" not in body:
            return None
        rewritten = body.replace(self.sandbox_origin + b"/labels/", self.gateway_origin + b"/labels/")
        return answer.status_code, answer.headers.get("Content-Type", "application/json"), rewritten

    def hold(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if not (method == "GET" and path.startswith("/labels/")):
            return None
        with self.lock:
            self.broken = self.broken or path
            if path == self.broken and not self.healed:
                self.refused += 1
                return 500, "text/html", b"<html>label store unavailable</html>"
            self.served.append(path)
        return None


@pytest.fixture
def labels(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BrokenLabel, Gateway]]:
    broken = BrokenLabel(env.api_base.removesuffix("/v2"))
    with gateway_in_front(env, monkeypatch, broken.rule, hold=broken.hold) as proxy:
        broken.gateway_origin = proxy.api_base.removesuffix("/v2").encode()
        yield broken, proxy


def create(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run([sys.executable, "-m", "shipctl", "create", *args, "-o", "ndjson", "--progress", "off"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, env=dict(os.environ),
                          check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr


@pytest.mark.slow
def test_a_label_that_cannot_be_fetched_is_bought_not_saved_and_the_rerun_saves_it_without_buying(
    env: Sandbox, labels: tuple[BrokenLabel, Gateway], tmp_path: Path
) -> None:
    broken, _ = labels
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    out = tmp_path / "labels"

    code, rows, err = create(str(manifest), "--labels-dir", str(out))
    assert code == 3, err
    assert broken.refused >= 1  # the download really was refused (and retried, being a 5xx)
    by_code = Counter((r["status"], r["error_code"]) for r in rows)
    assert by_code == Counter({("bought", "LABEL_NOT_SAVED"): 1, ("bought", None): 1}), rows
    [unsaved] = [r for r in rows if r["error_code"] == "LABEL_NOT_SAVED"]
    [saved] = [r for r in rows if r["error_code"] is None]
    assert unsaved["shipment_id"] and unsaved["tracking_code"] and not unsaved["label_path"]
    assert not list(out.glob(f"{unsaved['reference']}*"))  # no half-written file either
    assert Path(saved["label_path"]).read_bytes().startswith(b"\x89PNG")
    assert re.search(r"rows? with a label needs? a person", err) and "LABEL_NOT_SAVED" in err
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1, "ORD-00001": 1})

    broken.healed = True
    code, rows, err = create(str(manifest), "--labels-dir", str(out))
    assert code == 0, err
    assert {r["reference"]: (r["status"], r["error_code"], r["purchase"]) for r in rows} == {
        "ORD-00000": ("bought", None, "resumed"), "ORD-00001": ("bought", None, "resumed"),
    }
    again = {r["reference"]: r for r in rows}[unsaved["reference"]]
    assert again["tracking_code"] == unsaved["tracking_code"]
    assert Path(again["label_path"]).read_bytes().startswith(b"\x89PNG")
    assert broken.broken in broken.served  # fetched again, now that it can be
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1, "ORD-00001": 1})


class RefusedConversion:
    """The API refuses the first label conversion (`GET /shipments/<id>/label?file_format=…`) with a 422."""

    def __init__(self) -> None:
        self.refused = 0
        self.converted = 0

    def __call__(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        if not (method == "GET" and "/label?" in path):
            return None
        if self.refused:
            self.converted += 1
            return None
        self.refused += 1
        error = {"error": {"code": "SHIPMENT.LABEL.UNAVAILABLE", "message": "label conversion failed", "errors": []}}
        return 422, "application/json", json.dumps(error).encode()


@pytest.mark.slow
def test_a_label_whose_conversion_is_refused_is_bought_not_saved_and_the_rerun_converts_it(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversion = RefusedConversion()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    out = tmp_path / "labels"
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=conversion):
        code, rows, err = create(str(manifest), "--labels-dir", str(out), "--label-format", "PDF")
        assert code == 3, err
        assert conversion.refused == 1
        assert [(r["status"], r["error_code"], r["label_path"]) for r in rows] == [("bought", "LABEL_NOT_SAVED", None)]
        assert re.search(r"rows? with a label needs? a person", err)
        assert not list(out.iterdir())

        code, rows, err = create(str(manifest), "--labels-dir", str(out), "--label-format", "PDF")
    assert code == 0, err
    assert [(r["status"], r["error_code"], r["purchase"]) for r in rows] == [("bought", None, "resumed")]
    assert conversion.converted == 1
    assert Path(rows[0]["label_path"]).suffix == ".pdf"
    assert Path(rows[0]["label_path"]).read_bytes().startswith(b"%PDF")
    assert Counter(e["reference"] for e in env.ledger()) == Counter({"ORD-00000": 1})


@pytest.mark.parametrize(("status", "passing"), [(404, False), (403, False), (429, True), (500, True), (503, True)])
def test_a_label_download_refused_for_good_is_not_retried(status: int, passing: bool) -> None:
    """A download's 4xx will not change however often it is asked; a 5xx or 429 may pass."""
    import requests

    from shipctl.carrier.errors import classify

    response = requests.Response()
    response.status_code = status
    failure = classify(requests.HTTPError(f"{status} for url: http://labels.example/x.png", response=response))
    assert failure.transient is passing
    assert failure.http_status == status
