"""Fault injection and latency profiles, both reproducible from a seed.

Faults: one uniform draw per API request, taken in arrival order under a lock, so the same seed and the same
request sequence give the same faults. The draw falls into consecutive bands (rate_limit, server_error,
commit_then_drop, drop); `commit_then_drop` only bites on a buy, anything else in that band passes.

Latency: per endpoint, lognormal around EasyPost's recorded server time (`x-runtime` in the samples);
`fast` divides by ten, `none` never sleeps.

Form refusals (`FormRefusals`) are not drawn: the shipments named are refused on every SCAN form, every time.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Latency = Literal["none", "fast", "realistic"]
Fault = Literal["rate_limit", "server_error_500", "server_error_503", "commit_then_drop", "drop"]

FAULT_KINDS = ("rate_limit", "server_error", "commit_then_drop", "drop")

#: Median server time (seconds) per endpoint, from the recorded `x-runtime` headers.
ENDPOINT_MEDIANS: dict[str, float] = {
    "shipment.create": 0.266,
    "shipment.retrieve": 0.070,
    "shipment.list": 0.070,
    "shipment.buy": 0.667,
    "shipment.rerate": 0.230,
    "shipment.refund": 0.174,
    "shipment.insure": 0.232,
    "shipment.label": 1.356,
    "rate.retrieve": 0.070,
    "beta.rates": 0.110,
    "tracker.create": 0.074,
    "tracker.retrieve": 0.054,
    "tracker.list": 0.056,
    "tracker.retrieve_batch": 0.080,
    "address.create": 0.064,
    "address.create_and_verify": 0.054,
    "address.retrieve": 0.050,
    "address.verify": 0.043,
    "parcel.create": 0.040,
    "customs_info.create": 0.040,
    "customs_item.create": 0.040,
    "default": 0.050,
}
LATENCY_SIGMA = 0.35


def capacity_slowdown(inflight: int, capacity: int | None) -> float:
    """How much slower a request is served with `inflight` requests in flight against a `capacity`.

    A real server near its limit queues work: it does not serve N at full speed and refuse N+1 behind a wall.
    1 + (load)^4: 1.06x at half the capacity, 1.32x at three quarters, 2x at the capacity itself, so
    throughput peaks near 0.76 N and a client that packs the server to N gains nothing over one that stays
    below. Applies to the latency profile's delay (the `none` profile has none to stretch).
    """
    if not capacity:
        return 1.0
    return 1.0 + (min(inflight, capacity) / capacity) ** 4


@dataclass(frozen=True)
class FaultSpec:
    rate_limit: float = 0.0
    server_error: float = 0.0
    commit_then_drop: float = 0.0
    drop: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Parse `rate_limit=0.05,server_error=0.03,...`; raises ValueError with a readable message."""
        if not spec or not spec.strip():
            return cls()
        values: dict[str, float] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in FAULT_KINDS:
                raise ValueError(f"bad fault {part!r}: expected NAME=PROBABILITY with NAME in {', '.join(FAULT_KINDS)}")
            try:
                p = float(raw)
            except ValueError:
                raise ValueError(f"bad probability in {part!r}") from None
            if not 0.0 <= p <= 1.0 or math.isnan(p):
                raise ValueError(f"probability out of [0, 1] in {part!r}")
            values[name] = p
        result = cls(**values)
        if result.total > 1.0:
            raise ValueError("fault probabilities add up to more than 1")
        return result

    @property
    def total(self) -> float:
        return self.rate_limit + self.server_error + self.commit_then_drop + self.drop


class FaultPlan:
    """Draws faults and latencies; thread-safe, deterministic for a seed and a request order."""

    def __init__(self, spec: FaultSpec, latency: Latency, seed: int | None) -> None:
        if latency not in ("none", "fast", "realistic"):
            raise ValueError(f"unknown latency profile {latency!r}")
        self.spec = spec
        self.latency = latency
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        # A separate stream so that latency never shifts the fault sequence.
        self._latency_rng = random.Random(None if seed is None else seed ^ 0x5EED)
        self._scale = {"none": 0.0, "fast": 0.1, "realistic": 1.0}[latency]

    def draw(self, is_buy: bool) -> Fault | None:
        """The fault for the next request (None: serve it normally)."""
        spec = self.spec
        if spec.total <= 0.0:
            return None
        with self._lock:
            u = self._fault_rng.random()
        edge = spec.rate_limit
        if u < edge:
            return "rate_limit"
        if u < edge + spec.server_error:
            return "server_error_500" if u < edge + spec.server_error / 2 else "server_error_503"
        edge += spec.server_error
        if u < edge + spec.commit_then_drop:
            return "commit_then_drop" if is_buy else None
        edge += spec.commit_then_drop
        if u < edge + spec.drop:
            return "drop"
        return None

    def delay(self, endpoint: str) -> float:
        """Seconds to sleep before answering `endpoint` (0.0 with the `none` profile)."""
        if self._scale == 0.0:
            return 0.0
        median = ENDPOINT_MEDIANS.get(endpoint, ENDPOINT_MEDIANS["default"])
        with self._lock:
            z = self._latency_rng.gauss(0.0, 1.0)
        return self._scale * median * math.exp(LATENCY_SIGMA * z)


class FormRefusals:
    """Shipments the carrier refuses on a SCAN form, named by reference or shipment id.

    Not drawn at random: every form (`scan_form.create`, `batch.create_scan_form`) that includes one is refused
    with a 422 naming it, on every call, so a client splitting a refused group finds exactly these shipments and
    gets its form for the rest. Thread-safe; keys can be added while the sandbox runs (`Sandbox.form_refusals`).
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._keys = {k for k in (key.strip() for key in keys) if k}

    @staticmethod
    def parse(values: Iterable[str]) -> list[str]:
        """Keys from option values, each one key or several separated by commas; blanks are a ValueError."""
        keys = [part.strip() for value in values for part in value.split(",")]
        if any(not key for key in keys):
            raise ValueError("a reference or shipment id must not be empty")
        return keys

    def add(self, *keys: str) -> None:
        with self._lock:
            self._keys.update(keys)

    def refused(self, shipment: dict[str, object]) -> bool:
        """Whether the carrier refuses this shipment on a form (its id or its reference is a key)."""
        with self._lock:
            return shipment.get("id") in self._keys or shipment.get("reference") in self._keys
