"""Where the API key comes from, other than EASYPOST_API_KEY: a profile's `key_command`, or the OS keychain.

Order: EASYPOST_API_KEY, else `key_command` (the profile's, else the file's top level), else the keychain entry
(service "shipctl", username the profile's name or "default"; only with the optional `keyring` package). Every key
found here is handed to `secrets.remember` so it is scrubbed like the environment's. shipctl never writes a key to
a file: `store` puts it in the keychain and nowhere else.

A profile's `mode` is checked against the key before any call (`check_mode`): EasyPost keys say theirs (EZTK
test, EZAK production). No typer, no terminal.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from shipctl.config import KEYRING_SERVICE, Config
from shipctl.errors import ShipctlError, UsageError
from shipctl.exit_codes import ExitCode
from shipctl.secrets import remember

KEY_COMMAND_TIMEOUT = 120.0
"""Seconds a key_command may take to print the key: long enough to unlock a password manager at its own prompt."""
KEY_COMMAND_NOTICE = 5.0
"""Seconds without a key before a line says what the run is waiting for."""
KEY_COMMAND_GRACE = 2.0
"""Seconds a key_command that printed the key has to exit (its exit status is honoured) before it is stopped."""
KEYRING_MISSING = "the keychain needs the keyring package: pip install 'shipctl[keyring]'"


@dataclass(frozen=True)
class FoundKey:
    key: str
    source: str
    """'env EASYPOST_API_KEY', 'key_command (profile NAME)', 'keychain (shipctl/NAME)' — never the key."""

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"FoundKey(source={self.source!r})"


def find_key(config: Config, env_key: str, announce: Callable[[str], None] = lambda _m: None) -> FoundKey | None:
    """The key this run uses, from the first source that has one; None when none does. `announce` hears what a
    slow key_command is waiting for."""
    if env_key:
        return FoundKey(env_key, "env EASYPOST_API_KEY")
    command = config.values["key_command"]
    if command.value is not None:
        key = _run_key_command(command.value, command.source, announce)
        return FoundKey(key, f"key_command ({command.source})")
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


def _run_key_command(command: str, source: str, announce: Callable[[str], None]) -> str:
    """The key a key_command prints: its first line, stripped. Run without a shell (shlex-split: no quoting
    surprises, no injection; `sh -c '...'` is there for a pipeline). Its output never reaches an error message.

    The key is taken as soon as its line is whole (or the output ends, or stops with no line break), not when
    the command exits: one that stays running after printing it (a helper that lingers, `sh -c 'echo KEY; sleep
    100'`) would otherwise hold a 2 a.m. cron run for minutes and then fail it with the key in hand. The command
    then has `KEY_COMMAND_GRACE` seconds to exit, so a failure it reports by its exit status still counts; one
    still running after that has done its part and is stopped. While no key has come, a line says so after
    `KEY_COMMAND_NOTICE` seconds (a password manager may be waiting at its own prompt), and after
    `KEY_COMMAND_TIMEOUT` the run gives up."""
    argv = shlex.split(command)
    what = f"key_command of {source}"
    try:
        # stderr is dropped, never shown (it may echo the key), and never left to fill a pipe nobody reads.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ShipctlError(f"{what}: program {argv[0]!r} not found", ExitCode.USAGE) from None
    except PermissionError:
        raise ShipctlError(f"{what}: program {argv[0]!r} cannot be run (permission denied)", ExitCode.USAGE) from None
    try:
        line = _key_line(proc, _Output(proc), what, announce)
        try:
            code: int | None = proc.wait(KEY_COMMAND_GRACE)
        except subprocess.TimeoutExpired:
            code = None  # it printed the key and lingers: stopped below, its key used
    finally:
        _stop(proc)
    if code:
        # Neither its stdout (it may hold the key) nor its stderr (it may echo it) is shown: the person can run it.
        raise ShipctlError(f"{what} failed (exit {code}); run it yourself to see why")
    try:
        lines = line.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise ShipctlError(f"{what} printed something that is not UTF-8 text") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ShipctlError(f"{what} printed no key")
    remember(key)
    return key


class _Output:
    """A key_command's stdout, read by a thread as it comes, so the key is taken the moment its line is whole."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.data = bytearray()
        self.ended = False
        self.changed = threading.Condition()
        assert proc.stdout is not None  # stdout=PIPE
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        # read1: whatever has come, at once. A daemon thread, and the pipe's only user (closing a buffered reader
        # waits for a read in another thread): a process the command started that holds the pipe open never holds
        # the run up, nor its exit.
        with stream, contextlib.suppress(OSError):
            while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
                with self.changed:
                    # 64 KiB kept: the key is in the first line, and `yes KEY` must not fill memory before it is
                    # stopped. The rest is read and dropped: a pipe closed early would kill it with SIGPIPE, a
                    # failure it never had.
                    self.data += chunk[:max(0, (1 << 16) - len(self.data))]
                    self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def key_line(self, final: bool) -> bytes | None:
        """The first line with something on it once it is whole; at the end (`final`: the output ended, or the
        command exited) whatever came (b"" for nothing); None while the key may still be coming. Text with no line
        break is never taken while the command runs: a key written in two parts with a pause between would be
        sent cut (`printf KEY` with no line break from a command that lingers waits for it to exit)."""
        with self.changed:
            *whole, rest = bytes(self.data).split(b"\n")
            final = final or self.ended
        found = next((line for line in whole if line.strip()), None)
        if found is not None:
            return found
        return rest if final else None

    def wait(self, seconds: float) -> None:
        with self.changed:
            self.changed.wait(seconds)


def _key_line(proc: subprocess.Popen[bytes], output: _Output, what: str, announce: Callable[[str], None]) -> bytes:
    """The line holding the key, waited for up to `KEY_COMMAND_TIMEOUT` seconds."""
    started = time.monotonic()
    exited: float | None = None
    told = False
    while True:
        now = time.monotonic()
        if exited is None and proc.poll() is not None:
            exited = now
        # Exited, but a process it started may hold its stdout open: what it printed is all there will be.
        line = output.key_line(final=exited is not None and now - exited >= KEY_COMMAND_GRACE)
        if line is not None:
            return line
        if now - started >= KEY_COMMAND_TIMEOUT:
            if output.data.strip():  # the start of a line, and the command still running
                raise ShipctlError(f"{what} printed no whole line in {KEY_COMMAND_TIMEOUT:.0f} s and is still "
                                   "running: end the key with a line break, or let the command exit")
            raise ShipctlError(f"{what} printed no key in {KEY_COMMAND_TIMEOUT:.0f} s")
        if not told and now - started >= KEY_COMMAND_NOTICE:
            announce(f"shipctl: waiting for the {what} to print the API key (up to {KEY_COMMAND_TIMEOUT:.0f} s): "
                     "is it asking for a password somewhere?")
            told = True
        output.wait(0.1)  # woken at once by output; the tenth of a second is for its exit and the clock


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the command if it still runs, with the processes it started that still run under it (`sh -c 'echo KEY;
    sleep 100'`: the shell's `sleep`, which would hold the pipe and live on): SIGTERM, then SIGKILL, and reap it.
    A daemon it started (an agent) has left its tree already and is not touched. Its pipe is the reading thread's."""
    if proc.poll() is not None:
        return
    import psutil  # only for a command that lingers

    try:
        under = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:  # it ended meanwhile
        under = []
    for child in under:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    proc.terminate()
    try:
        proc.wait(1)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in psutil.wait_procs(under, timeout=1)[1]:  # those still alive after a second
        with contextlib.suppress(psutil.Error):
            child.kill()


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
