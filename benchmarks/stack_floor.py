#!/usr/bin/env python
"""The least a 1-row `create` can cost on shipctl's own stack: a floor for bench_engine.py's start-up row.

The bare script (bench_engine.py's BARE_SCRIPT) is the SDK's two calls and nothing else. shipctl is bound to more
than that: typer parses its command line, pydantic validates the row, anyio runs the calls on a worker thread, and
SQLite holds the shipment id before `buy` (the never-buy-twice rule). This script does exactly those, each in its
plainest form, and nothing shipctl adds on top: no config, no reference claims, no account check, no summary, no
output formats. Its CPU over the bare script's is what the stack itself costs; shipctl's CPU over this script's
is what shipctl's own work costs.

    EASYPOST_API_KEY=... EASYPOST_API_BASE=... python benchmarks/stack_floor.py MANIFEST.csv --journal JOURNAL.db
"""

from __future__ import annotations

import csv
import os
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
import easypost
import typer
from pydantic import BaseModel, Field


class Address(BaseModel):
    name: str = Field(min_length=1)
    street1: str = Field(min_length=1)
    street2: str | None = None
    city: str = Field(min_length=1)
    state: str | None = None
    zip: str = Field(min_length=1)
    country: str = Field(default="US", min_length=2, max_length=2)
    phone: str | None = None
    email: str | None = None


class Row(BaseModel):
    reference: str = Field(min_length=1)
    from_address: Address
    to_address: Address
    weight: Decimal = Field(gt=0)


app = typer.Typer(add_completion=False)


@app.command()
def create(manifest: Path, journal: Annotated[Path, typer.Option()]) -> None:
    with manifest.open(newline="", encoding="utf-8") as f:
        raw = next(csv.DictReader(f))

    def side(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix) and v}

    row = Row.model_validate({"reference": raw["reference"], "from_address": side("from_"),
                              "to_address": side("to_"), "weight": raw["weight"]})
    db = sqlite3.connect(journal, check_same_thread=False)
    db.execute("CREATE TABLE IF NOT EXISTS purchases (reference TEXT PRIMARY KEY, shipment_id TEXT, tracking TEXT)")
    client = easypost.EasyPostClient(os.environ["EASYPOST_API_KEY"], api_base=os.environ["EASYPOST_API_BASE"])

    def buy() -> Any:
        shipment = client.shipment.create(
            from_address=row.from_address.model_dump(exclude_none=True),
            to_address=row.to_address.model_dump(exclude_none=True), parcel={"weight": float(row.weight)})
        with db:  # the shipment id is durable before buy
            db.execute("INSERT INTO purchases VALUES (?, ?, NULL)", (row.reference, shipment.id))
        cheapest = min(shipment.rates, key=lambda rate: Decimal(rate.rate))
        bought = client.shipment.buy(shipment.id, rate={"id": cheapest.id})
        with db:
            db.execute("UPDATE purchases SET tracking = ? WHERE reference = ?", (bought.tracking_code, row.reference))
        return bought

    async def main() -> Any:
        return await anyio.to_thread.run_sync(buy)

    print(anyio.run(main).tracking_code)


if __name__ == "__main__":
    app()
