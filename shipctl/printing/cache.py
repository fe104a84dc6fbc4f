"""Label and form files fetched from the API, kept under the state directory so that none is fetched twice.

One folder per API identity (`<state>/label-files/<hash of the identity>/`, mode 0700: labels carry names and
addresses): a shipment id names one label for ever there, so `<shipment id>.<format>` is never stale. Forms are
`<shipment id>.form-<form id>.<ext>`. Files arrive by rename (`shipments.download`), so a file present is whole.
Files untouched for `KEEP_DAYS` are removed, at most once a day: a label that old is past being shipped, and
fetching it again costs one call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from pathlib import Path

from shipctl.paths import state_dir

KEEP_DAYS = 90
_DAY = 86400.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_PRUNED_MARK = ".pruned"
_EXTENSIONS = {"PDF": ".pdf", "PNG": ".png", "ZPL": ".zpl", "EPL2": ".epl2"}


def _name(text: str) -> str:
    return _UNSAFE.sub("_", text)[:120] or "_"


class LabelCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_identity(cls, identity: str) -> LabelCache:
        """The cache of the API `identity` names (`Target.identity`): another API's shipment ids are another's."""
        tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
        root = state_dir() / "label-files" / tag
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(root)

    def label(self, shipment_id: str, file_format: str) -> Path:
        return self.root / f"{_name(shipment_id)}{_EXTENSIONS.get(file_format, '.' + _name(file_format.lower()))}"

    def form(self, shipment_id: str, form_id: str | None, index: int, extension: str) -> Path:
        key = _name(form_id) if form_id else str(index)
        return self.root / f"{_name(shipment_id)}.form-{key}{extension}"

    @staticmethod
    def present(path: Path) -> bool:
        """A whole file is there (an empty one is not: it is fetched again)."""
        try:
            return path.is_file() and path.stat().st_size > 0
        except OSError:
            return False

    @staticmethod
    def discard(path: Path) -> None:
        """A cached file that turned out unreadable: fetched again by the next run."""
        with contextlib.suppress(OSError):
            path.unlink()

    def prune(self, now: float | None = None) -> int:
        """Remove files unused for `KEEP_DAYS` (once a day at most); how many were removed."""
        now = time.time() if now is None else now
        mark = self.root / _PRUNED_MARK
        with contextlib.suppress(OSError):
            if now - mark.stat().st_mtime < _DAY:
                return 0
        removed = 0
        with contextlib.suppress(OSError), os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if now - entry.stat().st_mtime > KEEP_DAYS * _DAY:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
        with contextlib.suppress(OSError):
            mark.touch()
            os.utime(mark, (now, now))
        return removed

    @staticmethod
    def touch(path: Path) -> None:
        """A cached file used again is kept longer."""
        with contextlib.suppress(OSError):
            os.utime(path)
