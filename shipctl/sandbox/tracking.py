"""Trackers: EasyPost's documented test codes and the codes of labels bought in the sandbox."""

from __future__ import annotations

import base64
import time

from shipctl.sandbox.model import JSON, new_id, now_z

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

# (status, status_detail, message, city, state, zip) — the full happy path, then the unhappy endings.
_PATH: list[tuple[str, str, str, str | None, str | None, str | None]] = [
    ("pre_transit", "status_update", "Pre-Shipment Info Sent to USPS", None, None, None),
    ("pre_transit", "label_created", "Shipping Label Created", "HOUSTON", "TX", "77063"),
    ("in_transit", "arrived_at_facility", "Arrived at USPS Origin Facility", "NORTH HOUSTON", "TX", "77315"),
    ("in_transit", "departed_facility", "Departed USPS Regional Facility", "NORTH HOUSTON", "TX", "77315"),
    ("in_transit", "arrived_at_facility", "Arrived at USPS Regional Facility", "COLUMBIA", "SC", "29201"),
    ("out_for_delivery", "out_for_delivery", "Out for Delivery", "CHARLESTON", "SC", "29401"),
    ("delivered", "arrived_at_destination", "Delivered, In/At Mailbox", "CHARLESTON", "SC", "29401"),
]
_STEPS_FOR: dict[str, int] = {
    "pre_transit": 2, "in_transit": 5, "out_for_delivery": 6, "delivered": 7,
    "return_to_sender": 5, "failure": 5, "unknown": 0,
}
_ENDINGS: dict[str, tuple[str, str, str, str | None, str | None, str | None]] = {
    "return_to_sender": ("return_to_sender", "return", "Return to Sender Processed", "COLUMBIA", "SC", "29201"),
    "failure": ("failure", "unknown", "Delivery Attempt Failed: Package Damaged", "COLUMBIA", "SC", "29201"),
}
_DETAIL_FOR: dict[str, str] = {
    "pre_transit": "status_update", "in_transit": "arrived_at_facility", "out_for_delivery": "out_for_delivery",
    "delivered": "arrived_at_destination", "return_to_sender": "return", "failure": "unknown",
    "unknown": "unknown",
}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _detail(step: tuple[str, str, str, str | None, str | None, str | None], when: float, carrier: str) -> JSON:
    status, detail, message, city, state, zip_code = step
    return {
        "object": "TrackingDetail", "message": message, "description": "", "status": status,
        "status_detail": detail, "datetime": _iso(when), "source": carrier, "carrier_code": "",
        "tracking_location": {"object": "TrackingLocation", "city": city, "state": state,
                              "country": None if city is None else "US", "zip": zip_code},
    }


def history(status: str, start: float, carrier: str) -> list[JSON]:
    """The tracking_details that lead to `status`, one event every ~9 hours from `start`."""
    steps = list(_PATH[: _STEPS_FOR.get(status, 0)])
    if status in _ENDINGS:
        steps.append(_ENDINGS[status])
    return [_detail(step, start + i * 32400, carrier) for i, step in enumerate(steps)]


def build_tracker(code: str, carrier: str | None, mode: str, *, status: str, shipment_id: str | None,
                  start: float | None = None) -> JSON:
    carrier = carrier or "USPS"
    created = now_z()
    start = start if start is not None else time.time() - 30 * 86400
    details = history(status, start, carrier)
    tracker_id = new_id("trk")
    public = base64.urlsafe_b64encode(f"v1:{tracker_id}".encode()).decode().rstrip("=")
    est = None if status in ("unknown", "failure", "return_to_sender") else _iso(start + 3 * 86400)
    return {
        "id": tracker_id, "object": "Tracker", "mode": mode, "tracking_code": code, "status": status,
        "status_detail": _DETAIL_FOR.get(status, "unknown"), "created_at": created, "updated_at": created,
        "signed_by": "John Tester" if status == "delivered" else None,
        "weight": None, "est_delivery_date": est, "shipment_id": shipment_id, "carrier": carrier,
        "tracking_details": details,
        "carrier_detail": {
            "object": "CarrierDetail", "service": "First-Class Package Service", "container_type": None,
            "est_delivery_date_local": None, "est_delivery_time_local": None,
            "origin_location": "HOUSTON TX, 77001",
            "origin_tracking_location": {"object": "TrackingLocation", "city": "HOUSTON", "state": "TX",
                                         "country": None, "zip": "77063"},
            "destination_location": "CHARLESTON SC, 29401", "destination_tracking_location": None,
            "guaranteed_delivery_date": None, "alternate_identifier": None, "initial_delivery_attempt": None,
        } if details else None,
        "finalized": status in ("delivered", "return_to_sender", "failure"),
        "is_return": status == "return_to_sender",
        "public_url": f"https://track.easypost.com/{public}",
        "fees": [],
    }
