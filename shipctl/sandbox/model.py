"""EasyPost-shaped objects: ids, timestamps, addresses and their verification, parcels, customs, rates.

Everything here is pure (no I/O, no locks): the API layer decides what to store.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import hashlib
import itertools
import math
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """An EasyPost error response: HTTP status plus the `{"error": {...}}` body."""

    def __init__(self, status: int, code: str, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []

    def body(self) -> JSON:
        return {"error": {"code": self.code, "message": self.message, "errors": self.errors}}


def required(field: str) -> ApiError:
    return ApiError(422, "PARAMETER.REQUIRED", "Missing required parameter.",
                    [{"field": field, "message": "cannot be blank"}])


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "PARAMETER.INVALID", "Invalid parameter.", [{"field": field, "message": message}])


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource could not be found.")


def unwrapped(body: JSON, key: str) -> JSON:
    """The parameters under `key`, as the SDK wraps them (`{"batch": {...}}`), or else the body itself: EasyPost
    takes both, and the SDK sends `{"batch": {}}` for none."""
    inner = body.get(key)
    return inner if isinstance(inner, dict) else body


# Ids are 32 hex digits like EasyPost's: 16 random per process, then a 16-digit counter (unique, cheap).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)


def new_id(prefix: str) -> str:
    return f"{prefix}_{_ID_PREFIX}{next(_ID_COUNTER):016x}"


# The sandbox's "now" is the real time plus the serving sandbox's clock offset, so that a test can buy a label
# "8 days ago". A context variable, set around each request (`SandboxApi.handle`), keeps two sandboxes in one
# process on their own clocks; everything in this package reads the time through `now()`.
_CLOCK_OFFSET: contextvars.ContextVar[float] = contextvars.ContextVar("sandbox_clock_offset", default=0.0)


def now() -> float:
    """Seconds since the epoch on the sandbox's clock."""
    return time.time() + _CLOCK_OFFSET.get()


@contextlib.contextmanager
def clock(offset_seconds: float) -> Iterator[None]:
    """Run the block on a clock `offset_seconds` away from the real one."""
    token = _CLOCK_OFFSET.set(offset_seconds)
    try:
        yield
    finally:
        _CLOCK_OFFSET.reset(token)


def now_z() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now()))


def now_offset() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now()))


def _digest(*parts: object) -> int:
    h = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


# --------------------------------------------------------------------------- addresses

# First three ZIP digits -> state (USPS prefix allocation, ranges inclusive).
_ZIP3_RANGES: list[tuple[int, int, str]] = [
    (5, 5, "NY"), (6, 7, "PR"), (8, 8, "VI"), (9, 9, "PR"), (10, 27, "MA"), (28, 29, "RI"), (30, 38, "NH"),
    (39, 49, "ME"), (50, 59, "VT"), (60, 69, "CT"), (70, 89, "NJ"), (90, 98, "AE"), (100, 149, "NY"),
    (150, 196, "PA"), (197, 199, "DE"), (200, 200, "DC"), (201, 201, "VA"), (202, 205, "DC"),
    (206, 219, "MD"), (220, 246, "VA"), (247, 268, "WV"), (270, 289, "NC"), (290, 299, "SC"),
    (300, 319, "GA"), (320, 339, "FL"), (340, 340, "AA"), (341, 349, "FL"), (350, 369, "AL"),
    (370, 385, "TN"), (386, 397, "MS"), (398, 399, "GA"), (400, 427, "KY"), (430, 459, "OH"),
    (460, 479, "IN"), (480, 499, "MI"), (500, 528, "IA"), (530, 549, "WI"), (550, 567, "MN"),
    (569, 569, "DC"), (570, 577, "SD"), (580, 588, "ND"), (590, 599, "MT"), (600, 629, "IL"),
    (630, 658, "MO"), (660, 679, "KS"), (680, 693, "NE"), (700, 714, "LA"), (716, 729, "AR"),
    (730, 749, "OK"), (750, 799, "TX"), (800, 816, "CO"), (820, 831, "WY"), (832, 838, "ID"),
    (840, 847, "UT"), (850, 865, "AZ"), (870, 884, "NM"), (885, 885, "TX"), (889, 898, "NV"),
    (900, 961, "CA"), (962, 966, "AP"), (967, 968, "HI"), (969, 969, "GU"), (970, 979, "OR"),
    (980, 994, "WA"), (995, 999, "AK"),
]
US_STATES = {s for _, _, s in _ZIP3_RANGES}


def state_for_zip(zip_code: str) -> str | None:
    digits = zip_code.strip()[:5]
    if len(digits) != 5 or not digits.isdigit():
        return None
    z3 = int(digits[:3])
    for lo, hi, state in _ZIP3_RANGES:
        if lo <= z3 <= hi:
            return state
    return None


ADDRESS_FIELDS = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def build_address(params: JSON, mode: str) -> JSON:
    ts = now_offset()
    addr: JSON = {"id": new_id("adr"), "object": "Address", "created_at": ts, "updated_at": ts}
    for field in ADDRESS_FIELDS:
        addr[field] = _str_or_none(params.get(field))
    if not addr["country"]:
        addr["country"] = "US"
    addr["country"] = str(addr["country"]).upper()
    addr.update({
        "mode": mode, "carrier_facility": None,
        "residential": params.get("residential"),
        "federal_tax_id": params.get("federal_tax_id"), "state_tax_id": params.get("state_tax_id"),
        "verifications": {},
    })
    return addr


def _verification_error(code: str, field: str, message: str) -> JSON:
    return {"code": code, "field": field, "message": message, "suggestion": None}


# A few ZIPs whose city the sandbox knows, as USPS data lets EasyPost know every one: with such a ZIP a misspelt
# city is corrected, and so is a state that disagrees with a ZIP and city that agree. Any other ZIP is only
# checked against its state (a ZIP outside its state fails).
_ZIP_CITIES: dict[str, tuple[str, str]] = {
    "10118": ("NEW YORK", "NY"), "60606": ("CHICAGO", "IL"), "78701": ("AUSTIN", "TX"),
    "98109": ("SEATTLE", "WA"), "94111": ("SAN FRANCISCO", "CA"), "94104": ("SAN FRANCISCO", "CA"),
    "94107": ("SAN FRANCISCO", "CA"), "30303": ("ATLANTA", "GA"), "19102": ("PHILADELPHIA", "PA"),
    "20037": ("WASHINGTON", "DC"),
}
# USPS street suffixes, unit designators and directions: a verified street is spelt with these.
_STREET_WORDS = {
    "STREET": "ST", "AVENUE": "AVE", "ROAD": "RD", "BOULEVARD": "BLVD", "DRIVE": "DR", "LANE": "LN",
    "COURT": "CT", "PLACE": "PL", "TERRACE": "TER", "PARKWAY": "PKWY", "HIGHWAY": "HWY", "CIRCLE": "CIR",
    "SQUARE": "SQ", "SUITE": "STE", "APARTMENT": "APT", "FLOOR": "FL", "BUILDING": "BLDG", "NORTH": "N",
    "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE",
    "SOUTHWEST": "SW",
}


def _usps_street(text: str) -> str:
    words = text.upper().replace(",", " ").replace(".", " ").split()
    return " ".join(_STREET_WORDS.get(word, word) for word in words)


def _close(a: str, b: str) -> bool:
    a, b = " ".join(a.upper().split()), " ".join(b.upper().split())
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def zip_corrections(addr: JSON) -> JSON:
    """City and state as the sandbox's known ZIPs correct them: the city from the ZIP when the state agrees, the
    state when ZIP and city agree; {} when nothing is known or nothing can be fixed (a ZIP outside its state)."""
    if addr.get("country", "US") != "US":
        return {}
    known = _ZIP_CITIES.get((addr.get("zip") or "").strip()[:5])
    if known is None:
        return {}
    city, state = known
    given_state = (addr.get("state") or "").strip().upper()
    if _close(addr.get("city") or "", city):
        return {"city": city, "state": state}
    return {"city": city} if given_state == state else {}


def address_problems(addr: JSON) -> list[JSON]:
    """Deterministic verification: the errors EasyPost would report (empty = deliverable)."""
    errors: list[JSON] = []
    street1 = (addr.get("street1") or "").strip()
    if not street1:
        errors.append(_verification_error("E.ADDRESS.NOT_FOUND", "address", "Address not found"))
        return errors
    if addr.get("country", "US") != "US":
        return errors if (addr.get("city") or "").strip() else [
            _verification_error("E.ADDRESS.NOT_FOUND", "address", "Address not found")]
    addr = {**addr, **zip_corrections(addr)}
    zip_code = (addr.get("zip") or "").strip()
    state = (addr.get("state") or "").strip().upper()
    zip_state = state_for_zip(zip_code)
    if zip_state is None or state not in US_STATES or not (addr.get("city") or "").strip():
        errors.append(_verification_error("E.ADDRESS.NOT_FOUND", "address", "Address not found"))
    elif zip_state != state:
        errors.append(_verification_error("E.ADDRESS.NOT_FOUND", "address", "Address not found"))
        errors.append(_verification_error(
            "E.ZIP.INVALID", "zip", f"ZIP code {zip_code[:5]} does not belong to state {state}"))
    if not street1[0].isdigit() or street1.split()[0].strip("0") == "":
        errors.append(_verification_error("E.HOUSE_NUMBER.MISSING", "street1", "House number is missing"))
    return errors


def _residential(addr: JSON, seed: int) -> bool:
    """As given; else a company with no person's name is a business, and the rest is fixed by the address."""
    if addr.get("residential") is not None:
        return bool(addr["residential"])
    if addr.get("company") and not addr.get("name"):
        return False
    return seed % 3 != 0


def verify_address(addr: JSON) -> JSON:
    """Return a verified copy: corrected (city/state from a known ZIP), spelt as USPS does (upper case, street
    abbreviations, the unit on street1, ZIP+4) on success; `verifications` filled either way."""
    errors = address_problems(addr)
    out = dict(addr)
    out["updated_at"] = now_offset()
    if errors:
        zip4_errors = [errors[0]]
        out["verifications"] = {
            "zip4": {"success": False, "errors": zip4_errors, "details": None},
            "delivery": {"success": False, "errors": errors, "details": {}},
        }
        return out
    seed = _digest(addr.get("street1"), addr.get("zip"), addr.get("country"))
    out.update(zip_corrections(addr))
    for field in ("name", "company", "city"):
        if out.get(field):
            out[field] = str(out[field]).upper()
    street = " ".join(str(p) for p in (addr.get("street1"), addr.get("street2")) if p)
    out["street1"] = _usps_street(street)
    out["street2"] = ""
    if out.get("country") == "US":
        out["state"] = str(out.get("state") or "").upper()
        out["zip"] = f"{str(addr.get('zip'))[:5]}-{seed % 10000:04d}"
    out["residential"] = _residential(addr, seed)
    lat = 25.0 + (seed % 2400) / 100.0
    lon = -70.0 - ((seed >> 12) % 5000) / 100.0
    out["verifications"] = {
        "zip4": {"success": True, "errors": [], "details": None},
        "delivery": {"success": True, "errors": [],
                     "details": {"latitude": round(lat, 5), "longitude": round(lon, 5),
                                 "time_zone": "America/Chicago"}},
    }
    return out


def verify_failure(addr: JSON) -> ApiError:
    errors = addr["verifications"]["delivery"]["errors"]
    return ApiError(422, "ADDRESS.VERIFY.FAILURE", "Unable to verify address.", errors)


# --------------------------------------------------------------------------- parcels and customs

def _positive_number(value: Any, field: str, *, allow_none: bool) -> float | None:
    if value is None or value == "":
        if allow_none:
            return None
        raise required(field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(field, "must be a number") from None
    if not math.isfinite(number) or number <= 0:
        raise invalid(field, "must be greater than 0")
    return number


def build_parcel(params: JSON, mode: str, field: str = "parcel") -> JSON:
    if not isinstance(params, dict) or not params:
        raise required(field)
    weight = _positive_number(params.get("weight"), f"{field}.weight", allow_none=False)
    if weight is not None and weight > 150 * 16:  # the heaviest parcel a parcel carrier (UPS, FedEx) takes
        raise invalid(f"{field}.weight", "must be at most 2400 ounces")
    dims = {k: _positive_number(params.get(k), f"{field}.{k}", allow_none=True)
            for k in ("length", "width", "height")}
    ts = now_z()
    return {"id": new_id("prcl"), "object": "Parcel", "created_at": ts, "updated_at": ts,
            **dims, "predefined_package": params.get("predefined_package"), "weight": weight, "mode": mode}


def build_customs_item(params: JSON, mode: str) -> JSON:
    ts = now_z()
    value = params.get("value")
    weight = params.get("weight")
    return {
        "id": new_id("cstitem"), "object": "CustomsItem", "created_at": ts, "updated_at": ts,
        "description": params.get("description"), "hs_tariff_number": _str_or_none(params.get("hs_tariff_number")),
        "origin_country": params.get("origin_country"), "quantity": params.get("quantity"),
        "value": None if value is None else f"{float(value):.2f}",
        "weight": None if weight is None else float(weight),
        "code": params.get("code"), "mode": mode, "manufacturer": params.get("manufacturer"),
        "currency": params.get("currency"), "eccn": params.get("eccn"),
        "printed_commodity_identifier": params.get("printed_commodity_identifier"),
    }


def build_customs_info(params: JSON, mode: str, items: list[JSON]) -> JSON:
    ts = now_z()
    return {
        "id": new_id("cstinfo"), "object": "CustomsInfo", "created_at": ts, "updated_at": ts,
        "contents_explanation": params.get("contents_explanation"),
        "contents_type": params.get("contents_type", "merchandise"),
        "customs_certify": bool(params.get("customs_certify", False)),
        "customs_signer": params.get("customs_signer"), "eel_pfc": params.get("eel_pfc"),
        "non_delivery_option": params.get("non_delivery_option", "return"),
        "restriction_comments": params.get("restriction_comments"),
        "restriction_type": params.get("restriction_type", "none"),
        "mode": mode, "declaration": params.get("declaration"), "customs_items": items,
    }


# --------------------------------------------------------------------------- rates

# (carrier, service, tier price multiplier, base $, $ per lb, days(zone) or fixed days)
# Tiers are priced far apart and days never rise with price, so within one shipment the rates sorted by
# price have non-increasing delivery_days.
_DOMESTIC: list[tuple[str, str, float, float, float, int]] = [
    ("USPS", "GroundAdvantage", 1.00, 4.10, 0.55, 1),
    ("FedEx", "FEDEX_GROUND", 1.06, 4.10, 0.55, 0),
    ("UPS", "Ground", 1.09, 4.10, 0.55, 0),
    ("USPS", "Priority", 1.00, 7.40, 0.95, -1),
    ("FedEx", "FEDEX_2_DAY", 1.10, 7.40, 0.95, 2),
    ("UPS", "2ndDayAir", 1.15, 7.40, 0.95, 2),
    ("USPS", "Express", 1.00, 26.50, 2.40, 1),
    ("FedEx", "STANDARD_OVERNIGHT", 1.12, 26.50, 2.40, 1),
    ("UPS", "NextDayAir", 1.20, 26.50, 2.40, 1),
]
# (carrier, service, base $, $ per lb, days) in price order, days strictly falling.
_INTERNATIONAL: list[tuple[str, str, float, float, int]] = [
    ("USPS", "FirstClassPackageInternationalService", 14.50, 2.10, 12),
    ("USPS", "PriorityMailInternational", 31.00, 3.60, 8),
    ("UPS", "Expedited", 42.00, 4.40, 5),
    ("FedEx", "INTERNATIONAL_ECONOMY", 51.00, 4.90, 4),
    ("USPS", "ExpressMailInternational", 58.00, 5.30, 3),
    ("FedEx", "INTERNATIONAL_PRIORITY", 66.00, 6.10, 2),
    ("UPS", "Express", 74.00, 6.80, 1),
]
_INTL_REGION = {"CA": 1.0, "MX": 1.1}
_EUROPE = frozenset((
    "AT", "BE", "BG", "CH", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR", "HU",
    "IE", "IS", "IT", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
))

CARRIER_ACCOUNTS = {
    carrier: "ca_" + hashlib.blake2b(carrier.encode(), digest_size=16).hexdigest()
    for carrier in ("USPS", "UPS", "FedEx")
}


def usps_zone(from_zip: str | None, to_zip: str | None) -> int:
    """A deterministic zone 1..8 from the two ZIPs' first three digits."""
    a, b = (from_zip or "")[:3], (to_zip or "")[:3]
    if not (a.isdigit() and b.isdigit() and len(a) == 3 and len(b) == 3):
        return 5
    if a == b:
        return 1
    za, zb = int(a), int(b)
    if za // 100 == zb // 100:
        return 2 if abs(za - zb) < 30 else 3
    return min(8, 3 + abs(za // 100 - zb // 100) // 2 + (1 if abs(za - zb) > 450 else 0))


def _money(x: float) -> str:
    return f"{x:.2f}"


def rate_table(from_addr: JSON, to_addr: JSON, parcel: JSON) -> list[tuple[str, str, float, float, int]]:
    """(carrier, service, rate, retail_rate, delivery_days) for a shipment, cheapest first."""
    weight_oz = float(parcel.get("weight") or 1.0)
    lbs = max(1, math.ceil(weight_oz / 16.0))
    return _rate_table(str(from_addr.get("country") or "US").upper(), str(from_addr.get("zip") or "")[:3],
                       str(to_addr.get("country") or "US").upper(), str(to_addr.get("zip") or "")[:3], lbs)


@functools.lru_cache(maxsize=4096)
def _rate_table(from_country: str, from_zip3: str, to_country: str, to_zip3: str,
                lbs: int) -> list[tuple[str, str, float, float, int]]:
    rows: list[tuple[str, str, float, float, int]] = []
    if to_country == from_country == "US":
        zone = usps_zone(from_zip3, to_zip3)
        ground_days = 2 + (zone - 1) // 2  # 2..5
        for carrier, service, mult, base, per_lb, days_rule in _DOMESTIC:
            price = mult * (base * (1 + 0.08 * zone) + per_lb * lbs * (1 + 0.12 * zone))
            if service in ("GroundAdvantage", "FEDEX_GROUND", "Ground"):
                days = ground_days + days_rule
            elif days_rule == -1:
                days = 2 if zone <= 4 else 3
            else:
                days = days_rule
            rows.append((carrier, service, round(price, 2), round(price * 1.28, 2), days))
    else:
        abroad = to_country if to_country != "US" else from_country  # a return comes back from abroad
        region = _INTL_REGION.get(abroad, 1.35 if abroad in _EUROPE else 1.6)
        for carrier, service, base, per_lb, days in _INTERNATIONAL:
            price = region * (base + per_lb * lbs)
            rows.append((carrier, service, round(price, 2), round(price * 1.22, 2), days))
    rows.sort(key=lambda r: r[2])
    return rows


def build_rates(shipment_id: str | None, from_addr: JSON, to_addr: JSON, parcel: JSON, mode: str) -> list[JSON]:
    ts = now_z()
    rates: list[JSON] = []
    for carrier, service, price, retail, days in rate_table(from_addr, to_addr, parcel):
        rate: JSON = {}
        if shipment_id is not None:
            rate.update({"id": new_id("rate"), "object": "Rate", "created_at": ts, "updated_at": ts})
        else:
            rate["object"] = "Rate"
        rate.update({
            "mode": mode, "service": service, "carrier": carrier, "rate": _money(price), "currency": "USD",
            "retail_rate": _money(retail), "retail_currency": "USD", "list_rate": _money(price * 1.1),
            "list_currency": "USD", "billing_type": "easypost", "delivery_days": days, "delivery_date": None,
            "delivery_date_guaranteed": False, "est_delivery_days": days,
        })
        if shipment_id is not None:
            rate["shipment_id"] = shipment_id
        rate["carrier_account_id"] = CARRIER_ACCOUNTS[carrier]
        rates.append(rate)
    return rates


def rate_for(rates: list[JSON], carrier: str | None, service: str) -> JSON | None:
    """The rate of `service` (of `carrier`, when given), names compared without regard to case."""
    return next((r for r in rates if r["service"].lower() == service.lower()
                 and (not carrier or r["carrier"].lower() == carrier.lower())), None)


# --------------------------------------------------------------------------- tracking codes

def tracking_code_for(carrier: str, serial: int, salt: int) -> str:
    """A carrier-shaped, unique tracking code: `serial` is unique per sandbox state, `salt` per state file."""
    if carrier == "USPS":
        return f"9400{salt % 1000000:06d}{serial:012d}"  # 22 digits
    if carrier == "UPS":
        return f"1Z{salt % 1000000:06X}03{serial:08d}"  # 18 characters
    return f"7{salt % 1000:03d}{serial:08d}"  # FedEx: 12 digits


# --------------------------------------------------------------------------- accounts

#: The account of a sandbox that requires one access key, and of objects stored before accounts existed: what an
#: old state file holds stays reachable by the embedded sandbox, whose key is new on every run.
DEFAULT_ACCOUNT = "user_sandbox"


def account_for_key(key: str) -> str:
    """The account a key belongs to. EasyPost gives an account one test and one production key, so the mode
    prefix is left out: `EZTKabc` and `EZAKabc` are one account (in its two modes)."""
    body = key[4:] if key.startswith(("EZTK", "EZAK")) else key
    digest = hashlib.blake2b(body.encode("utf-8", "surrogateescape"), digest_size=16,
                             person=b"shipctl-account").hexdigest()
    return f"user_{digest}"


def build_user(account: str) -> JSON:
    """The authenticated User, in the fields EasyPost's `GET /v2/users` answers with (no child accounts).
    `insurance_fee_rate` and `insurance_fee_minimum` are what insurance is charged at (`options.insurance_fee`)."""
    suffix = account.removeprefix("user_")[:8]
    return {
        "id": account, "object": "User", "parent_id": None, "name": f"Sandbox Account {suffix}",
        "phone_number": "8005550100", "verified": True, "created_at": "2024-01-01T00:00:00Z",
        "default_carbon_offset": False, "has_elevate_access": False, "balance": "0.00000",
        "price_per_shipment": "0.00000", "recharge_amount": "100.00", "secondary_recharge_amount": "100.00",
        "recharge_threshold": "0.00", "has_billing_method": False, "cc_fee_rate": "0.03",
        "default_insurance_amount": None, "insurance_fee_rate": "0.01", "insurance_fee_minimum": "1.00",
        "email": f"{suffix}@sandbox.shipctl.invalid", "children": [],
    }
