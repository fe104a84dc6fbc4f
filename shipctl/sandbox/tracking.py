"""Trackers: EasyPost's documented test codes and the codes of labels bought in the sandbox.

A label bought here is tracked from its purchase, at its shipment's origin, toward its destination: the first
events carry the purchase time and the origin's city (never a month in the past, never another city). The test
codes have no purchase: each history ends when the tracker is made, on EasyPost's test route (Houston to
Charleston), and each code keeps the status EasyPost documents for it.
"""

from __future__ import annotations

import base64
import calendar
import time
from dataclasses import dataclass

from shipctl.sandbox.model import JSON, new_id, now, now_z

#: EasyPost's test tracking codes and the status each one reports.
TEST_CODES: dict[str, str] = {
    "EZ1000000001": "pre_transit",
    "EZ2000000002": "in_transit",
    "EZ3000000003": "out_for_delivery",
    "EZ4000000004": "delivered",
    "EZ5000000005": "return_to_sender",
    "EZ6000000006": "failure",
    "EZ7000000007": "unknown",
}

Place = tuple[str | None, str | None, str | None]
"""(city, state, zip) of a tracking event; all None for an event with no place (pre-shipment info)."""

#: Where EasyPost's test codes travel, as EasyPost's own test trackers show it.
TEST_ORIGIN: Place = ("HOUSTON", "TX", "77063")
TEST_DESTINATION: Place = ("CHARLESTON", "SC", "29401")
_TEST_HUB: Place = ("COLUMBIA", "SC", "29201")

# (status, status_detail, message, where, seconds after the label was bought): the happy path. `where` is "origin",
# "destination", "hub" (the regional facility before the destination; the destination itself for a label bought
# here) or None. Both pre-transit events happen at purchase: a label bought now has no event in the future.
_PATH: list[tuple[str, str, str, str | None, int]] = [
    ("pre_transit", "status_update", "Pre-Shipment Info Sent to {carrier}", None, 0),
    ("pre_transit", "label_created", "Shipping Label Created", "origin", 0),
    ("in_transit", "arrived_at_facility", "Arrived at {carrier} Origin Facility", "origin", 9 * 3600),
    ("in_transit", "departed_facility", "Departed {carrier} Regional Facility", "origin", 12 * 3600),
    ("in_transit", "arrived_at_facility", "Arrived at {carrier} Regional Facility", "hub", 30 * 3600),
    ("out_for_delivery", "out_for_delivery", "Out for Delivery", "destination", 48 * 3600),
    ("delivered", "arrived_at_destination", "Delivered, In/At Mailbox", "destination", 54 * 3600),
]
_STEPS_FOR: dict[str, int] = {
    "pre_transit": 2, "in_transit": 5, "out_for_delivery": 6, "delivered": 7,
    "return_to_sender": 5, "failure": 5, "unknown": 0,
}
_ENDINGS: dict[str, tuple[str, str, str, str | None, int]] = {
    "return_to_sender": ("return_to_sender", "return", "Return to Sender Processed", "hub", 40 * 3600),
    "failure": ("failure", "unknown", "Delivery Attempt Failed: Package Damaged", "hub", 40 * 3600),
}
_DETAIL_FOR: dict[str, str] = {
    "pre_transit": "status_update", "in_transit": "arrived_at_facility", "out_for_delivery": "out_for_delivery",
    "delivered": "arrived_at_destination", "return_to_sender": "return", "failure": "unknown",
    "unknown": "unknown",
}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_iso(value: str | None) -> float | None:
    """Seconds since the epoch of a sandbox timestamp (`2024-05-01T12:00:00Z`), None if it is not one."""
    try:
        return float(calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


@dataclass(frozen=True)
class Route:
    """Where a parcel goes: the places its events name."""

    origin: Place = TEST_ORIGIN
    destination: Place = TEST_DESTINATION
    hub: Place = _TEST_HUB

    @classmethod
    def between(cls, from_address: JSON | None, to_address: JSON | None) -> Route:
        """A label bought here travels from its shipment's origin to its destination (the test route for a
        missing city)."""
        origin = _place(from_address) or TEST_ORIGIN
        destination = _place(to_address) or TEST_DESTINATION
        return cls(origin, destination, destination)

    def place(self, where: str | None) -> Place:
        if where is None:
            return (None, None, None)
        return {"origin": self.origin, "destination": self.destination}.get(where, self.hub)


def _place(address: JSON | None) -> Place | None:
    if not address or not address.get("city"):
        return None
    return (str(address["city"]).upper(), _upper(address.get("state")), _text(address.get("zip")))


def _upper(value: object) -> str | None:
    return str(value).upper() if value else None


def _text(value: object) -> str | None:
    return str(value) if value else None


def _steps(status: str) -> list[tuple[str, str, str, str | None, int]]:
    steps = list(_PATH[: _STEPS_FOR.get(status, 0)])
    if status in _ENDINGS:
        steps.append(_ENDINGS[status])
    return steps


def _detail(step: tuple[str, str, str, str | None, int], start: float, carrier: str, route: Route,
            at: float | None = None) -> JSON:
    status, detail, message, where, offset = step
    city, state, zip_code = route.place(where)
    return {
        "object": "TrackingDetail", "message": message.format(carrier=carrier), "description": "",
        "status": status, "status_detail": detail, "datetime": _iso(start + offset if at is None else at),
        "source": carrier,
        "carrier_code": "",
        "tracking_location": {"object": "TrackingLocation", "city": city, "state": state,
                              "country": None if city is None else "US", "zip": zip_code},
    }


def history(status: str, start: float, carrier: str, route: Route | None = None,
            end: float | None = None) -> list[JSON]:
    """The tracking_details that lead to `status`, oldest first, the first two at `start` (the purchase).

    With `end` (a scan: the carrier's event happens when it is scanned, on the sandbox's clock) the last event is
    at `end` (never before `start`) and none before it falls after it, so a parcel delivered ten days after its
    purchase says so, and one scanned at once has no event in the future."""
    route = route or Route()
    steps = _steps(status)
    if end is None:
        return [_detail(step, start, carrier, route) for step in steps]
    end = max(end, start)
    return [_detail(step, start, carrier, route, end if i == len(steps) - 1 else min(start + step[4], end))
            for i, step in enumerate(steps)]


def test_code_start(status: str, now: float) -> float:
    """A test code has no purchase: its history is made to end now, so its last event is the latest news."""
    steps = _steps(status)
    return now - (steps[-1][4] if steps else 0)


def _location(place: Place) -> str | None:
    city, state, zip_code = place
    if city is None:
        return None
    return f"{city} {state or ''}, {zip_code or ''}".replace(" ,", ",").strip(" ,")


def build_tracker(code: str, carrier: str | None, mode: str, *, status: str, shipment_id: str | None,
                  start: float | None = None, route: Route | None = None, delivery_days: int | None = None,
                  end: float | None = None) -> JSON:
    """A Tracker. `start` is the purchase time (default: a test code's, its history ending now); `route` the
    places (default: the test codes' Houston to Charleston); the estimate is `delivery_days` (3) after `start`;
    `end` the time of its last event (a scan's, see `history`)."""
    carrier = carrier or "USPS"
    route = route or Route()
    created = now_z()
    start = start if start is not None else test_code_start(status, now())
    details = history(status, start, carrier, route, end)
    tracker_id = new_id("trk")
    public = base64.urlsafe_b64encode(f"v1:{tracker_id}".encode()).decode().rstrip("=")
    est = _estimate(status, start, delivery_days)
    return {
        "id": tracker_id, "object": "Tracker", "mode": mode, "tracking_code": code, "status": status,
        "status_detail": _DETAIL_FOR.get(status, "unknown"), "created_at": created, "updated_at": created,
        "signed_by": "John Tester" if status == "delivered" else None,
        "weight": None, "est_delivery_date": est, "shipment_id": shipment_id, "carrier": carrier,
        "tracking_details": details,
        "carrier_detail": _carrier_detail(route) if details else None,
        "finalized": status in ("delivered", "return_to_sender", "failure"),
        "is_return": status == "return_to_sender",
        "public_url": f"https://track.easypost.com/{public}",
        "fees": [],
    }


def _estimate(status: str, start: float, delivery_days: int | None) -> str | None:
    """`delivery_days` (3) after the purchase; a delivered parcel's estimate is never after its delivery."""
    if status in ("unknown", "failure", "return_to_sender"):
        return None
    days = delivery_days if delivery_days and delivery_days > 0 else 3
    last = _steps(status)[-1][4]
    return _iso(start + (last if status == "delivered" else max(last, days * 86400)))


def _carrier_detail(route: Route) -> JSON:
    origin_city, origin_state, origin_zip = route.origin
    return {
        "object": "CarrierDetail", "service": "First-Class Package Service", "container_type": None,
        "est_delivery_date_local": None, "est_delivery_time_local": None,
        "origin_location": _location(route.origin),
        "origin_tracking_location": {"object": "TrackingLocation", "city": origin_city, "state": origin_state,
                                     "country": None, "zip": origin_zip},
        "destination_location": _location(route.destination), "destination_tracking_location": None,
        "guaranteed_delivery_date": None, "alternate_identifier": None, "initial_delivery_attempt": None,
    }
