"""The quote cache of `shipctl rates`: the real SDK over real HTTP to the sandbox, calls counted by a reverse proxy
in front of it (tests/gateway.py: every request passes through it, so what it counts is what the API was asked)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipctl.engine.sizing import size_pools
from shipctl.jobs import Headless, open_session
from shipctl.jobs.rates import BULK_COLUMNS, ManifestQuery, ManifestQuote, OneOffQuery, OneOffQuote
from shipctl.manifest import parse_address_arg
from shipctl.quote_cache import DEFAULT_TTL, FILE_NAME, QuoteCache, parse_ttl, request_key
from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from tests.cli import PROD_KEY, TEST_KEY, invoke, ndjson
from tests.gateway import gateway_in_front
from tests.manifests import row, write_manifest

ONE_OFF = ("rates", "--to", "10001", "--from", "94105", "--weight", "1.5lb", "--dims", "10x8x4", "-o", "ndjson")
SIZING = size_pools(concurrency=4)


class Calls:
    """What the API was asked, per method and path (query strings dropped)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def rule(self, method: str, path: str, answer: Any) -> None:
        self.seen[f"{method} {path.split('?')[0].removeprefix('/v2')}"] += 1
        return None

    @property
    def quotes(self) -> int:
        """Calls that quote: stateless rates, or a shipment created to quote."""
        return self.seen["POST /beta/rates"] + self.seen["POST /shipments"]

    def total(self) -> int:
        return sum(self.seen.values())


@pytest.fixture
def calls(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    counter = Calls()
    with gateway_in_front(env, monkeypatch, counter.rule):
        yield counter


def _cache_file() -> Path:
    return Path(os.environ["SHIPCTL_STATE_DIR"]) / FILE_NAME


# --- the parts -------------------------------------------------------------------------------------------


def test_ttl_syntax() -> None:
    assert [parse_ttl(t) for t in ("15m", "30s", "1h", "0", "90", "1.5h", "2 min")] == [
        900.0, 30.0, 3600.0, 0.0, 90.0, 5400.0, 120.0]
    assert DEFAULT_TTL == 900.0
    for bad in ("", "soon", "-5m", "15d", "m"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_ttl(bad)


def test_the_key_covers_what_changes_a_price_and_never_the_reference(tmp_path: Path) -> None:
    from shipctl.manifest import ShipmentRow

    def key(scope: str = "api", **changes: Any) -> str:
        data = {**row(1, signature="yes"), **changes}
        parsed = ShipmentRow.model_validate({
            "reference": data["reference"],
            "to_address": {k.removeprefix("to_"): v for k, v in data.items() if k.startswith("to_")},
            "from_address": {k.removeprefix("from_"): v for k, v in data.items() if k.startswith("from_")},
            "parcel": {"weight": data["weight"], **({"length": data["length"], "width": 1, "height": 1}
                                                   if "length" in data else {})},
            **{k: data[k] for k in ("signature", "is_return", "options") if k in data},
        })
        return request_key(scope, parsed.to_easypost())

    same = key()
    street = row(1)["to_street1"]
    assert key(reference="ORD-OTHER") == same
    assert key(to_street1=f" {street.upper()}  ") == same  # an address is not case- or space-bound
    changed = [key(weight=30), key(length=10), key(signature="adult"), key(is_return=True),
               key(options='{"saturday_delivery": true}'), key(to_zip="10002"), key(from_zip="94105"),
               key(scope="another api")]
    assert len({same, *changed}) == len(changed) + 1

    # The API's scope: identity, key mode and the key (kept only as a keyed digest).
    with QuoteCache(tmp_path / "q.sqlite3").open() as cache:
        scopes = {cache.scope("api", "test", TEST_KEY), cache.scope("api", "production", TEST_KEY),
                  cache.scope("api", "test", TEST_KEY[:-1] + "0"), cache.scope("other", "test", TEST_KEY)}
        assert len(scopes) == 4
        assert all(TEST_KEY not in scope and TEST_KEY[4:] not in scope for scope in scopes)
    assert TEST_KEY[4:].encode() not in (tmp_path / "q.sqlite3").read_bytes()


def test_expiry_and_pruning_at_the_job_level_with_an_injected_clock(
    env: Sandbox, calls: Calls, tmp_path: Path
) -> None:
    clock = [1_000_000.0]
    path = tmp_path / "quotes.sqlite3"
    query = OneOffQuery(parse_address_arg("10001", allow_zip=True).to_easypost(),
                        parse_address_arg("94105", allow_zip=True).to_easypost(), {"weight": 24.0})

    def quote(ttl: float = 60.0) -> list[dict[str, Any]]:
        with QuoteCache(path, ttl, now=lambda: clock[0]).open() as cache, \
                open_session(SIZING, total=1) as session:
            job = OneOffQuote(query, Headless(), cache)
            return job.run(session)

    fresh = quote()
    assert calls.quotes == 1 and all("cached" not in r for r in fresh)
    clock[0] += 59.0
    again = quote()
    assert calls.quotes == 1  # within the TTL: no call
    assert all(r["cached"] is True for r in again)
    assert [{k: v for k, v in r.items() if k != "cached"} for r in again] == fresh
    clock[0] += 1.0  # 60 s old: expired for a 60 s TTL
    quote()
    assert calls.quotes == 2
    clock[0] += 30.0
    quote(ttl=10.0)  # a shorter TTL of this run wins over the entry's: 30 s is too old
    assert calls.quotes == 3

    # An expired entry is pruned when a cache is opened: nothing of an hour ago is left.
    clock[0] += 3600.0
    with QuoteCache(path, 60.0, now=lambda: clock[0]).open() as cache:
        assert cache.entries() == 0


def test_a_clock_set_back_does_not_make_an_entry_fresh(env: Sandbox, calls: Calls, tmp_path: Path) -> None:
    clock = [2_000_000.0]
    path = tmp_path / "quotes.sqlite3"
    query = OneOffQuery(parse_address_arg("10001", allow_zip=True).to_easypost(),
                        parse_address_arg("94105", allow_zip=True).to_easypost(), {"weight": 24.0})
    for step in (0.0, -5.0):
        clock[0] += step
        with QuoteCache(path, 60.0, now=lambda: clock[0]).open() as cache, open_session(SIZING, total=1) as session:
            OneOffQuote(query, Headless(), cache).run(session)
    assert calls.quotes == 2


def test_a_manifest_job_marks_every_record_and_counts_hits(env: Sandbox, calls: Calls, tmp_path: Path) -> None:
    path = tmp_path / "quotes.sqlite3"
    manifest = write_manifest(tmp_path / "m.csv", [row(i) for i in range(4)])

    def run() -> tuple[list[dict[str, Any]], str | None]:
        records: list[dict[str, Any]] = []
        with QuoteCache(path).open() as cache:
            job = ManifestQuote(ManifestQuery(manifest, "m.csv"), Headless(), cache)
            job.validate()
            with open_session(SIZING, total=4) as session:
                outcome = job.run(session, records.append)
        return records, outcome.cache_ratio

    first, ratio = run()
    assert ratio == "0 of 4 hits (0%)" and calls.quotes == 4
    columns = list(BULK_COLUMNS)
    columns.insert(columns.index("error_code"), "cached")
    assert all(list(r) == columns and r["cached"] is False for r in first)
    second, ratio = run()
    assert ratio == "4 of 4 hits (100%)" and calls.quotes == 4
    assert all(r["cached"] is True for r in second)
    assert [{**r, "cached": False} for r in second] == first


# --- the command -----------------------------------------------------------------------------------------


def test_a_repeated_one_off_within_the_ttl_makes_no_call_and_says_so(env: Sandbox, calls: Calls) -> None:
    first = invoke(*ONE_OFF)
    assert first.exit_code == 0, first.stderr
    assert calls.quotes == 1
    assert all("cached" not in r for r in ndjson(first.stdout))  # a fresh quote prints as it always did
    before = calls.total()

    second = invoke(*ONE_OFF)
    assert second.exit_code == 0, second.stderr
    assert calls.total() == before  # no call of any kind
    rows = ndjson(second.stdout)
    assert rows and all(r.pop("cached") is True for r in rows)
    assert rows == ndjson(first.stdout)
    assert "quote cache: answered from a quote" in second.stderr

    assert invoke(*ONE_OFF, "--no-cache").exit_code == 0
    assert calls.quotes == 2
    assert invoke(*ONE_OFF, "--cache-ttl", "0").exit_code == 0
    assert calls.quotes == 3
    assert invoke(*ONE_OFF, "--cache-ttl", "1h").exit_code == 0
    assert calls.quotes == 3


def test_no_cache_neither_reads_nor_writes(env: Sandbox, calls: Calls) -> None:
    assert invoke(*ONE_OFF, "--no-cache").exit_code == 0
    assert invoke(*ONE_OFF).exit_code == 0
    assert calls.quotes == 2  # the --no-cache answer was not kept


def test_another_parcel_or_key_mode_is_a_miss(env: Sandbox, calls: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(*ONE_OFF).exit_code == 0
    assert invoke("rates", "--to", "10001", "--from", "94105", "--weight", "2lb", "--dims", "10x8x4",
                  "-o", "ndjson").exit_code == 0
    assert invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1.5lb", "--dims", "12x8x4",
                  "-o", "ndjson").exit_code == 0
    assert calls.quotes == 3

    # The same parcel with a production key: a test key's quote never answers it.
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    prod = invoke(*ONE_OFF)
    assert prod.exit_code == 0, prod.stderr
    assert calls.quotes == 4 and all("cached" not in r for r in ndjson(prod.stdout))
    # And another test key (another account) does not share it either.
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY[:-4] + "ffff")
    assert invoke(*ONE_OFF).exit_code == 0
    assert calls.quotes == 5
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    assert invoke(*ONE_OFF).exit_code == 0
    assert calls.quotes == 5


def test_a_repeated_manifest_is_answered_from_the_cache_row_by_row(
    env: Sandbox, calls: Calls, tmp_path: Path
) -> None:
    rows = [row(i) for i in range(6)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    first = invoke("rates", str(manifest), "-o", "ndjson")
    assert first.exit_code == 0, first.stderr
    assert calls.quotes == 6
    assert "6 rows: 6 quoted" in first.stderr and "quote cache: 0 of 6 hits (0%)" in first.stderr
    assert {r["cached"] for r in ndjson(first.stdout)} == {False}

    second = invoke("rates", str(manifest), "-o", "ndjson")
    assert second.exit_code == 0, second.stderr
    assert calls.quotes == 6
    assert "quote cache: 6 of 6 hits (100%)" in second.stderr
    assert [{**r, "cached": False} for r in ndjson(second.stdout)] == ndjson(first.stdout)

    # New references for the same parcels still hit; a row with a signature, another weight or a return misses.
    edited = [{**r, "reference": f"NEW-{i}"} for i, r in enumerate(rows)]
    edited[1]["signature"] = "yes"
    edited[2]["weight"] = 100
    edited[3]["is_return"] = "true"
    third = invoke("rates", str(write_manifest(tmp_path / "n.csv", edited)), "-o", "ndjson")
    assert third.exit_code == 0, third.stderr
    assert calls.quotes == 9
    assert "quote cache: 3 of 6 hits (50%)" in third.stderr
    cached = {r["reference"]: r["cached"] for r in ndjson(third.stdout)}
    assert cached == {"NEW-0": True, "NEW-1": False, "NEW-2": False, "NEW-3": False, "NEW-4": True, "NEW-5": True}

    # Filters and pins narrow a cached answer as they narrow a fresh one (the whole answer is kept).
    narrowed = invoke("rates", str(manifest), "--carriers", "UPS", "-o", "ndjson")
    assert narrowed.exit_code == 0, narrowed.stderr
    assert calls.quotes == 9
    assert {r["carrier"] for r in ndjson(narrowed.stdout)} == {"UPS"}


def test_rows_with_a_delivery_time_rule_are_not_cached(env: Sandbox, calls: Calls, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(0), row(1, deliver_within=4)])
    for _ in range(2):
        result = invoke("rates", str(manifest), "-o", "ndjson")
        assert result.exit_code == 0, result.stderr
    assert env.api.smartrates.calls(account_for_key(TEST_KEY)) == 2  # asked again: its answer is never kept
    assert calls.seen["POST /beta/rates"] == 1  # the other row came from the cache the second time
    assert "quote cache: 1 of 1 hits (100%)" in result.stderr
    timed = [r for r in ndjson(result.stdout) if r["reference"] == "ORD-00001"]
    assert {r["cached"] for r in timed} == {False}


def test_the_cache_file_is_private(env: Sandbox, calls: Calls) -> None:
    assert invoke(*ONE_OFF).exit_code == 0
    path = _cache_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600


def test_create_never_buys_from_a_cached_quote(env: Sandbox, calls: Calls, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0)])
    assert invoke("rates", str(manifest), "-o", "ndjson").exit_code == 0
    # Poison every cached answer: one offer far cheaper than any real one, with a rate id no shipment has.
    db = sqlite3.connect(_cache_file())
    poisoned = json.dumps([["rate_poisoned", "USPS", "GroundAdvantage", "0.01", "USD", 1, None]])
    assert db.execute("UPDATE quotes SET offers = ?", (poisoned,)).rowcount == 1
    db.commit()
    db.close()
    quoted = ndjson(invoke("rates", str(manifest), "-o", "ndjson").stdout)
    assert {r["rate"] for r in quoted} == {"0.01"}  # the poison is what a cache reader would see
    asked = calls.quotes

    created = invoke("create", str(manifest), "-o", "ndjson", "--quiet")
    assert created.exit_code == 0, created.stderr
    [record] = ndjson(created.stdout)
    assert record["status"] == "bought" and record["rate"] != "0.01"
    assert calls.seen["POST /shipments"] >= 1 and calls.quotes > asked  # create asked the API itself
    [bought] = env.ledger()
    assert str(bought.get("rate")) != "0.01"


@pytest.mark.slow
def test_two_runs_at_once_share_the_cache_without_corrupting_it(env: Sandbox, calls: Calls, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(i) for i in range(60)])
    command = [sys.executable, "-m", "shipctl", "rates", str(manifest), "-o", "ndjson"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert all(len(ndjson(out)) == 120 for out, _ in outputs)
    db = sqlite3.connect(_cache_file())
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM quotes").fetchone() == (60,)
    finally:
        db.close()
    third = invoke("rates", str(manifest), "-o", "ndjson")
    assert "quote cache: 60 of 60 hits (100%)" in third.stderr
