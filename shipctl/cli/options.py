"""Option parsing shared by the bulk commands: engine sizing, manifest input, output destinations."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from shipctl.engine.sizing import Sizing, size_pools
from shipctl.errors import UsageError
from shipctl.paths import state_dir


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


def spool_stdin() -> tuple[Path, str]:
    """Copy stdin to a private temp file (a manifest is read more than once) and return it with its digest."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix="shipctl-stdin-", suffix=".manifest", dir=state_dir())
    with os.fdopen(fd, "wb") as fh:
        while block := sys.stdin.buffer.read(1 << 16):
            digest.update(block)
            fh.write(block)
    return Path(name), digest.hexdigest()


def default_journal(manifest: Path | None, stdin_digest: str | None) -> Path:
    """Beside the manifest (`orders.csv.journal.db`), or under the state directory for stdin or a read-only folder."""
    journals = state_dir() / "journals"
    if manifest is None:
        return journals / f"stdin-{(stdin_digest or 'unknown')[:16]}.journal.db"
    candidate = manifest.with_name(manifest.name + ".journal.db")
    if os.access(manifest.parent, os.W_OK):
        return candidate
    tag = hashlib.sha256(str(manifest.resolve()).encode()).hexdigest()[:12]
    return journals / f"{manifest.name}-{tag}.journal.db"


def require_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"manifest {path} does not exist")
    if p.is_dir():
        raise UsageError(f"manifest {path} is a directory")
    return p


def cleanup(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)



