"""Plan files: what `shipctl plan` decided to buy, as a document a person can read, diff and approve, and the checks
`shipctl apply` makes before it buys exactly that.

A plan is JSON: the API and mode it was made against, the manifest's SHA-256, the journal that holds its shipments,
when it was made and until when it holds, and one object per row in `rows` (the reference, the shipment and rate ids,
carrier, service, price, currency, delivery days and why that rate). `digest` is the SHA-256 of the document
without it, canonically encoded: an edited plan (a price lowered, a row added) no longer matches, and `apply`
refuses it. The digest catches edits, not forgers: whoever can rewrite the file and its digest can also run
`create` with the key; approval is about a person reading what will be spent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from shipctl import money
from shipctl.drift import Drift
from shipctl.errors import UsageError

FORMAT = "shipctl-plan/1"
DEFAULT_VALID_FOR = dt.timedelta(hours=24)
"""How long a plan holds by default: a shipping day. Carriers reprice rarely within a day; apply re-reads every
rate anyway and fails a row whose price moved beyond `--max-drift`."""
ROW_FIELDS = (
    "reference", "line", "shipment_id", "rate_id", "carrier", "service", "rate", "currency", "delivery_days",
    "rate_choice",
)


class PlanRefused(UsageError):
    """The plan cannot be applied as it is: nothing is bought."""


@dataclass(frozen=True)
class PlannedRow:
    reference: str
    line: int | None
    shipment_id: str
    rate_id: str
    carrier: str | None
    service: str | None
    rate: Decimal
    currency: str
    delivery_days: int | None = None
    rate_choice: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in ROW_FIELDS}
        data["rate"] = str(self.rate)
        return data


@dataclass(frozen=True)
class Plan:
    created_at: dt.datetime
    expires_at: dt.datetime
    api: str
    mode: str | None
    account: str | None
    manifest: str
    manifest_sha256: str
    journal: str
    rows: tuple[PlannedRow, ...]
    reading: Mapping[str, Any] = field(default_factory=dict)
    """How the manifest was read (`format`, `encoding`, `sheet`, the default origin `from`): `apply` reads it the
    same way, so every row is the row that was planned."""
    digest: str = ""
    """The digest of the file it was read from (empty for a plan not yet written)."""
    insurance: Mapping[str, Decimal] = field(default_factory=dict)
    """The insurance fees the planned rows add at their buy, per currency (on top of the rates)."""
    not_planned: tuple[dict[str, Any], ...] = ()
    """Rows the plan will not buy and why (failed while planning, or already bought): `reference`, `status`,
    `error_code`, `error_message`."""

    def by_reference(self) -> dict[str, PlannedRow]:
        return {row.reference: row for row in self.rows}

    def totals(self) -> dict[str, Decimal]:
        return money.sum_by_currency((row.currency, row.rate) for row in self.rows)

    def estimate(self) -> dict[str, Decimal]:
        """What applying it costs: the rates and the insurance fees."""
        found = dict(self.totals())
        for currency, amount in self.insurance.items():
            money.add(found, currency, amount)
        return found

    def by_service(self) -> list[tuple[str, str, str, int, Decimal]]:
        """(carrier, service, currency, rows, amount), largest amount first."""
        groups: dict[tuple[str, str, str], list[Decimal]] = {}
        for row in self.rows:
            groups.setdefault((row.carrier or "?", row.service or "?", row.currency), []).append(row.rate)
        found = [(*key, len(amounts), sum(amounts, Decimal(0))) for key, amounts in groups.items()]
        return sorted(found, key=lambda g: (-g[4], g[0], g[1]))

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": FORMAT,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "api": self.api,
            "mode": self.mode,
            "account": self.account,
            "manifest": {"path": self.manifest, "sha256": self.manifest_sha256, "reading": dict(self.reading)},
            "journal": self.journal,
            "totals": {
                "rows": len(self.rows),
                "by_currency": {currency: str(amount) for currency, amount in sorted(self.totals().items())},
                "insurance": {currency: str(amount) for currency, amount in sorted(self.insurance.items())},
                "estimate": {currency: str(amount) for currency, amount in sorted(self.estimate().items())},
                "by_service": [
                    {"carrier": c, "service": s, "currency": cur, "rows": n, "amount": str(a)}
                    for c, s, cur, n, a in self.by_service()
                ],
            },
            "rows": [row.as_json() for row in self.rows],
            "not_planned": list(self.not_planned),
        }
        body["digest"] = digest_of(body)
        return body


def digest_of(document: Mapping[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _moment(text: Any, what: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise PlanRefused(f"the plan's {what} is not a date and time ({text!r})") from None
    if moment.tzinfo is None:
        raise PlanRefused(f"the plan's {what} has no time zone ({text!r})")
    return moment


def write(plan: Plan, path: Path) -> dict[str, Any]:
    """Write the plan whole (a temporary file renamed over `path`), returning the document written."""
    document = plan.document()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return document


def load(path: Path) -> Plan:
    """Read and check a plan file; PlanRefused (exit 2) for anything that is not an intact shipctl plan."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanRefused(f"cannot read the plan {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise PlanRefused(f"{path} is not a plan: not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PlanRefused(f"{path} is not a shipctl plan (no \"format\": \"{FORMAT}\")")
    if document.get("digest") != digest_of(document):
        raise PlanRefused(
            f"the plan {path} was altered after it was made (its digest does not match its content); nothing was "
            "bought — make a new plan with shipctl plan"
        )
    try:
        rows = tuple(_row(item) for item in document["rows"])
        manifest = document["manifest"]
        return Plan(
            created_at=_moment(document["created_at"], "created_at"),
            expires_at=_moment(document["expires_at"], "expires_at"),
            api=str(document["api"]),
            mode=document.get("mode"),
            account=document.get("account"),
            manifest=str(manifest["path"]),
            manifest_sha256=str(manifest["sha256"]),
            journal=str(document["journal"]),
            rows=rows,
            reading=dict(manifest.get("reading") or {}),
            insurance={str(k): Decimal(str(v)) for k, v in (document["totals"].get("insurance") or {}).items()},
            digest=str(document["digest"]),
            not_planned=tuple(document.get("not_planned") or ()),
        )
    except (KeyError, TypeError, InvalidOperation, ValueError) as exc:
        raise PlanRefused(f"{path} is not a complete shipctl plan ({type(exc).__name__}: {exc})") from None


def _row(item: Mapping[str, Any]) -> PlannedRow:
    rate = Decimal(str(item["rate"]))
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"row {item.get('reference')!r} has no price ({item['rate']!r})")
    return PlannedRow(
        reference=str(item["reference"]),
        line=item.get("line"),
        shipment_id=str(item["shipment_id"]),
        rate_id=str(item["rate_id"]),
        carrier=item.get("carrier"),
        service=item.get("service"),
        rate=rate,
        currency=money.currency_of(item.get("currency")),
        delivery_days=item.get("delivery_days"),
        rate_choice=item.get("rate_choice"),
    )


def check_target(plan: Plan, *, api: str, mode: str | None) -> None:
    """A plan is for the API and mode it was made against: another one buys nothing."""
    if api != plan.api:
        raise PlanRefused(f"the plan was made against {plan.api}, but this run talks to {api}; nothing was bought")
    if plan.mode is not None and mode is not None and mode != plan.mode:
        raise PlanRefused(f"the plan was made in {plan.mode} mode, but this key is {mode}; nothing was bought")


def check_applicable(plan: Plan, *, now: dt.datetime, manifest: Path) -> None:
    """What refuses the whole plan before the API is even reached: expired, or the manifest changed since."""
    if now >= plan.expires_at:
        raise PlanRefused(
            f"the plan expired at {_iso(plan.expires_at)} (made {_iso(plan.created_at)}); rates may have changed "
            "since — nothing was bought; make a new plan"
        )
    if not manifest.is_file():
        raise PlanRefused(f"the plan's manifest {manifest} is gone; nothing was bought")
    if file_sha256(manifest) != plan.manifest_sha256:
        raise PlanRefused(
            f"the manifest {manifest} changed since the plan was made; nothing was bought — make a new plan"
        )


_DRIFT = re.compile(r"\s*\$?\s*(\d+(?:\.\d+)?)\s*(%?)\s*")


def parse_drift(text: str | None) -> Drift:
    """`--max-drift`: `0.50` (an amount in the plan's currency) or `5%`; default 0, the planned price exactly."""
    if text is None:
        return Drift(amount=Decimal(0))
    match = _DRIFT.fullmatch(text)
    if not match:
        raise UsageError(f"--max-drift must be an amount (0.50) or a percentage (5%), not {text!r}")
    value = Decimal(match.group(1))
    return Drift(percent=value) if match.group(2) else Drift(amount=value)


@dataclass(frozen=True)
class Change:
    reference: str
    before: str
    after: str


def changes_since(previous: Mapping[str, Any] | None, plan: Plan) -> list[Change]:
    """What differs from the last plan of the same manifest: rows added, gone, or another service or price."""
    if not previous:
        return []
    old = {str(row.get("reference")): row for row in previous.get("rows", []) if isinstance(row, dict)}
    found: list[Change] = []
    for row in plan.rows:
        was = old.pop(row.reference, None)
        now = _describe(row.carrier, row.service, str(row.rate), row.currency)
        if was is None:
            found.append(Change(row.reference, "—", now))
            continue
        before = _describe(was.get("carrier"), was.get("service"), str(was.get("rate")), was.get("currency"))
        if before != now:
            found.append(Change(row.reference, before, now))
    found.extend(
        Change(reference, _describe(was.get("carrier"), was.get("service"), str(was.get("rate")), was.get("currency")),
               "—")
        for reference, was in old.items()
    )
    return found


def _describe(carrier: Any, service: Any, rate: str, currency: Any) -> str:
    amount = money.parse_amount(rate)
    price = money.format_money(amount, money.currency_of(currency)) if amount is not None else rate
    return f"{carrier or '?'} {service or '?'} {price}"


def most_expensive(rows: Iterable[PlannedRow], count: int = 5) -> list[PlannedRow]:
    return sorted(rows, key=lambda r: (-r.rate, r.reference))[:count]


def last_plan_path(state: Path, manifest: Path) -> Path:
    """Where the last plan made for this manifest is kept (to say what changed): one file per manifest path."""
    key = hashlib.sha256(str(manifest.resolve()).encode()).hexdigest()[:16]
    return state / "plans" / f"{key}.json"


def read_previous(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


