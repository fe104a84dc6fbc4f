"""Where shipctl keeps state: journals for stdin runs and the embedded sandbox's objects."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def state_dir() -> Path:
    override = os.environ.get("SHIPCTL_STATE_DIR")
    path = Path(override) if override else Path(platformdirs.user_state_dir("shipctl", appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
