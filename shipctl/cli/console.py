"""The two consoles: stdout carries data only, stderr carries everything a person reads.

Both resolve sys.stdout / sys.stderr at write time (so CliRunner and redirections see them), honour NO_COLOR
(rich does) and never wrap data. `abort` is the single exit point for user errors.
"""

from __future__ import annotations

import os
from typing import NoReturn

from rich.console import Console

from shipctl.exit_codes import ExitCode

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def debug_enabled() -> bool:
    return os.environ.get("SHIPCTL_DEBUG", "") not in ("", "0")


def warn(message: str) -> None:
    err.print("warning: " + message, markup=False, style="yellow")


def info(message: str) -> None:
    err.print(message, markup=False)


def error(message: str) -> None:
    err.print("error: " + message, markup=False, style="red")


def abort(message: str, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    error(message)
    raise SystemExit(int(code))
