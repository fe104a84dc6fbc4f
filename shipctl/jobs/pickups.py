"""`close --pickup`: a carrier pickup per form, bought at its cheapest rate, never twice.

Per form, in two passes so the money question comes once and with the price: first a pickup is found or made
(`pickup.create` with the form's origin, its batch or first shipment and the window; its `reference` is the form's
id, so a rerun finds one whose answer was lost): creating a pickup books nothing and costs nothing. Then one
question for all of them (`Host.approve`, as `create` asks before buying: only a test key spends nothing real),
and each is bought at its carrier's cheapest rate, journaled `buying` first: a rerun that finds `buying` reads
the pickup and buys only one that is not `scheduled`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import anyio

from shipctl.carrier.closing import Pickup, buy_pickup, create_pickup, find_pickup, retrieve_pickup, retrieve_scan_form
from shipctl.closings import Closings
from shipctl.engine.failures import CallFailure, Stopped
from shipctl.jobs.close import FormResult, PickupResult
from shipctl.jobs.close_inputs import PickupWindow
from shipctl.jobs.host import Host, Spend
from shipctl.jobs.session import Session
from shipctl.money import Totals, add, currency_of, needs_approval, parse_amount

_BUY_ATTEMPTS = 3


class Pickups:
    def __init__(self, session: Session, host: Host, journal: Closings, window: PickupWindow) -> None:
        self.session = session
        self.host = host
        self.journal = journal
        self.window = window
        self._quoted: dict[str, Pickup] = {}
        self.asking = False
        """The question is on screen: a Ctrl-C cannot wait for its answer."""

    async def book(self, forms: Sequence[FormResult]) -> str | None:
        """Give every form a `pickup` result; the refusal message when the spending was not approved."""
        ready = [f for f in forms if f.form_id is not None]
        await self.session.engine.run(ready, self._quote)
        to_buy = [f for f in ready if f.pickup is None]
        if not to_buy or self.session.engine.stopping:  # interrupted: a form not quoted is not bought
            return None
        if not await self._approved(to_buy):
            for form in to_buy:
                form.pickup = PickupResult("not_booked")
            return "no pickup was booked (the forms were made); rerun with --pickup --yes to book them"
        await self.session.engine.run(to_buy, self._buy)
        return None

    # -- first pass: a pickup with rates for each form ------------------------------------------------------

    async def _quote(self, form: FormResult) -> None:
        """Leave `form.pickup` unset with a pickup quoted in `_quoted`, or set it when already settled."""
        assert form.form_id is not None
        row = self.journal.pickup(form.form_id)
        try:
            if row is not None and row.state == "bought":
                form.pickup = PickupResult("booked_earlier", row.pickup_id, row.confirmation, row.rate, row.currency)
                return
            pickup = await self._existing(form.form_id, row.state if row else None, row.pickup_id if row else None)
            if pickup is None:
                pickup = await self._create(form)
        except CallFailure as failure:
            form.pickup = PickupResult("failed", failure=failure)
            return
        if pickup.bought:
            self.journal.pickup_bought(form.form_id, pickup.confirmation)
            rate = pickup.cheapest(form.group.carrier)
            form.pickup = PickupResult("booked", pickup.id, pickup.confirmation,
                                       rate.rate if rate else None, rate.currency if rate else None)
            return
        if pickup.cheapest(form.group.carrier) is None:
            form.pickup = PickupResult("failed", pickup.id, failure=CallFailure(
                "PICKUP.NO_RATES", "the API offered no rate for this pickup"))
            return
        self._quoted[form.form_id] = pickup

    async def _existing(self, form_id: str, state: str | None, pickup_id: str | None) -> Pickup | None:
        """The pickup an earlier run made for this form, read again (a lost answer is found by its reference)."""
        call = self.session.engine.call
        client = self.session.client
        if state in ("created", "buying") and pickup_id:
            return await call(retrieve_pickup, client, pickup_id)
        if state == "creating":
            found = await call(find_pickup, client, form_id)
            if found is not None:
                self.journal.pickup_created(form_id, found.id)
            return found
        return None

    async def _create(self, form: FormResult) -> Pickup:
        assert form.form_id is not None
        params = await self._params(form)
        self.journal.pickup_creating(form.form_id, self.window.iso())
        pickup = await self.session.engine.call(create_pickup, self.session.client, params)
        self.journal.pickup_created(form.form_id, pickup.id)
        return pickup

    async def _params(self, form: FormResult) -> dict[str, Any]:
        assert form.form_id is not None
        if form.batch_id is None:
            current = await self.session.engine.call(retrieve_scan_form, self.session.client, form.form_id)
            form.batch_id = current.batch_id
        start, end = self.window.iso()
        params: dict[str, Any] = {
            "address": form.sample.from_address, "min_datetime": start, "max_datetime": end,
            "reference": form.form_id, "is_account_address": False,
        }
        if form.batch_id:
            params["batch"] = {"id": form.batch_id}
        else:
            params["shipment"] = {"id": form.shipment_ids[0]}
        return params

    # -- the question, once ---------------------------------------------------------------------------------

    async def _approved(self, to_buy: Sequence[FormResult]) -> bool:
        if not any(needs_approval(f.sample.mode) for f in to_buy):
            return True
        totals: Totals = {}
        for form in to_buy:
            assert form.form_id is not None
            rate = self._quoted[form.form_id].cheapest(form.group.carrier)
            amount = parse_amount(rate.rate) if rate else None
            if rate is not None and amount is not None:
                add(totals, currency_of(rate.currency), amount)
        # The mode as the API says it: production only when every form asked about says so, else unknown.
        modes = {f.sample.mode for f in to_buy if needs_approval(f.sample.mode)}
        mode = "production" if modes == {"production"} else None
        # A question blocks on a terminal: ask from a thread, so the loop still hears a Ctrl-C.
        self.asking = True
        try:
            return await anyio.to_thread.run_sync(
                self.host.approve, Spend("book", len(to_buy), totals, noun="pickups", mode=mode),
                abandon_on_cancel=True)
        finally:
            self.asking = False

    # -- second pass: buy ------------------------------------------------------------------------------------

    async def _buy(self, form: FormResult) -> None:
        assert form.form_id is not None
        pickup = self._quoted[form.form_id]
        rate = pickup.cheapest(form.group.carrier)
        assert rate is not None
        self.journal.pickup_buying(form.form_id, rate.carrier, rate.service, rate.rate, rate.currency)
        uncertain = False  # an earlier round had no clear answer: it may still have booked this pickup
        for _ in range(_BUY_ATTEMPTS):
            try:
                # A buy waiting for a slot when Ctrl-C comes is not sent: the person asked the run to stop spending.
                bought = await self.session.engine.call(buy_pickup, self.session.client, pickup.id, rate.carrier,
                                                        rate.service, retry_unknown=False, unless_stopping=True)
            except Stopped:
                # Left `buying` in the journal: the rerun reads the pickup first, so it books it once either way.
                form.pickup = PickupResult("failed" if uncertain else "not_booked", pickup.id, rate=rate.rate,
                                           currency=rate.currency, failure=CallFailure(
                                               "INTERRUPTED", "the run was interrupted before this pickup was "
                                               "booked" + (" (an earlier send had no clear answer)" if uncertain
                                                           else "") + "; rerun close --pickup to book it"))
                return
            except CallFailure as failure:
                settled = await self._settle(failure, pickup.id)
                if settled is None:
                    uncertain = uncertain or failure.outcome_unknown
                    continue
                if isinstance(settled, CallFailure):
                    if not uncertain:
                        # Only a clear refusal of every round is journaled failed (a rerun may then book anew);
                        # after an unclear round it stays `buying`, so the rerun reads the pickup first.
                        self.journal.pickup_failed(form.form_id, settled.code, settled.message)
                    form.pickup = PickupResult("failed", pickup.id, rate=rate.rate, currency=rate.currency,
                                               failure=settled)
                    return
                bought = settled
            self.journal.pickup_bought(form.form_id, bought.confirmation)
            form.pickup = PickupResult("booked", bought.id, bought.confirmation, rate.rate, rate.currency)
            return
        form.pickup = PickupResult("failed", pickup.id, rate=rate.rate, currency=rate.currency, failure=CallFailure(
            "PICKUP.UNKNOWN", "no clear answer from the API; rerun close --pickup to check this pickup"))

    async def _settle(self, failure: CallFailure, pickup_id: str) -> Pickup | CallFailure | None:
        """What a failed buy came to, from the pickup as it is now (an unclear answer may hide our own purchase, a
        refusal one sent by a run that died): bought after all, the refusal, or None to send it again."""
        try:
            current = await self.session.engine.call(retrieve_pickup, self.session.client, pickup_id)
        except CallFailure:
            return None if failure.outcome_unknown else failure
        if current.bought:
            return current
        return None if failure.outcome_unknown else failure


def pickup_spend(forms: Sequence[FormResult]) -> dict[str, Totals]:
    """What the pickups booked by this run (`booked`) and by an earlier one (`booked_earlier`) cost, by currency:
    summed from their rates as Decimals, for the run's last line (a test key is never asked, so it is the one
    place a clerk sees it)."""
    spend: dict[str, Totals] = {}
    for form in forms:
        pickup = form.pickup
        if pickup is not None and pickup.status in ("booked", "booked_earlier"):
            add(spend.setdefault(pickup.status, {}), currency_of(pickup.currency),
                parse_amount(pickup.rate) or Decimal(0))
    return spend
