"""The two consoles: stdout carries data only, stderr carries everything a person reads.

Both resolve sys.stdout / sys.stderr at write time (so CliRunner and redirections see them), honour NO_COLOR
(rich does) and never wrap data. User errors leave through `ShipctlError` and the edge in app.py.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

# emoji=False: text from manifests (a column named ":smile:") must print as written.
out = Console(soft_wrap=True, highlight=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def debug_enabled() -> bool:
    return os.environ.get("SHIPCTL_DEBUG", "") not in ("", "0")


def warn(message: str) -> None:
    err.print("warning: " + message, markup=False, style="yellow")


def info(message: str) -> None:
    err.print(message, markup=False)


def error(message: str) -> None:
    err.print("error: " + message, markup=False, style="red")


def silence_stdout() -> None:
    """Point fd 1 at /dev/null once the reader has closed the pipe, so later writes and the final flush pass."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. under a test runner): nothing to redirect
        pass
    finally:
        os.close(devnull)
