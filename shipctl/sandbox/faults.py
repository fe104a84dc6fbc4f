"""Fault injection and latency profiles, both reproducible from a seed.

Faults: one uniform draw per API request, taken in arrival order under a lock, so the same seed and the same
request sequence give the same faults. The draw falls into consecutive bands (rate_limit, server_error,
commit_then_drop, drop); `commit_then_drop` only bites on a buy, anything else in that band passes.

Latency: per endpoint, lognormal around EasyPost's recorded server time (`x-runtime` in the samples);
`fast` divides by ten, `none` never sleeps.
"""

from __future__ import annotations

import math
import random
import threading
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
