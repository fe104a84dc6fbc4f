"""What commands read besides options: a manifest argument (a file, or `-` for stdin) and lists given on stdin."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError
from shipctl.paths import state_dir


def spool_stdin() -> Path:
    """Copy stdin to a private temp file: a manifest is read once per phase (validate, then ship)."""
    fd, name = tempfile.mkstemp(prefix="shipctl-stdin-", suffix=".manifest", dir=state_dir())
    source = terminal().stdin_bytes()
    with os.fdopen(fd, "wb") as fh:
        while block := source.read(1 << 16):
            fh.write(block)
    return Path(name)


def require_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"manifest {path} does not exist")
    if p.is_dir():
        raise UsageError(f"manifest {path} is a directory")
    return p


@contextlib.contextmanager
def manifest_input(arg: str) -> Iterator[tuple[Path, str, bool]]:
    """The manifest argument as `(path, label, from_stdin)`: `-` is stdin spooled to a temp file (removed on exit)
    and labelled `<stdin>` in messages; anything else must be an existing file, labelled as given."""
    spooled: Path | None = None
    if arg == "-":
        spooled = spool_stdin()
        path = spooled
    else:
        path = require_file(arg)
    try:
        yield path, "<stdin>" if spooled else arg, spooled is not None
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


def read_stdin_lines(what: str) -> list[str]:
    """Non-blank lines of stdin, stripped, `#` comments dropped (read only because the user passed `-`)."""
    lines = [line.strip() for line in terminal().stdin.read().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise UsageError(f"no {what} on stdin")
    return lines


def expand_args(values: Sequence[str], what: str) -> list[str]:
    """The arguments with `-` replaced by the lines of stdin; duplicates dropped, first order kept."""
    if list(values).count("-") > 1:
        raise UsageError("- (stdin) may be given only once")
    expanded: list[str] = []
    for value in values:
        expanded.extend(read_stdin_lines(what) if value == "-" else [value])
    return list(dict.fromkeys(expanded))
