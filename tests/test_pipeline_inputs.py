"""`shipctl create … | shipctl track -` and `| shipctl refund -`: shipctl reads its own NDJSON on stdin.

Each JSON object line gives its `tracking_code` (track) or `shipment_id` (refund); a record without one (a row
that failed) is skipped with one line on stderr; plain codes and ids, one a line, still work. The pipelines run
as real processes joined by a pipe, as a shell would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest

pytestmark = pytest.mark.slow


def pipeline(first: list[str], second: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], str, int]:
    """`shipctl FIRST | shipctl SECOND`: the second's result, and the first's stderr and exit code."""
    env = dict(os.environ, COLUMNS="80")
    with subprocess.Popen([sys.executable, "-m", "shipctl", *first], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL) as producer:
        assert producer.stdout is not None and producer.stderr is not None
        consumer = subprocess.run([sys.executable, "-m", "shipctl", *second], cwd=cwd, env=env, stdin=producer.stdout,
                                  capture_output=True, text=True, timeout=120)
        producer.stdout.close()
        first_err = producer.stderr.read().decode()
        producer.wait(timeout=60)
    return consumer, first_err, producer.returncode


def manifest_with_a_failing_row(tmp_path: Path) -> Path:
    # A service no carrier offers: that row fails (no label bought, no tracking code) and the others buy.
    rows = [row(0), row(1, service="Teleport"), row(2)]
    return write_manifest(tmp_path / "orders.csv", rows)


def test_create_piped_to_track_tracks_what_was_bought(env: Sandbox, tmp_path: Path) -> None:
    manifest = manifest_with_a_failing_row(tmp_path)
    result, create_err, create_code = pipeline(["create", str(manifest)], ["track", "-"], tmp_path)
    assert create_code == 3, create_err  # one row failed
    assert result.returncode == 0, result.stderr
    tracked = ndjson(result.stdout)
    assert len(tracked) == 2
    assert all(r["status"] == "pre_transit" and r["error_code"] is None for r in tracked)
    assert all(r["tracking_code"].isalnum() for r in tracked)
    assert "1 line had no tracking_code (a failed row): skipped" in result.stderr.splitlines()
    assert "2 codes: 2 tracked" in result.stderr
    assert "is not a tracking code" not in result.stdout + result.stderr


def test_create_piped_to_refund_refunds_what_was_bought(env: Sandbox, tmp_path: Path) -> None:
    manifest = manifest_with_a_failing_row(tmp_path)
    result, create_err, create_code = pipeline(["create", str(manifest)], ["refund", "-"], tmp_path)
    assert create_code == 3, create_err
    assert result.returncode == 0, result.stderr
    refunded = ndjson(result.stdout)
    assert [r["status"] for r in refunded] == ["submitted", "submitted"]
    assert all(r["shipment_id"].startswith("shp_") for r in refunded)
    assert "1 record was not bought by that run (failed): skipped" in result.stderr.splitlines()
    assert "2 shipments: 2 submitted" in result.stderr


def test_several_failed_rows_are_counted_in_one_line(env: Sandbox, tmp_path: Path) -> None:
    records = [{"reference": f"R{i}", "status": "failed", "tracking_code": None, "shipment_id": None}
               for i in range(3)]
    stdin = "\n".join(json.dumps(r) for r in records) + "\nEZ4000000004\n"
    result = invoke("track", "-", "-o", "ndjson", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [r["tracking_code"] for r in ndjson(result.stdout)] == ["EZ4000000004"]
    assert result.stderr.count("had no tracking_code") == 1
    assert "3 lines had no tracking_code (failed rows): skipped" in result.stderr


def test_plain_codes_and_a_json_array_still_work(env: Sandbox) -> None:
    plain = invoke("track", "-", "-o", "ndjson", input="# my codes\nEZ1000000001\n\n9400100000000000000000\n")
    assert plain.exit_code == 0, plain.stderr
    assert [r["tracking_code"] for r in ndjson(plain.stdout)] == ["EZ1000000001", "9400100000000000000000"]
    assert "skipped" not in plain.stderr

    array = json.dumps([{"tracking_code": "EZ2000000002"}, {"tracking_code": None}], indent=2)  # `-o json`
    result = invoke("track", "-", "-o", "ndjson", input=array)
    assert result.exit_code == 0, result.stderr
    assert [r["tracking_code"] for r in ndjson(result.stdout)] == ["EZ2000000002"]
    assert "1 line had no tracking_code (a failed row): skipped" in result.stderr


def test_only_failed_rows_on_stdin_is_a_usage_error(env: Sandbox) -> None:
    result = invoke("refund", "-", input=json.dumps({"reference": "R1", "status": "failed", "shipment_id": None}))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["1 line had no shipment_id (a failed row): skipped",
                                          "error: no shipment ids on stdin"]
