"""Value normalisers for manifest cells: countries, US states and ZIPs, weights, dimensions, money.

Each takes what a person typed (a string, or a number from JSON) and returns the canonical value, or raises
`ValueError` with a message meant for that person. They are plain functions so the pydantic models call them
from validators and the tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from shipctl.money import COMMA_HINT, misplaced_comma, without_thousands

# ISO 3166-1: alpha-2 and alpha-3, in pairs (plus XK, Kosovo, which carriers accept).
_ISO_TABLE = (
    "AD AND AE ARE AF AFG AG ATG AI AIA AL ALB AM ARM AO AGO AQ ATA AR ARG AS ASM AT AUT AU AUS AW ABW "
    "AX ALA AZ AZE BA BIH BB BRB BD BGD BE BEL BF BFA BG BGR BH BHR BI BDI BJ BEN BL BLM BM BMU BN BRN "
    "BO BOL BQ BES BR BRA BS BHS BT BTN BV BVT BW BWA BY BLR BZ BLZ CA CAN CC CCK CD COD CF CAF CG COG "
    "CH CHE CI CIV CK COK CL CHL CM CMR CN CHN CO COL CR CRI CU CUB CV CPV CW CUW CX CXR CY CYP CZ CZE "
    "DE DEU DJ DJI DK DNK DM DMA DO DOM DZ DZA EC ECU EE EST EG EGY EH ESH ER ERI ES ESP ET ETH FI FIN "
    "FJ FJI FK FLK FM FSM FO FRO FR FRA GA GAB GB GBR GD GRD GE GEO GF GUF GG GGY GH GHA GI GIB GL GRL "
    "GM GMB GN GIN GP GLP GQ GNQ GR GRC GS SGS GT GTM GU GUM GW GNB GY GUY HK HKG HM HMD HN HND HR HRV "
    "HT HTI HU HUN ID IDN IE IRL IL ISR IM IMN IN IND IO IOT IQ IRQ IR IRN IS ISL IT ITA JE JEY JM JAM "
    "JO JOR JP JPN KE KEN KG KGZ KH KHM KI KIR KM COM KN KNA KP PRK KR KOR KW KWT KY CYM KZ KAZ LA LAO "
    "LB LBN LC LCA LI LIE LK LKA LR LBR LS LSO LT LTU LU LUX LV LVA LY LBY MA MAR MC MCO MD MDA ME MNE "
    "MF MAF MG MDG MH MHL MK MKD ML MLI MM MMR MN MNG MO MAC MP MNP MQ MTQ MR MRT MS MSR MT MLT MU MUS "
    "MV MDV MW MWI MX MEX MY MYS MZ MOZ NA NAM NC NCL NE NER NF NFK NG NGA NI NIC NL NLD NO NOR NP NPL "
    "NR NRU NU NIU NZ NZL OM OMN PA PAN PE PER PF PYF PG PNG PH PHL PK PAK PL POL PM SPM PN PCN PR PRI "
    "PS PSE PT PRT PW PLW PY PRY QA QAT RE REU RO ROU RS SRB RU RUS RW RWA SA SAU SB SLB SC SYC SD SDN "
    "SE SWE SG SGP SH SHN SI SVN SJ SJM SK SVK SL SLE SM SMR SN SEN SO SOM SR SUR SS SSD ST STP SV SLV "
    "SX SXM SY SYR SZ SWZ TC TCA TD TCD TF ATF TG TGO TH THA TJ TJK TK TKL TL TLS TM TKM TN TUN TO TON "
    "TR TUR TT TTO TV TUV TW TWN TZ TZA UA UKR UG UGA UM UMI US USA UY URY UZ UZB VA VAT VC VCT VE VEN "
    "VG VGB VI VIR VN VNM VU VUT WF WLF WS WSM YE YEM YT MYT ZA ZAF ZM ZMB ZW ZWE XK XKX"
)
_ISO_PAIRS = _ISO_TABLE.split()
ALPHA2: frozenset[str] = frozenset(_ISO_PAIRS[0::2])
_COUNTRY_KEYS: dict[str, str] = {a2.lower(): a2 for a2 in ALPHA2}
_COUNTRY_KEYS.update({a3.lower(): a2 for a2, a3 in zip(_ISO_PAIRS[0::2], _ISO_PAIRS[1::2], strict=True)})
_COUNTRY_NAMES = {
    "US": "united states|united states of america|america|us of a|usa|u s|u s a",
    "GB": "uk|united kingdom|great britain|britain|england|scotland|wales|northern ireland",
    "CA": "canada",
    "MX": "mexico|méxico",
    "DE": "germany|deutschland",
    "FR": "france",
    "IT": "italy|italia",
    "ES": "spain|españa|espana",
    "NL": "netherlands|the netherlands|holland|nederland",
    "BE": "belgium",
    "CH": "switzerland",
    "AT": "austria",
    "SE": "sweden",
    "NO": "norway",
    "DK": "denmark",
    "FI": "finland",
    "IE": "ireland",
    "PT": "portugal",
    "PL": "poland",
    "CZ": "czechia|czech republic",
    "GR": "greece",
    "HU": "hungary",
    "RO": "romania",
    "IS": "iceland",
    "LU": "luxembourg",
    "UA": "ukraine",
    "TR": "turkey|türkiye|turkiye",
    "IL": "israel",
    "AE": "uae|united arab emirates",
    "SA": "saudi arabia",
    "ZA": "south africa",
    "EG": "egypt",
    "NG": "nigeria",
    "KE": "kenya",
    "IN": "india",
    "CN": "china",
    "HK": "hong kong",
    "TW": "taiwan",
    "JP": "japan",
    "KR": "south korea|korea|republic of korea",
    "SG": "singapore",
    "MY": "malaysia",
    "TH": "thailand",
    "VN": "vietnam|viet nam",
    "ID": "indonesia",
    "PH": "philippines",
    "AU": "australia",
    "NZ": "new zealand",
    "BR": "brazil|brasil",
    "AR": "argentina",
    "CL": "chile",
    "CO": "colombia",
    "PE": "peru",
    "CR": "costa rica",
    "PR": "puerto rico",
    "GU": "guam",
    "VI": "us virgin islands|u s virgin islands|virgin islands",
    "AS": "american samoa",
    "MP": "northern mariana islands",
}
for _code, _names in _COUNTRY_NAMES.items():
    _COUNTRY_KEYS.update(dict.fromkeys(_names.split("|"), _code))

US_TERRITORIES: frozenset[str] = frozenset({"PR", "GU", "VI", "AS", "MP", "UM"})
"""Country codes that ship as US domestic (no customs between them and the US)."""
US_ZIP_COUNTRIES: frozenset[str] = US_TERRITORIES | {"US"}

_US_STATES = {
    "AL": "alabama", "AK": "alaska", "AZ": "arizona", "AR": "arkansas", "CA": "california",
    "CO": "colorado", "CT": "connecticut", "DE": "delaware", "FL": "florida", "GA": "georgia",
    "HI": "hawaii", "ID": "idaho", "IL": "illinois", "IN": "indiana", "IA": "iowa", "KS": "kansas",
    "KY": "kentucky", "LA": "louisiana", "ME": "maine", "MD": "maryland", "MA": "massachusetts",
    "MI": "michigan", "MN": "minnesota", "MS": "mississippi", "MO": "missouri", "MT": "montana",
    "NE": "nebraska", "NV": "nevada", "NH": "new hampshire", "NJ": "new jersey", "NM": "new mexico",
    "NY": "new york", "NC": "north carolina", "ND": "north dakota", "OH": "ohio", "OK": "oklahoma",
    "OR": "oregon", "PA": "pennsylvania", "RI": "rhode island", "SC": "south carolina",
    "SD": "south dakota", "TN": "tennessee", "TX": "texas", "UT": "utah", "VT": "vermont",
    "VA": "virginia", "WA": "washington", "WV": "west virginia", "WI": "wisconsin", "WY": "wyoming",
    "DC": "district of columbia|washington dc|washington d c",
    "PR": "puerto rico", "GU": "guam", "VI": "virgin islands|us virgin islands|u s virgin islands",
    "AS": "american samoa", "MP": "northern mariana islands",
    "UM": "united states minor outlying islands|us minor outlying islands",
    "FM": "micronesia|federated states of micronesia", "MH": "marshall islands", "PW": "palau",
    "AA": "armed forces americas", "AE": "armed forces europe", "AP": "armed forces pacific",
}
_STATE_KEYS: dict[str, str] = {code.lower(): code for code in _US_STATES}
for _code, _names in _US_STATES.items():
    _STATE_KEYS.update(dict.fromkeys(_names.split("|"), _code))

_NAME_JUNK = re.compile(r"[.,]+")
_SPACES = re.compile(r"\s+")


def _name_key(value: str) -> str:
    return _SPACES.sub(" ", _NAME_JUNK.sub(" ", value.lower())).strip()


def _lookup(table: dict[str, str], value: str) -> str | None:
    key = value.strip().lower()
    return table.get(key) or table.get(_name_key(key))


@functools.lru_cache(maxsize=1024)
def country(value: str) -> str:
    """ISO 3166-1 alpha-2, upper case, from a code (alpha-2 or alpha-3) or a common English name."""
    return _known(_COUNTRY_KEYS, value, "a country (use an ISO code such as US, CA, GB)")


@functools.lru_cache(maxsize=1024)
def us_state(value: str) -> str:
    """The 2-letter USPS code of a US state, territory or military state, from a code or a name."""
    return _known(_STATE_KEYS, value, "a US state (use a 2-letter code such as CA, NY)")


def _known(table: dict[str, str], value: str, what: str) -> str:
    code = _lookup(table, value)
    if code is None:
        raise ValueError(f"{value!r} is not {what}")
    return code


_US_ZIP = re.compile(r"(\d{3,5})(?:[-\s]?(\d{4}))?")


#: The USPS 3-digit prefixes that start with 0, by state: only such a ZIP can have lost its leading zeros in a
#: spreadsheet (NY's are Holtsville's 005 and Fishers Island's 063; MA also has Andover's 055).
_ZERO_PREFIXES: dict[str, tuple[tuple[int, int], ...]] = {
    "NY": ((5, 5), (63, 63)), "PR": ((6, 7), (9, 9)), "VI": ((8, 8),), "MA": ((10, 27), (55, 55)),
    "RI": ((28, 29),), "NH": ((30, 38),), "ME": ((39, 49),), "VT": ((50, 59),), "CT": ((60, 69),),
    "NJ": ((70, 89),), "AE": ((90, 98),),
}
ZERO_ZIP_STATES: frozenset[str] = frozenset(_ZERO_PREFIXES)


def us_zip(value: str, state: str | None = None) -> str:
    """`12345` or `12345-6789`. Leading zeros that a spreadsheet dropped (`2134` → `02134`) are restored, but only
    where ZIP codes start with 0 (`state`, when known): a 4-digit ZIP in Texas lost a digit that no zero replaces,
    and a label bought to the padded one goes to New Jersey."""
    text = value.strip()
    if len(text) == 5 and text.isdigit():
        return text
    match = _US_ZIP.fullmatch(text)
    if match is None:
        raise ValueError(f"{value!r} is not a US ZIP code (use 5 digits or ZIP+4, e.g. 94107 or 94107-1234)")
    head, plus4 = match.groups()
    padded = head.zfill(5)
    if len(head) < 5 and state is not None:
        if state not in ZERO_ZIP_STATES:
            raise ValueError(f"{value!r} has {len(head)} digits, not 5: a spreadsheet drops only leading zeros, and "
                             f"no {state} ZIP code starts with 0; check the ZIP")
        prefix = int(padded[:3])
        if not any(lo <= prefix <= hi for lo, hi in _ZERO_PREFIXES[state]):
            raise ValueError(f"{value!r} has {len(head)} digits, not 5, and with its zeros restored ({padded}) it is "
                             f"no {state} ZIP code; check the ZIP")
    head = padded
    return f"{head}-{plus4}" if plus4 else head


_QUANTITY = re.compile(r"([0-9]*[.,]?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z\"#]*)\.?")
_AMBIGUOUS_COMMA = re.compile(r"\d{1,3},\d{3}")
_WEIGHT_UNITS = {
    "": 1.0, "oz": 1.0, "ozs": 1.0, "ounce": 1.0, "ounces": 1.0,
    "lb": 16.0, "lbs": 16.0, "pound": 16.0, "pounds": 16.0, "#": 16.0,
    "g": 0.035273961949580414, "gr": 0.035273961949580414, "gram": 0.035273961949580414,
    "grams": 0.035273961949580414,
    "kg": 35.273961949580414, "kgs": 35.273961949580414, "kilo": 35.273961949580414,
    "kilos": 35.273961949580414, "kilogram": 35.273961949580414, "kilograms": 35.273961949580414,
}
_LENGTH_UNITS = {
    "": 1.0, "in": 1.0, "inch": 1.0, "inches": 1.0, '"': 1.0,
    "cm": 1 / 2.54, "mm": 1 / 25.4,
}


def _quantity(value: Any, units: dict[str, float], what: str, example: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a {what} (e.g. {example})")
    if isinstance(value, (int, float)):
        number, factor = float(value), 1.0
    elif isinstance(value, str):
        match = _QUANTITY.fullmatch(value.strip().lower())
        factor_or_none = units.get(match.group(2)) if match else None
        if match is None or factor_or_none is None:
            raise ValueError(f"{value!r} is not a {what} (e.g. {example})")
        digits = match.group(1)
        if "," in digits:
            if _AMBIGUOUS_COMMA.fullmatch(digits):
                raise ValueError(f"{value!r} is ambiguous: write {digits.replace(',', '')} or "
                                 f"{digits.replace(',', '.')}")
            digits = digits.replace(",", ".")
        number, factor = float(digits), factor_or_none
    else:
        raise ValueError(f"expected a {what} (e.g. {example})")
    if math.isnan(number):
        raise ValueError(f"{value!r} is not a {what} (e.g. {example})")
    if number <= 0:
        raise ValueError(f"{value!r} must be greater than 0")
    result = round(number * factor, 4)
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is too large to be a {what}")
    if result <= 0:
        raise ValueError(f"{value!r} is too small: it rounds to 0")
    return result


MAX_PARCEL_OZ = 2400.0
"""150 lb: the heaviest parcel UPS and FedEx carry (USPS: 70 lb). A manifest's weight above it is a typo (an extra 0,
lb for oz), refused with the row's other errors before anything is bought, not by the API in the middle of a run."""


def weight_oz(value: Any) -> float:
    """Ounces from `12`, `12oz`, `1.5 lb`, `500g`, `2kg` (a bare number is ounces); > 0 and at most 150 lb."""
    if type(value) is str:
        ounces = _weight_text(value)
    else:
        ounces = _quantity(value, _WEIGHT_UNITS, "weight", "12, 12oz, 1.5 lb, 500g or 2kg")
    if ounces > MAX_PARCEL_OZ:
        shown = fmt_number(ounces) if ounces < 1e7 else f"{ounces:.3g}"
        most = f"{fmt_number(MAX_PARCEL_OZ / 16)} lb = {fmt_number(MAX_PARCEL_OZ)} oz"
        raise ValueError(f"{value!r} is {shown} oz, more than a parcel carrier takes ({most}); a bare number is ounces")
    return ounces


def length_in(value: Any) -> float:
    """Inches from `10`, `10in`, `25cm` (a bare number is inches); must be > 0."""
    if type(value) is str:
        return _length_text(value)
    return _quantity(value, _LENGTH_UNITS, "length", "10, 10in or 25cm")


# Manifests repeat the same few weights and sizes; parsing each distinct text once is a measurable saving.
@functools.lru_cache(maxsize=4096)
def _weight_text(value: str) -> float:
    return _quantity(value, _WEIGHT_UNITS, "weight", "12, 12oz, 1.5 lb, 500g or 2kg")


@functools.lru_cache(maxsize=4096)
def _length_text(value: str) -> float:
    return _quantity(value, _LENGTH_UNITS, "length", "10, 10in or 25cm")


# A dollar sign or USD on either side: a spreadsheet formatted for another locale writes `1,000$`.
_MONEY_JUNK = re.compile(r"^\s*(?:usd|us\$|\$)?\s*|\s*(?:usd|us\$|\$)?\s*$", re.IGNORECASE)


def money(value: Any) -> Decimal:
    """A non-negative amount in USD: `100`, `100.00`, `$1,250.50`, `100 USD`, `1,000$`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount (e.g. 100 or 49.95)")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, (int, float)):
        amount = Decimal(str(value))
    elif isinstance(value, str):
        bare = _MONEY_JUNK.sub("", value)
        text = without_thousands(bare)
        if text is None:
            if misplaced_comma(bare):
                raise ValueError(f"{value!r}: {COMMA_HINT}")
            raise ValueError(f"{value!r} is not an amount (e.g. 100 or 49.95)")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not an amount (e.g. 100 or 49.95)") from None
    else:
        raise ValueError("expected an amount (e.g. 100 or 49.95)")
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount (e.g. 100 or 49.95)")
    if amount < 0:
        raise ValueError(f"{value!r} must be 0 or more")
    return amount


_TARIFF = re.compile(r"\d(?:\.?\d){5,9}")


def hs_tariff(value: str) -> str:
    """An HS tariff number: 6 to 10 digits, dots allowed (`6109.10`); returned as digits only."""
    text = value.strip()
    if not _TARIFF.fullmatch(text):
        raise ValueError(f"{value!r} is not an HS tariff number (6 to 10 digits, dots allowed)")
    return text.replace(".", "")


def fmt_number(value: float | Decimal) -> str:
    """A number as a short, exact string: `24` rather than `24.0`; floats keep their shortest repr."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# EasyPost's `delivery_confirmation` values, and the words people put in a "signature" column for them.
DELIVERY_CONFIRMATIONS: tuple[str, ...] = (
    "NO_SIGNATURE", "SIGNATURE", "ADULT_SIGNATURE", "ADULT_SIGNATURE_RESTRICTED", "SIGNATURE_RESTRICTED",
    "INDIRECT_SIGNATURE", "DO_NOT_SAFE_DROP",
)
_SIGNATURE_WORDS: dict[str, str | None] = {
    **{word: "SIGNATURE" for word in ("yes", "y", "true", "1", "required", "signature", "sig", "standard")},
    **{word: "ADULT_SIGNATURE" for word in ("adult", "adult_signature", "21", "21+")},
    **{word: None for word in ("no", "n", "false", "0", "none")},
}


def signature(value: str) -> str | None:
    """A signature cell as EasyPost's `delivery_confirmation`, or None for "no"/"none" (nothing asked)."""
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    if key in _SIGNATURE_WORDS:
        return _SIGNATURE_WORDS[key]
    upper = key.upper()
    if upper in DELIVERY_CONFIRMATIONS:
        return upper
    raise ValueError(
        f"{value!r} is not a signature option: yes, adult, no, or one of EasyPost's "
        f"{', '.join(DELIVERY_CONFIRMATIONS)}"
    )


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def ship_date(value: str) -> str:
    """A ship date (`label_date`): ISO 8601, a date (`2026-12-04`) or a date and time with its offset. Returned as
    given, trimmed. Whether it is in the past is judged when the shipment is made (`ship_day`), not here: a manifest
    rerun the next day must still read."""
    text = value.strip()
    try:
        ship_day(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a ship date: give a date (2026-12-04) or a date and time with its offset "
            "(2026-12-04T09:00:00-05:00)"
        ) from None
    return text


def ship_day(text: str) -> dt.date:
    """The day of a `ship_date` value, in the offset it was written in."""
    if _DATE.fullmatch(text):
        return dt.date.fromisoformat(text)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.date()


def business_days(value: Any) -> int:
    """A whole number of business days, 1 to 30 (`3`, `3 days`, `3d`)."""
    if isinstance(value, float) and value.is_integer():  # a JSON 3.0
        value = int(value)
    text = str(value).strip().lower()
    for suffix in (" business days", " days", " day", "days", "day", "d"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].strip()
            break
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of business days (1 to 30)") from None
    if not 1 <= days <= 30:
        raise ValueError(f"{days} is not between 1 and 30 business days")
    return days
