"""Build manifests for tests: realistic US rows, flat CSV columns as the README's "Columns" table names them."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DESTINATIONS: Sequence[tuple[str, str, str, str]] = (
    ("350 5th Ave", "New York", "NY", "10118"),
    ("233 S Wacker Dr", "Chicago", "IL", "60606"),
    ("600 Congress Ave", "Austin", "TX", "78701"),
    ("400 Broad St", "Seattle", "WA", "98109"),
    ("1 Ferry Building", "San Francisco", "CA", "94111"),
    ("100 Peachtree St NW", "Atlanta", "GA", "30303"),
    ("1500 Market St", "Philadelphia", "PA", "19102"),
    ("1 Lincoln Memorial Cir NW", "Washington", "DC", "20037"),
)

ORIGIN = {
    "from_name": "Acme Fulfilment",
    "from_street1": "417 Montgomery St",
    "from_city": "San Francisco",
    "from_state": "CA",
    "from_zip": "94104",
    "from_country": "US",
}


def row(i: int, **overrides: Any) -> dict[str, Any]:
    street, city, state, zip_code = DESTINATIONS[i % len(DESTINATIONS)]
    base: dict[str, Any] = {
        "reference": f"ORD-{i:05d}",
        "to_name": f"Customer {i}",
        "to_street1": street,
        "to_city": city,
        "to_state": state,
        "to_zip": zip_code,
        "to_country": "US",
        **ORIGIN,
        "weight": 8 + (i % 40),
    }
    base.update(overrides)
    return base


def write_manifest(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_manifest(path: Path, count: int) -> Path:
    return write_manifest(path, [row(i) for i in range(count)])
