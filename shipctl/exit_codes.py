"""Exit codes, one name each; the README's "Exit codes" table documents every one."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Every row (or code, or shipment) was done."""
    ERROR = 1
    """An unexpected error: a bug, the API unreachable, the journal unusable."""
    USAGE = 2
    """Bad usage or an invalid manifest; nothing was bought."""
    PARTIAL = 3
    """The run finished but some rows failed; the rest are done and journaled."""
    WRITE_FAILED = 4
    """A file or stdout could not be written (disk full, read-only, I/O error); the run stopped, what was bought is
    journaled -- make room and rerun."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM; what finished is journaled, rerun to resume."""
