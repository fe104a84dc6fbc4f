"""What the engine needs to know about a failed call, decided once by the carrier layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CallFailure(Exception):
    """A classified API failure.

    `transient`: worth retrying (429, 5xx, timeouts, dropped connections).
    `outcome_unknown`: the server may have acted on the request (a timeout or drop after sending, a 5xx); a
    caller doing something that costs money must reconcile before retrying.
    `rate_limited`: a 429; the request was not processed, and the shared limit should shrink.
    """

    code: str
    message: str
    transient: bool = False
    outcome_unknown: bool = False
    rate_limited: bool = False
    retry_after: float | None = None
    http_status: int | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Stopped(Exception):
    """A call asked not to start once the run is stopping (a buy after Ctrl-C) found it stopping: nothing sent."""
