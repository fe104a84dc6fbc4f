"""Whatever the input, the reader raises nothing but ManifestError, and every row is valid or invalid."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipctl.errors import ManifestError
from shipctl.manifest import Address, InvalidRow, ValidRow, iter_rows
from shipctl.manifest.models import FLAT_COLUMNS

ORIGIN = Address(name="Acme", street1="388 Townsend St", city="San Francisco", state="CA", zip="94107")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def consume(data: bytes, **kwargs: Any) -> list[ValidRow | InvalidRow]:
    try:
        results = list(iter_rows(io.BytesIO(data), default_from=ORIGIN, **kwargs))
    except ManifestError as exc:
        assert str(exc).strip(), "a ManifestError says what is wrong"
        return []
    for result in results:
        assert isinstance(result, (ValidRow, InvalidRow))
        if isinstance(result, InvalidRow):
            assert result.problems and all(str(p).startswith(f"row {result.line}, column ") for p in result.problems)
        else:
            result.row.to_easypost()
            result.row.to_flat()
    return results


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_manifest_error(data: bytes) -> None:
    consume(data)


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from(["csv", "json", "ndjson"]))
def test_arbitrary_bytes_with_a_forced_format(data: bytes, fmt: str) -> None:
    consume(data, fmt=fmt)  # type: ignore[arg-type]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
keys = st.sampled_from([*FLAT_COLUMNS, "to_address", "from_address", "parcel", "options", "customs_info",
                        "zip", "Recipient Name", "weight_lb", "junk"]) | st.text(max_size=10)


@pytest.mark.slow  # ~6 s alone, ~15 s on a loaded 2-core machine: 150 examples of nested JSON rows
@SETTINGS
@given(st.lists(st.dictionaries(keys, json_values, max_size=12), max_size=5))
def test_arbitrary_json_rows_never_raise(rows: list[dict[str, Any]]) -> None:
    data = json.dumps(rows).encode()
    results = consume(data)
    assert len(results) == len(rows)


@SETTINGS
@given(st.lists(st.dictionaries(st.sampled_from(FLAT_COLUMNS), st.text(max_size=15), max_size=20), min_size=1,
                max_size=5))
def test_arbitrary_csv_cells_never_raise(rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FLAT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    consume(buffer.getvalue().encode("utf-8", "surrogatepass"))
