"""With no key, every command uses the built-in sandbox, says so once on stderr, and shares its state."""

from __future__ import annotations

from pathlib import Path

from tests.cli import invoke, ndjson
from tests.manifests import make_manifest


def test_create_then_track_and_refund_share_the_embedded_sandbox(no_key: Path, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    created = invoke("create", str(manifest), "-o", "ndjson")
    assert created.exit_code == 0, created.stderr
    notices = [line for line in created.stderr.splitlines() if "built-in sandbox" in line]
    assert len(notices) == 1
    assert "http://127.0.0.1:" in notices[0] and "no real labels are bought" in notices[0]
    assert (no_key / "sandbox.sqlite3").exists()
    bought = ndjson(created.stdout)
    assert len(bought) == 3 and {r["status"] for r in bought} == {"bought"}

    # A new process-level sandbox (new port), the same state: what create bought, track and refund know.
    tracked = invoke("track", bought[0]["tracking_code"], "-o", "ndjson")
    assert tracked.exit_code == 0, tracked.stderr
    [row] = ndjson(tracked.stdout)
    assert row["tracking_code"] == bought[0]["tracking_code"] and row["carrier"] == bought[0]["carrier"]

    refunded = invoke("refund", bought[1]["shipment_id"], "-o", "ndjson")
    assert refunded.exit_code == 0, refunded.stderr
    assert "built-in sandbox" in refunded.stderr
