"""Build the one `EasyPostClient` a run shares, with a connection pool sized to the in-flight ceiling.

The SDK mounts a `requests` adapter with urllib3's default pool of 10 connections: above 10 concurrent calls it
opens and then discards extra connections, paying a TCP (and TLS) handshake per call. We mount our own adapter
sized to the ceiling. Its retries cover only connection *establishment* (nothing was sent, so it is safe even
for `buy`); read errors are never retried here: the engine decides, knowing whether the call spends money.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import easypost
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT = 60

_last_response = threading.local()


def _remember_answer(*, http_status: int, headers: Any, **_: Any) -> None:
    """SDK response hook, run in the calling worker thread: keep Retry-After for the classifier, and the
    answer's Date (the API's clock, for judging the age of what it answers: `take_server_time`)."""
    value = None
    if http_status in (429, 503) and headers is not None:
        value = headers.get("Retry-After")
    _last_response.retry_after = value
    _last_response.date = headers.get("Date") if headers is not None else None


def take_server_time() -> dt.datetime | None:
    """The Date of the last answer this thread saw (aware), or None when it had none (or not one to read)."""
    value = getattr(_last_response, "date", None)
    _last_response.date = None
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


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


def _adapter(pool_size: int, ca_bundle: str | None) -> HTTPAdapter:
    retry = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_status=False)
    adapter = _Adapter(pool_connections=2, pool_maxsize=pool_size, max_retries=retry, pool_block=False)
    adapter.ca_bundle = ca_bundle
    return adapter


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def _proxies_configured() -> bool:
    """A proxy is set: a non-empty HTTP_PROXY, HTTPS_PROXY or ALL_PROXY (any case), as requests reads them.

    NO_PROXY is not one: it only names hosts that bypass a proxy, so alone (common in corporate shells, often
    `localhost,127.0.0.1`) it changes nothing about where a call goes, and must not switch requests' per-call
    environment scan and ~/.netrc lookup back on. An empty variable is no proxy, to requests as here."""
    return any(value.strip() and name.lower() in _PROXY_VARIABLES for name, value in os.environ.items())


def _ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class _Adapter(HTTPAdapter):
    """A pooled adapter that applies the environment's CA bundle itself (see `make_client`)."""

    ca_bundle: str | None = None

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self.ca_bundle and kwargs.get("verify") is True:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, *args, **kwargs)


def make_client(api_key: str, api_base: str, *, pool_size: int, timeout: int = DEFAULT_TIMEOUT) -> Any:
    client = easypost.EasyPostClient(api_key, api_base=api_base, timeout=timeout)
    session: requests.Session = client._requests_session
    ca_bundle = None
    if not _proxies_configured():
        # requests re-reads the environment (proxies, CA bundle) and ~/.netrc on every call: a measurable share
        # of CPU per shipment. Without proxy variables the only setting it could find is a CA bundle, which our
        # adapter applies itself; skipping the scan also keeps a ~/.netrc entry from replacing the Bearer key
        # with Basic auth. With a proxy set, requests keeps its full per-request behaviour (NO_PROXY included).
        session.trust_env = False
        ca_bundle = _ca_bundle()
    parts = urlsplit(api_base)
    origin = f"{parts.scheme}://{parts.netloc}"
    # The origin adapter serves API calls (and the sandbox's label files); the scheme-wide ones serve label
    # downloads from other hosts (EasyPost stores labels on a CDN).
    session.mount(origin, _adapter(pool_size, ca_bundle))
    session.mount("https://", _adapter(pool_size, ca_bundle))
    session.mount("http://", _adapter(pool_size, ca_bundle))
    client.subscribe_to_response_hook(_remember_answer)
    return client


def session_of(client: Any) -> requests.Session:
    session: requests.Session = client._requests_session
    return session
