"""What commands read besides options: a manifest argument (a file, or `-` for stdin) and lists given on stdin.

A list on stdin is one value a line, or shipctl's own results: `shipctl create … | shipctl track -` hands `track`
the NDJSON records `create` prints (or one JSON array, `-o json`), and each object gives its `tracking_code`
(`refund`: its `shipment_id`). A record without one (a row that failed or was skipped) is left out, and one line
on stderr counts them: the pipeline carries on with what was bought, as `jq -r .tracking_code` would.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError
from shipctl.paths import state_dir


def spool_stdin() -> Path:
    """Copy stdin to a private temp file: a manifest is read once per phase (validate, then ship)."""
    fd, name = tempfile.mkstemp(prefix="shipctl-stdin-", suffix=".manifest", dir=state_dir())
    source = terminal().stdin_bytes()
    with os.fdopen(fd, "wb") as fh:
        while block := source.read(1 << 16):
            fh.write(block)
    return Path(name)


def require_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"manifest {path} does not exist")
    if p.is_dir():
        raise UsageError(f"manifest {path} is a directory")
    return p


@contextlib.contextmanager
def manifest_input(arg: str) -> Iterator[tuple[Path, str, bool]]:
    """The manifest argument as `(path, label, from_stdin)`: `-` is stdin spooled to a temp file (removed on exit)
    and labelled `<stdin>` in messages; anything else must be an existing file, labelled as given."""
    spooled: Path | None = None
    if arg == "-":
        spooled = spool_stdin()
        path = spooled
    else:
        path = require_file(arg)
    try:
        yield path, "<stdin>" if spooled else arg, spooled is not None
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


#: The field of a shipctl result record that each list read from stdin takes (`what` names the list).
RECORD_FIELDS = {"tracking codes": "tracking_code", "shipment ids": "shipment_id"}


def read_stdin_lines(what: str, field: str | None = None) -> list[str]:
    """The values on stdin: non-blank lines, stripped, `#` comments dropped; a JSON object line (or a JSON array
    of objects) gives its `field` (default: `RECORD_FIELDS[what]`). Read only because the user passed `-`."""
    field = field or RECORD_FIELDS.get(what)
    text = terminal().stdin.read()
    values, missing = _values(text, field)
    if missing and field:
        some = "1 line had" if missing == 1 else f"{missing} lines had"
        rows = "a failed row" if missing == 1 else "failed rows"
        terminal().info(f"{some} no {field} ({rows}): skipped")
    if not values:
        raise UsageError(f"no {what} on stdin")
    return values


def _values(text: str, field: str | None) -> tuple[list[str], int]:
    """The values in `text` and how many records lacked `field`."""
    stripped = text.strip()
    if field and stripped.startswith("["):
        # `-o json`: one array, maybe spread over many lines.
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(stripped)
            if isinstance(data, list):
                return _from_records(data, field)
    values: list[str] = []
    missing = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        record = _record(line) if field else None
        if record is None:
            values.append(line)  # a plain value; anything malformed is the job's to report, with the others
            continue
        found, lacking = _from_records([record], field or "")
        values.extend(found)
        missing += lacking
    return values, missing


def _record(line: str) -> dict[str, Any] | None:
    """The JSON object on `line`, or None: only a line that starts with `{` is taken for one (a code of digits
    alone is valid JSON too, a number, and must stay a code)."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _from_records(items: list[Any], field: str) -> tuple[list[str], int]:
    values: list[str] = []
    missing = 0
    for item in items:
        value = item.get(field) if isinstance(item, dict) else item
        if isinstance(value, str) and value.strip():
            values.append(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            values.append(str(value))
        else:
            missing += 1
    return values, missing


def expand_args(values: Sequence[str], what: str, field: str | None = None) -> list[str]:
    """The arguments with `-` replaced by the values on stdin (`read_stdin_lines`); duplicates dropped, first
    order kept."""
    if list(values).count("-") > 1:
        raise UsageError("- (stdin) may be given only once")
    expanded: list[str] = []
    for value in values:
        expanded.extend(read_stdin_lines(what, field) if value == "-" else [value])
    return list(dict.fromkeys(expanded))
