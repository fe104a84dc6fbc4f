"""The account a key belongs to, over the SDK.

Blocking, run in a worker thread by the engine like the shipment calls.
"""

from __future__ import annotations

from typing import Any

from shipctl.carrier.shipments import _field
from shipctl.engine.failures import CallFailure


def retrieve_account(client: Any) -> str:
    """The id (`user_...`) of the User that owns the client's key (EasyPost: GET /v2/users)."""
    user_id = _field(client.user.retrieve_me(), "id")
    if not isinstance(user_id, str) or not user_id:
        # Something answered 200 without naming a user (not EasyPost): a permanent failure, never a guess.
        raise CallFailure(code="BAD_RESPONSE", message="the API's answer to GET /users names no user")
    return user_id
