"""`shipctl sandbox serve`: run the offline EasyPost-compatible sandbox standalone.

The base URL is the first line on stdout (flushed at once), so a script or test can start the server with
`--port 0` and read where it listens; SIGINT or SIGTERM stops it cleanly with exit 0.

Without an access key the sandbox serves anyone who can connect: fine on loopback for one developer, but on
another interface it says so on stderr, because whoever reaches the port can read every account's purchases.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from shipctl.cli.app import add_group, guarded
from shipctl.cli.help import ShipctlCommand, ShipctlGroup
from shipctl.cli.options import choice
from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError

sandbox_app = typer.Typer(
    help="The built-in EasyPost-compatible sandbox (offline; no real labels are bought).",
    cls=ShipctlGroup,
    no_args_is_help=True,
)
add_group(sandbox_app, "sandbox")

_LATENCIES = ("none", "fast", "realistic")
_SHIFT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([dhw]?)\s*$", re.IGNORECASE)
_SHIFT_DAYS = {"": 1.0, "d": 1.0, "h": 1 / 24, "w": 7.0}


def parse_shift(text: str) -> float:
    """`--shift-clock`: `8d`, `-2d`, `36h`, `-1w` or a number of days; the offset in days (negative: the past)."""
    match = _SHIFT.match(text)
    if match is None:
        raise UsageError(f"--shift-clock {text!r}: give a duration such as 8d, -2d, 36h or -1w")
    days = float(match.group(1)) * _SHIFT_DAYS[match.group(2).lower()]
    if abs(days) > 3650:  # a clock ten years off is a typo, and past it dates leave what the SDK parses
        raise UsageError(f"--shift-clock {text!r}: at most ten years either way")
    return days


def is_loopback(host: str) -> bool:
    """Whether `host` listens on loopback only; a name other than localhost is taken as reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_base: str, access_key: bool) -> str | None:
    """The stderr warning for a sandbox others may reach, or None on loopback."""
    if is_loopback(host):
        return None
    if access_key:
        return (f"shipctl sandbox: listening on {host or 'every interface'} ({api_base}); requests need the "
                "access key, which travels unencrypted over plain HTTP: use it only on a network you trust.")
    return (f"shipctl sandbox: WARNING: listening on {host or 'every interface'} ({api_base}) with no access key: "
            "anyone who can reach this port can read the ledger, list shipments with names and addresses, and "
            "refund labels. Set --access-key (or SHIPCTL_SANDBOX_KEY) to require a key.")


def _announce(api_base: str, latency: str, faults: str | None, warning: str | None) -> None:
    """The URL alone on stdout, flushed at once (a script waits for it); the rest on stderr."""
    term = terminal()
    term.stdout.write(api_base + "\n")
    term.stdout.flush()
    term.info(f"shipctl sandbox: serving at {api_base} (latency {latency}{', faults ' + faults if faults else ''}); "
              "no real labels are bought. Stop with Ctrl-C.")
    if warning is not None:  # already says what it is ("WARNING:" when anyone may reach the ledger)
        term.info(warning)


@sandbox_app.command("serve", cls=ShipctlCommand)
@guarded
def serve(
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on; 0 picks a free one.")] = 0,
    latency: Annotated[str, choice("--latency", _LATENCIES, "Latency profile: none, fast or realistic.")] = "none",
    faults: Annotated[str | None, typer.Option(
        "--faults", metavar="SPEC",
        help="Fault injection, e.g. rate_limit=0.05,server_error=0.03,commit_then_drop=0.01,drop=0.01.",
    )] = None,
    max_inflight: Annotated[int | None, typer.Option(
        "--max-inflight", metavar="N", help="Capacity: answer 429 + Retry-After above N concurrent requests,"
             " and serve slower as load nears N.",
    )] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", metavar="N", help="Seed for reproducible faults and latencies.")] = None,
    ledger: Annotated[Path | None, typer.Option(
        "--ledger", metavar="FILE", help="Append every purchase to FILE as a JSON line.")] = None,
    state: Annotated[Path | None, typer.Option(
        "--state", metavar="FILE", help="Keep objects in this SQLite file (default: in memory).")] = None,
    access_key: Annotated[str | None, typer.Option(
        "--access-key", metavar="KEY", envvar="SHIPCTL_SANDBOX_KEY", show_default=False,
        help="Answer only requests with 'Authorization: Bearer KEY' (all of them one account); prefer the "
             "environment variable, which other users cannot read in the process list.",
    )] = None,
    refuse_form: Annotated[list[str] | None, typer.Option(
        "--refuse-form", metavar="REF", show_default=False,
        help="Refuse (422, naming it) every SCAN form that includes the shipment with this reference or id; "
             "repeatable, or comma-separated.",
    )] = None,
    shift_clock: Annotated[str | None, typer.Option(
        "--shift-clock", metavar="DURATION", show_default=False,
        help="Run the sandbox's clock this far from now: -8d dates every label bought 8 days ago (8d, 36h, -1w).",
    )] = None,
) -> None:
    """Serve the sandbox until SIGINT/SIGTERM; the base URL is the first line on stdout.

    Examples:

      shipctl sandbox serve --port 8080 --latency realistic --faults rate_limit=0.05

      shipctl sandbox serve --refuse-form ORDER-1042

      shipctl sandbox serve --shift-clock -8d --state old-labels.sqlite3

      EASYPOST_API_BASE=http://127.0.0.1:8080/v2 shipctl create orders.csv
    """
    from shipctl.sandbox import Sandbox
    from shipctl.sandbox.faults import FaultSpec, FormRefusals

    if max_inflight is not None and max_inflight < 1:
        raise UsageError("--max-inflight must be at least 1")
    if access_key is not None and (not access_key.strip() or access_key != access_key.strip()):
        # The server compares the key exactly: one with edge spaces could never match, an empty one guards nothing.
        raise UsageError("--access-key must be non-empty, with no spaces at either end")
    try:
        FaultSpec.parse(faults)
    except ValueError as exc:
        raise UsageError(f"--faults: {exc}") from None
    try:
        refused = FormRefusals.parse(refuse_form or [])
    except ValueError as exc:
        raise UsageError(f"--refuse-form: {exc}") from None
    shift = parse_shift(shift_clock) if shift_clock is not None else 0.0
    try:
        sb = Sandbox(latency=latency, faults=faults, seed=seed, max_inflight=max_inflight,  # type: ignore[arg-type]
                     state_path=state, ledger_path=ledger, host=host, port=port, access_key=access_key,
                     refuse_forms=refused, clock_offset_days=shift)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

    # This process only serves: hand the GIL over sooner than the default 5 ms, so the event loop is not kept
    # waiting behind a thread rendering a PNG label file.
    sys.setswitchinterval(0.0005)
    # A plain list, not a threading.Event: the handler runs between two bytecodes of the main thread, which may be
    # inside Event.wait holding the Event's lock, and Event.set would then wait for that lock forever (CI saw a
    # sandbox ignore SIGTERM this way). Appending takes no lock; the loop below sees it within a tenth of a second.
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sb.start()
        _announce(sb.api_base, latency, faults, exposure_warning(host, sb.api_base, access_key is not None))
        if shift:
            terminal().info(f"shipctl sandbox: its clock runs {_days(shift)} "
                            f"{'behind' if shift < 0 else 'ahead of'} the real one")
        while not signalled:
            time.sleep(0.1)
    finally:
        sb.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _days(days: float) -> str:
    n = abs(days)
    return f"{n:g} day" + ("" if n == 1 else "s")
