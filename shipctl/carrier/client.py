"""Build the one `EasyPostClient` a run shares, with a connection pool sized to the in-flight ceiling.

The SDK mounts a `requests` adapter with urllib3's default pool of 10 connections: above 10 concurrent calls it
opens and then discards extra connections, paying a TCP (and TLS) handshake per call. We mount our own adapter
sized to the ceiling. Its retries cover only connection *establishment* (nothing was sent, so it is safe even
for `buy`); read errors are never retried here: the engine decides, knowing whether the call spends money.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import easypost
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT = 60

_last_response = threading.local()


def _remember_retry_after(*, http_status: int, headers: Any, **_: Any) -> None:
    """SDK response hook, run in the calling worker thread: keep Retry-After for the classifier."""
    value = None
    if http_status in (429, 503) and headers is not None:
        value = headers.get("Retry-After")
    _last_response.retry_after = value


def take_retry_after() -> float | None:
    """The Retry-After of the last response seen by this thread, in seconds (HTTP-date forms are ignored)."""
    value = getattr(_last_response, "retry_after", None)
    _last_response.retry_after = None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _adapter(pool_size: int) -> HTTPAdapter:
    retry = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_status=False)
    return HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=retry, pool_block=False)


def make_client(api_key: str, api_base: str, *, pool_size: int, timeout: int = DEFAULT_TIMEOUT) -> Any:
    client = easypost.EasyPostClient(api_key, api_base=api_base, timeout=timeout)
    session: requests.Session = client._requests_session
    parts = urlsplit(api_base)
    origin = f"{parts.scheme}://{parts.netloc}"
    # The origin adapter serves API calls (and the sandbox's label files); the scheme-wide ones serve label
    # downloads from other hosts (EasyPost stores labels on a CDN).
    session.mount(origin, _adapter(pool_size))
    session.mount("https://", _adapter(pool_size))
    session.mount("http://", _adapter(pool_size))
    client.subscribe_to_response_hook(_remember_retry_after)
    return client


def session_of(client: Any) -> requests.Session:
    session: requests.Session = client._requests_session
    return session
