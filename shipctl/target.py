"""Which API a command talks to: EasyPost with a key, any server via EASYPOST_API_BASE, or the built-in sandbox.

No EASYPOST_API_KEY (or `--sandbox`): the sandbox starts in-process on loopback, keeping its objects in a SQLite
file under the state directory so that what one command bought the next can track or refund. One line on
stderr says so. The key itself is never printed; only whether one is in use.

The embedded sandbox listens on loopback, where any other local user or process could reach it: it answers only
a key made for this run, which never leaves the process. Its account is fixed, so the state file's objects stay
this user's from one run to the next although the key changes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shipctl.paths import state_dir

EASYPOST_API_BASE = "https://api.easypost.com/v2"
# A server given by EASYPOST_API_BASE with no key (e.g. a standalone sandbox) gets this one: it says what it is
# if it ever shows up anywhere.
SANDBOX_KEY = "sandbox-no-real-key"


@dataclass(frozen=True)
class Target:
    api_key: str
    api_base: str
    identity: str
    """Stable name of the server and key mode, stored in journals: 'sandbox' for the built-in one."""
    embedded: bool
    mode: str | None
    """'test' or 'production' when the key says so (EasyPost keys start EZTK / EZAK), else None (unknown)."""

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback's locals
        return f"Target(api_base={self.api_base!r}, identity={self.identity!r}, embedded={self.embedded})"


@contextlib.contextmanager
def api_target(*, force_sandbox: bool = False, announce: Callable[[str], None] = lambda _m: None) -> Iterator[Target]:
    """The API this run talks to; `announce` hears the one line that says the built-in sandbox is in use.

    The key: EASYPOST_API_KEY, else the profile's key_command, else the keychain (`shipctl.keys`); a profile's
    declared mode is checked against it here, before any call."""
    key = os.environ.get("EASYPOST_API_KEY", "").strip()
    base = _checked_base(os.environ.get("EASYPOST_API_BASE", "").strip())
    if not force_sandbox:  # `--sandbox` runs no key_command and reads no keychain
        from shipctl.config import active
        from shipctl.keys import check_characters, check_mode, find_key

        settings = active()
        found = find_key(settings, key, announce)
        if found is not None:
            check_characters(found)
        check_mode(settings, found)
        key = found.key if found is not None else ""
    if force_sandbox or (not key and not base):
        from shipctl.sandbox import start_sandbox

        run_key = secrets.token_urlsafe(32)
        with start_sandbox(latency="fast", state_path=state_dir() / "sandbox.sqlite3", access_key=run_key) as sandbox:
            announce(
                f"shipctl: no EASYPOST_API_KEY set, using the built-in sandbox at {sandbox.api_base} "
                "(no real labels are bought)"
            )
            yield Target(run_key, sandbox.api_base, "sandbox", embedded=True, mode="test")
        return
    mode = key_mode(key)
    url = base or EASYPOST_API_BASE
    # The key's mode is part of the identity: a journal of test purchases must never be "resumed" as if its
    # labels had been bought in production (the key itself is never stored, not even hashed).
    yield Target(key or SANDBOX_KEY, url, f"{_public(url)} ({mode or 'unknown'} key)", embedded=False, mode=mode)


def _public(url: str) -> str:
    """The API's URL as the journal names it: without a user, password, query or fragment, any of which may carry
    a secret (`…/v2?key=EZTK…`); a plain URL as it is, so journals written before still match."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _checked_base(base: str) -> str:
    """EASYPOST_API_BASE as given, when it is an http(s) URL with a host; a usage error (nothing sent) otherwise:
    `notaurl` would otherwise come back from requests as a connection that "broke"."""
    if not base:
        return base
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        usable = False
    if not usable:
        from shipctl.errors import UsageError

        raise UsageError(f"EASYPOST_API_BASE {base!r} is not an http(s) URL (e.g. https://api.easypost.com/v2, or "
                         "http://127.0.0.1:8080/v2 for a sandbox); nothing was sent")
    return base


def key_mode(key: str) -> str | None:
    if key.startswith("EZTK"):
        return "test"
    if key.startswith("EZAK"):
        return "production"
    return None
