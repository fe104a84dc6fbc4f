"""The core jobs, one module per command that talks to the API: `create`, `rates`, `track`, `refund`.

A job takes typed inputs and a `Host` (notices, progress, a person's yes), runs through the engine on a
`Session`, and hands each result to a sink. It knows nothing of Typer, rich or the terminal: the CLI
(`shipctl.cli`) parses options, builds the job and renders what it hands out.
"""

from shipctl.jobs.host import Headless, Host, Spend
from shipctl.jobs.session import InOrder, Session, open_session

__all__ = ["Headless", "Host", "InOrder", "Session", "Spend", "open_session"]
