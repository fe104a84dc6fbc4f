"""What commands read besides options: a manifest argument (a file, or `-` for stdin) and lists given on stdin.

A list on stdin is one value a line, or shipctl's own results: `shipctl create … | shipctl track -` hands `track`
the NDJSON records `create` prints (or one JSON array, `-o json`), and each object gives its `tracking_code`
(`refund`: its `shipment_id`). A record without one (a row that failed or was skipped) is left out, and one line
on stderr counts them: the pipeline carries on with what was bought, as `jq -r .tracking_code` would.

`refund` takes a shipment id only from a record that run bought (`status` "bought", `purchase` not "found"): a
failed row may carry the id of a shipment it never bought, and a found label is one another run paid for. Such
records are counted in their own stderr line. A record without `status` (another tool's output) gives any id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from shipctl.cli.terminal import terminal
from shipctl.errors import UsageError, WriteFailure

SPOOL_LIMIT = 4 << 30
"""The most a manifest read once (stdin, a pipe) is copied to disk: 4 GiB, several million rows."""


def spool_stdin() -> Path:
    """Copy stdin to a private temp file: a manifest is read once per phase (validate, then ship)."""
    source = terminal().stdin_bytes("the manifest")
    if source is None:
        raise UsageError("stdin is closed: there is no manifest to read for -")
    return _spool(source, "on stdin")


def _spool(source: IO[bytes], what: str, prefix: str = "shipctl-stdin-", limit: int | None = SPOOL_LIMIT) -> Path:
    """`source` copied, once, to a private file in the state directory; the file never outlives a failure here."""
    import tempfile

    from shipctl.paths import state_dir  # platformdirs: only when a manifest is spooled

    where = state_dir()
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".manifest", dir=where)
    except OSError as exc:
        raise WriteFailure.from_os(f"a copy of the manifest in {where}", exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            copied = 0
            while block := source.read(1 << 16):
                copied += len(block)
                if limit is not None and copied > limit:  # a stream may never end (/dev/zero); a file does
                    raise UsageError(f"the manifest {what} is larger than {limit >> 30} GiB: split it")
                try:
                    fh.write(block)
                except OSError as exc:
                    raise WriteFailure.from_os(f"a copy of the manifest in {where}", exc) from None
    except BaseException:  # a Ctrl-C mid-copy too: a partial spool of gigabytes must not stay behind
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _spool_file(path: Path, what: str, prefix: str = "shipctl-stdin-", limit: int | None = SPOOL_LIMIT) -> Path:
    """`_spool` of the file at `path`; one that cannot be read is a usage error naming it."""
    try:
        with path.open("rb") as stream:
            return _spool(stream, what, prefix, limit)
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {what}: {exc.strerror or exc}") from None


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
    and labelled `<stdin>` in messages; anything else must be an existing file, labelled as given. A file that is
    not a regular file (a named pipe, `<(…)`) is read once, as stdin is: a second open would find it empty or wait
    forever for a writer, so it is spooled and `from_stdin` (its journal goes by its content, as stdin's does)."""
    spooled: Path | None = None
    if arg == "-":
        spooled = spool_stdin()
        path = spooled
    else:
        path = require_file(arg)
        if not path.is_file():
            spooled = path = _spool_file(path, arg)
    try:
        yield path, "<stdin>" if arg == "-" else arg, spooled is not None
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


@contextlib.contextmanager
def read_once(path: Path, spooled: bool) -> Iterator[Path]:
    """The manifest as a job that reads it twice (validate, then ship) must read it: a private copy made now, so a
    file rewritten during the run cannot ship rows the validation never saw (removed on exit); a spool already
    is one."""
    if spooled:
        yield path
        return
    copy = _spool_file(path, str(path), "shipctl-manifest-", limit=None)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)


#: The field of a shipctl result record that each list read from stdin takes (`what` names the list).
RECORD_FIELDS = {"tracking codes": "tracking_code", "shipment ids": "shipment_id"}
#: Fields taken only from records the run itself bought: refunding another run's label, or a shipment a failed row
#: never bought, is not what `create … | refund -` means (tracking anything is harmless).
BOUGHT_ONLY_FIELDS = frozenset({"shipment_id"})


@dataclasses.dataclass
class _Taken:
    """What the records on stdin gave: their values, how many lacked the field, why others were left out."""

    values: list[str] = dataclasses.field(default_factory=list)
    missing: int = 0
    not_bought: Counter[str] = dataclasses.field(default_factory=Counter)

    def add(self, other: _Taken) -> None:
        self.values.extend(other.values)
        self.missing += other.missing
        self.not_bought.update(other.not_bought)


def read_stdin_lines(what: str, field: str | None = None) -> list[str]:
    """The values on stdin: non-blank lines, stripped, `#` comments dropped; a JSON object line (or a JSON array
    of objects) gives its `field` (default: `RECORD_FIELDS[what]`). Read only because the user passed `-`."""
    field = field or RECORD_FIELDS.get(what)
    text = terminal().stdin_text(f"the {what}").read()
    taken = _values(text, field)
    if taken.missing and field:
        some = "1 line had" if taken.missing == 1 else f"{taken.missing} lines had"
        rows = "a failed row" if taken.missing == 1 else "failed rows"
        terminal().info(f"{some} no {field} ({rows}): skipped")
    if taken.not_bought:
        n = sum(taken.not_bought.values())
        some = "1 record was" if n == 1 else f"{n} records were"
        terminal().info(f"{some} not bought by that run ({', '.join(taken.not_bought)}): skipped")
    if not taken.values:
        raise UsageError(f"no {what} on stdin")
    return taken.values


def _values(text: str, field: str | None) -> _Taken:
    """The values in `text`, how many records lacked `field`, and why records not bought were left out."""
    stripped = text.strip()
    if field and stripped.startswith("["):
        # `-o json`: one array, maybe spread over many lines.
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(stripped)
            if isinstance(data, list):
                return _from_records(data, field)
    taken = _Taken()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        record = _record(line) if field else None
        if record is None:
            taken.values.append(line)  # a plain value; anything malformed is the job's to report, with the others
            continue
        taken.add(_from_records([record], field or ""))
    return taken


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


def _from_records(items: list[Any], field: str) -> _Taken:
    taken = _Taken()
    for item in items:
        value = item.get(field) if isinstance(item, dict) else item
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not (isinstance(value, str) and value.strip()):
            taken.missing += 1
        elif (why := _not_bought(item, field)) is not None:
            taken.not_bought[why] += 1
        else:
            taken.values.append(value.strip())
    return taken


def _not_bought(item: Any, field: str) -> str | None:
    """Why a shipctl result record gives no `field` although it has one (its status, or "found"); None: it does.

    Only a record with a `status` (shipctl's own) is judged: another tool's record gives its value as before."""
    if field not in BOUGHT_ONLY_FIELDS or not isinstance(item, dict) or "status" not in item:
        return None
    if item.get("status") != "bought":
        return str(item.get("status"))
    return "found" if item.get("purchase") == "found" else None


def expand_args(values: Sequence[str], what: str, field: str | None = None) -> list[str]:
    """The arguments with `-` replaced by the values on stdin (`read_stdin_lines`); duplicates dropped, first
    order kept."""
    if list(values).count("-") > 1:
        raise UsageError("- (stdin) may be given only once")
    expanded: list[str] = []
    for value in values:
        expanded.extend(read_stdin_lines(what, field) if value == "-" else [value])
    return list(dict.fromkeys(expanded))
