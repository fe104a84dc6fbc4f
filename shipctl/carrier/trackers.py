"""Tracking over the SDK: create a tracker for a code, re-read it by id, as plain frozen types.

Blocking functions, run in worker threads by the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FINAL_STATUSES = frozenset({"delivered", "return_to_sender", "failure", "cancelled", "error"})
"""Statuses after which a tracker never changes again (EasyPost's `finalized` trackers)."""

_SPACES = re.compile(r"\s+")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{5,48}[A-Za-z0-9]")


def normalize_code(text: str) -> str:
    """A tracking code as typed or pasted, with its spaces removed (`9400 1000 ...` → `94001000...`)."""
    return _SPACES.sub("", text)


def code_problem(code: str) -> str | None:
    """Why `code` cannot be a carrier tracking code (checked before any API call), or None."""
    if not code:
        return "empty tracking code"
    if not _CODE.fullmatch(code):
        return f"{code!r} is not a tracking code (7 to 50 letters and digits)"
    return None


@dataclass(frozen=True)
class TrackingEvent:
    datetime: str | None
    status: str | None
    status_detail: str | None
    message: str | None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None

    @property
    def location(self) -> str | None:
        place = ", ".join(p for p in (self.city, self.state) if p)
        if self.zip:
            place = f"{place} {self.zip}".strip()
        return place or None


@dataclass(frozen=True)
class Tracking:
    id: str
    tracking_code: str
    carrier: str | None
    status: str
    status_detail: str | None
    est_delivery_date: str | None
    events: tuple[TrackingEvent, ...]
    public_url: str | None = None
    shipment_id: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def last_event(self) -> TrackingEvent | None:
        return self.events[-1] if self.events else None

    def signature(self) -> tuple[object, ...]:
        """What a watcher compares between polls: a change in any of these is news."""
        last = self.last_event
        return (self.status, self.status_detail, self.est_delivery_date, len(self.events),
                last.datetime if last else None)


def _field(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    getter = getattr(obj, "get", None)
    if getter is not None:
        return getter(key)
    return getattr(obj, key, None)


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def event_from(obj: Any) -> TrackingEvent:
    where = _field(obj, "tracking_location")
    return TrackingEvent(
        datetime=_str(_field(obj, "datetime")),
        status=_str(_field(obj, "status")),
        status_detail=_str(_field(obj, "status_detail")),
        message=_str(_field(obj, "message")),
        city=_str(_field(where, "city")),
        state=_str(_field(where, "state")),
        zip=_str(_field(where, "zip")),
        country=_str(_field(where, "country")),
    )


def tracking_from(obj: Any) -> Tracking:
    events = [event_from(e) for e in (_field(obj, "tracking_details") or ())]
    events.sort(key=lambda e: e.datetime or "")  # EasyPost sends them oldest first; make sure of it
    return Tracking(
        id=str(_field(obj, "id")),
        tracking_code=str(_field(obj, "tracking_code") or ""),
        carrier=_str(_field(obj, "carrier")),
        status=str(_field(obj, "status") or "unknown"),
        status_detail=_str(_field(obj, "status_detail")),
        est_delivery_date=_str(_field(obj, "est_delivery_date")),
        events=tuple(events),
        public_url=_str(_field(obj, "public_url")),
        shipment_id=_str(_field(obj, "shipment_id")),
    )


def create_tracker(client: Any, code: str, carrier: str | None = None) -> Tracking:
    """`POST /trackers`. EasyPost answers with the tracker it already has for a code, so this is idempotent."""
    params: dict[str, Any] = {"tracking_code": code}
    if carrier:
        params["carrier"] = carrier
    return tracking_from(client.tracker.create(**params))


def retrieve_tracker(client: Any, tracker_id: str) -> Tracking:
    """`GET /trackers/:id`: re-read a tracker already created (what `--watch` polls)."""
    return tracking_from(client.tracker.retrieve(tracker_id))
