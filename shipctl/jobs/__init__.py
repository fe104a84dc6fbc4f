"""The core jobs, one module per command that talks to the API: `create`, `rates`, `track`, `refund`.

A job takes typed inputs and a `Host` (notices, progress, a person's yes), runs through the engine on a
`Session`, and hands each result to a sink. It knows nothing of Typer, rich or the terminal: the CLI
(`shipctl.cli`) parses options, builds the job and renders what it hands out.

The names below are loaded on first use (PEP 562): importing any `shipctl.jobs.<module>` runs this file first,
and a module that needs only `host` (or the validation pass) must not pay for the SDK, requests and the engine
that `session` brings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipctl.jobs.host import Headless, Host, Spend
    from shipctl.jobs.session import InOrder, Session, open_session

_WHERE = {
    "Headless": "host", "Host": "host", "Spend": "host",
    "InOrder": "session", "Session": "session", "open_session": "session",
}

__all__ = ["Headless", "Host", "InOrder", "Session", "Spend", "open_session"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__ rather than importlib.import_module: `python -X importtime` sees only the former.
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
