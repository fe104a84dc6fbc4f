"""The shared client reads the environment per call only when a proxy is set, and NO_PROXY alone is not one.

Without a proxy, requests' per-call environment scan is switched off (`trust_env`): it costs CPU on every call
and would let a `~/.netrc` entry replace the API key with Basic auth. NO_PROXY only names hosts that bypass a
proxy, so set alone (common in corporate shells) it must not switch the scan back on. These tests make real calls
to the sandbox with a `~/.netrc` that names it: the key must still be the one that arrives.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipctl.carrier.client import make_client, session_of
from shipctl.sandbox import Sandbox
from tests.cli import TEST_KEY


@pytest.fixture
def clean_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def netrc_for_loopback(tmp_path: Path, clean_proxies: pytest.MonkeyPatch) -> Path:
    """A ~/.netrc with a login for 127.0.0.1: requests would send it as Basic auth instead of the Bearer key."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    clean_proxies.setenv("HOME", str(tmp_path))
    return netrc


def whoami(sandbox: Sandbox) -> tuple[str, bool]:
    client = make_client(TEST_KEY, sandbox.api_base, pool_size=2)
    try:
        return str(client.user.retrieve_me().id), session_of(client).trust_env
    finally:
        session_of(client).close()


@pytest.mark.usefixtures("netrc_for_loopback")
@pytest.mark.parametrize("no_proxy", ["localhost,127.0.0.1", "*", ""])
def test_no_proxy_alone_keeps_the_key_and_the_scan_off(
    sandbox: Sandbox, clean_proxies: pytest.MonkeyPatch, no_proxy: str
) -> None:
    clean_proxies.setenv("NO_PROXY", no_proxy)
    account, scanning = whoami(sandbox)
    assert account.startswith("user_")  # the Bearer key arrived: a Basic login is refused (401)
    assert scanning is False


@pytest.mark.usefixtures("netrc_for_loopback")
def test_an_empty_proxy_variable_is_no_proxy(sandbox: Sandbox, clean_proxies: pytest.MonkeyPatch) -> None:
    clean_proxies.setenv("HTTPS_PROXY", "")
    clean_proxies.setenv("no_proxy", "127.0.0.1")
    account, scanning = whoami(sandbox)
    assert account.startswith("user_") and scanning is False


def test_with_a_proxy_requests_reads_the_environment_and_honours_no_proxy(
    sandbox: Sandbox, clean_proxies: pytest.MonkeyPatch
) -> None:
    """A proxy that cannot be reached, and the sandbox exempted from it: the call goes straight to the sandbox."""
    clean_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens there
    clean_proxies.setenv("NO_PROXY", "127.0.0.1")
    account, scanning = whoami(sandbox)
    assert account.startswith("user_")
    assert scanning is True
