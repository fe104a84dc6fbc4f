"""The `verify` job: every destination of a manifest, and each distinct origin once, through EasyPost's address
verification, concurrently through the engine; one record per address checked, in input order.

The manifest is checked whole first (the validation pass, which also gathers the distinct origins); then the
origins are verified, then every row's destination. Each answer is judged against what was sent
(`carrier.addresses.judge`): verified as given, corrected (which fields, old → new), or failed with EasyPost's
own codes and messages. The corrections are kept (`VerifyOutcome.corrections`) for `--fix`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipctl.carrier import addresses
from shipctl.carrier.addresses import AddressCheck, Change, Verdict
from shipctl.engine.failures import CallFailure
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.jobs.host import Host
from shipctl.jobs.session import InOrder, Session
from shipctl.jobs.validation import ManifestSource
from shipctl.manifest import Address, InvalidRow, ValidRow
from shipctl.manifest.problems import ProblemGroups
from shipctl.output import counted
from shipctl.secrets import scrub

VERIFY_COLUMNS = (
    "line", "reference", "address", "status", "changes", "error_code", "error_message", "residential",
    "street1", "street2", "city", "state", "zip", "country", "latitude", "longitude", "time_zone",
)
"""One address checked: which row and which address (`to`, or `from` once per distinct origin), the verdict, and
the address as EasyPost spells it."""

Role = Literal["to", "from"]
Record = dict[str, Any]
Sink = Callable[[Record], None]


@dataclass(frozen=True)
class VerifyQuery:
    """A manifest to verify: where it is, how to read it, and `label` to name it in messages."""

    path: Path
    label: str
    fmt: str | None = None
    encoding: str | None = None
    default_from: Address | None = None
    sheet: str | None = None


@dataclass
class Origin:
    """A distinct origin: the first row that names it, and every row's line that shares it (for `--fix`)."""

    line: int
    reference: str
    address: dict[str, Any]
    lines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    rows: int
    origins: list[Origin]

    @property
    def addresses(self) -> int:
        return self.rows + len(self.origins)


@dataclass(frozen=True)
class Correction:
    """What `--fix` writes: on these manifest lines, the `role`'s fields that EasyPost corrected."""

    role: Role
    lines: tuple[int, ...]
    changes: tuple[Change, ...]


@dataclass
class VerifyOutcome:
    rows: int = 0
    verified: int = 0
    corrected: int = 0
    failed: int = 0
    errors: int = 0
    elapsed: float = 0.0
    corrections: list[Correction] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed or self.errors else ExitCode.OK


def origin_key(address: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in address.items()))


class AddressVerification:
    """`validate()` (every row read and checked, origins gathered, nothing sent), then `run()`."""

    def __init__(self, query: VerifyQuery, host: Host) -> None:
        self.query = query
        self.host = host

    def source(self) -> ManifestSource:
        q = self.query
        return ManifestSource(q.path, q.fmt, q.encoding, q.default_from, on_warning=self.host.warn, sheet=q.sheet)

    def validate(self) -> Plan:
        """The validation pass: problems told to the host, grouped; the rows and distinct origins, or
        ShipctlError (exit 2) with nothing sent."""
        rows = invalid = 0
        origins: dict[tuple[tuple[str, str], ...], Origin] = {}
        with ProblemGroups(self.host.info) as problems:
            for item in self.source().rows(warn=True):
                rows += 1
                if isinstance(item, InvalidRow):
                    invalid += 1
                    problems.add(item)
                    continue
                sent = item.row.from_address.to_easypost()
                origin = origins.setdefault(origin_key(sent), Origin(item.line, item.row.reference, sent))
                origin.lines.append(item.line)
        if rows == 0:
            raise ShipctlError(f"{self.query.label}: the manifest has no rows", ExitCode.USAGE)
        if invalid:
            raise ShipctlError(f"{counted(rows, 'rows')}: {rows - invalid} valid, {invalid} invalid; nothing was "
                               "verified", ExitCode.USAGE)
        return Plan(rows, list(origins.values()))

    def run(self, plan: Plan, session: Session, sink: Sink) -> VerifyOutcome:
        """Verify the origins, then every row's destination; records to `sink` in input order."""
        source = dataclasses.replace(self.source(), on_warning=lambda _m: None)  # warned once, by validate()
        verifying = _Pass(session, sink)
        session.run(lambda: verifying.main(plan, source, self.host))
        outcome = verifying.outcome
        outcome.rows, outcome.elapsed = plan.rows, session.stats.elapsed()
        return outcome


class _Pass:
    def __init__(self, session: Session, sink: Sink) -> None:
        self.session = session
        self.sink = sink
        self.outcome = VerifyOutcome()

    async def main(self, plan: Plan, source: ManifestSource, host: Host) -> None:
        host.engine_started(self.session.engine.sizing)
        with host.progress(self.session.stats):
            origins: InOrder[Record] = InOrder(self.sink)
            await self.session.engine.run(list(enumerate(plan.origins)),
                                          lambda item: self._origin(item[1], item[0], origins))
            rows: InOrder[Record] = InOrder(self.sink)
            await self.session.engine.run(_numbered(source), lambda item: self._row(item[1], item[0], rows))

    async def _origin(self, origin: Origin, index: int, order: InOrder[Record]) -> None:
        record = await self._check("from", origin.line, origin.reference, origin.address, tuple(origin.lines))
        order.put(index, record)

    async def _row(self, valid: ValidRow, index: int, order: InOrder[Record]) -> None:
        row = valid.row
        record = await self._check("to", valid.line, row.reference, row.to_address.to_easypost(), (valid.line,))
        order.put(index, record)

    async def _check(self, role: Role, line: int, reference: str, sent: dict[str, Any],
                     lines: tuple[int, ...]) -> Record:
        head: Record = {"line": line, "reference": reference, "address": role}
        try:
            check = await self.session.engine.call(addresses.verify_address, self.session.client, sent)
        except CallFailure as failure:
            return self._error(head, failure.code, failure.message)
        except Exception as exc:  # one address's surprise must not take the run down (the engine needs no raise)
            return self._error(head, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
        verdict = addresses.judge(sent, check)
        self.session.stats.record("failed" if verdict.outcome == "failed" else "succeeded")
        if verdict.outcome == "failed":
            self.outcome.failed += 1
        elif verdict.outcome == "corrected":
            self.outcome.corrected += 1
            self.outcome.corrections.append(Correction(role, lines, verdict.changes))
        else:
            self.outcome.verified += 1
        return verdict_record(head, verdict)

    def _error(self, head: Record, code: str, message: str) -> Record:
        """The address could not be checked (the API refused or did not answer): not a verdict on the address."""
        self.session.stats.record("failed")
        self.outcome.errors += 1
        return _record({**head, "status": "error", "error_code": code, "error_message": scrub(message)})


def verdict_record(head: Record, verdict: Verdict) -> Record:
    check: AddressCheck = verdict.check
    values: Record = {
        **head, "status": verdict.outcome, "changes": "; ".join(c.text() for c in verdict.changes) or None,
        "residential": check.residential, "latitude": check.latitude, "longitude": check.longitude,
        "time_zone": check.time_zone, **check.address,
    }
    if verdict.outcome == "failed":
        values["error_code"], values["error_message"] = check.codes, check.reason
    return _record(values)


def _record(values: Record) -> Record:
    return {column: values.get(column) for column in VERIFY_COLUMNS}


def _numbered(source: ManifestSource) -> Iterator[tuple[int, ValidRow]]:
    index = 0
    for item in source.rows():
        if isinstance(item, ValidRow):
            yield index, item
            index += 1
