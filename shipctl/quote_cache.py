"""The quote cache of `shipctl rates`: an API's answer to a rate request, kept for a short time (`--cache-ttl`).

One SQLite file per user (`<state>/quotes.sqlite3`, 0600: it holds addresses), shared by every run at once (WAL,
a busy timeout, one short write per stored answer). An entry's key is a digest of the API it came from and of the
request without its reference (`request_key`), so the same parcel between the same places with the same options
answers from the cache whatever row or reference asks. The API is its identity (server and key mode) plus a keyed
digest of the key: two accounts' keys on one server may be priced differently (negotiated rates), and a test key's
quote must never answer a production run. The key itself is never stored: only an HMAC of it under a random
secret kept in the file, itself only a part of what is hashed into each entry's key.

What is kept is the whole answer (every offer), before any `--carriers`/`--services` filter or row pin, so the
filters narrow a cached answer exactly as they narrow a fresh one and need not be in the key. An entry lives for
the TTL of the run that stored it (then pruned, through an index, when a cache is opened); a run uses one only
while it is younger than its own TTL. `create` never reads this file: it buys only rates it was just given.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipctl.cache_files import CacheFile
from shipctl.carrier.shipments import Rate
from shipctl.errors import WriteFailure
from shipctl.sqlite_writes import transaction

DEFAULT_TTL = 15 * 60.0
"""Seconds: carriers' prices change seldom within minutes, and a quote is never what is bought."""
FILE_NAME = "quotes.sqlite3"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quotes (
    key        TEXT PRIMARY KEY,
    stored_at  REAL NOT NULL,
    expires_at REAL NOT NULL,
    offers     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quotes_expiry ON quotes (expires_at);
"""
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?)?\s*$",
                  re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_ADDRESS_PARTS = ("to_address", "from_address", "return_address", "buyer_address")


def parse_ttl(text: str) -> float:
    """`--cache-ttl`: `30s`, `15m`, `1h`, a bare number of seconds, or `0` (no cache); seconds, or ValueError."""
    match = _TTL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: give it like 30s, 15m or 1h (0 turns the cache off)")
    unit = (match.group(2) or "s")[0].lower()
    return float(match.group(1)) * _UNIT_SECONDS[unit]


def _canonical(value: Any, *, fold: bool = False) -> Any:
    """A request part as the key sees it: floats to four places (226.8 g and 8 oz weigh the same), and in
    addresses text case- and space-insensitive (`350 5th Ave` and `350  5TH AVE` are one place)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, fold=fold) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, fold=fold) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return " ".join(text.split()).casefold() if fold else text


def request_key(scope: str, request: Mapping[str, Any]) -> str:
    """The entry key of `request` (a `shipment.create` request) to the API `scope` names: never the reference."""
    parts = {key: _canonical(value, fold=key in _ADDRESS_PARTS)
             for key, value in request.items() if key != "reference" and value is not None}
    text = json.dumps([scope, parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _offers_text(offers: Sequence[Rate]) -> str:
    return json.dumps([[r.id, r.carrier, r.service, r.rate, r.currency, r.delivery_days, r.delivery_date]
                       for r in offers], separators=(",", ":"))


def _offers_from(text: str) -> tuple[Rate, ...]:
    return tuple(Rate(id=i, carrier=c, service=s, rate=r, currency=cur, delivery_days=d, delivery_date=date)
                 for i, c, s, r, cur, d, date in json.loads(text))


@dataclass(frozen=True)
class Cached:
    """A cached answer: every offer the API gave, and how old it is (seconds)."""

    offers: tuple[Rate, ...]
    age: float


class QuoteCache(CacheFile):
    """The quote cache file, open for one run; `now` is the wall clock (entries outlive the process).

    `lookups` and `hits` count this run's reads, for the summary's hit ratio. Not thread-safe: one event loop uses
    it (a read or write is a few tens of microseconds, well below a call)."""

    kind = "quote cache"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION
    unusable_hint = "remove it, or pass --no-cache"

    def __init__(self, path: Path, ttl: float = DEFAULT_TTL, *, now: Callable[[], float] = time.time) -> None:
        if ttl <= 0:
            raise ValueError("a quote cache needs a positive TTL (0 means: no cache)")
        super().__init__(path, ttl, now=now)
        self.lookups = 0
        self.hits = 0

    @classmethod
    def in_state_dir(cls, ttl: float = DEFAULT_TTL, *, now: Callable[[], float] = time.time) -> QuoteCache:
        from shipctl.paths import state_dir

        return cls(state_dir() / FILE_NAME, ttl, now=now).open()

    def prune(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM quotes WHERE expires_at <= ?", (self.now(),))

    def scope(self, identity: str, mode: str | None, api_key: str | None) -> str:
        """Which API's answers: its identity and key mode, and (when given) a keyed digest of the key."""
        return self.scope_of(identity, mode, api_key)

    def get(self, key: str) -> Cached | None:
        """The answer stored under `key` if younger than this run's TTL; counted as a lookup (and a hit)."""
        self.lookups += 1
        row = self._conn().execute("SELECT stored_at, offers FROM quotes WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        age = self.now() - float(row[0])
        if not 0 <= age < self.ttl:  # a clock set back makes an entry of the future: not trusted
            return None
        self.hits += 1
        return Cached(_offers_from(row[1]), age)

    def put(self, key: str, offers: Sequence[Rate]) -> None:
        """Keep an answer with offers (an empty answer may be a carrier's passing outage: not kept)."""
        if not offers:
            return
        db = self._conn()
        stored = self.now()
        try:
            with transaction(db, self.what):
                db.execute("INSERT OR REPLACE INTO quotes (key, stored_at, expires_at, offers) VALUES (?, ?, ?, ?)",
                           (key, stored, stored + self.ttl, _offers_text(offers)))
        except (WriteFailure, sqlite3.Error) as exc:
            self.write_error = str(exc)

    def entries(self) -> int:
        """How many answers the file holds (expired ones not yet pruned included)."""
        return int(self._conn().execute("SELECT count(*) FROM quotes").fetchone()[0])
