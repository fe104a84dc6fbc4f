"""The project's own exception hierarchy.

Anything a user can cause (bad input, a locked journal, a refused purchase) is a `ShipctlError` carrying the
exit code it should end the process with; the CLI edge turns it into one clear line on stderr and no traceback.
"""

from __future__ import annotations

from shipctl.exit_codes import ExitCode


class ShipctlError(Exception):
    """An error meant for the user: printed as one message, process exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ShipctlError):
    """Bad flags or arguments: nothing was bought."""

    exit_code = ExitCode.USAGE


class ManifestError(ShipctlError):
    """The manifest cannot be read at all (encoding, syntax, empty): nothing was bought."""

    exit_code = ExitCode.USAGE


class WriteFailure(ShipctlError):
    """A file shipctl writes (journal, claims, label, results, stdout) could not be written: the disk is full, the
    file system read-only, or the device failing. The run stops; nothing bought is lost (the journal committed
    each shipment before its buy, so a rerun reconciles)."""

    exit_code = ExitCode.WRITE_FAILED

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"cannot write {what}: {reason}")
        self.what = what
        self.reason = reason

    @classmethod
    def from_os(cls, what: str, exc: OSError) -> WriteFailure:
        return cls(what, exc.strerror or str(exc))
