"""Journals as older shipctl wrote them, for the tests of reading and migrating them."""

from __future__ import annotations


def old_schema(*, bought_at: bool = False) -> str:
    """The journal's tables before the price columns (and before `bought_at`, unless asked)."""
    return (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE rows (reference TEXT PRIMARY KEY, line INTEGER, digest TEXT, state TEXT NOT NULL, "
        "shipment_id TEXT, rate_id TEXT, carrier TEXT, service TEXT, rate TEXT, currency TEXT, delivery_days "
        "INTEGER, tracking_code TEXT, label_url TEXT, label_path TEXT, error_code TEXT, error_message TEXT, "
        "refund_status TEXT, updated_at TEXT NOT NULL" + (", bought_at TEXT" if bought_at else "") + ");"
    )
