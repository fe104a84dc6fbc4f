"""Manifests: the lazy reader for CSV/JSON/NDJSON (files or stdin) and the pydantic row models.

The names below are loaded on first use (PEP 562), not when the package is: `shipctl --help` and the light parts
of this package (`problems`, `rows`, `normalize`) must not pay for pydantic and the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipctl.manifest.address_arg import parse_address_arg
    from shipctl.manifest.models import FLAT_COLUMNS, Address, CustomsInfo, CustomsItem, Parcel, ShipmentRow
    from shipctl.manifest.reader import iter_rows
    from shipctl.manifest.rows import InvalidRow, Problem, ValidRow

_WHERE = {
    "parse_address_arg": "address_arg",
    "FLAT_COLUMNS": "models", "Address": "models", "CustomsInfo": "models", "CustomsItem": "models",
    "Parcel": "models", "ShipmentRow": "models",
    "iter_rows": "reader",
    "InvalidRow": "rows", "Problem": "rows", "ValidRow": "rows",
}

__all__ = [
    "FLAT_COLUMNS",
    "Address",
    "CustomsInfo",
    "CustomsItem",
    "InvalidRow",
    "Parcel",
    "Problem",
    "ShipmentRow",
    "ValidRow",
    "iter_rows",
    "parse_address_arg",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__ rather than importlib.import_module: `python -X importtime` sees only the former.
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
