"""API keys from elsewhere than the environment: the OS keychain (a small file-backed keyring backend stands in
for it) and a profile's key_command; a profile's declared mode refusing a key of the other mode before any call.
Which key a run used is seen in the sandbox's ledger: each key is its own account there."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from shipctl.config import KEYRING_SERVICE
from shipctl.sandbox import Sandbox
from shipctl.sandbox.model import account_for_key
from shipctl.secrets import scrub
from tests.cli import PROD_KEY, TEST_KEY, invoke, ndjson
from tests.manifests import make_manifest

KEYCHAIN_KEY = "EZTKkeychain00000000000000000000"
EAST_KEY = "EZTKeastprofile000000000000000000"
COMMAND_KEY = "custom-key-no-ez-prefix-7f3a9c"


class FileKeyring(KeyringBackend):
    """A keychain in a JSON file: what keyring's own backends do, minus the OS."""

    priority = 1  # type: ignore[assignment]
    path: Path

    def _entries(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._entries()
        entries[f"{service}/{username}"] = password
        self.path.write_text(json.dumps(entries))

    def delete_password(self, service: str, username: str) -> None:
        entries = self._entries()
        entries.pop(f"{service}/{username}", None)
        self.path.write_text(json.dumps(entries))


class PlaintextKeyring(FileKeyring):
    """Named as keyrings.alt's plain-text file backend is: shipctl will not store a key in it."""


@pytest.fixture
def keychain(tmp_path: Path) -> Iterator[FileKeyring]:
    backend = FileKeyring()
    backend.path = tmp_path / "keychain.json"
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("SHIPCTL_CONFIG", str(path))
    return path


@pytest.fixture
def keyless(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox as the API, but no EASYPOST_API_KEY: the key must come from the config's sources."""
    monkeypatch.delenv("EASYPOST_API_KEY")
    return env


def accounts(sb: Sandbox) -> set[str]:
    return {entry["account"] for entry in sb.ledger()}


def test_set_key_stores_in_the_keychain_and_a_run_uses_it(keyless: Sandbox, keychain: FileKeyring,
                                                          config_file: Path, tmp_path: Path) -> None:
    stored = invoke("config", "set-key", input=KEYCHAIN_KEY + "\n")
    assert stored.exit_code == 0, stored.stderr
    assert KEYCHAIN_KEY not in stored.stdout + stored.stderr
    assert keychain.get_password(KEYRING_SERVICE, "default") == KEYCHAIN_KEY
    assert not config_file.exists()  # never in the file
    shown = json.loads(invoke("config", "show", "-o", "json").stdout)
    assert shown["api_key"] == {"source": "keychain (shipctl/default)"}

    manifest = make_manifest(tmp_path / "orders.csv", 2)
    result = invoke("create", str(manifest), "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert KEYCHAIN_KEY not in result.stdout + result.stderr
    assert [r["status"] for r in ndjson(result.stdout)] == ["bought", "bought"]
    assert accounts(keyless) == {account_for_key(KEYCHAIN_KEY)}


def test_a_profile_has_its_own_keychain_entry(keyless: Sandbox, keychain: FileKeyring, config_file: Path,
                                              tmp_path: Path) -> None:
    config_file.write_text("[profiles.east]\n", encoding="utf-8")
    keychain.set_password(KEYRING_SERVICE, "default", KEYCHAIN_KEY)
    assert invoke("config", "set-key", "--profile", "east", input=EAST_KEY + "\n").exit_code == 0
    assert keychain.get_password(KEYRING_SERVICE, "east") == EAST_KEY
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    result = invoke("--profile", "east", "create", str(manifest), "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert accounts(keyless) == {account_for_key(EAST_KEY)}


def test_the_environment_key_beats_the_keychain(env: Sandbox, keychain: FileKeyring, tmp_path: Path) -> None:
    keychain.set_password(KEYRING_SERVICE, "default", KEYCHAIN_KEY)
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert accounts(env) == {account_for_key(TEST_KEY)}


def test_set_key_refuses_a_plaintext_backend(keychain: FileKeyring, config_file: Path, tmp_path: Path) -> None:
    plain = PlaintextKeyring()
    plain.path = tmp_path / "plain.json"
    keyring.set_keyring(plain)
    result = invoke("config", "set-key", input=KEYCHAIN_KEY + "\n")
    assert result.exit_code == 2
    assert "plain text" in result.stderr
    assert not plain.path.exists()


def test_set_key_refuses_a_key_of_the_other_mode(keychain: FileKeyring, config_file: Path) -> None:
    config_file.write_text('[profiles.prod]\nmode = "production"\n', encoding="utf-8")
    result = invoke("config", "set-key", "--profile", "prod", input=TEST_KEY + "\n")
    assert result.exit_code == 2
    assert "declares mode = \"production\" but this is a test key" in result.stderr
    assert TEST_KEY not in result.stderr
    assert keychain.get_password(KEYRING_SERVICE, "prod") is None


def key_script(tmp_path: Path, key: str, exit_code: int = 0) -> str:
    """A password manager's CLI: prints the key (and a second line, as `pass show` may), exits `exit_code`."""
    script = tmp_path / "key.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        print({key!r})
        print("url: https://example.invalid/login")
        sys.stderr.write("unlocked " + {key!r} + "\\n")
        sys.exit({exit_code})
    """), encoding="utf-8")
    return json.dumps(f"{sys.executable} {script}")  # a TOML basic string


def test_key_from_a_command(keyless: Sandbox, keychain: FileKeyring, config_file: Path, tmp_path: Path) -> None:
    keychain.set_password(KEYRING_SERVICE, "vault", KEYCHAIN_KEY)  # key_command wins over the keychain
    config_file.write_text(f"[profiles.vault]\nkey_command = {key_script(tmp_path, COMMAND_KEY)}\n", encoding="utf-8")
    shown = json.loads(invoke("--profile", "vault", "config", "show", "-o", "json").stdout)
    assert shown["api_key"] == {"source": "key_command (profile vault)"}
    result = invoke("--profile", "vault", "create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson",
                    "-q")
    assert result.exit_code == 0, result.stderr
    assert COMMAND_KEY not in result.stdout + result.stderr
    assert accounts(keyless) == {account_for_key(COMMAND_KEY)}
    assert scrub(f"echoed {COMMAND_KEY} back") == "echoed [redacted] back"  # scrubbed like the environment's


def test_a_failing_key_command_is_one_line_without_its_output(keyless: Sandbox, config_file: Path,
                                                              tmp_path: Path) -> None:
    config_file.write_text(f"key_command = {key_script(tmp_path, COMMAND_KEY, exit_code=3)}\n", encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == "error: key_command of file failed (exit 3); run it yourself to see why"
    assert COMMAND_KEY not in result.stdout + result.stderr
    assert "example.invalid" not in result.stderr
    assert keyless.ledger() == []

    config_file.write_text('key_command = "no-such-password-manager show easypost"\n', encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")
    assert result.exit_code == 2
    assert "program 'no-such-password-manager' not found" in result.stderr


def lingering_script(tmp_path: Path, key: str, *, newline: bool = True, wait_first: float = 0.0,
                     split: float = 0.0) -> str:
    """A key_command that prints the key (after `wait_first` seconds, as at an unlock prompt; in two halves
    `split` seconds apart when given), writes its pid beside it, and stays running for 100 s with the pipe open,
    as a lingering helper does."""
    script = tmp_path / "linger.py"
    half = len(key) // 2
    script.write_text(textwrap.dedent(f"""\
        import os, sys, time
        time.sleep({wait_first})
        if {split!r}:
            sys.stdout.write({key[:half]!r})
            sys.stdout.flush()
            time.sleep({split!r})
        sys.stdout.write({key[half:] if split else key!r} + ({newline!r} and "\\n" or ""))
        sys.stdout.flush()
        open({str(tmp_path / "linger.pid")!r}, "w").write(str(os.getpid()))
        time.sleep(100)
    """), encoding="utf-8")
    return json.dumps(f"{sys.executable} {script}")


@pytest.mark.parametrize("split", [0.0, 0.6])
def test_a_key_command_that_lingers_after_printing_the_key_does_not_hold_the_run(
    keyless: Sandbox, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: float,
) -> None:
    """The key is taken when its line is whole (even written in two parts with a pause longer than the grace
    between), and the command, still running, is stopped: the run neither waits for it to exit nor fails at the
    timeout with the key in hand."""
    monkeypatch.setattr("shipctl.keys.KEY_COMMAND_TIMEOUT", 20.0)  # before, the run would fail here, at 20 s
    monkeypatch.setattr("shipctl.keys.KEY_COMMAND_GRACE", 0.2)
    config_file.write_text(f"key_command = {lingering_script(tmp_path, COMMAND_KEY, split=split)}\n",
                           encoding="utf-8")
    started = time.monotonic()
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 15
    assert accounts(keyless) == {account_for_key(COMMAND_KEY)}
    assert COMMAND_KEY not in result.stdout + result.stderr
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left behind
        os.kill(int((tmp_path / "linger.pid").read_text()), 0)


def test_a_key_with_no_line_break_from_a_command_that_lingers_is_not_taken_cut(
    keyless: Sandbox, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Text with no line break may be the first part of the key: it is taken only once the command exits. One
    that never does ends the run at the timeout, saying what to do, with nothing sent."""
    monkeypatch.setattr("shipctl.keys.KEY_COMMAND_TIMEOUT", 1.5)
    config_file.write_text(f"key_command = {lingering_script(tmp_path, COMMAND_KEY, newline=False)}\n",
                           encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson", "-q")
    assert result.exit_code == 1, result.stderr
    assert "printed no whole line in 2 s and is still running: end the key with a line break" in result.stderr
    assert COMMAND_KEY not in result.stdout + result.stderr
    assert accounts(keyless) == set()  # no call was made with a part of the key
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "linger.pid").read_text()), 0)


def test_a_slow_key_command_is_said_to_be_waited_for(keyless: Sandbox, config_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shipctl.keys.KEY_COMMAND_NOTICE", 0.0)  # the notice's 5 s, without waiting them
    config_file.write_text(f"key_command = {lingering_script(tmp_path, COMMAND_KEY, wait_first=0.5)}\n",
                           encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "waiting for" in line]
    assert notes == ["shipctl: waiting for the key_command of file to print the API key (up to 120 s): is it "
                     "asking for a password somewhere?"], result.stderr
    assert accounts(keyless) == {account_for_key(COMMAND_KEY)}


@pytest.mark.parametrize(("declared", "key"), [("production", TEST_KEY), ("test", PROD_KEY)])
def test_a_key_of_the_other_mode_is_refused_before_any_call(
    env: Sandbox, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declared: str, key: str,
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", key)
    config_file.write_text(f'[profiles.guarded]\nmode = "{declared}"\n', encoding="utf-8")
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    result = invoke("--profile", "guarded", "create", str(manifest), "-o", "ndjson", "--yes")
    assert result.exit_code == 2, result.stderr
    assert f'profile guarded declares mode = "{declared}"' in result.stderr
    assert "refused before any call" in result.stderr
    assert key not in result.stderr
    assert result.stdout == ""
    assert env.ledger() == []
    # The same key without the profile goes through (the refusal was the mode's, not the key's).
    allowed = invoke("create", str(manifest), "-o", "ndjson", "--dry-run", "-q")
    assert allowed.exit_code == 0, allowed.stderr


def test_a_production_profile_never_falls_back_to_the_sandbox(no_key: Path, config_file: Path,
                                                              tmp_path: Path) -> None:
    config_file.write_text('mode = "production"\n', encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")
    assert result.exit_code == 2
    assert 'declares mode = "production" but no API key was found' in result.stderr
    assert "built-in sandbox" not in result.stderr
    assert not (no_key / "sandbox.sqlite3").exists()


@pytest.mark.parametrize(("key", "what"), [
    ("EZTKlinebreak0000000000\nX", "a line break (or other control character)"),
    ("EZTKescape00000000000000\x1b[0m", "a line break (or other control character)"),
    ("EZTKzerowidth00000000000\u200b", "an invisible or non-Latin-1 character"),
])
def test_a_key_with_a_character_no_key_has_is_refused_before_any_call(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, what: str,
) -> None:
    """Sent, a line break made requests refuse the header: five retries, then a "connection broke" error whose
    text the scrubber half-ate. Now one line naming the variable, exit 2, nothing sent, the key never shown."""
    monkeypatch.setenv("EASYPOST_API_KEY", key)

    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")

    assert result.exit_code == 2, result.stderr
    assert f"error: EASYPOST_API_KEY contains {what}" in result.stderr
    assert "set it to the key alone. Nothing was sent" in result.stderr
    assert key[:10] not in result.stdout + result.stderr
    assert "connection" not in result.stderr and "Traceback" not in result.stderr
    assert env.ledger() == []


def test_a_key_command_printing_a_control_character_is_refused_naming_it(
    keyless: Sandbox, config_file: Path, tmp_path: Path
) -> None:
    command = key_script(tmp_path, "EZTKcommand0000000000\x07")  # a bell inside the key it prints
    config_file.write_text(f"key_command = {command}\n", encoding="utf-8")
    result = invoke("create", str(make_manifest(tmp_path / "orders.csv", 1)), "-o", "ndjson")
    assert result.exit_code == 2, result.stderr
    assert ("error: the key from key_command (file) contains a line break (or other control character); "
            "set it to the key alone. Nothing was sent") in result.stderr
    assert "EZTKcommand" not in result.stderr
    assert keyless.ledger() == []
