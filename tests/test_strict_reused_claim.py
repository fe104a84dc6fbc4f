"""`create --verify strict` failing a shipment it reused: the claim is never released, because the shipment may be
one a run that stopped sent a buy for, and that buy may still land. The sandbox's ledger and the claims file are
the truth."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest

BAD_ZIP = row(2, reference="BAD-ZIP", to_street1="1 Main St", to_city="Los Angeles", to_state="CA")
"""A destination EasyPost's verification fails (a ZIP outside its state); `--verify warn` buys it anyway."""


def _claim(state_dir: Path, reference: str) -> tuple[str, str | None]:
    with sqlite3.connect(state_dir / "claims.sqlite3") as db:
        state, shipment_id = db.execute("SELECT state, shipment_id FROM claims WHERE reference = ?",
                                        (reference,)).fetchone()
    return str(state), shipment_id


def test_strict_never_releases_the_claim_of_a_shipment_a_buy_was_sent_for(
        env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [BAD_ZIP])
    cut_off: list[str] = []
    cutting = [True]

    def cut(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.endswith("/buy") and cutting[0]:
            cut_off.append(path)
            raise TimeoutError("cut off")  # never reaches the API: the buy's fate is unknown to shipctl
        return None

    # One gateway for both runs (the journal is bound to the API's address); it cuts off the first run's buys.
    with gateway_in_front(env, monkeypatch, lambda *_a: None, hold=cut):
        # A first run (--verify warn, the default) creates the shipment and sends its buy; no answer ever comes.
        first = invoke("create", str(manifest), "-o", "ndjson", "-q")
        [unconfirmed] = ndjson(first.stdout)
        assert cut_off and unconfirmed["error_code"] == "BUY_UNCONFIRMED"
        shipment_id = str(unconfirmed["shipment_id"])
        assert _claim(tmp_path / "state", "BAD-ZIP") == ("claimed", shipment_id)

        cutting[0] = False
        strict = invoke("create", str(manifest), "--verify", "strict", "-o", "ndjson", "-q")

    [failed] = ndjson(strict.stdout)
    # The same shipment was reused (reconciled, not replaced) and its destination failed verification.
    assert (failed["status"], failed["error_code"], failed["shipment_id"]) == (
        "failed", "ADDRESS.VERIFY.FAILURE", shipment_id)
    assert env.ledger() == []
    # Not released: whoever claims the reference next must treat that shipment as possibly bought.
    assert _claim(tmp_path / "state", "BAD-ZIP") == ("claimed", shipment_id)
