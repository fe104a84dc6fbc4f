"""Whether another process's run is still alive: for the reference claims (`claims.py`) and `labels`' print
claims.

A run holds an exclusive `flock` on `<folder>/<run id>.lock` while it runs: the kernel drops it when the process
dies, however it dies (kill -9 included), and a reused pid cannot fake it. Only a lock file that is gone, or that
nobody holds, means dead; any other doubt means alive. Where `flock` does not exist (Windows), the pid is asked of
the OS instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunLock:
    """This process's run lock under `folder`, held from `__init__` until `release`."""

    def __init__(self, folder: Path, run_id: str) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{run_id}.lock"
        self._fd: int | None = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600)
        try:
            import fcntl
        except ImportError:  # Windows: liveness is told by the pid
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlinked before the lock is let go: a run that finds the file gone knows this one has ended.
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
        with contextlib.suppress(OSError):
            self.path.unlink()


def alive(folder: Path, run_id: str, pid: int | None) -> bool:
    """Whether the run `run_id` (process `pid`) still holds its lock under `folder`; a dead run's file is removed."""
    path = folder / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        return exc.errno != errno.ENOENT  # gone: its run ended; anything else is no proof of death
    try:
        free = _free(fd, pid)
    finally:
        os.close(fd)
    if free:
        with contextlib.suppress(OSError):
            path.unlink()
    return not free


def _free(fd: int, pid: int | None) -> bool:
    try:
        import fcntl
    except ImportError:
        import psutil

        return pid is None or not psutil.pid_exists(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True
