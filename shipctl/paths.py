"""Where shipctl keeps state: journals (beside a manifest, or here for stdin), claims, the embedded sandbox."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shipctl.errors import UsageError

_WRITABLE: set[Path] = set()
"""State directories this process has found writable: the check is a file made and removed, once per directory."""


def state_dir() -> Path:
    """The state directory, made if missing; one that cannot be written is a `UsageError` naming it, before anything
    is bought (the claims, the spooled manifest and the sandbox all live there)."""
    override = os.environ.get("SHIPCTL_STATE_DIR")
    if override:
        path = Path(override)
    else:
        import platformdirs  # only without SHIPCTL_STATE_DIR (servers, CI and tests set it): ~3 ms of start-up

        path = Path(platformdirs.user_state_dir("shipctl", appauthor=False))
    if path not in _WRITABLE or not path.is_dir():  # made again if removed since (a test, a cleanup)
        _check_writable(path)
        _WRITABLE.add(path)
    return path


def _check_writable(path: Path) -> None:
    """Make `path` and write a file in it for real: mode bits say nothing to root or of a read-only mount, and
    without this SQLite's "unable to open database file" is all a user would see."""
    import tempfile

    try:
        for part in (path, *path.parents):  # `mkdir` would only say "Not a directory"
            if part.exists() and not part.is_dir():
                raise NotADirectoryError(0, f"{part} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(
            f"the state directory {path} cannot be written ({exc.strerror or exc}): set SHIPCTL_STATE_DIR to a "
            "folder you can write to, or make this one writable"
        ) from None


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
