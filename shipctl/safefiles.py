"""Open the files shipctl writes without being steered onto someone else's file by a symbolic link.

In a shared folder another local user can plant a link under a name shipctl is about to write
(`orders.csv.rejects.csv -> /home/victim/notes.txt`) and have the victim's file truncated with shipctl's
rights. The rule is Linux's protected_symlinks, applied to every link on the way to the file: a link is
followed only when it is owned by you or by root (so `/dev/stdout` and your own links keep working); any other
is refused with a `ShipctlError` naming the path. A path that is not a link is opened with `O_NOFOLLOW`, so a
link swapped in after the check makes the open fail instead of being followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

from shipctl.errors import ShipctlError

PRIVATE = 0o600
"""Journals and their lock files: they name what was bought."""
DEFAULT = 0o666
"""Everything else: what the umask leaves, as any file a user creates."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_LINKS = 40  # as the kernel's own limit on a chain of links


class UnsafePath(ShipctlError):
    """A path shipctl would write leads through a symbolic link that someone else owns."""


def _trusted_owners() -> tuple[int, ...]:
    geteuid = getattr(os, "geteuid", None)
    return (0,) if geteuid is None else (geteuid(), 0)


def check_links(path: Path) -> bool:
    """Refuse `path` when it is, or leads through, a link owned by another user; True when it is a link.

    Every link of the chain is checked, not only the first: your own link may point into a shared folder
    where the next one is someone else's.
    """
    trusted = _trusted_owners()
    current = Path(path)
    for hops in range(_MAX_LINKS):
        try:
            info = os.lstat(current)
        except OSError:
            # Nothing there (a link may dangle: the file is about to be created), or a name only the kernel
            # resolves (`/proc/self/fd/1` -> `pipe:[…]`): either way no further link to judge.
            return hops > 0
        if not stat.S_ISLNK(info.st_mode):
            return hops > 0
        if info.st_uid not in trusted:
            raise UnsafePath(
                f"refusing to write {path}: {current} is a symbolic link owned by another user (uid {info.st_uid}); "
                "remove it or choose another path"
            )
        current = current.parent / os.readlink(current)
    raise UnsafePath(f"refusing to write {path}: too many levels of symbolic links")


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (it may have been removed or replaced since)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def open_fd(path: Path, *, mode: int = DEFAULT, truncate: bool = True, flags: int = os.O_WRONLY) -> int:
    """Open `path` for writing (created with `mode` if missing) under the link rule; the caller owns the fd."""
    path = Path(path)
    followed = check_links(path)
    base = flags | os.O_CREAT
    try:
        if not followed:
            return os.open(path, base | _NOFOLLOW | (os.O_TRUNC if truncate else 0), mode)
        # Through a trusted link: truncate only once the link is known to still lead where it was checked.
        fd = os.open(path, base, mode)
    except OSError:
        if os.path.islink(path):
            raise UnsafePath(f"refusing to write {path}: it became a symbolic link while being opened") from None
        raise
    try:
        if check_links(path) is not True or not same_file(fd, path):
            raise UnsafePath(f"refusing to write {path}: its symbolic link changed while being opened")
        if truncate and stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_text(path: Path, *, mode: int = DEFAULT) -> TextIO:
    """A UTF-8 text file for a CSV or JSON writer (newline="" as the csv module needs), truncated."""
    return os.fdopen(open_fd(path, mode=mode), "w", newline="", encoding="utf-8")


def create_beside(dest: Path, *, mode: int = DEFAULT) -> tuple[int, Path]:
    """A new, uniquely named file in `dest`'s folder, for writing and then renaming onto `dest`.

    O_EXCL with O_NOFOLLOW: it is always a file made here and now, never an existing file or a link's target.
    Unlike `tempfile.mkstemp` it gets `mode` (what the umask leaves), since it becomes the user's file.
    """
    for _ in range(100):
        tmp = dest.with_name(f".{dest.name}.{os.urandom(6).hex()}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {dest}")
