"""Where the labels are after `create`, and the one rule for their format.

Without `--labels-dir` a run says once where its labels are and how to save them; with it, the summary says how
many files are there. An explicit `--label-format` makes every label that format, whatever a row's own
`label_format` asks, and says on stderr how many rows it overrode; without the flag each row gets its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import make_manifest, row, write_manifest

HINT = ("labels: 3 bought, not saved as files. To save them, rerun the same command\n"
        "  with --labels-dir DIR; labels already bought are not bought again.\n")


def suffixes(folder: Path) -> Counter[str]:
    return Counter(p.suffix for p in folder.iterdir())


def test_without_labels_dir_the_run_says_once_where_the_labels_are(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    results = tmp_path / "results.csv"

    piped = invoke("create", str(manifest), "-o", "ndjson", "--results", str(results))

    assert piped.exit_code == 0, piped.stderr
    assert piped.stderr.count("labels: ") == 1
    assert HINT in piped.stderr
    assert f"  Their URLs are in the label_url field of stdout and {results}.\n" in piped.stderr
    assert all(r["label_url"] for r in ndjson(piped.stdout))  # where the hint says they are

    # A table shows no URL: the hint says how to get them instead of pointing at it (this rerun bought none).
    table = invoke("create", str(manifest), "-o", "table")
    assert table.exit_code == 0, table.stderr
    assert "labels: 3 bought before this run, not saved as files.\n" in table.stderr
    assert "  For their URLs, add -o ndjson or --results FILE.\n" in table.stderr
    assert "label_url field" not in table.stderr


def test_following_the_hint_saves_the_files_and_buys_nothing_again(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    labels = tmp_path / "labels"

    rerun = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))

    assert rerun.exit_code == 0, rerun.stderr
    assert len(env.ledger()) == 3
    assert suffixes(labels) == Counter({".png": 3})
    assert "labels: " not in rerun.stderr  # no hint once the files are saved
    assert f"labels   {labels} (3 label files saved)" in rerun.stderr
    # Resumed rows whose files were fetched: no claim that no call was made.
    assert "no API call" not in rerun.stderr

    again = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))
    assert f"{labels} (3 label files: 0 saved by this run, 3 already there)" in again.stderr


def test_a_rerun_says_its_labels_were_bought_before_it_not_by_it(env: Sandbox, tmp_path: Path) -> None:
    """A rerun buys nothing yet re-emits every label: the hint counts who bought what, and the rows a file holds
    (saved by an earlier --labels-dir run) are not called unsaved."""
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0

    rerun = invoke("create", str(manifest), "-o", "ndjson")

    assert rerun.exit_code == 0, rerun.stderr
    assert "labels: 3 bought before this run, not saved as files.\n" in rerun.stderr
    assert "  To save them, rerun the same command with --labels-dir DIR;\n" in rerun.stderr
    assert "3 bought," not in rerun.stderr

    grown = write_manifest(manifest, [row(i) for i in range(5)])  # two new orders on the same manifest
    mixed = invoke("create", str(grown), "-o", "ndjson")
    assert mixed.exit_code == 0, mixed.stderr
    assert "labels: 2 bought by this run and 3 before it, not saved as files.\n" in mixed.stderr

    labels = tmp_path / "labels"
    assert invoke("create", str(grown), "-o", "ndjson", "--labels-dir", str(labels)).exit_code == 0
    saved = invoke("create", str(grown), "-o", "ndjson")
    assert saved.exit_code == 0, saved.stderr
    assert all(r["label_path"] for r in ndjson(saved.stdout))
    assert "not saved as" not in saved.stderr
    assert len(env.ledger()) == 5


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_stdout_that_failed_is_not_where_the_hint_sends_for_the_urls(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    results = tmp_path / "results.ndjson"
    for extra in ((), ("--results", str(results)), ("-o", "table")):
        with open("/dev/full", "wb") as full_out:
            proc = subprocess.run([sys.executable, "-m", "shipctl", "create", str(manifest), "-o", "ndjson",
                                   "--progress", "off", *extra], stdout=full_out, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True, timeout=300, check=False)
        assert proc.returncode == 4, proc.stderr
        assert "cannot write stdout" in proc.stderr
        assert "label_url field of stdout" not in proc.stderr
        if extra == ():
            assert ("  Their URLs: stdout did not take every row, but the journal keeps them all;\n"
                    "  rerunning the same command writes them again.\n") in proc.stderr
        elif extra[0] == "--results":  # --results took every row: the hint points there alone
            assert f"  Their URLs are in the label_url field of {results}.\n" in proc.stderr
        else:  # a table has no URL column: where to get them, as on any table
            assert "  For their URLs, add -o ndjson or --results FILE.\n" in proc.stderr
    assert len(env.ledger()) == 3


def test_no_hint_when_nothing_was_bought_or_when_quiet(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    dry = invoke("create", str(manifest), "-o", "ndjson", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "labels: " not in dry.stderr
    quiet = invoke("create", str(manifest), "-o", "ndjson", "-q")
    assert quiet.exit_code == 0, quiet.stderr
    assert len(quiet.stderr.splitlines()) == 1 and quiet.stderr.startswith("2 shipments: 2 bought")


def mixed_formats(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "orders.csv", [
        row(0, label_format="ZPL"), row(1, label_format="ZPL"), row(2, label_format="png"), row(3), row(4),
    ])


def test_an_explicit_label_format_makes_every_label_that_format(env: Sandbox, tmp_path: Path) -> None:
    labels = tmp_path / "labels"

    result = invoke("create", str(mixed_formats(tmp_path)), "-o", "ndjson", "--labels-dir", str(labels),
                    "--label-format", "pdf")

    assert result.exit_code == 0, result.stderr
    assert suffixes(labels) == Counter({".pdf": 5})
    notice = "labels: 2 rows asked for ZPL and 1 for PNG; --label-format PDF makes every label PDF\n"
    assert result.stderr.count(notice) == 1


def test_without_the_flag_each_row_gets_its_own_format_else_png(env: Sandbox, tmp_path: Path) -> None:
    labels = tmp_path / "labels"

    result = invoke("create", str(mixed_formats(tmp_path)), "-o", "ndjson", "--labels-dir", str(labels))

    assert result.exit_code == 0, result.stderr
    assert suffixes(labels) == Counter({".zpl": 2, ".png": 3})
    assert "asked for" not in result.stderr


def test_the_flag_also_overrides_rows_already_bought_in_another_format(env: Sandbox, tmp_path: Path) -> None:
    """Rows bought as ZPL earlier, saved now with `--label-format PNG`: converted, never left as ZPL."""
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, label_format="ZPL"), row(1, label_format="ZPL")])
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    labels = tmp_path / "labels"

    result = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels), "--label-format", "PNG")

    assert result.exit_code == 0, result.stderr
    assert suffixes(labels) == Counter({".png": 2})
    assert "2 rows asked for ZPL" in result.stderr and "makes every label PNG" in result.stderr
    assert len(env.ledger()) == 2
