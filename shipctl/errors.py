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
