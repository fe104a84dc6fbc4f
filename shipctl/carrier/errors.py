"""Classify every exception an SDK call can raise, once, into a `CallFailure` the engine acts on.

Permanent: 4xx other than 408/429 (validation, payment, auth, not found) -- fail the row with EasyPost's own
code and message. Transient: 429 (not processed), 5xx, timeouts and dropped connections (outcome unknown).
"""

from __future__ import annotations

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
            message=_message(exc, "no answer from the API"),
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
        return CallFailure(code="IO_ERROR", message=scrub(str(exc)), transient=True, outcome_unknown=True)
    raise exc


def _code(exc: EasyPostError, default: str) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code else default


def _message(exc: EasyPostError, default: str) -> str:
    message = getattr(exc, "message", None) or str(exc) or default
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
