"""Classify every exception an SDK call can raise, once, into a `CallFailure` the engine acts on.

Permanent: 4xx other than 408/429 (validation, payment, auth, not found) -- fail the row with EasyPost's own
code and message. Transient: 429 (not processed), 5xx, timeouts and dropped connections (outcome unknown).

Messages say what failed and where, in the user's terms: the SDK's own wording for a network failure ("Unexpected
error communicating with EasyPost. If this problem persists please let us know at support@easypost.com. Original
error: HTTPConnectionPool(...)") sends people to EasyPost's support for a typo in EASYPOST_API_BASE, so it is
replaced by what the chained `requests` exception says: the server and the reason (`cannot reach the API at
http://127.0.0.1:1/v2 (connection refused)`).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from urllib.parse import urlsplit

import requests
from easypost.errors import (
    ApiError,
    EasyPostError,
    GatewayTimeoutError,
    HttpError,
    InternalServerError,
    JsonError,
    RateLimitError,
    ServiceUnavailableError,
    TimeoutError,
)

from shipctl.carrier.client import take_retry_after
from shipctl.engine.failures import CallFailure
from shipctl.secrets import scrub

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def classify(exc: BaseException) -> CallFailure:
    retry_after = take_retry_after()
    if isinstance(exc, CallFailure):
        return exc
    if isinstance(exc, RateLimitError):
        return CallFailure(
            code=_code(exc, "RATE_LIMITED"),
            message=_message(exc, "rate limited"),
            transient=True,
            rate_limited=True,
            retry_after=retry_after,
            http_status=429,
        )
    if isinstance(exc, TimeoutError | HttpError):
        return CallFailure(
            code="TIMEOUT" if isinstance(exc, TimeoutError) else "CONNECTION",
            message=network_message(exc.__context__) or _message(exc, "no answer from the API"),
            transient=True,
            outcome_unknown=True,
        )
    if isinstance(exc, InternalServerError | ServiceUnavailableError | GatewayTimeoutError) or (
        isinstance(exc, ApiError) and (exc.http_status or 0) in _TRANSIENT_STATUS
    ):
        status = exc.http_status if isinstance(exc, ApiError) else None
        return CallFailure(
            code=_code(exc, f"HTTP_{status}" if status else "SERVER_ERROR"),
            message=_message(exc, "server error"),
            transient=True,
            outcome_unknown=True,
            retry_after=retry_after,
            http_status=status,
        )
    if isinstance(exc, JsonError) or (isinstance(exc, ApiError) and not exc.http_status):
        # The body was not EasyPost's (a proxy's HTML error page, a gateway's own JSON 404, a truncated reply),
        # whatever its status: the request may have been acted on, and a "404" from something in front of the API
        # says nothing about the shipment. An unknown outcome, never a definite refusal nor "gone".
        return CallFailure(
            code="BAD_RESPONSE" if isinstance(exc, JsonError) else _code(exc, "BAD_RESPONSE"),
            message=_message(exc, "the API's answer could not be read"),
            transient=True,
            outcome_unknown=True,
        )
    if isinstance(exc, ApiError):
        return CallFailure(
            code=_code(exc, f"HTTP_{exc.http_status}" if exc.http_status else "API_ERROR"),
            message=_message(exc, "request refused"),
            http_status=exc.http_status,
        )
    if isinstance(exc, EasyPostError):
        return CallFailure(code="EASYPOST_ERROR", message=_message(exc, "SDK error"))
    if isinstance(exc, requests.HTTPError):
        # A label download the file server answered: 5xx and 429 may pass, any other status will not (a 404 stays
        # a 404 however often it is asked: six tries were 3 s per label for nothing).
        status = exc.response.status_code if exc.response is not None else None
        passing = status is None or status == 429 or status >= 500
        return CallFailure(code=f"HTTP_{status}" if status else "HTTP_ERROR", message=scrub(str(exc)),
                           transient=passing, http_status=status)
    if isinstance(exc, OSError):
        message = network_message(exc, api=False)
        return CallFailure(code="IO_ERROR", message=message or scrub(str(exc)), transient=True, outcome_unknown=True)
    raise exc


# --- network failures, said plainly ----------------------------------------------------------------------------

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
}
EASYPOST_HOST = "api.easypost.com"
_READ_TIMEOUT = re.compile(r"read timeout=([\d.]+)")


def network_message(exc: BaseException | None, *, api: bool = True) -> str | None:
    """`cannot reach the API at URL (reason)` for a request that never got through, `the API at URL ...` for one
    that did and then broke or went unanswered; None when `exc` is not a `requests` failure (nothing to say).
    `api=False` (a label file, which may live on a CDN) names the server alone."""
    if not isinstance(exc, requests.RequestException):
        return None
    url = exc.request.url if exc.request is not None and exc.request.url else ""
    where = f"the API at {_api_base(url)}" if api else _origin(url)
    chain = _chain(exc)
    if isinstance(exc, requests.ConnectTimeout) or _reached_nobody(chain):
        return scrub(f"cannot reach {where} ({_reason(chain)})" + (_what_to_check(url) if api else ""))
    if isinstance(exc, requests.Timeout):
        seconds = _READ_TIMEOUT.search(str(exc))
        return scrub(f"{where} did not answer" + (f" within {seconds.group(1)} s" if seconds else ""))
    return scrub(f"the connection to {where} broke before an answer came ({_reason(chain)})")


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: urllib3 hides the socket error under `reason`, the causes and the arguments."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in nested if isinstance(e, BaseException))
    return seen


def _is_tls(e: BaseException) -> bool:
    return isinstance(e, ssl.SSLError) or type(e).__name__ == "SSLError"


def _reached_nobody(chain: list[BaseException]) -> bool:
    """The connection was never made (refused, no such host, no route, a TLS handshake refused): nothing sent."""
    return any(
        isinstance(e, socket.gaierror) or _is_tls(e)
        or type(e).__name__ in ("NewConnectionError", "NameResolutionError")
        or (isinstance(e, OSError) and e.errno in _ERRNO_REASONS and e.errno != errno.ECONNRESET)
        for e in chain
    )


def _reason(chain: list[BaseException]) -> str:
    tls = [e for e in chain if isinstance(e, ssl.SSLError)]
    if tls:  # the innermost one is the handshake's own words ("certificate verify failed: ...")
        return "TLS error: " + str(getattr(tls[-1], "reason", None) or tls[-1]).lower().replace("_", " ")
    for e in chain:
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "host not found"
        if isinstance(e, OSError) and e.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[e.errno]
        if type(e).__name__ == "RemoteDisconnected":
            return "the server closed it"
    innermost = chain[-1]
    return str(innermost)[:200] or type(innermost).__name__


def _what_to_check(url: str) -> str:
    # EasyPost's own address is not the user's setting: only a server they chose points at EASYPOST_API_BASE.
    if urlsplit(url).hostname == EASYPOST_HOST:
        return ": check the network (and any proxy settings)"
    return ": check EASYPOST_API_BASE and the network"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # never a user:password from the URL
    return f"{parts.scheme}://{host}" if host else "the server"


def _api_base(url: str) -> str:
    """The API the request went to: scheme, host and port, and the version segment (`/v2`) when the path has one."""
    version = urlsplit(url).path.split("/")[1:2]
    suffix = f"/{version[0]}" if version and re.fullmatch(r"v\d+", version[0]) else ""
    return _origin(url) + suffix


def _code(exc: EasyPostError, default: str) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code else default


# The SDK's invitations to write to EasyPost's support: noise in front of a message that already says the problem.
_BOILERPLATE = re.compile(
    r"\s*(If this problem persists,? please let us know at \S+@[\w.-]+\.(?=\s|$)|"
    r"Please report to \S+@[\w.-]+\.(?=\s|$)|or contact us at \S+@[\w.-]+\.(?=\s|$)|Original error:)\s*",
    re.IGNORECASE,
)


def strip_boilerplate(message: str) -> str:
    return re.sub(r"\s+", " ", _BOILERPLATE.sub(" ", message)).strip()


def _message(exc: EasyPostError, default: str) -> str:
    message = strip_boilerplate(str(getattr(exc, "message", None) or str(exc) or "")) or default
    errors = getattr(exc, "errors", None)
    if errors:
        details = [_detail(e) for e in errors if e]
        details = [d for d in details if d and d not in message]
        if details:
            message = f"{message} ({'; '.join(details)})"
    return scrub(str(message))


def _detail(error: object) -> str:
    if isinstance(error, dict):
        field = error.get("field")
        text = error.get("message") or ""
        return f"{field}: {text}" if field else str(text)
    return str(error)
