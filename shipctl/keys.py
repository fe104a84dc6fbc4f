"""Where the API key comes from, other than EASYPOST_API_KEY: a profile's `key_command`, or the OS keychain.

Order: EASYPOST_API_KEY, else `key_command` (the profile's, else the file's top level), else the keychain entry
(service "shipctl", username the profile's name or "default"; only with the optional `keyring` package). Every key
found here is handed to `secrets.remember` so it is scrubbed like the environment's. shipctl never writes a key to
a file: `store` puts it in the keychain and nowhere else.

A profile's `mode` is checked against the key before any call (`check_mode`): EasyPost keys say theirs (EZTK
test, EZAK production). No typer, no terminal.
"""

from __future__ import annotations

import shlex
import subprocess
import unicodedata
from dataclasses import dataclass
from typing import Any

from shipctl.config import KEYRING_SERVICE, Config
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.secrets import remember

KEY_COMMAND_TIMEOUT = 120.0
"""Seconds a key_command may take: long enough to unlock a password manager at its own prompt."""
KEYRING_MISSING = "the keychain needs the keyring package: pip install 'shipctl[keyring]'"


@dataclass(frozen=True)
class FoundKey:
    key: str
    source: str
    """'env EASYPOST_API_KEY', 'key_command (profile NAME)', 'keychain (shipctl/NAME)' — never the key."""

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"FoundKey(source={self.source!r})"


def find_key(config: Config, env_key: str) -> FoundKey | None:
    """The key this run uses, from the first source that has one; None when none does."""
    if env_key:
        return FoundKey(env_key, "env EASYPOST_API_KEY")
    command = config.values["key_command"]
    if command.value is not None:
        return FoundKey(_run_key_command(command.value, command.source), f"key_command ({command.source})")
    stored = keychain_key(config.keychain_user)
    if stored:
        return FoundKey(stored, f"keychain ({KEYRING_SERVICE}/{config.keychain_user})")
    return None


def check_characters(found: FoundKey) -> None:
    """Refuse, before any call, a key holding a character no key has: a line break or other control character
    (`EASYPOST_API_KEY=$'EZTK…\\nX'`, a paste that took the next line), or an invisible or non-Latin-1 one (a
    zero-width space from a web page). Sent, the first makes requests refuse the header, which reads as a broken
    connection and is retried five times; the second ends as an encoding error. The key is never shown."""
    where = "EASYPOST_API_KEY" if found.source == "env EASYPOST_API_KEY" else f"the key from {found.source}"
    if any(unicodedata.category(ch) == "Cc" for ch in found.key):
        what = "a line break (or other control character)"
    elif any(unicodedata.category(ch) == "Cf" or ord(ch) > 0xFF for ch in found.key):
        what = "an invisible or non-Latin-1 character (copied along with the key?)"
    else:
        return
    raise UsageError(f"{where} contains {what}; set it to the key alone. Nothing was sent")


def check_mode(config: Config, found: FoundKey | None) -> None:
    """Refuse, before any call, a key whose mode is not the one the profile declares (exit 2); a production profile
    with no key at all too (it would otherwise fall back to the built-in sandbox)."""
    declared = config.values["mode"]
    if declared.value is None:
        return
    where = declared.source if declared.source != "file" else "the config file"
    if found is None:
        if declared.value == "production":
            raise UsageError(f"{where} declares mode = \"production\" but no API key was found (EASYPOST_API_KEY, "
                             "key_command or the keychain); nothing was sent")
        return
    from shipctl.target import key_mode

    mode = key_mode(found.key)
    if mode is not None and mode != declared.value:
        raise UsageError(f"{where} declares mode = \"{declared.value}\" but the key from {found.source} is a {mode} "
                         "key; refused before any call")


def _run_key_command(command: str, source: str) -> str:
    """The key a key_command prints: its first line, stripped. Run without a shell (shlex-split: no quoting
    surprises, no injection; `sh -c '...'` is there for a pipeline). Its output never reaches an error message."""
    argv = shlex.split(command)
    what = f"key_command of {source}"
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=KEY_COMMAND_TIMEOUT,
                              check=False)
    except FileNotFoundError:
        raise ShipctlError(f"{what}: program {argv[0]!r} not found", ExitCode.USAGE) from None
    except PermissionError:
        raise ShipctlError(f"{what}: program {argv[0]!r} cannot be run (permission denied)", ExitCode.USAGE) from None
    except subprocess.TimeoutExpired:
        raise ShipctlError(f"{what} did not finish in {KEY_COMMAND_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        # Neither its stdout (it may hold the key) nor its stderr (it may echo it) is shown: the person can run it.
        raise ShipctlError(f"{what} failed (exit {done.returncode}); run it yourself to see why")
    try:
        lines = done.stdout.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise ShipctlError(f"{what} printed something that is not UTF-8 text") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ShipctlError(f"{what} printed no key")
    remember(key)
    return key


def keyring_module() -> Any:
    try:
        import keyring
    except ImportError:
        return None
    return keyring


def keychain_key(user: str) -> str | None:
    """The key stored for `user`, or None: keyring not installed, no keychain on this machine, or no entry."""
    keyring = keyring_module()
    if keyring is None:
        return None
    from keyring.errors import KeyringError

    try:
        stored = keyring.get_password(KEYRING_SERVICE, user)
    except KeyringError:  # no usable keychain here (a server): as if nothing were stored
        return None
    except Exception as exc:  # a broken backend must not end every run in a traceback
        raise ShipctlError(
            f"cannot read the keychain ({type(exc).__name__}); set EASYPOST_API_KEY, or "
            "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring to skip the keychain"
        ) from None
    if stored is None or not stored.strip():
        return None
    remember(stored.strip())
    return str(stored.strip())


def store(user: str, key: str) -> str:
    """Put `key` in the keychain for `user`; the backend's name. Refuses a backend that keeps keys in plain text."""
    keyring = keyring_module()
    if keyring is None:
        raise UsageError(KEYRING_MISSING)
    from keyring.errors import KeyringError

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if "plaintext" in name.lower():
        raise UsageError(f"the keychain backend {name} keeps keys in plain text; shipctl will not store a key there")
    remember(key)
    try:
        keyring.set_password(KEYRING_SERVICE, user, key)
    except KeyringError as exc:
        raise ShipctlError(f"cannot store the key in the keychain ({name}): {type(exc).__name__}") from None
    return name
