"""Manifests: the lazy reader for CSV/JSON/NDJSON (files or stdin) and the pydantic row models."""

from shipctl.manifest.address_arg import parse_address_arg
from shipctl.manifest.models import FLAT_COLUMNS, Address, CustomsInfo, CustomsItem, Parcel, ShipmentRow
from shipctl.manifest.reader import iter_rows
from shipctl.manifest.rows import InvalidRow, Problem, ValidRow

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
