"""Each normaliser on its own: what it accepts, what it turns it into, and what it refuses."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from shipctl.manifest import normalize


@pytest.mark.parametrize(
    ("given", "expected"),
    [("us", "US"), (" US ", "US"), ("USA", "US"), ("United States", "US"), ("u.s.a.", "US"),
     ("gb", "GB"), ("UK", "GB"), ("United Kingdom", "GB"), ("DEU", "DE"), ("Deutschland", "DE"),
     ("ca", "CA"), ("pr", "PR"), ("Puerto Rico", "PR")],
)
def test_country_becomes_iso_alpha2_upper(given: str, expected: str) -> None:
    assert normalize.country(given) == expected


@pytest.mark.parametrize("bad", ["", "XX", "Atlantis", "U", "USAA"])
def test_country_refuses_what_is_not_a_country(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a country"):
        normalize.country(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("ca", "CA"), ("California", "CA"), ("new york", "NY"), ("Massachusetts", "MA"),
     ("District of Columbia", "DC"), ("Washington, D.C.", "DC"), ("pr", "PR"), ("AE", "AE")],
)
def test_us_state_becomes_two_letters(given: str, expected: str) -> None:
    assert normalize.us_state(given) == expected


def test_us_state_refuses_unknown() -> None:
    with pytest.raises(ValueError, match="is not a US state"):
        normalize.us_state("Ontario")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("94107", "94107"), ("94107-1234", "94107-1234"), ("941071234", "94107-1234"), ("94107 1234", "94107-1234"),
     ("2134", "02134"), ("9410", "09410"), ("501", "00501"), ("2134-1234", "02134-1234")],
)
def test_us_zip_is_five_digits_or_zip_plus_four(given: str, expected: str) -> None:
    assert normalize.us_zip(given) == expected


@pytest.mark.parametrize(("given", "state", "expected"), [
    ("2134", "MA", "02134"), ("7102", "NJ", "07102"), ("501", "NY", "00501"), ("6390", "NY", "06390"),
    ("901", "PR", "00901"), ("9012", "AE", "09012"), ("2134-1234", "MA", "02134-1234"), ("78701", "TX", "78701"),
])
def test_a_dropped_leading_zero_is_restored_where_zip_codes_start_with_0(given: str, state: str,
                                                                          expected: str) -> None:
    assert normalize.us_zip(given, state) == expected


@pytest.mark.parametrize(("given", "state"), [("7870", "TX"), ("9021", "CA"), ("501", "IL"), ("7870-1234", "TX")])
def test_a_short_zip_where_no_zip_code_starts_with_0_is_refused(given: str, state: str) -> None:
    """Padded, it would be a ZIP in New England, New Jersey or Puerto Rico: a label bought to the wrong state."""
    with pytest.raises(ValueError, match=f"no {state} ZIP code starts with 0"):
        normalize.us_zip(given, state)


@pytest.mark.parametrize(("given", "state"), [("2134", "NY"), ("9123", "PR"), ("7102", "MA"), ("2134", "NJ")])
def test_a_short_zip_restored_into_another_states_prefix_is_refused(given: str, state: str) -> None:
    """`2134` in New York would become 02134, a Boston ZIP: only 005 and 063 are New York's."""
    with pytest.raises(ValueError, match=f"it is no {state} ZIP code"):
        normalize.us_zip(given, state)


@pytest.mark.parametrize("bad", ["94107-12", "ABCDE", "941071", "94 107", "", "12"])
def test_us_zip_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a US ZIP code"):
        normalize.us_zip(bad)


@pytest.mark.parametrize(
    ("given", "ounces"),
    [("12", 12.0), ("12oz", 12.0), ("12 oz", 12.0), ("1.5 lb", 24.0), ("2 lbs", 32.0), ("1.5LB", 24.0),
     ("500g", 17.637), ("2kg", 70.5479), ("1,5 kg", 52.9109), (12, 12.0), (0.5, 0.5), ("3#", 48.0)],
)
def test_weight_becomes_ounces(given: str | float, ounces: float) -> None:
    assert normalize.weight_oz(given) == pytest.approx(ounces, abs=1e-3)


@pytest.mark.parametrize("bad", ["0", "-1", "0 lb", "heavy", "12 stone", "", "nan", "inf", "1,500 g", True, None])
def test_weight_refuses_non_positive_or_unknown_units(bad: object) -> None:
    with pytest.raises(ValueError):
        normalize.weight_oz(bad)


@pytest.mark.parametrize(("given", "inches"), [("10", 10.0), ("10in", 10.0), ("10 inches", 10.0),
                                               ("25.4cm", 10.0), ("254 mm", 10.0), (7, 7.0)])
def test_length_becomes_inches(given: str | int, inches: float) -> None:
    assert normalize.length_in(given) == pytest.approx(inches)


@pytest.mark.parametrize("bad", ["0", "-3in", "10ft", "wide"])
def test_length_refuses_non_positive_or_unknown_units(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize.length_in(bad)


@pytest.mark.parametrize(("given", "amount"), [("100", "100"), ("$1,250.50", "1250.50"), ("49.95 USD", "49.95"),
                                               (0, "0"), ("0.00", "0.00")])
def test_money(given: str | int, amount: str) -> None:
    assert normalize.money(given) == Decimal(amount)


@pytest.mark.parametrize("bad", ["-1", "lots", "NaN", "Infinity"])
def test_money_refuses_negative_and_non_numbers(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize.money(bad)


@pytest.mark.parametrize(("given", "digits"), [("610910", "610910"), ("6109.10", "610910"),
                                               ("6109.10.0012", "6109100012")])
def test_hs_tariff_six_to_ten_digits_dots_allowed(given: str, digits: str) -> None:
    assert normalize.hs_tariff(given) == digits


@pytest.mark.parametrize("bad", ["12345", "12345678901", "61A910", "6109..10"])
def test_hs_tariff_refuses_wrong_lengths(bad: str) -> None:
    with pytest.raises(ValueError, match="HS tariff"):
        normalize.hs_tariff(bad)


@pytest.mark.parametrize(
    ("bad", "says"),
    [("1e9", "is 1e+09 oz, more than a parcel carrier takes"), ("151 lb", "is 2416 oz, more than"),
     (2400.5, "more than a parcel carrier takes"), ("999999999999999999999999999999", "is 1e+30 oz"),
     ("0.0000001", "too small: it rounds to 0"), ("1e400", "too large to be a weight"),
     (float("nan"), "is not a weight")],
)
def test_weight_refuses_what_no_parcel_weighs_and_says_why(bad: object, says: str) -> None:
    # A typo (an extra 0, lb for oz) is refused with the row's other errors, before anything is bought.
    with pytest.raises(ValueError, match=re.escape(says)):
        normalize.weight_oz(bad)


def test_weight_accepts_the_heaviest_parcel() -> None:
    assert normalize.weight_oz("150 lb") == normalize.MAX_PARCEL_OZ == 2400.0
