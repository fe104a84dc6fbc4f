"""A create that made a shipment whose answer was never recorded (a lost answer; a run killed before it could record
it), with the reference check on: that shipment is the row's own, not another machine's to give way to.

The sandbox's ledger is the truth about what was bought; a gateway in front of it loses answers on purpose.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import easypost
import pytest
import requests

from shipctl.claims import Claims
from shipctl.jobs.purchase import row_digest
from shipctl.manifest import ValidRow, iter_rows
from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import TEST_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest

SCOPE = f"test-mode key account {account_for_key(TEST_KEY)}"


def bought(sb: Sandbox) -> Counter[str]:
    return Counter(entry["shipment_id"] for entry in sb.ledger())


def digest_of(manifest: Path) -> str:
    """The digest shipctl gives the manifest's one row (what its create marks carry)."""
    (item,) = list(iter_rows(manifest))
    assert isinstance(item, ValidRow)
    return row_digest(item.row)


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
    dead.creating("ORD-1", "digest-1", before - 1)
    dead.creating("ORD-1", "digest-1", before - 1)  # a second attempt
    dead.claim("ORD-3")
    dead.creating("ORD-3", "digest-3", None)
    assert dead.attach("ORD-3", "shp_3")
    dead.claim("ORD-4")
    dead.creating("ORD-4", "digest-4", None)
    dead.not_creating("ORD-4")  # every attempt refused: it made nothing
    dead.close()  # its run file goes: the run is dead

    taker = Claims(state, journal="taker.journal.db").open(SCOPE)
    try:
        (sent,) = taker.claim("ORD-1").creates
        assert (sent.digest, sent.looked_at) == ("digest-1", pytest.approx(before - 1))
        assert before <= sent.first_sent <= sent.last_sent <= time.time()
        assert taker.claim("ORD-2").creates == ()
        assert taker.claim("ORD-3").creates == ()
        assert taker.claim("ORD-4").creates == ()
        assert taker.attach("ORD-1", "shp_1")
    finally:
        taker.close()
    third = Claims(state, journal="third.journal.db").open(SCOPE)
    try:
        assert third.claim("ORD-1").creates == ()  # recorded now: the claim's history settles it
    finally:
        third.close()


def _storefront_quote(api_base: str, *, options: dict[str, str] | None = None, buy: bool = False,
                      **overrides: str) -> str:
    """A shipment for ORD-00000 made outside shipctl (a storefront quoting it; bought with `buy`); its id."""
    params = {k: v for k, v in row(0, **overrides).items() if k != "reference"}
    client = easypost.EasyPostClient(TEST_KEY, api_base=api_base)
    try:
        shipment = client.shipment.create(
            reference="ORD-00000",
            to_address={k[3:]: v for k, v in params.items() if k.startswith("to_")},
            from_address={k[5:]: v for k, v in params.items() if k.startswith("from_")},
            parcel={"weight": params["weight"]},
            options=options or {},
        )
        if buy:
            client.shipment.buy(shipment.id, rate=shipment.lowest_rate())
    finally:
        client._requests_session.close()
    return str(shipment.id)


@pytest.mark.slow
@pytest.mark.parametrize("differs", [{"from_street1": "500 Other Warehouse Rd"},
                                     {"options": {"delivery_confirmation": "ADULT_SIGNATURE"}},
                                     {"to_street2": "Apt 9"}], ids=["origin", "signature", "apartment"])
def test_a_shipment_that_differs_from_the_row_is_never_taken_for_a_dead_runs_own(
    env: Sandbox, tmp_path: Path, differs: dict[str, Any],
) -> None:
    """A run died with a create of ORD-00000 out; meanwhile a storefront quoted ORD-00000 from another warehouse,
    with a signature, or to an apartment. That shipment is not what the dead run's create made: the rerun gives way
    to it and holds the row, and buys nothing -- never a label the manifest's row does not describe."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    dead = Claims(tmp_path / "state", journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-00000")
    dead.creating("ORD-00000", digest_of(manifest), time.time())
    dead.close()
    theirs = _storefront_quote(env.api_base, **differs)
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 3, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["error_code"]) == ("skipped", "HELD_BY_OTHER_RUN")
    assert theirs in record["error_message"]
    assert bought(env) == Counter()


def test_a_shipment_a_dead_runs_create_made_is_bought_by_its_rerun(env: Sandbox, tmp_path: Path) -> None:
    """The same, with the row's own origin: it is the shipment the dead run's create made (its answer never
    recorded), so the rerun buys it rather than holding the row for 15 minutes as another machine's."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    dead = Claims(tmp_path / "state", journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-00000")
    dead.creating("ORD-00000", digest_of(manifest), time.time())
    orphan = _storefront_quote(env.api_base)  # what the dead run's create made
    dead.close()
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 0, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["shipment_id"]) == ("bought", orphan)
    assert bought(env) == Counter({orphan: 1})


def test_a_row_edited_since_its_run_died_is_not_shipped_as_it_was(env: Sandbox, tmp_path: Path) -> None:
    """The dead run's create was for the row as it was; the row has changed since (another name): the shipment
    that create made is not the row's any more. The rerun holds the row rather than ship the old one."""
    before = write_manifest(tmp_path / "before.csv", [row(0)])
    dead = Claims(tmp_path / "state", journal="dead.journal.db").open(SCOPE)
    dead.claim("ORD-00000")
    dead.creating("ORD-00000", digest_of(before), time.time())
    _storefront_quote(env.api_base)  # what the dead run's create made
    dead.close()
    edited = write_manifest(tmp_path / "orders.csv", [row(0, to_name="Someone Else")])
    result = invoke("create", str(edited), "-o", "ndjson", "--check-references", "--reference-quiet", "0")
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["error_code"]) == ("skipped", "HELD_BY_OTHER_RUN"), result.stderr
    assert bought(env) == Counter()


def test_a_create_refused_outright_leaves_no_mark_behind(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A create the API refused (a 422: nothing made) leaves nothing a later run could take a storefront's
    shipment for."""
    refusal = json.dumps({"error": {"code": "SHIPMENT.INVALID_PARAMS", "message": "refused", "errors": []}}).encode()

    def refuse_creates(method: str, path: str) -> tuple[int, str, bytes] | None:
        if method == "POST" and path.rstrip("/").endswith("/shipments"):
            return 422, "application/json", refusal
        return None

    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    with gateway_in_front(env, monkeypatch, lambda *_: None, hold=refuse_creates):
        result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    (record,) = ndjson(result.stdout)
    assert record["status"] == "failed" and record["error_code"] == "SHIPMENT.INVALID_PARAMS", result.stderr
    taker = Claims(tmp_path / "state", journal="taker.journal.db").open(SCOPE)
    try:
        assert taker.claim("ORD-00000").creates == ()
    finally:
        taker.close()


def test_a_label_hidden_behind_an_abandoned_shipment_is_adopted(env: Sandbox, tmp_path: Path) -> None:
    """ORD-00000 was bought, then an unbought shipment was made for it (a create of that run landing late after
    its resend was bought; a storefront quoting the order): the reference's newest is that one, and 20 minutes on
    it is taken as abandoned. The label made just before it is found and adopted, not bought a second time."""
    label = _storefront_quote(env.api_base, buy=True)
    _storefront_quote(env.api_base)
    env.set_clock(20 / (24 * 60))
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 0, result.stderr
    (record,) = ndjson(result.stdout)
    assert (record["status"], record["purchase"], record["shipment_id"]) == ("bought", "found", label)
    assert bought(env) == Counter({label: 1})


def test_made_from_reads_numbers_as_numbers_and_a_missing_unit_as_another_address() -> None:
    """The API keeps a customs value sent as "45" as "45.00": the same request. A shipment without the apartment
    the request gave is another address, whatever EasyPost's spelling of a verified street allows."""
    from shipctl.jobs.made_from import made_from

    address = {"name": "A", "street1": "1 Beacon St", "city": "Boston", "state": "MA", "zip": "02108", "country": "US"}
    request = {"reference": "R-1", "to_address": {**address, "street2": "Apt 1"}, "from_address": address,
               "parcel": {"weight": 8}, "options": {},
               "customs_info": {"customs_items": [{"description": "Tea", "value": "45", "weight": 8}]}}
    answer = {"reference": "R-1", "to_address": {**address, "street2": "Apt 1"}, "from_address": address,
              "parcel": {"weight": 8.0}, "options": {"currency": "USD", "label_format": "PNG"},
              "customs_info": {"customs_items": [{"description": "Tea", "value": "45.00", "weight": 8.0}]}}
    assert made_from(answer, request)
    assert not made_from({**answer, "to_address": address}, request)
    assert made_from({**answer, "to_address": {**address, "street1": "1 BEACON ST APT 1"}}, request)
    assert not made_from({**answer, "options": {"delivery_confirmation": "ADULT_SIGNATURE"}}, request)
