"""An API that cannot be reached ends a command as one error line and exit 1, not as a failed row per input.

`create` stops on its first call for this (its account lookup); `rates`, `track` and `refund` have no such first
call, so their rows are watched instead: a row that failed because the API could not be reached (`CONNECTION`,
`TIMEOUT`) while no call has yet succeeded means every other row would fail the same way, after its retries.
The run stops starting rows, the rows cut short are not printed (each would repeat the same message), and the
command ends with that message (which says where and what to check) on stderr, exit 1. Once any call has
succeeded the API is reachable: later network failures stay rows like any other failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode

if TYPE_CHECKING:
    from shipctl.jobs.session import Session

UNREACHABLE_CODES = frozenset({"CONNECTION", "TIMEOUT"})

Sink = Callable[[dict[str, Any]], None]


class UnreachableWatch:
    """Wraps a job's sink (`watch.sink(write)`); after the job, `watch.raise_if_unreachable()`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.message: str | None = None

    def sink(self, write: Sink) -> Sink:
        def watched(record: dict[str, Any]) -> None:
            self.saw(record)
            if self.message is None:  # rows cut short by the stop say nothing the error line does not
                write(record)

        return watched

    def saw(self, record: dict[str, Any]) -> None:
        if (self.message is None and record.get("error_code") in UNREACHABLE_CODES
                and self.session.stats.calls_ok == 0):
            self.message = str(record.get("error_message") or "the API cannot be reached")
            self.session.engine.stop()

    def raise_if_unreachable(self) -> None:
        """After the job: a run the watch stopped ends here, even if a late call got through (it was cut short)."""
        if self.message is not None:
            raise ShipctlError(self.message, ExitCode.ERROR)
