"""One row through the never-buy-twice protocol (ARCHITECTURE.md, "Never twice, never lost").

For each row: reuse what the journal knows, reconcile an unfinished shipment through the API, create one if
needed and commit its id *before* buying, choose the rate, buy only that journaled shipment, and on an
unknown outcome (timeout, dropped connection, 5xx) retrieve it: a postage label means it was bought.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import anyio

from shipctl import money
from shipctl.carrier import addresses
from shipctl.carrier import shipments as api
from shipctl.carrier.client import DEFAULT_TIMEOUT
from shipctl.carrier.rates import TransitTimes, smart_rates
from shipctl.carrier.shipments import Rate, Shipment
from shipctl.claims import Claim, Claims, Sent
from shipctl.drift import Drift
from shipctl.engine.failures import CallFailure, Stopped
from shipctl.engine.runner import Engine
from shipctl.errors import WriteFailure
from shipctl.jobs.made_from import made_from
from shipctl.journal import Journal, JournalRow
from shipctl.manifest import ShipmentRow, normalize
from shipctl.manifest.models import ADDED_FIELDS, Address, LabelFormat, domestic_zone
from shipctl.references import reference_key
from shipctl.results import Purchase, ResultRecord, Status, VerifyMode
from shipctl.selection import (
    DEFAULT_CONFIDENCE,
    DeliveryTimeNotMet,
    NoMatchingRate,
    SelectRule,
    choose_rate,
    choose_within,
    delivery_rule,
)

if TYPE_CHECKING:  # `apply` only: a `create` loads no plan module
    from shipctl.plans import PlannedRow

POSTAGE_EXISTS = "SHIPMENT.POSTAGE.EXISTS"
BUY_UNCONFIRMED = "BUY_UNCONFIRMED"
"""A buy whose outcome is still unknown: the row may be bought. Only a rerun on the same journal settles it."""
EDITED_AFTER_PURCHASE = "EDITED_AFTER_PURCHASE"
LABEL_DATE_PAST = "LABEL_DATE_PAST"
NOT_IN_PLAN = "NOT_IN_PLAN"
BOUGHT_NOT_AS_PLANNED = "BOUGHT_NOT_AS_PLANNED"
RATE_GONE = "PLANNED_RATE_GONE"
RATE_DRIFT = "PLANNED_RATE_DRIFT"
PLAN_SHIPMENT_CHANGED = "PLANNED_SHIPMENT_CHANGED"


class PlanNotHeld(Exception):
    """A planned row that cannot be bought as planned."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
NOT_JOURNALED = "NOT_JOURNALED"
"""Bought, but the journal could not record it (a full disk): the rerun of the same command does."""
HELD_BY_OTHER_RUN = "HELD_BY_OTHER_RUN"
"""Another live shipctl run has claimed the reference: this run leaves it alone (status `skipped`)."""
PREVIOUS_BUY_UNSETTLED = "PREVIOUS_BUY_UNSETTLED"
"""A run that stopped sent a buy for an earlier shipment of this reference moments ago: wait, then rerun."""
SETTLE_SECONDS = 180
"""How long after its last send a buy from a run that stopped may still land: three client timeouts (60 s)."""
FOREIGN_SECONDS = 900
"""How long a shipment for the reference that another run made (another machine, or another state directory: no
claim of ours knows it) and has not bought yet holds the reference: that run may be about to buy it. Older than
this, it is taken as abandoned."""
QUIET_SECONDS = 5.0
"""With the reference check on, how long after its create is answered a shipment waits before its last look
(`--reference-quiet`), and the longest a first look may precede the create it clears. Two machines on one
reference can each miss the other only when one's create and last look both fall between the other's first look
and create (newest-only lookups hide the older shipment from then on): with every run waiting this long between
its create and last look, that needs a first look older than this, which gets the wide look instead (a create
whose first look has grown older than half this before it could go out looks again first: `LOOK_ROUNDS`). A run
counts on others waiting the smaller of its own value and this default (`Purchaser._wide_after`): a larger value
on one machine is safe; a smaller one must be used on every machine buying the same orders."""
CLOCK_SLACK = 2.0
"""Seconds added to either side of a window judged by the API's whole-second times (`created_at`, `Date`)."""
OTHER_GRACE = 15.0
"""How long past the quiet wait a row watches another run's unbought shipment it gives way to, for its label to
adopt in this run rather than on a rerun (`Purchaser._give_way`); polled every `OTHER_POLL` seconds."""
OTHER_POLL = 1.0
LOOK_ROUNDS = 3
"""First looks a new shipment may take when each went stale before its create could go out (`_StaleLook`); the
last round's create goes out however old its look, and the wide look covers it."""
WIDE_LOOK_PAGES = 20
"""Pages of 100 the wide look reads through at most, per kind (bought, unbought), before it holds the row."""
LOOKED_META = "first_look:"
"""The journal's meta key (plus the reference): "<shipment id> <seconds>", how long before that shipment's create
was answered the reference's first look was sent; a shipment without one had no first look this run knows of."""
VERIFICATION_META = "address_verification:"
"""The journal's meta key (plus the reference) holding what verification found for the row's shipment."""
RATE_CHOICE_META = "rate_choice:"
"""The journal's meta key (plus the reference) holding why a delivery-time rule chose the row's rate."""
INSURANCE_FEE_META = "insurance_fee:"
"""The journal's meta key (plus the reference) holding the InsuranceFee the label was charged."""
MAX_BUY_ROUNDS = 6
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


_LABEL_FORMATS: tuple[str | None, ...] = (None, *get_args(LabelFormat))


def row_digest(row: ShipmentRow) -> str:
    """A fingerprint of what would be shipped, to notice a row edited between runs.

    A row's `label_format` is left out (a format is a property of the label file, not of the shipment): the row
    is hashed as if it had none, which is exactly how older shipctl hashed a row without one.
    """
    return _digest_with_format(row, None)


def _digest_with_format(row: ShipmentRow, label_format: str | None) -> str:
    data = row.model_dump(mode="json")
    data["label_format"] = label_format
    # Fields added since digests were first stored count only when set: a row that uses none of them hashes as an
    # older shipctl hashed it, so its journaled purchase is not taken for an edited row.
    for name in ADDED_FIELDS:
        if data.get(name) is None:
            data.pop(name, None)
    customs = data.get("customs_info")
    if isinstance(customs, dict) and customs.get("declared_value") is None:
        customs.pop("declared_value", None)
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def same_row(stored: str | None, row: ShipmentRow, digest: str | None = None) -> bool:
    """Whether a journal's digest is this row's (no digest stored: nothing to compare, so yes); `digest`, the
    row's own when the caller has it, spares hashing the row again in the usual case (the same row).

    Older shipctl hashed the row's `label_format` in: a digest it stored matches when the row is the same in
    everything else, whatever format either names (there are only a few formats, so each is tried).
    """
    if not stored or stored == digest:
        return True
    return any(stored == _digest_with_format(row, fmt) for fmt in _LABEL_FORMATS)


def label_filename(reference: str, url: str, *, shipment_id: str | None = None) -> str:
    """`<reference>.<ext>`; `<reference>-<shipment id>.<ext>` when the plain name could be another label's.

    A shipment id names one label for ever, so the long form cannot collide across rows, runs or journals.
    A reference too long for a file name is cut to its first 100 characters plus a hash of the whole of it.
    """
    ext = Path(url.split("?", 1)[0]).suffix.lower() or ".png"
    safe = _UNSAFE_NAME.sub("_", reference).strip("._") or "label"
    prefix_max = 100  # `safe` is ASCII, so characters are bytes
    if len(safe) > prefix_max:
        # A file name holds at most 255 bytes, and the download's temporary name is longer still: keep a
        # readable start, well under the limit, and a hash of the whole reference so that two long ones
        # sharing that start never share a file.
        digest = hashlib.blake2b(reference.encode(), digest_size=8).hexdigest()
        safe = safe[:prefix_max].rstrip("._") + "-" + digest
        if shipment_id is not None:
            safe += "-" + _UNSAFE_NAME.sub("_", shipment_id)[:64]
    elif shipment_id is not None or safe != reference:
        safe += "-" + _UNSAFE_NAME.sub("_", shipment_id or hashlib.blake2b(reference.encode()).hexdigest()[:8])
    return safe + ext


@dataclass(frozen=True)
class PurchaseOptions:
    select: SelectRule = "cheapest"
    carriers: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    label_format: str | None = None
    """`--label-format`: when given, every label is made and saved in it, whatever a row's `label_format` says
    (without it, a row's own `label_format`, else PNG)."""
    labels_dir: Path | None = None
    check_references: bool | None = False
    """None: the job decides from the key's mode. Before creating a shipment for a row this journal has never
    shipped, ask the API for a shipment with the row's reference (EasyPost accepts a reference in place of an
    id): one already bought -- by another manifest, a lost or set-aside journal -- is recorded, never bought
    again. The reference is looked up once more right before the buy. Two extra calls per new row."""
    verify: VerifyMode = "warn"
    """`--verify`: EasyPost verifies the destination inside `shipment.create` (no extra call) under `warn` (failures
    reported, bought) and `strict` (`verify_strict`: a failing address gets no shipment, so nothing is bought)."""
    deliver_within: int | None = None
    """`--deliver-within`: business days; a row's own `deliver_within` wins. A row with either rule is quoted through
    SmartRate (one paid call per quote, after its shipment is journaled) and gets the cheapest rate that arrives in
    time at `confidence` percent (`selection.choose_within`)."""
    confidence: int = DEFAULT_CONFIDENCE
    """`--confidence`: the SmartRate percentile every delivery-time rule of the run is judged at."""
    pins: Mapping[str, PlannedRow] | None = None
    """`apply`: the plan's rows by reference. Only they are bought, each on its planned shipment at its planned rate
    (none is chosen again); a row not in the plan is skipped."""
    max_drift: Drift = field(default_factory=Drift)
    """`apply --max-drift`: how far a planned price may have moved; beyond it the row fails, never bought."""
    quiet_seconds: float = QUIET_SECONDS
    """`--reference-quiet`: see `QUIET_SECONDS`."""


@dataclass
class Quote:
    """What phase one (create + choose) learned about a row."""

    reference: str
    shipment_id: str
    rate: Rate


class Purchaser:
    def __init__(
        self,
        engine: Engine,
        client: Any,
        journal: Journal,
        options: PurchaseOptions,
        *,
        claims: Claims | None = None,
        on_warning: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.journal = journal
        self.claims = claims
        self.options = options
        self.write_failure: WriteFailure | None = None
        self.on_warning = on_warning
        # Shipments this process created and has not tried to buy: no retrieve is needed to know their state.
        # Only ids: two-phase runs quote every row before buying, and rates for 100k rows would not fit.
        self._fresh: set[str] = set()
        # Label file names taken in this run (case-folded: A1.pdf and a1.pdf are one file on macOS and Windows).
        self._claimed: dict[str, str] = {}
        self.mode: str | None = None
        self.labels_saved = 0
        """Label files this run wrote into `labels_dir` (not those a resumed row already had there)."""
        self.overridden_formats: dict[str, str] = {}
        """reference -> the `label_format` a row asked for that `--label-format` overrode (a row is quoted more
        than once in a two-phase run: keyed, it is counted once)."""
        self.verifications: dict[str, str] = {}
        """reference -> what verification inside `shipment.create` found (the `address_verification` column)."""
        self._findings: dict[str, str] = {}  # verification findings not yet journaled (see `_verified`)
        self.unverified: set[str] = set()
        """References whose destination failed verification and that `--verify warn` let through."""
        self.rate_choices: dict[str, str] = {}
        """reference -> why a delivery-time rule chose its rate (the `rate_choice` column); only rows with a rule."""
        self.insurance_fees: dict[str, str] = {}
        """reference -> what insuring the label this run recorded bought was charged (the answer's InsuranceFee)."""
        self.smartrate_calls = 0
        """SmartRate calls this run made (answered): EasyPost bills them beyond a free tier."""
        self.wide_looks = 0
        """Rows whose first look came too long before their create (`_wide_look`), and the list calls that took."""
        self.wide_look_calls = 0
        # With the reference check on, shipments this process made: when each create was answered (monotonic),
        # and how long before that the reference's first look was sent. Dropped at the buy.
        self._made_at: dict[str, float] = {}
        self._looked: dict[str, float] = {}
        # The reference's newest shipment at its first look (None: none), while its create is under way: one that is
        # newest after a create's answer was lost was made since (`_lost_create`).
        self._first_seen: dict[str, str | None] = {}
        self._clock_offset = 0.0
        """The API's clock minus this machine's (seconds), from the last answer that gave its Date."""

    # -- phase one: a shipment with a chosen rate --------------------------------------------------------

    async def quote(self, row: ShipmentRow, line: int, digest: str) -> Quote | ResultRecord:
        """Return the journaled shipment and its chosen rate, or a final record (already bought / failed / held)."""
        ref = row.reference
        self._note_format(row)
        entry = self.journal.get(ref)
        if entry is not None and entry.shipment_id and entry.state == "bought":
            return await self._resume(row, entry, line)  # bought is bought, planned or not
        if self.options.pins is not None and ref not in self.options.pins:
            return _not_in_plan(ref)
        if entry is not None and entry.shipment_id:
            quoted_here = entry.state == "created" and entry.shipment_id in self._fresh
            if quoted_here and entry.digest == digest and entry.rate_id:
                # Quoted by this very process (which holds the claim) and not yet bought: the journal holds the rate.
                return Quote(ref, entry.shipment_id, _journaled_rate(entry))
        # The reference is the unit of "never twice": claim it before anything that could lead to a buy.
        claim = self.claims.claim(ref) if self.claims is not None else Claim("claimed")
        if claim.outcome == "held":
            return self._held(ref, claim)
        known = entry.shipment_id if entry is not None else None
        edited = entry is not None and not same_row(entry.digest, row, digest)
        settled = await self._known_shipment(row, claim, known, edited=edited, digest=digest)
        if isinstance(settled, ResultRecord):
            return settled
        if settled is None and claim.outcome == "bought" and self.claims is not None:
            # The claimed purchase is unknown to the API (404: a wiped sandbox): the claim is stale.
            self.claims.forget(ref, claim.shipment_id)
            return await self.quote(row, line, digest)
        if settled is None:
            made = await self._new_shipment(row, digest, claim)
            if isinstance(made, ResultRecord):
                return made
            settled = made
        return await self._choose(row, settled, digest)

    async def _new_shipment(self, row: ShipmentRow, digest: str, claim: Claim) -> Shipment | ResultRecord:
        """A shipment made for the row, after the first look when the reference check is on (timed: see
        `QUIET_SECONDS`); or the row's record (adopted, held, failed)."""
        if not self.options.check_references:
            return await self._create(row, digest)
        sent: list[float] = []  # when the first look went out (its last attempt): a wait for a slot is not blind

        def stamp() -> None:
            sent.append(time.monotonic())

        try:
            for fresh in range(LOOK_ROUNDS, 0, -1):
                looked = await self._first_look(row, digest, stamp, claim)
                if looked is not None:
                    return looked
                try:
                    made = await self._create(row, digest, look_sent=sent[-1] if fresh > 1 else None,
                                              looked=sent[-1])
                except _StaleLook:
                    continue  # nothing was sent: look again, rather than make a shipment the wide look must clear
                break
        finally:
            self._first_seen.pop(row.reference, None)
        if isinstance(made, Shipment):
            answered = time.monotonic()
            self._made_at[made.id] = answered
            self._looked[made.id] = answered - sent[-1]
        return made

    async def _first_look(self, row: ShipmentRow, digest: str, on_send: Callable[[], None],
                          claim: Claim) -> Shipment | ResultRecord | None:
        """Across machines nothing can claim for us: ask the API for the reference's newest shipment first; a
        bought one is adopted (a record). A recent unbought one another run made holds the row: that run is
        between its create and its buy, and once it has bought, a shipment of ours made now would be the newest,
        hiding its label from our last look (measured: a second machine started 0.5–3 s after the first bought
        4–22 of 40 rows twice). Otherwise this run makes its own, and the last look settles the rest.

        One that a create of a run holding this claim made while its answer was never recorded (the run was killed,
        or its create's outcome was unknown: `Claim.creates`) is that run's, so the row's: returned, to be bought."""
        existing = await self._reconcile(row.reference, on_send)
        self._first_seen[row.reference] = existing.id if existing is not None else None
        if existing is None or existing.reference != row.reference:
            return None
        span = self._unrecorded_span(row, existing, claim, digest)
        if span is not None:
            self._looked[existing.id] = span
            return existing
        return await self._settle_against(row, existing, digest)

    def _unrecorded_span(self, row: ShipmentRow, existing: Shipment, claim: Claim, digest: str) -> float | None:
        """When `existing` (unbought, recent, unknown to the claims) is what an unanswered create of `claim.creates`
        made -- for this very row (its digest), made from the request this run would send (`made_from`: every
        address field, the parcel, every option), after that create's first attempt went out and before its last
        could have been answered -- how long after that run's first look it was made (for the wide look); else
        None.

        Buying it is safe even were it another machine's, made from the same row: a shipment is bought once, and
        the API refuses the other buy. What is never bought is a shipment no create of this claim could have made
        (a row held or refused before any create leaves no mark), nor one that differs from the row in anything
        the request gives (a storefront's quote with a signature, another apartment)."""
        made = self._made_here(existing)
        if existing.bought or made is None or not claim.creates or not _lately(existing):
            return None
        if self._known(row.reference, existing.id):
            return None
        if not (made_from(existing.raw, self._shipment_request(row)) and self._verified_enough(existing, row)):
            return None
        for create in claim.creates:
            answered_by = create.last_sent + DEFAULT_TIMEOUT + CLOCK_SLACK
            if create.digest == digest and create.first_sent - CLOCK_SLACK <= made <= answered_by:
                looked = create.looked_at if create.looked_at is not None else create.first_sent
                return max(0.0, made - looked) + CLOCK_SLACK  # its time is whole seconds: never too short a span
        return None

    async def _settle_against(self, row: ShipmentRow, existing: Shipment, digest: str | None) -> ResultRecord | None:
        """Either look found `existing`, the reference's newest shipment and not ours: bought, its label is adopted;
        another run's, unbought and recent, the row gives way to it; unbought and abandoned, a label it may hide is
        looked for (`_hidden_label`); else None (nothing stops ours)."""
        if existing.bought:
            return await self._adopt(row, existing, found=True, digest=digest)
        hold = self._foreign_hold(row.reference, existing)
        if hold is not None:
            return await self._give_way(row, existing, hold, digest)
        ref = row.reference
        if (existing.reference == ref and not _lately(existing) and not self._known(ref, existing.id)
                and made_from(existing.raw, self._shipment_request(row))):
            # Only one a create of this row could have made: a storefront's quotes would each cost list calls, and
            # on a busy account a hold that never clears (its window is fixed to the quote).
            return await self._hidden_label(row, existing, digest)
        return None

    async def _give_way(self, row: ShipmentRow, other: Shipment, hold: ResultRecord,
                        digest: str | None) -> ResultRecord:
        """The row gives way to another run's unbought shipment `other`: that run is about to buy it, within its
        quiet wait and a buy. Watched until then (`OTHER_GRACE`): bought, its label is adopted in this run;
        still unbought (a run buying later, one that gave way itself, another tool's quote), `hold`."""
        self.engine.stats.waiting += 1
        try:
            while (age := _age_seconds(other)) is not None and age < self._wide_after + OTHER_GRACE:
                if not await self.engine.pause(OTHER_POLL):
                    break
                current = await self._reconcile(other.id)
                if current is None:
                    break
                if current.bought:
                    return await self._adopt(row, current, found=True, digest=digest)
                other = current
        finally:
            self.engine.stats.waiting -= 1
        return hold

    def _known(self, ref: str, shipment_id: str) -> bool:
        """Whether a run of this state directory made (or adopted) `shipment_id` for the reference."""
        return self.claims is not None and self.claims.knows(ref, shipment_id)

    def _made_here(self, shipment: Shipment) -> float | None:
        """When the API made `shipment`, by this machine's clock (epoch seconds): its `created_at` less the API's
        clock offset (`_clock_offset`); None when its answer did not say."""
        return None if shipment.created_at is None else shipment.created_at.timestamp() - self._clock_offset

    def _foreign_hold(self, ref: str, existing: Shipment) -> ResultRecord | None:
        """The row held when `existing`, the reference's newest shipment and unbought, is another run's (no claim of
        this state directory knows it) and was made within `FOREIGN_SECONDS`: that run may be about to buy it."""
        ours = self._known(ref, existing.id)
        if existing.reference == ref and not ours and _lately(existing):
            return self._held(ref, Claim("held", holder=(
                f"a run this machine's claims do not know made {existing.id} for this reference {_age(existing)} "
                "and has not bought it yet: another machine or state directory, or another tool quoting it?")))
        return None

    async def _last_look(self, row: ShipmentRow, quote: Quote) -> ResultRecord | None:
        """Right before the buy, the reference's newest shipment once more: another machine's purchase is adopted
        unless it lands within this one call. A newer shipment another run made and has not bought holds the row:
        that run sees its own as the newest and will buy it, and ours cannot be seen from there, so the run that
        made the older one gives way (its rerun adopts the other's label).

        Ours the newest, it must be `quiet_seconds` old first (`QUIET_SECONDS`; one made by this process has
        waited already, `quiet_left`; another's age is the API's word). Raises `Stopped` when the run stops while
        it waits. Then, unless this reference's first look came less than `_wide_after` before our create was
        answered, the wide look (`_wide_look`). A newer unbought shipment of another run: the row gives way to it
        (`_give_way`)."""
        ref = row.reference
        quiet = self.options.quiet_seconds
        while True:
            existing = await self._reconcile(ref)
            if existing is None:
                return None
            if existing.id != quote.shipment_id:
                return await self._settle_against(row, existing, self._journal_digest(ref))
            age = None if quote.shipment_id in self._made_at else _age_seconds(existing)
            if age is None or age >= quiet + CLOCK_SLACK:
                break
            if not await self.engine.pause(quiet + CLOCK_SLACK - age):
                raise Stopped
        span = self._first_look_span(ref, quote.shipment_id)
        if span is None or span < self._wide_after:
            return None  # none (made with the check off, or by an older shipctl): the newest alone decides
        return await self._wide_look(row, existing, span)

    async def _cleared(self, row: ShipmentRow, quote: Quote) -> tuple[bool, ResultRecord | None]:
        """The last look: (True, None) to go on to the buy; else (False, the row's record, or None when the run
        stopped while it waited: the row stays created and the rerun buys it)."""
        try:
            looked = await self._last_look(row, quote)
        except Stopped:
            return False, None
        finally:
            self._made_at.pop(quote.shipment_id, None)
            self._looked.pop(quote.shipment_id, None)
        return looked is None, looked

    def quiet_left(self, quote: Quote) -> float:
        """Seconds before `quote`'s last look may be sent (`QUIET_SECONDS`); 0 without the reference check, and for
        a shipment another process made (its age is read from the API at the last look)."""
        made = self._made_at.get(quote.shipment_id)
        if not self.options.check_references or made is None:
            return 0.0
        return max(0.0, self.options.quiet_seconds - (time.monotonic() - made))

    def _first_look_span(self, ref: str, shipment_id: str) -> float | None:
        """How long before `shipment_id`'s create was answered the reference's first look went out; None when it
        had none this run or its journal knows of (made with the check off, or by an older shipctl)."""
        if shipment_id in self._looked:
            return self._looked[shipment_id]
        stored = self.journal.meta(LOOKED_META + ref)
        made, _, span = (stored or "").partition(" ")
        try:
            return float(span) if made == shipment_id else None
        except ValueError:
            return None

    async def _wide_look(self, row: ShipmentRow, ours: Shipment, span: float) -> ResultRecord | None:
        """Our first look went out `span` seconds (at least `quiet_seconds`) before our create was answered: read
        every shipment the account made in that time through EasyPost's list (it has no reference filter) for one
        of this reference another run made. Bought, it is adopted. Unbought, the row gives way to it (`_give_way`)
        when that run's last look may have come before our create (`_may_buy_unseen`: that run would buy without
        seeing ours); made later, that run will see ours as the newest and give way itself."""
        ref = row.reference
        if ours.created_at is None:
            return None  # EasyPost always says; a row held on every rerun for want of a time would never ship
        self.wide_looks += 1
        start = ours.created_at - dt.timedelta(seconds=span + CLOCK_SLACK)
        end = ours.created_at + dt.timedelta(seconds=CLOCK_SLACK)
        # Unbought first: a shipment bought between the two reads is then in the second. Read the other way round,
        # one bought in between would be in neither (it cannot go back to unbought).
        try:
            for purchased in (False, True):
                async for other in self._made_between(ref, start, end, purchased=purchased):
                    if other.id == ours.id:
                        continue
                    if other.bought:
                        return await self._adopt(row, other, found=True, digest=self._journal_digest(ref))
                    if not self._may_buy_unseen(other, ours):
                        continue
                    return await self._give_way(row, other, self._held(ref, Claim("held", holder=(
                        f"a run this machine's claims do not know made {other.id} for this reference "
                        f"{_age(other)}, before this run's shipment {ours.id} but after its first look, and has "
                        "not bought it yet: another machine or state directory, or another tool quoting it?"))),
                        self._journal_digest(ref))
        except _TooMany:
            return self._held(ref, Claim("held", holder=(
                f"the account made more than {WIDE_LOOK_PAGES * 100} shipments around this run's shipment "
                f"{ours.id} ({span:.0f} s before it): too many to rule out another run's for this reference")))
        return None

    async def _made_between(self, ref: str, start: dt.datetime, end: dt.datetime, *,
                            purchased: bool) -> AsyncIterator[Shipment]:
        """The account's shipments made in [start, end], bought or not, that carry this reference and no claim of
        this state directory knows, page by page (EasyPost's list has no reference filter). Raises `_TooMany` past
        `WIDE_LOOK_PAGES` pages."""
        before: str | None = None
        for _ in range(WIDE_LOOK_PAGES):
            page, more = await self.engine.call(
                api.made_between, self.client, start=start, end=end, purchased=purchased, before_id=before)
            self.wide_look_calls += 1
            for other in page:
                if other.reference is None or not _same_reference(other.reference, ref):
                    continue
                if not self._known(ref, other.id):
                    yield other
            if not more or not page:
                return
            before = page[-1].id
        raise _TooMany

    async def _hidden_label(self, row: ShipmentRow, newest: Shipment, digest: str | None) -> ResultRecord | None:
        """`newest`, the reference's newest shipment, made from this row's request, is unbought and older than
        `FOREIGN_SECONDS`: abandoned, so the row may be shipped. But a label bought before it was made may be hidden
        behind it (a create whose answer was lost landing after its resend was bought): the
        account's bought shipments made in the `SETTLE_SECONDS` before it (as long as a create can take to land)
        are read, and this reference's label there is adopted."""
        ref = row.reference
        if newest.created_at is None:
            return None
        start = newest.created_at - dt.timedelta(seconds=SETTLE_SECONDS + CLOCK_SLACK)
        end = newest.created_at + dt.timedelta(seconds=CLOCK_SLACK)
        self.wide_looks += 1
        try:
            async for other in self._made_between(ref, start, end, purchased=True):
                if other.bought:
                    return await self._adopt(row, other, found=True, digest=digest)
        except _TooMany:
            return self._held(ref, Claim("held", holder=(
                f"the account made more than {WIDE_LOOK_PAGES * 100} shipments in the {SETTLE_SECONDS} s before "
                f"{newest.id}, this reference's newest (unbought): too many to rule out a label bought before it")))
        return None

    def _may_buy_unseen(self, other: Shipment, ours: Shipment) -> bool:
        """Whether the run that made `other` (unbought, another run's) may have sent its last look before our
        create, and so may buy it without seeing ours: it was made `_wide_after` or more before ours (whole
        seconds: `CLOCK_SLACK`), and ours is too young for such a buy to have landed already."""
        if other.created_at is None or ours.created_at is None:
            return True
        ahead = (ours.created_at - other.created_at).total_seconds()
        age = _age_seconds(ours)
        young = age is None or age < SETTLE_SECONDS
        return ahead > self._wide_after - CLOCK_SLACK and young and _lately(other)

    @property
    def _wide_after(self) -> float:
        """The first look's age (at our create's answer) from which the wide look runs, and the least wait this run
        counts on from any other: this run's own wait, or the default if that is longer. Another machine that
        waits longer than the default is then never counted on for more than it promises, and one that waits
        less than the default must have every machine wait as little."""
        return min(self.options.quiet_seconds, QUIET_SECONDS)

    def _note_format(self, row: ShipmentRow) -> None:
        if self.options.label_format and row.label_format not in (None, self.options.label_format):
            self.overridden_formats[row.reference] = str(row.label_format)

    async def _create(
        self, row: ShipmentRow, digest: str, *, look_sent: float | None = None, looked: float | None = None,
    ) -> Shipment | ResultRecord:
        """A new shipment for the row; a failed record when `verify_strict` refused its destination (no shipment
        exists then, so the claim is given up). With `look_sent` (when the first look went out), raises
        `_StaleLook` instead of sending the create once that look is older than half `_wide_after` (a wait for a
        slot, 429s), as long as no attempt the API may have acted on has gone out.

        With the reference check on (`looked`: when the first look went out), every attempt is marked in the
        claims before it is sent (`Claims.creating`), and one whose outcome is unknown is not sent again blindly:
        the reference's newest shipment says whether it landed (`_lost_create`)."""
        past = self._past_label_date(row, digest)
        if past is not None:
            return past
        marks = _CreateMarks(self.claims if looked is not None else None, row.reference, digest, looked)

        def fresh_enough() -> None:
            if look_sent is not None and not marks.acted and time.monotonic() - look_sent > self._wide_after / 2:
                raise _StaleLook
            marks.stamp()

        request = self._shipment_request(row)
        made: Shipment | ResultRecord | None = None
        try:
            for attempt in itertools.count(1):
                try:
                    made = await self.engine.call(
                        api.create_shipment, self.client, request, before_send=fresh_enough,
                        on_rate_limited=marks.refused_send, retry_unknown=looked is None,
                    )
                    return made
                except CallFailure as failure:
                    if looked is None or not failure.outcome_unknown:
                        made = self._refused_create(row, digest, failure)
                        return made
                    marks.unknown += 1
                    made = await self._lost_create(row, digest, failure, request, marks.first_sent)
                    if made is not None:
                        return made
                    if attempt >= self.engine.retry.max_attempts or self.engine.stopping:
                        raise
                    self.engine.stats.retries += 1
                    await anyio.sleep(self.engine.retry.delay(attempt, failure.retry_after))
            raise AssertionError("unreachable")
        finally:
            marks.settle(made)

    def _refused_create(self, row: ShipmentRow, digest: str, failure: CallFailure) -> ResultRecord:
        """A create refused for good: the row's record when `verify_strict` refused its destination; else raised."""
        if failure.code != addresses.VERIFY_FAILURE:
            raise failure
        self.verifications[row.reference] = addresses.failure_summary(failure)
        return self.fail(row.reference, failure.code, failure.message, shipment_id=None, digest=digest)

    def _past_label_date(self, row: ShipmentRow, digest: str) -> ResultRecord | None:
        if row.label_date and normalize.ship_day(row.label_date) < dt.date.today():
            # Judged now, not when the manifest is read: a rerun the next day still resumes what was bought.
            return self.fail(
                row.reference, LABEL_DATE_PAST,
                f"label_date {row.label_date} is in the past: a label cannot be dated before today "
                f"({dt.date.today().isoformat()}); nothing was bought — give a date from today on",
                shipment_id=None, digest=digest,
            )
        return None

    async def _lost_create(self, row: ShipmentRow, digest: str, failure: CallFailure, request: dict[str, Any],
                           first_sent: float) -> Shipment | ResultRecord | None:
        """A create of the row went out and its answer was lost: whether it made a shipment, the reference's newest
        says. Sent again blindly, it would make a second, and the first -- unknown to the claims, made before ours
        -- would look like another machine's to the wide look, which would give way to it and hold the row.

        Newer than the first look's and unknown to the claims: bought (by another run meanwhile), adopted; made
        from this very request (`made_from`) since our first attempt went out, it is the row's shipment (had
        another machine made it from the same row, the API still sells it once); anything else is another run's,
        settled as either look settles one.
        None: nothing landed, send again. Raises `failure` when the reference cannot be read."""
        ref = row.reference
        try:
            landed = await self._reconcile(ref)
        except CallFailure:
            raise failure from None
        if landed is None or landed.reference != ref or landed.id == self._first_seen.get(ref):
            return None
        if self._known(ref, landed.id):
            return None
        if landed.bought:
            return await self._adopt(row, landed, found=True, digest=digest)
        made = self._made_here(landed)
        if (made is not None and made >= first_sent - CLOCK_SLACK and made_from(landed.raw, request)
                and self._verified_enough(landed, row)):
            return landed
        return await self._settle_against(row, landed, digest)

    def _shipment_request(self, row: ShipmentRow) -> dict[str, Any]:
        """The `shipment.create` request; `--label-format` has the label made in its format from the start (the
        row itself, and so its digest, is left as the manifest says: changing the flag is not editing the row)."""
        request = row.to_easypost()
        if self.options.verify != "off" and domestic_zone(row.to_address.country) == "US":
            # Sent only to verify: EasyPost verifies whenever the key is there, even as `verify: false`. Abroad
            # its verification is a service of its own an account subscribes to: those rows are not verified.
            flag = "verify_strict" if self.options.verify == "strict" else "verify"
            request["to_address"] = {**request["to_address"], flag: True}
        if self.options.label_format:
            request["options"] = {**request.get("options", {}), "label_format": self.options.label_format}
        return request

    async def _resume(self, row: ShipmentRow, entry: JournalRow, line: int) -> ResultRecord:
        """A row this journal already bought: re-emit it without a call (and flag a row edited since)."""
        record = await self._finish_resumed(row, entry)
        if not same_row(entry.digest, row) and record.error_code is None:
            # The label on the parcel is not what the manifest now says: never silently exit 0.
            record.error_code = EDITED_AFTER_PURCHASE
            record.error_message = (
                "the row changed after its label was bought; not buying it again "
                "(refund the label and give the row a new reference to ship the edited version)"
            )
            # The record carries the reference, the warning adds where the row is: each said once.
            self.on_warning(f"row {line} (reference {row.reference}): {record.error_message}")
        return record

    async def _known_shipment(
        self, row: ShipmentRow, claim: Claim, known: str | None, *, edited: bool, digest: str
    ) -> Shipment | ResultRecord | None:
        """Settle every shipment already made for this reference (the claim's history, the journal's) first.

        A bought one is adopted (a record); an unbought one of this parcel is reused, so a buy of it still in flight
        from a run that died can only meet ours at the API, which refuses the second. One that cannot be reused but
        had a buy sent within `SETTLE_SECONDS` makes the row wait: that buy may still land. None: make a new one.
        """
        sent_ago = dict(claim.history)
        reuse: Shipment | None = None
        pending: str | None = None
        for candidate in dict.fromkeys([*sent_ago, *([known] if known else [])]):
            try:
                current = await self._reconcile(candidate)
            except CallFailure as failure:
                # A shipment whose state cannot be read now may have been bought: never "failed", never replaced.
                return self.unconfirmed(row.reference, f"{failure.code}: {failure.message}", shipment_id=candidate)
            if current is None:
                continue  # gone (another account, a wiped sandbox): it cannot have been bought here
            if current.bought:
                ours = self.claims.journal if self.claims is not None else None
                elsewhere = claim.outcome == "bought" and claim.journal not in (None, ours)
                return await self._adopt(row, current, found=candidate != known or elsewhere, digest=digest)
            if candidate == claim.shipment_id and claim.outcome == "bought":
                # The claims say bought, the API says not: never guess with money. Nothing is bought here.
                return self.fail(
                    row.reference, "CLAIM_CONFLICT",
                    f"the claims record {candidate} as bought for this reference but the API shows it unbought; "
                    "nothing was bought — rerun later, or give the row a new reference",
                    shipment_id=None, release=False,
                )
            # One made unverified (a dry run under --verify off) is not for `strict`, which buys only what it saw
            # verified; but a buy of it still in flight makes the row wait as any other would.
            reusable = self._verified_enough(current, row) and (
                (candidate == known and not edited) or (candidate != known and _same_parcel(current, row)))
            if reusable:
                reuse = reuse or current
            elif (ago := sent_ago.get(candidate)) is not None and ago < SETTLE_SECONDS:
                pending = candidate
        if pending is not None:
            return self.fail(
                row.reference, PREVIOUS_BUY_UNSETTLED,
                f"a buy of this reference's earlier shipment {pending} was sent {sent_ago[pending]:.0f} s ago by a run "
                f"that stopped, and may still land; nothing was bought — rerun in {SETTLE_SECONDS // 60} minutes",
                shipment_id=None, release=False,
            )
        return reuse

    def _verified_enough(self, shipment: Shipment, row: ShipmentRow) -> bool:
        """Whether `shipment` may be bought under this run's `--verify`: under `strict`, only one whose destination
        was verified when it was made (a domestic one; abroad nothing is verified)."""
        return (self.options.verify != "strict" or shipment.destination is not None
                or domestic_zone(row.to_address.country) != "US")

    async def _choose(self, row: ShipmentRow, shipment: Shipment, digest: str) -> Quote | ResultRecord:
        """Choose the rate and commit the shipment id (claim, then journal with the rate) before any buy."""
        ref = row.reference
        self._fresh.add(shipment.id)
        self.mode = self.mode or shipment.mode
        refused = self._verified(row, shipment, digest)
        if refused is not None:
            return refused
        rule = delivery_rule(row.deliver_within, self.options.deliver_within, self.options.confidence)
        choice: str | None = None
        pin = self.options.pins.get(ref) if self.options.pins is not None else None
        try:
            if pin is not None:
                rule = None  # the plan chose; its reason is the plan's
                rate = self._planned_rate(pin, shipment)
            elif rule is None:
                rate = choose_rate(
                    shipment.rates,
                    carrier=row.carrier,
                    service=row.service,
                    rule=self.options.select,
                    carriers=self.options.carriers,
                    services=self.options.services,
                )
            else:
                transit = await self._transit(ref, shipment, digest)
                if isinstance(transit, ResultRecord):
                    return transit
                rate, choice = choose_within(
                    shipment.rates, rule, transit, carrier=row.carrier, service=row.service,
                    carriers=self.options.carriers, services=self.options.services,
                )
        except NoMatchingRate as exc:
            return self.fail(ref, "NO_MATCHING_RATE", exc.message, shipment_id=shipment.id, digest=digest)
        except DeliveryTimeNotMet as exc:
            return self.fail(ref, exc.code, f"{exc.reason}; nothing was bought; offered: {exc.offered}",
                             shipment_id=shipment.id, digest=digest)
        except PlanNotHeld as exc:
            return self.fail(ref, exc.code, exc.message, shipment_id=shipment.id, digest=digest)
        if rule is None and self.claims is not None and not self.claims.attach(ref, shipment.id):
            return self._held(ref, Claim("held", holder="another run took the claim over"))
        meta = self._take_findings(ref)
        if shipment.id in self._looked:
            meta[LOOKED_META + ref] = f"{shipment.id} {self._looked[shipment.id]:.3f}"
        if choice is not None:
            self.rate_choices[ref] = choice
            # Kept with the journal, so a rerun re-emits the bought row with it (a meta key, as verification's).
            meta[RATE_CHOICE_META + ref] = choice
        self.journal.update(
            ref, meta=meta, state="created", shipment_id=shipment.id, digest=digest, error_code=None,
            error_message=None, rate_id=rate.id, carrier=rate.carrier, service=rate.service, rate=rate.rate,
            currency=rate.currency, delivery_days=rate.delivery_days,
            retail_rate=rate.retail_rate, list_rate=rate.list_rate,
        )
        return Quote(reference=ref, shipment_id=shipment.id, rate=rate)

    def _planned_rate(self, pin: PlannedRow, shipment: Shipment) -> Rate:
        """The plan's rate on the plan's shipment, as the API offers it now; PlanNotHeld when it is gone, or when
        its price moved beyond `--max-drift` (never bought at a price nobody approved)."""
        if shipment.id != pin.shipment_id:
            raise PlanNotHeld(PLAN_SHIPMENT_CHANGED, (
                f"the plan bought on shipment {pin.shipment_id}, but this reference's shipment is now {shipment.id} "
                "(the journal changed since the plan); nothing was bought — make a new plan"))
        rate = next((r for r in shipment.rates if r.id == pin.rate_id), None)
        if rate is None:
            raise PlanNotHeld(RATE_GONE, (
                f"the planned rate {pin.carrier} {pin.service} ({pin.rate_id}) is no longer offered on "
                f"{shipment.id}; nothing was bought — make a new plan"))
        if money.currency_of(rate.currency) != pin.currency or not self.options.max_drift.allows(pin.rate, rate.amount):
            raise PlanNotHeld(RATE_DRIFT, (
                f"{pin.carrier} {pin.service} was planned at {money.format_money(pin.rate, pin.currency)} and is now "
                f"{money.format_money(rate.amount, money.currency_of(rate.currency))}, beyond --max-drift "
                f"{self.options.max_drift}; nothing was bought"))
        return rate

    def _verified(self, row: ShipmentRow, shipment: Shipment, digest: str) -> ResultRecord | None:
        """Note what verification found on the shipment's destination; under `strict` a failed one fails the row
        (nothing bought; the unbought shipment stays journaled). A shipment made unverified (reused from a run
        under `--verify off`) says nothing, and goes on."""
        if self.options.verify == "off" or shipment.destination is None:
            return None
        verdict = addresses.judge(row.to_address.to_easypost(), shipment.destination)
        self.verifications[row.reference] = verdict.summary()
        # Kept with the journal, so a rerun re-emits the bought row with it (no column of its own: a meta key),
        # written in the same commit as the row's next write (the shipment and its rate, or its failure).
        self._findings[row.reference] = verdict.summary()
        if verdict.outcome != "failed":
            return None
        check = verdict.check
        if self.options.verify == "strict":
            return self.fail(row.reference, addresses.VERIFY_FAILURE,
                             f"{addresses.STRICT_PREFIX}{check.codes} ({check.reason})",
                             # Never released: the shipment may be one a dead run sent a buy for (reused after a
                             # crash); a later run takes the claim over and reconciles it before anything else.
                             shipment_id=shipment.id, digest=digest, release=False)
        if row.reference not in self.unverified:
            self.unverified.add(row.reference)
            self.on_warning(f"reference {row.reference}: the destination failed verification ({check.codes}: "
                            f"{check.reason}); --verify warn buys it anyway")
        return None

    async def _transit(self, ref: str, shipment: Shipment, digest: str) -> TransitTimes | ResultRecord:
        """SmartRate for the row's shipment, asked only once the shipment is claimed and journaled: the call happens
        between create and buy, like choosing any rate, and a rerun reuses the shipment and asks again."""
        if self.claims is not None and not self.claims.attach(ref, shipment.id):
            return self._held(ref, Claim("held", holder="another run took the claim over"))
        self.journal.update(ref, meta=self._take_findings(ref), shipment_id=shipment.id, digest=digest)
        transit: TransitTimes = await self.engine.call(smart_rates, self.client, shipment.id)
        self.smartrate_calls += 1
        return transit

    def rate_choice_of(self, reference: str, purchase: Purchase | None) -> str | None:
        """The row's `rate_choice`: this run's, else, for a label this journal bought earlier, what was said then."""
        found = self.rate_choices.get(reference)
        if found is None and purchase == "resumed":
            found = self.journal.meta(RATE_CHOICE_META + reference)
        return found

    def insurance_fee_of(self, reference: str, purchase: Purchase | None) -> str | None:
        """What insuring the row's label was charged, as the API's answer said: this run's purchase, else what the
        journal kept when the label was recorded bought (None for a journal older than this, never guessed)."""
        found = self.insurance_fees.get(reference)
        if found is None and purchase in ("resumed", "found"):
            found = self.journal.meta(INSURANCE_FEE_META + reference)
        return found

    def verification_of(self, reference: str, purchase: Purchase | None) -> str | None:
        """The row's `address_verification`: this run's finding, else, for a label this journal bought earlier, what
        was found then."""
        found = self.verifications.get(reference)
        if found is None and purchase == "resumed":
            found = self.journal.meta(VERIFICATION_META + reference)
        return found

    async def _adopt(self, row: ShipmentRow, shipment: Shipment, *, found: bool, digest: str | None) -> ResultRecord:
        """Record a label already bought for this reference (by this journal's earlier run, or elsewhere)."""
        bought_by = None
        if self.claims is not None:
            bought_by = self.claims.journal_of(row.reference)
            if bought_by == self.claims.journal:  # claimed by this run: who bought it is not known here
                bought_by = None
            # The reference is bought, whatever this row makes of it: the claim says so before anything else, so
            # no later run (nor a refusal below releasing the claim) can read it as free.
            self.claims.settle(row.reference, shipment.id)
        if found and (not _same_reference(shipment.reference, row.reference) or not _same_parcel(shipment, row)):
            return self.fail(row.reference, "REFERENCE_IN_USE", _in_use(row.reference, shipment, bought_by),
                             shipment_id=None, digest=digest)
        old = self._journal_digest(row.reference)
        if not found and digest is not None and not same_row(old, row, digest):
            # This journal's own shipment, bought for the row as it was then (its run died before recording it).
            record = await self._record_bought(row, shipment, purchase="resumed")
            if record.error_code is None:
                record.error_code = EDITED_AFTER_PURCHASE
                record.error_message = (
                    "the row changed after its label was bought; not buying it again (refund the label and give "
                    "the row a new reference to ship the edited version)"
                )
            return record
        if digest is not None:
            self.journal.update(row.reference, digest=digest)
        return await self._record_bought(row, shipment, purchase="found" if found else "resumed")

    def _held(self, reference: str, claim: Claim) -> ResultRecord:
        return ResultRecord(
            reference=reference, status="skipped", error_code=HELD_BY_OTHER_RUN,
            error_message=f"held by another shipctl run ({claim.holder}); nothing bought here — rerun after it ends",
        )

    async def _reconcile(self, shipment_id: str, on_send: Callable[[], None] | None = None) -> Shipment | None:
        """The shipment as the API has it now (`shipment_id` may be a reference); None when it does not exist.
        `on_send` runs as each attempt goes out."""
        try:
            shipment = await self.engine.call(api.retrieve_shipment, self.client, shipment_id, before_send=on_send)
        except CallFailure as failure:
            if failure.http_status == 404:
                return None  # gone (another account, a wiped sandbox): a new shipment is safe
            raise
        self.mode = self.mode or shipment.mode
        if shipment.seen_at is not None:
            self._clock_offset = shipment.seen_at.timestamp() - time.time()
        return shipment

    # -- phase two: buy ----------------------------------------------------------------------------------

    async def buy(self, row: ShipmentRow, quote: Quote) -> ResultRecord | None:
        """The row bought (or failed, or unconfirmed); None when the run stopped before the buy was sent."""
        if not await self.engine.pause(self.quiet_left(quote)):
            return None
        # Shielded: once a buy is under way, a cancelled run still waits for its answer and journals it, so a
        # purchase that completes during shutdown is recorded now rather than reconciled by the next run.
        with anyio.CancelScope(shield=True):
            record = await self._buy(row, quote)
        return record

    async def _buy(self, row: ShipmentRow, quote: Quote) -> ResultRecord | None:
        ref = row.reference
        if self.options.check_references:
            go, record = await self._cleared(row, quote)
            if not go:
                return record
        marks = _SendMarks(self.claims, ref, quote.shipment_id)
        insurance: Decimal | None = row.insurance
        last: CallFailure | None = None
        uncertain = False  # an earlier round's outcome was unknown: a later refusal proves nothing
        for attempt in range(1, MAX_BUY_ROUNDS + 1):
            self._fresh.discard(quote.shipment_id)
            try:
                # Every send (each round, each 429 resend) is stamped in the claims first: a taker times its wait
                # from the last one. None is sent once the run is stopping.
                shipment = await self.engine.call(
                    api.buy_shipment, self.client, quote.shipment_id, str(quote.rate.id), insurance,
                    retry_unknown=False, unless_stopping=True, before_send=marks.stamp,
                    on_rate_limited=marks.refused_send,
                )
            except (Stopped, _LostClaim) as stopped:
                if uncertain:
                    break  # an earlier round may have landed: unconfirmed, the mark kept
                marks.restore()  # nothing of ours was sent
                if isinstance(stopped, _LostClaim):
                    return self._held(ref, Claim("held", holder="another run took the claim over"))
                return None  # the row stays created; the rerun buys it
            except CallFailure as failure:
                last = failure
                definite = not (failure.outcome_unknown or failure.code == POSTAGE_EXISTS)
                if definite and not uncertain:
                    # A definite refusal (4xx) of the first attempt: nothing was bought.
                    marks.restore()
                    return self.fail(ref, failure.code, failure.message, shipment_id=quote.shipment_id)
                uncertain = True
            else:
                return await self._record_bought(row, shipment, purchase="new")
            # The buy may have happened: the shipment itself is the only truth.
            current = await self.engine.call(api.retrieve_shipment, self.client, quote.shipment_id)
            if current.bought:
                return await self._record_bought(row, current, purchase=marks.who_bought(current, quote, last))
            if last.code == POSTAGE_EXISTS or not last.transient or self.engine.stopping or attempt == MAX_BUY_ROUNDS:
                break  # contradictory answers, shutting down or out of rounds: do not guess, let a rerun settle it
            self.engine.stats.retries += 1
            await anyio.sleep(self.engine.retry.delay(attempt, last.retry_after))
        detail = f"{last.code}: {last.message}" if last else "no answer"
        return self.unconfirmed(ref, detail, shipment_id=quote.shipment_id)

    def unconfirmed(self, reference: str, detail: str, *, shipment_id: str | None) -> ResultRecord:
        return self.fail(
            reference, BUY_UNCONFIRMED,
            f"the buy may have gone through ({detail}); rerun the same command to reconcile it — "
            "do not re-ship this row from a new manifest or journal",
            shipment_id=shipment_id, release=False,
        )

    def _journal_digest(self, reference: str) -> str | None:
        entry = self.journal.get(reference)
        return entry.digest if entry is not None else None

    async def _record_bought(self, row: ShipmentRow, shipment: Shipment, *, purchase: Purchase) -> ResultRecord:
        try:
            entry = self._journal_bought(row, shipment)
        except WriteFailure as failure:
            # Bought, and known to be: report it (and its cost) now. The shipment was journaled before its buy, so
            # the rerun reconciles it into the journal.
            self.write_failure = self.write_failure or failure
            self.engine.stop()
            rate = shipment.selected_rate
            return ResultRecord(
                reference=row.reference, status="bought", shipment_id=shipment.id,
                tracking_code=shipment.tracking_code, carrier=rate.carrier if rate else None,
                service=rate.service if rate else None, rate=rate.rate if rate else None,
                currency=rate.currency if rate else None, delivery_days=rate.delivery_days if rate else None,
                label_url=shipment.label_url, error_code=NOT_JOURNALED, purchase=purchase,
                error_message=f"bought, but not yet recorded ({failure.message}); make room and rerun the same "
                "command to record it",
            )
        return await self._finish_label(row, entry, purchase)

    def _journal_bought(self, row: ShipmentRow, shipment: Shipment) -> JournalRow:
        if self.claims is not None:
            self.claims.settle(row.reference, shipment.id)
        rate = shipment.selected_rate
        values: dict[str, Any] = {
            "state": "bought",
            "shipment_id": shipment.id,
            "tracking_code": shipment.tracking_code,
            "label_url": shipment.label_url,
            "refund_status": shipment.refund_status,
            "error_code": None,
            "error_message": None,
        }
        if rate is not None:
            values.update(
                rate_id=rate.id, carrier=rate.carrier, service=rate.service, rate=rate.rate,
                currency=rate.currency, delivery_days=rate.delivery_days,
            )
        meta = None
        if shipment.insurance_fee is not None:
            # Kept with the journal (a meta key, in the same commit), so a rerun's "already bought" counts it too.
            self.insurance_fees[row.reference] = shipment.insurance_fee
            meta = {INSURANCE_FEE_META + row.reference: shipment.insurance_fee}
        self.journal.update(row.reference, meta=meta, **values)
        entry = self.journal.get(row.reference)
        assert entry is not None
        return entry

    async def _finish_resumed(self, row: ShipmentRow, entry: JournalRow) -> ResultRecord:
        self.engine.stats.resumed += 1
        if self._wants_file(row, entry) and entry.shipment_id:
            # About to print it: make sure it was not refunded since (by id, outside this journal), and take a
            # label URL that works now (a built-in sandbox's URL dies with its run).
            try:
                current = await self._reconcile(entry.shipment_id)
            except CallFailure:
                current = None  # the download says what is wrong
            if current is not None and current.bought:
                entry.label_url, entry.refund_status = current.label_url, current.refund_status
                try:
                    self.journal.update(entry.reference, label_url=entry.label_url, refund_status=entry.refund_status)
                except WriteFailure as failure:
                    self.write_failure = self.write_failure or failure
                    self.engine.stop()
        return await self._finish_label(row, entry, "resumed")

    def _wants_file(self, row: ShipmentRow, entry: JournalRow) -> bool:
        saved = self._saved_here(entry, label_format_for(row, self.options))
        return self.options.labels_dir is not None and not saved and not is_void(entry.refund_status)

    def _saved_here(self, entry: JournalRow, wanted: str | None) -> bool:
        """Whether the label file saved earlier serves now: it is in this run's --labels-dir, in the wanted format
        (any, when none is asked for), and still there. Otherwise it is saved (converted) again."""
        labels_dir = self.options.labels_dir
        if labels_dir is None or not entry.label_path:
            return False
        path = Path(entry.label_path)
        right_format = wanted is None or path.suffix.lower() == "." + wanted.lower()
        try:
            return right_format and path.parent.resolve() == labels_dir.resolve() and path.is_file()
        except OSError:
            return False

    async def _finish_label(self, row: ShipmentRow, entry: JournalRow, purchase: Purchase) -> ResultRecord:
        """Convert and download the label when asked; a bought row stays bought if this part fails."""
        labels_dir = self.options.labels_dir
        wanted = label_format_for(row, self.options)
        if labels_dir is None or is_void(entry.refund_status):
            return record_from_journal(entry, purchase)  # a refunded label is void: never saved for printing
        if self._saved_here(entry, wanted):
            return record_from_journal(entry, purchase)
        if not entry.shipment_id or not entry.label_url:
            return _not_here(record_from_journal(entry, purchase))
        try:
            url = entry.label_url
            if wanted and not url.lower().split("?")[0].endswith("." + wanted.lower()):
                url = await self.engine.call(api.label_url, self.client, entry.shipment_id, wanted)
            dest = self._label_dest(labels_dir, entry.reference, url, entry.shipment_id)
            await self.engine.call(api.download, self.client, url, dest)
            if row.international:
                await self._save_forms(entry.shipment_id, dest)
        except Exception as exc:  # a bought row stays bought whatever goes wrong with its file
            if isinstance(exc, WriteFailure):
                # A full disk fails every label after this one too: stop starting rows rather than retry them all.
                self.write_failure = self.write_failure or exc
                self.engine.stop()
            reason = exc.message if isinstance(exc, CallFailure) else f"{type(exc).__name__}: {exc}"
            record = _not_here(record_from_journal(entry, purchase))
            record.error_code = "LABEL_NOT_SAVED"
            record.error_message = f"bought, but the label file was not saved ({reason}); rerun to retry"
            return record
        entry.label_path = str(dest)
        self.labels_saved += 1
        try:
            self.journal.update(entry.reference, label_path=str(dest))
        except WriteFailure as failure:
            # Bought and saved, not recorded: still this run's to report (and count); the rerun records it.
            self.write_failure = self.write_failure or failure
            self.engine.stop()
            record = record_from_journal(entry, purchase)
            record.error_code = NOT_JOURNALED
            record.error_message = f"bought and saved, but not recorded ({failure.message}); rerun to record it"
            return record
        return record_from_journal(entry, purchase)

    async def _save_forms(self, shipment_id: str, label: Path) -> None:
        """The customs forms EasyPost made with an international label (its commercial invoice), beside the label
        as `<label name>.<form type>.pdf`: what goes in the pouch goes in the same folder. Part of saving the label:
        a form not saved leaves the label unrecorded too, so the rerun fetches both."""
        from shipctl.carrier.labels import retrieve_printable  # here: a run saving no international label skips it

        printable = await self.engine.call(retrieve_printable, self.client, shipment_id)
        for form in printable.forms:
            kind = _UNSAFE_NAME.sub("_", form.form_type).strip("._") or "form"
            suffix = Path(form.url.split("?", 1)[0]).suffix.lower() or ".pdf"
            await self.engine.call(api.download, self.client, form.url, label.with_name(f"{label.stem}.{kind}{suffix}"))

    def _label_dest(self, labels_dir: Path, reference: str, url: str, shipment_id: str) -> Path:
        """A file name no other label owns: the plain name when it is free, else one with the shipment id."""
        name = label_filename(reference, url)
        owner = self._claimed.get(name.casefold())
        if (owner is not None and owner != reference) or (owner is None and (labels_dir / name).exists()):
            name = label_filename(reference, url, shipment_id=shipment_id)
        self._claimed[name.casefold()] = reference
        return labels_dir / name

    def _take_findings(self, reference: str) -> dict[str, str]:
        """The meta keys this row's next journal write carries: its verification finding, if one is unwritten."""
        finding = self._findings.pop(reference, None)
        return {} if finding is None else {VERIFICATION_META + reference: finding}

    def fail(
        self, reference: str, code: str, message: str, *, shipment_id: str | None, digest: str | None = None,
        release: bool = True,
    ) -> ResultRecord:
        """Journal the row as failed; a shipment it created is kept, so a rerun reconciles instead of re-creating.

        `release`: nothing was bought, so the claim is given up and another run may try the reference.
        """
        if release and self.claims is not None:
            self.claims.release(reference)
        retry_same_command = code in (PREVIOUS_BUY_UNSETTLED, "CLAIM_CONFLICT")
        values: dict[str, Any] = {"state": "failed", "error_code": code, "error_message": message}
        if shipment_id is not None:
            values["shipment_id"] = shipment_id
        if digest is not None:
            values["digest"] = digest
        self.journal.update(reference, meta=self._take_findings(reference), **values)
        entry = self.journal.get(reference)
        assert entry is not None
        record = record_from_journal(entry)
        record.retryable = retry_same_command  # the same command settles it; not a row to re-ship
        return record


class _TooMany(Exception):
    """More of the account's shipments in a time window than `WIDE_LOOK_PAGES` pages."""


class _StaleLook(Exception):
    """The first look is too old to send the create it cleared (`Purchaser._create`): nothing was sent."""


class _LostClaim(Exception):
    """The claim is no longer this run's (another run judged it dead): the buy must not be sent."""


class _CreateMarks:
    """The claims' record of a row's creates (`Claims.creating`), with the reference check on (`claims` given):
    marked before every send; gone again when every send was answered and none made a shipment."""

    def __init__(self, claims: Claims | None, reference: str, digest: str, looked: float | None) -> None:
        self.claims = claims
        self.reference = reference
        self.digest = digest
        self.looked_at = None if looked is None else time.time() - (time.monotonic() - looked)
        self.acted = 0
        """Sends the API may have acted on (a 429 is not one)."""
        self.unknown = 0
        """Sends whose outcome is unknown: each may have made a shipment."""
        self.first_sent = 0.0

    def stamp(self) -> None:
        if self.claims is not None:
            self.claims.creating(self.reference, self.digest, self.looked_at)
        self.first_sent = self.first_sent or time.time()
        self.acted += 1

    def refused_send(self) -> None:
        self.acted -= 1

    def settle(self, made: Shipment | ResultRecord | None) -> None:
        if self.claims is not None and self.first_sent and not self.unknown and not isinstance(made, Shipment):
            # Every send was answered, and none made a shipment (refused, 429s to the end): nothing for a taker to
            # find, and a storefront's shipment must never pass for one of ours.
            self.claims.not_creating(self.reference)


class _SendMarks:
    """The claims' record of when this row's buy was sent: stamped before every send, restored on a refusal."""

    def __init__(self, claims: Claims | None, reference: str, shipment_id: str) -> None:
        self.claims = claims
        self.reference = reference
        self.shipment_id = shipment_id
        self.first: Sent | None = None
        self.sends = 0
        """Sends the API may have acted on (a 429 is not one)."""

    def stamp(self) -> None:
        self.sends += 1
        if self.claims is None:
            return
        mark = self.claims.buying(self.reference, self.shipment_id)
        if mark is None:
            raise _LostClaim
        self.first = self.first or mark

    def refused_send(self) -> None:
        """The last send was answered 429: the API did nothing with it, so it cannot have bought anything."""
        self.sends -= 1

    def restore(self) -> None:
        if self.claims is not None and self.first is not None:
            self.claims.refused(self.first)

    def who_bought(self, current: Shipment, quote: Quote, last: CallFailure | None) -> Purchase:
        """After an unknown outcome the shipment shows bought: ours, unless provably or possibly another's."""
        other_rate = current.selected_rate is not None and current.selected_rate.id != quote.rate.id
        inherited = self.first is not None and self.first.before is not None  # a stopped run sent a buy for it too
        only_refused = last is not None and last.code == POSTAGE_EXISTS and self.sends <= 1
        return "found" if other_rate or inherited or only_refused else "new"


def _age_seconds(shipment: Shipment) -> float | None:
    """How long ago the API made it, by the API's own clock where its answer gave it (this machine's otherwise);
    None when the answer did not say when it was made."""
    if shipment.created_at is None:
        return None
    now = shipment.seen_at or dt.datetime.now(dt.timezone.utc)
    return (now - shipment.created_at).total_seconds()


def _same_reference(theirs: str | None, ours: str) -> bool:
    """A shipment's reference names this row's order: none at all (EasyPost may leave it out), or the same order
    however it was written (`shipctl.references`: the claims know a re-export in another Unicode form by it)."""
    return theirs is None or reference_key(theirs) == reference_key(ours)


def _lately(shipment: Shipment) -> bool:
    """Made within `FOREIGN_SECONDS`. A time not given holds nothing: EasyPost always gives one, and a row held on
    every rerun by a shipment whose age cannot be told would never ship."""
    age = _age_seconds(shipment)
    return age is not None and age < FOREIGN_SECONDS


def _age(shipment: Shipment) -> str:
    age = _age_seconds(shipment)
    return "lately" if age is None else f"{max(0, round(age))} s ago"


def _in_use(reference: str, label: Shipment, journal: str | None) -> str:
    """Why a row whose reference already has a label for another destination or parcel is not bought. The label is
    often this very order's, bought from an edited copy of the row (a fixed `--failed` file): the message says
    where it goes and must not send the user off to buy the order again under a new reference."""
    where = ", ".join(part for part in (label.to_street1, label.to_zip) if part) or "another address"
    tracking = f", tracking {label.tracking_code}" if label.tracking_code else ""
    by = f" by a run of {journal}" if journal else ""
    return (f"reference {reference} already has a label ({label.id}{tracking}, to {where}) bought{by} for another "
            "destination or parcel than this row's; nothing was bought. If that label is this order's (an edited "
            "copy of the row, such as a fixed --failed file), the order has shipped; only a different order needs "
            "a reference of its own")


def _same_parcel(shipment: Shipment, row: ShipmentRow) -> bool:
    """Whether a shipment found for the reference ships this row: the same origin and destination (street and ZIP),
    weight and dimensions. Anything else it carries (options, customs) is not compared: only a shipment a run of
    this row made is ever reused, and a row edited since is caught by its digest. The origin and dimensions are read
    from the answer itself (`Shipment.raw`): only this rare check needs them."""

    def norm(text: str | None) -> str:
        return "".join((text or "").split()).casefold()

    def same_place(street1: str | None, zip_code: str | None, address: Address) -> bool:
        # A verified address is EasyPost's spelling (upper case, abbreviations, the unit moved onto street1).
        street = norm(street1) == norm(address.street1) or addresses.same_street(
            street1, address.street1, address.street2)
        return street and (zip_code or "")[:5] == (address.zip or "")[:5]

    origin = api.field_of(shipment.raw, "from_address")
    parcel = api.field_of(shipment.raw, "parcel")
    sides = [(api.field_of(parcel, key), getattr(row.parcel, key)) for key in ("length", "width", "height")]
    try:
        same_size = all((theirs is None) == (ours is None) and (ours is None or abs(float(theirs) - ours) < 0.05)
                        for theirs, ours in sides)
    except (TypeError, ValueError):  # a side that is not a number: not this parcel
        same_size = False
    weight = float(row.parcel.weight)
    return (same_place(shipment.to_street1, shipment.to_zip, row.to_address)
            and same_place(api.field_of(origin, "street1"), api.field_of(origin, "zip"), row.from_address)
            and same_size and shipment.weight is not None and abs(shipment.weight - weight) < 0.05)


def label_format_for(row: ShipmentRow, options: PurchaseOptions) -> str | None:
    """The one rule: an explicit `--label-format` forces every row's format; without it the row's own
    `label_format` column; else None: the label as the API made it (PNG, EasyPost's default), never converted."""
    return options.label_format or row.label_format


def _not_here(record: ResultRecord) -> ResultRecord:
    """A record whose label file is not in this run's --labels-dir: it names none (one saved by an earlier run,
    elsewhere or in another format, is not this run's label file)."""
    record.label_path = None
    return record


def _journaled_rate(entry: JournalRow) -> Rate:
    return Rate(
        id=entry.rate_id, carrier=entry.carrier or "", service=entry.service or "", rate=entry.rate or "",
        currency=entry.currency or "USD", delivery_days=entry.delivery_days,
    )


def is_void(refund_status: str | None) -> bool:
    """A refund asked for (`submitted`) or done (`refunded`) voids the label; `rejected` and `not_applicable`
    leave it valid, bought and paid for."""
    return refund_status in ("submitted", "refunded")


def _not_in_plan(reference: str) -> ResultRecord:
    return ResultRecord(reference=reference, status="skipped", error_code=NOT_IN_PLAN,
                        error_message="not in the plan being applied: not bought")


def record_from_journal(entry: JournalRow, purchase: Purchase | None = None) -> ResultRecord:
    status: Status = {"bought": "bought", "failed": "failed"}.get(entry.state, "planned")  # type: ignore[assignment]
    if status == "bought" and is_void(entry.refund_status):
        status = "refunded"  # void: not a label to ship, and never spend
    return ResultRecord(
        reference=entry.reference,
        status=status,
        purchase=purchase if status in ("bought", "refunded") else None,
        shipment_id=entry.shipment_id,
        tracking_code=entry.tracking_code,
        carrier=entry.carrier,
        service=entry.service,
        rate=entry.rate,
        currency=entry.currency,
        delivery_days=entry.delivery_days,
        label_url=entry.label_url,
        label_path=entry.label_path,
        error_code=entry.error_code or ("REFUNDED" if is_void(entry.refund_status) else None),
        error_message=entry.error_message
        or (f"the label was refunded (refund {entry.refund_status})" if is_void(entry.refund_status) else None),
    )
