"""Options shared by the bulk commands: their declarations, engine sizing, manifest input, output destinations.

The options `create`, `rates`, `track` and `refund` have in common are declared once here, as `Annotated`
aliases; each command gives the default in its signature (`output: Output = None`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from shipctl.engine.sizing import Sizing, size_pools
from shipctl.errors import UsageError
from shipctl.paths import state_dir


def chunk_size_option(what: str) -> Any:
    """`--chunk-size`, its help naming what a chunk holds: `chunk_size_option("Codes dispatched")`."""
    return typer.Option("--chunk-size", help=f"{what} per chunk (8).")


Output = Annotated[str | None, typer.Option(
    "--output", "-o", help="table, json, ndjson or csv (default: table on a terminal, else ndjson)."
)]
Concurrency = Annotated[str, typer.Option("--concurrency", help="In-flight API calls, or 'auto' to probe upward.")]
MaxConcurrency = Annotated[int, typer.Option("--max-concurrency", help="Ceiling for --concurrency auto.")]
Workers = Annotated[int | None, typer.Option(
    "--workers", help="Worker threads (default min(40, 2×cores), ≥ limit)."
)]
RowChunkSize = Annotated[int | None, chunk_size_option("Rows read and dispatched")]
Progress = Annotated[str, typer.Option("--progress", help="auto, live, plain or off.")]
ProgressInterval = Annotated[float, typer.Option("--progress-interval", help="Seconds between plain lines.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and a one-line summary on stderr.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print engine sizing and the event loop in use.")]
ForceSandbox = Annotated[bool, typer.Option("--sandbox", help="Use the built-in sandbox even if a key is set.")]
# Manifest reading and rate choice (`create` and `rates`).
ManifestFormat = Annotated[str | None, typer.Option(
    "--format", help="Manifest format: csv, json or ndjson (default: sniffed)."
)]
Encoding = Annotated[str | None, typer.Option("--encoding", help="Manifest text encoding (default UTF-8).")]
Carriers = Annotated[str | None, typer.Option("--carriers", help="Only these carriers (comma-separated).")]
Services = Annotated[str | None, typer.Option("--services", help="Only these services (comma-separated).")]


def parse_sizing(
    concurrency: str, max_concurrency: int, workers: int | None, chunk_size: int | None
) -> Sizing:
    auto = concurrency.strip().lower() == "auto"
    if auto:
        start = None
    else:
        try:
            start = int(concurrency)
        except ValueError:
            raise UsageError(f"--concurrency must be a number or 'auto', not {concurrency!r}") from None
        if start < 1:
            raise UsageError("--concurrency must be at least 1")
    if max_concurrency < 1:
        raise UsageError("--max-concurrency must be at least 1")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if chunk_size is not None and chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    return size_pools(
        concurrency=start, auto=auto, max_concurrency=max_concurrency, workers=workers, chunk_size=chunk_size
    )


def split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def spool_stdin() -> Path:
    """Copy stdin to a private temp file: a manifest is read more than once (validate, then ship)."""
    fd, name = tempfile.mkstemp(prefix="shipctl-stdin-", suffix=".manifest", dir=state_dir())
    with os.fdopen(fd, "wb") as fh:
        while block := sys.stdin.buffer.read(1 << 16):
            fh.write(block)
    return Path(name)


def default_journal(manifest: Path) -> Path:
    """Beside the manifest (`orders.csv.journal.db`), or under the state directory for a read-only folder."""
    candidate = manifest.with_name(manifest.name + ".journal.db")
    if os.access(manifest.parent, os.W_OK):
        return candidate
    tag = hashlib.sha256(str(manifest.resolve()).encode()).hexdigest()[:12]
    return state_dir() / "journals" / f"{manifest.name}-{tag}.journal.db"


def stdin_journal(spooled: Path, target_identity: str) -> Path:
    """A journal per API and per stdin content, under the state directory.

    The same bytes piped again resume their run; other bytes, or another API, are another job that can run at
    the same time. A re-export with one more order is another job too: its references are still never bought
    twice, because every run claims each reference (claims.py) whatever its journal.
    """
    digest = hashlib.sha256(target_identity.encode() + b"\0")
    with spooled.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return state_dir() / "journals" / f"stdin-{digest.hexdigest()[:16]}.journal.db"


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



