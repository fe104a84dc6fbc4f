"""Where shipctl keeps state: journals (beside a manifest, or here for stdin), claims, the embedded sandbox."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def state_dir() -> Path:
    override = os.environ.get("SHIPCTL_STATE_DIR")
    if override:
        path = Path(override)
    else:
        import platformdirs  # only without SHIPCTL_STATE_DIR (servers, CI and tests set it): ~3 ms of start-up

        path = Path(platformdirs.user_state_dir("shipctl", appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


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
