"""The account a key belongs to, over the SDK.

Blocking, run in a worker thread by the engine like the shipment calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from shipctl.carrier.shipments import _field
from shipctl.engine.failures import CallFailure

# EasyPost's published insurance price, for an account whose user object does not state its own.
DEFAULT_INSURANCE_RATE = Decimal("0.01")
DEFAULT_INSURANCE_MINIMUM = Decimal("1.00")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Account:
    """The User that owns a key, and what it pays to insure a parcel (`insurance_fee_rate`/`_minimum`)."""

    id: str
    insurance_rate: Decimal = DEFAULT_INSURANCE_RATE
    insurance_minimum: Decimal = DEFAULT_INSURANCE_MINIMUM

    def insurance_fee(self, amount: Decimal) -> Decimal:
        """What insuring `amount` costs this account: the rate, to the cent, never below the minimum."""
        fee = (amount * self.insurance_rate).quantize(_CENT, rounding=ROUND_HALF_UP)
        return max(fee, self.insurance_minimum)


def retrieve_account(client: Any) -> Account:
    """The User that owns the client's key (EasyPost: GET /v2/users)."""
    user = client.user.retrieve_me()
    user_id = _field(user, "id")
    if not isinstance(user_id, str) or not user_id:
        # Something answered 200 without naming a user (not EasyPost): a permanent failure, never a guess.
        raise CallFailure(code="BAD_RESPONSE", message="the API's answer to GET /users names no user")
    return Account(
        user_id,
        _decimal(_field(user, "insurance_fee_rate"), DEFAULT_INSURANCE_RATE),
        _decimal(_field(user, "insurance_fee_minimum"), DEFAULT_INSURANCE_MINIMUM),
    )


def _decimal(value: Any, default: Decimal) -> Decimal:
    try:
        found = Decimal(str(value)) if value is not None else default
    except InvalidOperation:
        return default
    return found if found.is_finite() and found >= 0 else default
