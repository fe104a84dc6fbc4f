"""Address verification over the SDK, and what EasyPost's answer means, as plain frozen types.

EasyPost verifies an address when a request carries `verify` or `verify_strict` -- whatever their value: a
`verify: false` verifies too, so neither is ever sent unless verifying. `address.create(verify=True)` answers
201 either way and says how it went in `verifications.delivery` (`success`, `errors[]` with code, field, message
and suggestion, `details` with latitude, longitude and time zone); the address it returns is EasyPost's
corrected spelling. `verify_strict` refuses an address that fails (422 `ADDRESS.VERIFY.FAILURE`, the same
`errors[]`), so a strictly verified shipment is never created.

`address.create` is blocking and runs in a worker thread (the engine's job); the rest is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shipctl.engine.failures import CallFailure

VERIFY_FAILURE = "ADDRESS.VERIFY.FAILURE"
"""EasyPost's error code for an address `verify_strict` refused."""
COMPARED = ("street1", "street2", "city", "state", "zip", "country")
"""The fields a correction can change (EasyPost upper-cases names and companies but never corrects them)."""
Outcome = Literal["verified", "corrected", "failed"]
STRICT_PREFIX = "destination address failed verification: "


@dataclass(frozen=True)
class VerifyError:
    code: str
    field: str | None
    message: str
    suggestion: str | None = None

    def text(self) -> str:
        where = f"{self.field}: " if self.field else ""
        hint = f" (suggestion: {self.suggestion})" if self.suggestion else ""
        return f"{where}{self.message}{hint}"


@dataclass(frozen=True)
class Change:
    field: str
    old: str | None
    new: str | None

    def text(self) -> str:
        return f"{self.field}: {self.old or '(blank)'} → {self.new or '(blank)'}"


@dataclass(frozen=True)
class AddressCheck:
    """What verification said of one address: delivery success, EasyPost's errors, its spelling of the address."""

    success: bool
    errors: tuple[VerifyError, ...]
    address: dict[str, str | None]
    residential: bool | None = None
    latitude: float | None = None
    longitude: float | None = None
    time_zone: str | None = None

    @property
    def codes(self) -> str:
        return ",".join(e.code for e in self.errors)

    @property
    def reason(self) -> str:
        return "; ".join(e.text() for e in self.errors) or "address not verified"


@dataclass(frozen=True)
class Verdict:
    """An address judged against what was sent: verified as given, corrected (`changes`), or failed."""

    outcome: Outcome
    check: AddressCheck
    changes: tuple[Change, ...] = ()

    def summary(self) -> str:
        """One cell: `verified`, `corrected: city: Austn → AUSTIN`, `failed: E.ADDRESS.NOT_FOUND (address: ...)`."""
        if self.outcome == "failed":
            return f"failed: {self.check.codes} ({self.check.reason})"
        if self.outcome == "corrected":
            return "corrected: " + "; ".join(c.text() for c in self.changes)
        return "verified"


def _field(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, "__dict__", {}).get(key)


def _error_from(obj: Any) -> VerifyError:
    if isinstance(obj, str):
        return VerifyError(code="", field=None, message=obj)
    return VerifyError(code=str(_field(obj, "code") or ""), field=_field(obj, "field"),
                       message=str(_field(obj, "message") or ""), suggestion=_field(obj, "suggestion"))


def check_from(address: Any) -> AddressCheck | None:
    """The delivery verification of an SDK Address (or its dict); None when the address was not verified."""
    delivery = _field(_field(address, "verifications"), "delivery")
    if delivery is None:
        return None
    details = _field(delivery, "details") or {}
    lat, lon = _field(details, "latitude"), _field(details, "longitude")
    return AddressCheck(
        success=bool(_field(delivery, "success")),
        errors=tuple(_error_from(e) for e in (_field(delivery, "errors") or ())),
        address={key: _field(address, key) for key in COMPARED},
        residential=_field(address, "residential"),
        latitude=float(lat) if lat is not None else None,
        longitude=float(lon) if lon is not None else None,
        time_zone=_field(details, "time_zone"),
    )


def verify_address(client: Any, address: dict[str, Any]) -> AddressCheck:
    """`address.create(verify=True)`: one call, answered 201 whether the address verifies or not."""
    check = check_from(client.address.create(verify=True, **address))
    if check is None:  # a server that ignored `verify`: never report that as verified
        return AddressCheck(False, (VerifyError("NOT_VERIFIED", None, "the API returned no verification"),), {})
    return check


def strict_failure(exc: Any) -> CallFailure | None:
    """A 422 `ADDRESS.VERIFY.FAILURE` (verify_strict) as a row's failure naming EasyPost's own codes; else None."""
    if getattr(exc, "code", None) != VERIFY_FAILURE:
        return None
    errors = tuple(_error_from(e) for e in (getattr(exc, "errors", None) or ()))
    codes = ",".join(e.code for e in errors if e.code)
    detail = "; ".join(e.text() for e in errors) or "address not verified"
    message = f"{STRICT_PREFIX}{codes} ({detail})" if codes else detail
    return CallFailure(code=VERIFY_FAILURE, message=message, http_status=getattr(exc, "http_status", 422))


# --- judging an answer against what was sent ------------------------------------------------------------------

_ABBREVIATIONS = {
    "STREET": "ST", "AVENUE": "AVE", "ROAD": "RD", "BOULEVARD": "BLVD", "DRIVE": "DR", "LANE": "LN",
    "COURT": "CT", "PLACE": "PL", "TERRACE": "TER", "PARKWAY": "PKWY", "HIGHWAY": "HWY", "CIRCLE": "CIR",
    "SQUARE": "SQ", "SUITE": "STE", "APARTMENT": "APT", "FLOOR": "FL", "BUILDING": "BLDG", "NORTH": "N",
    "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE",
    "SOUTHWEST": "SW",
}
_PUNCTUATION_TO_SPACE = str.maketrans(".,", "  ")


def _words(text: str | None) -> str:
    """Upper case, no full stops or commas, single spaces, USPS abbreviations: EasyPost's spelling, not a fix."""
    if not text:
        return ""
    words = text.upper().translate(_PUNCTUATION_TO_SPACE).split()  # split(): any run of whitespace, trimmed
    return " ".join([_ABBREVIATIONS.get(word, word) for word in words])


def _zip_changed(sent: str | None, got: str | None) -> bool:
    """A ZIP+4 EasyPost adds to a 5-digit ZIP is a refinement; another 5 digits, or another +4, is a correction."""
    a, b = (sent or "").strip().upper(), (got or "").strip().upper()
    if not a or not b:
        return a != b
    return a[:5] != b[:5] or (len(a) > 5 and a != b)


def changes_between(sent: dict[str, Any], got: dict[str, str | None]) -> tuple[Change, ...]:
    """The fields EasyPost corrected, old → new. Case, spacing, standard abbreviations, a unit moved between
    street lines and an added ZIP+4 are EasyPost's spelling of the same address, not corrections."""
    changes: list[Change] = []
    street = " ".join(p for p in (sent.get("street1"), sent.get("street2")) if p)
    street_got = " ".join(p for p in (got.get("street1"), got.get("street2")) if p)
    if _words(street) != _words(street_got):
        changes.append(Change("street1", sent.get("street1"), got.get("street1")))
        if _words(sent.get("street2")) != _words(got.get("street2")):
            changes.append(Change("street2", sent.get("street2"), got.get("street2")))
    for key in ("city", "state", "country"):
        if got.get(key) and _words(sent.get(key)) != _words(got.get(key)):
            changes.append(Change(key, sent.get(key), got.get(key)))
    if got.get("zip") and _zip_changed(sent.get("zip"), got.get("zip")):
        changes.append(Change("zip", sent.get("zip"), got.get("zip")))
    return tuple(changes)


def judge(sent: dict[str, Any], check: AddressCheck) -> Verdict:
    if not check.success:
        return Verdict("failed", check)
    changes = changes_between(sent, check.address)
    return Verdict("corrected" if changes else "verified", check, changes)


def failure_summary(failure: CallFailure) -> str:
    """The `address_verification` cell of a row `verify_strict` refused: `failed: E.CODE (field: message)`."""
    return "failed: " + failure.message.removeprefix(STRICT_PREFIX)


def same_street(verified: str | None, street1: str | None, street2: str | None) -> bool:
    """Whether EasyPost's spelling of a street (the unit moved onto street1) is the street a row gives."""
    given = " ".join(p for p in (street1, street2) if p)
    return bool(verified) and _words(verified) in (_words(street1), _words(given))
