"""Where the labels are after `create`, and the one rule for their format.

Without `--labels-dir` a run says once where its labels are and how to save them; with it, the summary says how
many files are there. An explicit `--label-format` makes every label that format, whatever a row's own
`label_format` asks, and says on stderr how many rows it overrode; without the flag each row gets its own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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

    # A table shows no URL: the hint says how to get them instead of pointing at it.
    table = invoke("create", str(manifest), "-o", "table")
    assert table.exit_code == 0, table.stderr
    assert HINT in table.stderr and "  For their URLs, add -o ndjson or --results FILE.\n" in table.stderr
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
