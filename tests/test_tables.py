"""Tables as a person sees them: they fit the screen, never crop an id, a code, a reference or a place, come in
the manifest's order, and a large run's table is summarised on a screen. In a file every row stays on one line."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from shipctl.cli.create_output import open_sink
from shipctl.cli.terminal import Terminal
from shipctl.jobs.validation import ManifestSource
from shipctl.manifest import ValidRow
from shipctl.results import ResultRecord
from shipctl.sandbox import Sandbox, start_sandbox
from tests.cli import PROD_KEY, invoke, ndjson, point_at
from tests.manifests import row, write_manifest
from tests.screen import on_screen, table_rows, widest

HISTORY_CODE = "EZ4000000004"  # a sandbox test code with a long history: facilities, cities, ZIPs


def left_out(stderr: str, columns: int) -> list[str]:
    """The columns named by the one line that says what a table left out to fit the screen."""
    [line] = [line for line in stderr.splitlines() if "the table leaves out" in line]
    prefix, suffix = "the table leaves out ", f" to fit {columns} columns; -o csv has every column"
    assert line.startswith(prefix) and line.endswith(suffix), line
    return line[len(prefix):-len(suffix)].split(", ")


def same(shown: dict[str, str], record: dict[str, Any]) -> None:
    """Every column the table shows holds the record's whole value (folded text joined again)."""
    for column, text in shown.items():
        expected = record.get(column)
        assert text == ("" if expected is None else " ".join(str(expected).split())), (column, shown, record)


def test_a_history_table_in_a_file_keeps_every_row_on_one_line_and_every_place_whole(env: Sandbox) -> None:
    records = ndjson(invoke("track", HISTORY_CODE, "--history", "-o", "ndjson", "-q").stdout)
    result = invoke("track", HISTORY_CODE, "--history", "-o", "table", "-q")  # stdout is not a terminal
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + len(records)  # the header, its rule, one line per event: nothing folded
    shown = table_rows(result.stdout)
    assert {"location", "message", "datetime", "tracking_code"} <= set(shown[0])
    for cells, record in zip(shown, records, strict=True):
        same(cells, record)
    assert any(r["location"] and len(r["location"]) > 12 for r in records)  # there was something to crop
    assert all(line == line.rstrip() for line in lines)  # no padding after the last cell
    assert "leaves out" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 140])
def test_a_history_table_fits_the_terminal_and_folds_only_free_text(env: Sandbox, columns: int) -> None:
    records = ndjson(invoke("track", HISTORY_CODE, "--history", "-o", "ndjson", "-q").stdout)
    seen = on_screen(["track", HISTORY_CODE, "--history"], columns)
    assert seen.code == 0, seen.stderr
    assert widest(seen.stdout) <= columns
    shown = table_rows(seen.stdout)
    assert len(shown) == len(records)
    for cells, record in zip(shown, records, strict=True):
        same(cells, record)  # folded at spaces, read back whole: "HOUSTON, TX 77063", never "HOU"
    lines = seen.stdout.splitlines()
    for record in records:  # a code or a time is never split over two lines
        assert any(record["tracking_code"] in line and record["datetime"] in line for line in lines)
    if columns == 80:
        assert {"location", "message", "tracking_code", "datetime"} <= set(shown[0])
        history = {"tracking_code", "carrier", "datetime", "status", "status_detail", "message", "location"}
        assert set(left_out(seen.stderr, 80)) == history - set(shown[0]) != set()
    else:
        assert "leaves out" not in seen.stderr
        assert {"carrier", "status", "status_detail"} <= set(shown[0])


@pytest.mark.slow
def test_the_create_table_fits_80_columns_with_whole_codes(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(12)])
    seen = on_screen(["create", str(manifest), "--progress", "off"], 80)
    assert seen.code == 0, seen.stderr
    assert widest(seen.stdout) <= 80
    shown = table_rows(seen.stdout)
    records = ndjson(invoke("create", str(manifest), "-o", "ndjson", "-q").stdout)  # the rerun re-emits them
    by_reference = {r["reference"]: r for r in records}
    assert len(shown) == 12
    for cells in shown:
        same(cells, by_reference[cells["reference"]])
    assert {"reference", "status", "tracking_code", "rate"} <= set(shown[0])
    shown_columns = set(shown[0])
    assert set(left_out(seen.stderr, 80)) == {c for c in records[0] if records[0][c] is not None} - shown_columns - {
        "label_url"}  # the URL is never in a table (results.TABLE_COLUMNS)


@pytest.mark.slow
def test_at_80_columns_status_outlasts_address_verification_and_error_text(env: Sandbox, tmp_path: Path) -> None:
    """A failed row's message and every row's `address_verification` (mostly `verified`) made the table wider:
    `status` was left out before them, so a failed or refunded row looked like every other."""
    rows = [row(i, service="Teleport") if i == 3 else row(i) for i in range(6)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    seen = on_screen(["create", str(manifest), "--progress", "off"], 80)
    assert seen.code == 3, seen.stderr
    records = ndjson(invoke("create", str(manifest), "-o", "ndjson", "-q").stdout)
    assert all(r["address_verification"] for r in records if r["status"] == "bought")  # there was one to leave out
    shown = table_rows(seen.stdout)
    assert {"reference", "status", "tracking_code", "rate"} <= set(shown[0])
    assert "address_verification" in left_out(seen.stderr, 80)
    assert {r["reference"]: r["status"] for r in shown}["ORD-00003"] == "failed"


def test_at_70_columns_status_outlasts_the_folded_error_message(env: Sandbox, tmp_path: Path) -> None:
    """Narrower still, a failed row's message folded over many lines was kept while `status` went: which rows
    failed could not be seen. The message goes first now (stdout's data formats and --failed keep it)."""
    rows = [row(i, service="Teleport") if i == 3 else row(i) for i in range(6)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    seen = on_screen(["create", str(manifest), "--progress", "off"], 70)
    assert seen.code == 3, seen.stderr
    shown = table_rows(seen.stdout)
    assert {"reference", "status"} <= set(shown[0])
    assert "error_message" in left_out(seen.stderr, 70)
    assert {r["reference"]: r["status"] for r in shown}["ORD-00003"] == "failed"


@pytest.mark.slow
def test_a_large_run_on_a_screen_shows_the_rows_needing_attention(env: Sandbox, tmp_path: Path) -> None:
    rows = [row(i, service="Teleport") if i in (7, 70, 140) else row(i) for i in range(150)]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    seen = on_screen(["create", str(manifest), "--progress", "off"], 140)
    assert seen.code == 3, seen.stderr
    shown = table_rows(seen.stdout)
    assert sorted(r["reference"] for r in shown) == ["ORD-00007", "ORD-00070", "ORD-00140"]
    assert {r["status"] for r in shown} == {"failed"}
    assert (
        "150 rows, more than 100 for a screen: the 3 that need attention are shown; 147 more rows: rerun the same "
        "command with -o ndjson or --results FILE for every row (nothing is bought twice)"
    ) in seen.stderr
    # In a file the table is whole: the full records are never summarised away.
    in_file = invoke("create", str(manifest), "-o", "table", "-q")
    assert len(table_rows(in_file.stdout)) == 150


@pytest.mark.slow
def test_a_large_run_with_results_says_where_every_row_is(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(120)])
    results = tmp_path / "results.csv"
    seen = on_screen(["create", str(manifest), "--progress", "off", "--results", str(results)], 140)
    assert seen.code == 0, seen.stderr
    assert len(table_rows(seen.stdout)) == 10  # nothing needs attention: the first rows show what they look like
    assert (f"120 rows, more than 100 for a screen: the first 10 are shown; 110 more rows: every row is in {results}"
            in seen.stderr)
    assert len(results.read_text().splitlines()) == 121


def test_the_create_table_is_in_manifest_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(60)])
    with start_sandbox(latency="realistic", seed=5) as slow:  # recorded latencies: rows finish out of order
        point_at(monkeypatch, slow, tmp_path / "state")
        result = invoke("create", str(manifest), "-o", "table", "--concurrency", "16", "-q")
        finished = [r["reference"] for r in ndjson(invoke("create", str(manifest), "-o", "ndjson", "-q").stdout)]
    assert result.exit_code == 0, result.stderr
    assert [r["reference"] for r in table_rows(result.stdout)] == [f"ORD-{i:05d}" for i in range(60)]
    assert sorted(finished) == [f"ORD-{i:05d}" for i in range(60)]


def test_the_sink_prints_its_table_in_the_order_of_the_manifest(tmp_path: Path) -> None:
    """open_sink's half of manifest order: records handed over in completion order come out in manifest order."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(5)])
    out = io.StringIO()
    term = Terminal(stdout=out, stderr=io.StringIO())
    valid = {item.row.reference: item for item in ManifestSource(manifest).rows() if isinstance(item, ValidRow)}
    with open_sink(term, "table", None, False) as sink:
        for i in (3, 0, 4, 1, 2):
            reference = f"ORD-{i:05d}"
            sink(ResultRecord(reference=reference, status="bought", tracking_code=f"9400{i}"), valid[reference])
    assert [r["reference"] for r in table_rows(out.getvalue())] == [f"ORD-{i:05d}" for i in range(5)]


def test_no_at_the_production_prompt_prints_no_empty_table(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipctl.cli.terminal import use

    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    with use(Terminal(interactive=True, answer=lambda _question: "n")):
        result = invoke("create", str(manifest), "-o", "table")
    assert result.exit_code == 2, result.stderr
    assert "purchase not confirmed; nothing was bought" in result.stderr
    assert result.stdout == ""  # before: a header and its rule, with no row under them


def test_columns_env_is_not_a_width_for_a_file(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file has no screen: `COLUMNS=40` must not fold a table written to one."""
    monkeypatch.setenv("COLUMNS", "40")
    result = invoke("track", HISTORY_CODE, "--history", "-o", "table", "-q")
    assert result.exit_code == 0
    assert widest(result.stdout) > 40
    assert os.environ["COLUMNS"] == "40"
