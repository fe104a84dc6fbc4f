"""`--from` / `--to` values: inline JSON, a JSON file, or (where a quote needs only a ZIP) a bare US ZIP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shipctl.errors import UsageError
from shipctl.manifest.columns import ALIASES, normalize_header
from shipctl.manifest.models import ADDRESS_FIELDS, Address

_BARE_ZIP = re.compile(r"\d{5}(?:-\d{4})?")


ADDRESS_FILE_MOST = 64 << 10
"""The largest address file read (64 KiB: an address is a few hundred bytes)."""


def parse_address_arg(value: str, *, allow_zip: bool = False) -> Address:
    """An Address from inline JSON (`{"street1": …}`), a path to a JSON file, or with `allow_zip` a US ZIP.

    `allow_zip` is for a quote (`rates --to/--from`), which needs only what a rate needs: a ZIP alone will do,
    and a JSON address needs no name, street or city (a label does: without `allow_zip` they are required).
    Keys may be EasyPost's (`street1`, `zip`) or prefixed/aliased as in a manifest (`from_zip`,
    `postal_code`). Anything unusable raises `UsageError` saying what is wrong.
    """
    text = value.strip()
    if allow_zip and _BARE_ZIP.fullmatch(text):
        return Address.model_validate({"zip": text, "country": "US"}, context={"partial": True})
    if text.startswith(("{", "[")):
        source = "inline JSON"
    else:
        source = text
        try:
            with Path(text).open("rb") as fh:
                raw = fh.read(ADDRESS_FILE_MOST + 1)
            if len(raw) > ADDRESS_FILE_MOST:  # /dev/zero, a manifest passed by mistake: never read whole
                raise UsageError(f"address file {source}: larger than {ADDRESS_FILE_MOST >> 10} KiB, not an address")
            text = raw.decode("utf-8-sig")
        except OSError as exc:
            hint = ", a ZIP code" if allow_zip else ""
            raise UsageError(
                f"address {value!r}: not inline JSON{hint} or a readable JSON file ({exc.strerror or exc})"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(f"address file {source}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"address ({source}): invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"address ({source}): expected a JSON object")
    fields = _address_fields(data)
    try:
        return Address.model_validate(fields, context={"partial": allow_zip})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'address'}: "
            + ("required" if err["type"] == "missing" else err["msg"].removeprefix("Value error, "))
            for err in exc.errors(include_url=False)
        )
        raise UsageError(f"address ({source}): {problems}") from None


def _address_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Map keys onto Address fields: `zip`, `from_zip`, `postal_code`, `Sender ZIP` all become `zip`."""
    fields: dict[str, Any] = {}
    for key, raw in data.items():
        name = normalize_header(str(key))
        if name not in ADDRESS_FIELDS:
            column = ALIASES.get(name) or ALIASES.get("to_" + name) or ""
            name = column.split("_", 1)[1] if column.startswith(("to_", "from_")) else ""
        if not name:
            raise UsageError(f"address: unknown field {key!r} (use {', '.join(ADDRESS_FIELDS)})")
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            if name == "residential" and isinstance(raw, bool):
                fields[name] = raw
                continue
            raise UsageError(f"address: {key!r} must be a single value")
        fields[name] = raw if isinstance(raw, str) else str(raw)
    return fields
