"""An API that cannot be reached: one line that says what failed, where and what to check; exit 1; no traceback.

Never the SDK's "please let us know at support@easypost.com" (the user's own EASYPOST_API_BASE is what is wrong),
never a failed row per input repeating it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipctl.carrier.errors import classify, strip_boilerplate
from shipctl.sandbox import start_sandbox
from tests.cli import TEST_KEY, invoke, point_at
from tests.manifests import make_manifest

pytestmark = pytest.mark.slow

DEAD = "http://127.0.0.1:1/v2"  # port 1: nothing listens, the connection is refused at once
WHAT = "cannot reach the API at http://127.0.0.1:1"
HINT = "(connection refused): check EASYPOST_API_BASE and the network"


@pytest.fixture
def dead_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EASYPOST_API_BASE", DEAD)
    monkeypatch.setenv("EASYPOST_API_KEY", TEST_KEY)
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SHIPCTL_FROM", raising=False)
    return tmp_path


def assert_one_clear_line(stderr: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert WHAT in errors[0] and HINT in errors[0], errors[0]
    assert "support@easypost.com" not in stderr and "let us know" not in stderr
    assert "HTTPConnectionPool" not in stderr and "Traceback" not in stderr


def test_create(dead_api: Path) -> None:
    result = invoke("create", str(make_manifest(dead_api / "orders.csv", 3)), "-o", "ndjson")
    assert result.exit_code == 1
    assert_one_clear_line(result.stderr)
    assert "without buying anything" in result.stderr


def test_a_journal_the_unreachable_run_left_does_not_hold_the_next_run_to_that_api(
    dead_api: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run against a mistyped API base created nothing there, so its journal records no purchase: the same
    manifest run against the right API buys every row (once), instead of being refused as another API's."""
    manifest = make_manifest(dead_api / "orders.csv", 3)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 1
    assert (dead_api / "orders.csv.journal.db").exists()
    with start_sandbox() as sb:
        point_at(monkeypatch, sb, dead_api / "state")
        again = invoke("create", str(manifest), "-o", "ndjson")
        assert again.exit_code == 0, again.stderr
        assert sorted(e["reference"] for e in sb.ledger()) == ["ORD-00000", "ORD-00001", "ORD-00002"]
        # Now it holds purchases from the sandbox: back to the dead API it is refused, not re-bound.
        monkeypatch.setenv("EASYPOST_API_BASE", DEAD)
        refused = invoke("create", str(manifest), "-o", "ndjson")
        assert refused.exit_code == 2 and "records purchases made against" in refused.stderr


def test_rates_one_parcel(dead_api: Path) -> None:
    result = invoke("rates", "--to", "10001", "--from", "94105", "--weight", "1lb")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_clear_line(result.stderr)


def test_rates_of_a_manifest(dead_api: Path) -> None:
    result = invoke("rates", str(make_manifest(dead_api / "orders.csv", 40)), "-o", "ndjson")
    assert result.exit_code == 1
    assert result.stdout == ""  # no failed row per input repeating the line
    assert_one_clear_line(result.stderr)
    assert "rows:" not in result.stderr  # the end line of a run that happened is not printed


def test_track(dead_api: Path) -> None:
    result = invoke("track", "EZ1000000001", "EZ4000000004", "-o", "ndjson")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_clear_line(result.stderr)


def test_refund(dead_api: Path) -> None:
    result = invoke("refund", "shp_0a1b", "shp_2c3d", "-o", "ndjson")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_clear_line(result.stderr)


def test_the_message_names_the_failure_and_the_server() -> None:
    import requests

    try:
        requests.get("http://127.0.0.1:1/labels/x.png", timeout=5)
    except requests.ConnectionError as exc:
        failure = classify(exc)
    assert failure.message == "cannot reach http://127.0.0.1:1 (connection refused)"
    assert failure.code == "IO_ERROR" and failure.transient


def test_no_sdk_message_keeps_its_invitation_to_write_to_support() -> None:
    assert strip_boilerplate(
        "Unexpected error communicating with EasyPost. If this problem persists please let us know at "
        "support@easypost.com. Original error: boom") == "Unexpected error communicating with EasyPost. boom"
    assert strip_boilerplate("Bug discovered: invalid request method: X. Please report to support@easypost.com.") \
        == "Bug discovered: invalid request method: X."
