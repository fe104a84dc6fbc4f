"""A create that made a shipment whose answer was never recorded (a lost answer; a run killed before it could record
it), with the reference check on: that shipment is the row's own, not another machine's to give way to.

The sandbox's ledger is the truth about what was bought; a gateway in front of it loses answers on purpose.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import easypost
import pytest
import requests

from shipctl.claims import Claims
from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import TEST_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest

SCOPE = f"test-mode key account {account_for_key(TEST_KEY)}"


def bought(sb: Sandbox) -> Counter[str]:
    return Counter(entry["shipment_id"] for entry in sb.ledger())


class LoseFirstCreateAnswer:
    """Forwards every request; the first `POST /shipments` is made at the API, and its answer replaced by a load
    balancer's error page (an answer that says nothing of what happened)."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, method: str, path: str, answer: requests.Response) -> tuple[int, str, bytes] | None:
        if method != "POST" or not path.rstrip("/").endswith("/shipments"):
            return None
        self.made.append(answer.json()["id"])
        if len(self.made) == 1:
            return 502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return None


def test_a_create_whose_answer_was_lost_is_bought_as_the_shipment_it_made(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent again blindly, the create made a second shipment, and the first (unknown to the claims, older than
    ours) looked like another machine's to the wide look: the row gave way to its own shipment and was held.
    Now the reference's newest is asked first: the shipment the lost create made is the one bought, and no
    second one is made. (`--reference-quiet 0`: the wide look runs for every row.)"""
    lose = LoseFirstCreateAnswer()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, lose) as gateway:
        result = invoke("create", str(manifest), "-o", "ndjson", "--check-references", "--reference-quiet", "0")
    assert gateway.fired == 1
    assert result.exit_code == 0, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["purchase"]) == ("bought", "new")
    assert lose.made == [record["shipment_id"]]  # one create reached the API, and its shipment was bought
    assert bought(env) == Counter({record["shipment_id"]: 1})


def test_a_taker_knows_the_creates_a_dead_run_sent_until_a_shipment_is_attached(tmp_path: Path) -> None:
    """What a run that dies leaves for its taker: each create it sent (marked before sending), and nothing once a
    shipment was recorded for the reference -- nor for a row that never sent a create (held, refused)."""
    state = tmp_path / "state"
    dead = Claims(state, journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-1")
    dead.claim("ORD-2")  # held before any create: nothing sent
    before = time.time()
    dead.creating("ORD-1", before - 1)
    dead.creating("ORD-1", before - 1)  # a second attempt
    dead.claim("ORD-3")
    dead.creating("ORD-3", None)
    assert dead.attach("ORD-3", "shp_3")
    dead.close()  # its run file goes: the run is dead

    taker = Claims(state, journal="taker.journal.db").open(SCOPE)
    try:
        (sent,) = taker.claim("ORD-1").creates
        assert sent.looked_at == pytest.approx(before - 1)
        assert before <= sent.first_sent <= sent.last_sent <= time.time()
        assert taker.claim("ORD-2").creates == ()
        assert taker.claim("ORD-3").creates == ()
        assert taker.attach("ORD-1", "shp_1")
    finally:
        taker.close()
    third = Claims(state, journal="third.journal.db").open(SCOPE)
    try:
        assert third.claim("ORD-1").creates == ()  # recorded now: the claim's history settles it
    finally:
        third.close()


def _storefront_quote(api_base: str, **overrides: str) -> str:
    """A shipment for ORD-00000 made outside shipctl (a storefront quoting it), unbought; its id."""
    params = {k: v for k, v in row(0, **overrides).items() if k != "reference"}
    client = easypost.EasyPostClient(TEST_KEY, api_base=api_base)
    try:
        shipment = client.shipment.create(
            reference="ORD-00000",
            to_address={k[3:]: v for k, v in params.items() if k.startswith("to_")},
            from_address={k[5:]: v for k, v in params.items() if k.startswith("from_")},
            parcel={"weight": params["weight"]},
        )
    finally:
        client._requests_session.close()
    return str(shipment.id)


@pytest.mark.slow
def test_a_shipment_from_another_origin_is_never_taken_for_a_dead_runs_own(env: Sandbox, tmp_path: Path) -> None:
    """A run died with a create of ORD-00000 out; meanwhile a storefront quoted ORD-00000 from another warehouse.
    That shipment is not the dead run's (another origin): the rerun gives way to it and holds the row, and buys
    nothing -- never a label from an address the manifest does not have."""
    dead = Claims(tmp_path / "state", journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-00000")
    dead.creating("ORD-00000", time.time())
    dead.close()
    theirs = _storefront_quote(env.api_base, from_street1="500 Other Warehouse Rd")
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 3, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["error_code"]) == ("skipped", "HELD_BY_OTHER_RUN")
    assert theirs in record["error_message"]
    assert bought(env) == Counter()


def test_a_shipment_a_dead_runs_create_made_is_bought_by_its_rerun(env: Sandbox, tmp_path: Path) -> None:
    """The same, with the row's own origin: it is the shipment the dead run's create made (its answer never
    recorded), so the rerun buys it rather than holding the row for 15 minutes as another machine's."""
    dead = Claims(tmp_path / "state", journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-00000")
    dead.creating("ORD-00000", time.time())
    orphan = _storefront_quote(env.api_base)  # what the dead run's create made
    dead.close()
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 0, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["shipment_id"]) == ("bought", orphan)
    assert bought(env) == Counter({orphan: 1})
