"""Fixes from a review, each through the real CLI against the sandbox (its ledger is the truth about purchases).

1. An output that is the manifest, the journal or another output is refused before anything is bought; so is a
   journal that is the manifest.
2. An output name too long for the file system is a usage error naming its flag, not an unexpected OSError.
3. `create … | refund -` refunds only what that run bought: not failed rows, not labels it found.
4. A row's `label_format` is not part of what was shipped: changing it is not editing the row (old journals too).
5. `--label-format` and a new `--labels-dir` apply to label files saved earlier; the summary counts true.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from shipctl.jobs.purchase import _digest_with_format
from shipctl.jobs.validation import ManifestSource
from shipctl.manifest import ValidRow
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import make_manifest, row, write_manifest
from tests.sdk import refund_status


def assert_usage_error(result: object, *fragments: str) -> None:
    code, stdout, stderr = result.exit_code, result.stdout, result.stderr  # type: ignore[attr-defined]
    assert code == 2, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- 1. outputs that collide ----------------------------------------------------------------------------------


def test_results_and_failed_on_one_file_are_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    out = tmp_path / "out.csv"
    result = invoke("create", str(manifest), "-o", "ndjson", "--results", str(out), "--failed", str(out))
    assert_usage_error(result, f"--failed {out}", f"the same file as --results {out}")
    assert env.ledger() == []
    assert not (tmp_path / "orders.csv.journal.db").exists()
    assert not out.exists()


def test_the_same_file_spelled_differently_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    (tmp_path / "sub").mkdir()
    other = tmp_path / "sub" / ".." / "out.csv"
    result = invoke("create", str(manifest), "--results", str(tmp_path / "out.csv"), "--failed", str(other))
    assert_usage_error(result, "--failed", "the same file as --results")
    assert env.ledger() == []


@pytest.mark.parametrize("flag", ["--results", "--failed"])
def test_an_output_on_the_manifest_is_refused_and_the_manifest_kept(env: Sandbox, tmp_path: Path, flag: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    before = manifest.read_bytes()
    result = invoke("create", str(manifest), "-o", "ndjson", flag, str(manifest))
    assert_usage_error(result, f"{flag} {manifest}", f"the same file as the manifest {manifest}")
    assert manifest.read_bytes() == before
    assert env.ledger() == []


def test_an_output_on_the_journal_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    journal = tmp_path / "run.journal.db"
    result = invoke("create", str(manifest), "--journal", str(journal), "--results", str(journal))
    assert_usage_error(result, f"--results {journal}", f"the same file as the journal {journal}")
    assert env.ledger() == []
    assert not journal.exists()


@pytest.mark.parametrize("spelling", ["as given", "a hard link", "a symbolic link"])
def test_a_journal_on_the_manifest_is_refused_and_the_manifest_kept(env: Sandbox, tmp_path: Path,
                                                                    spelling: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    before = manifest.read_bytes()
    journal = manifest if spelling == "as given" else tmp_path / "other.db"
    if spelling == "a hard link":
        journal.hardlink_to(manifest)
    elif spelling == "a symbolic link":
        journal.symlink_to(manifest)
    for command in (["create", str(manifest)], ["plan", str(manifest), "--out", str(tmp_path / "plan.json")]):
        result = invoke(*command, "--journal", str(journal), "-o", "ndjson")
        assert_usage_error(result, f"the journal {journal}", f"the same file as the manifest {manifest}",
                           "give --journal a file of its own")
    assert manifest.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} - {"state"} == {"orders.csv", journal.name}  # no plan, no journal
    assert env.ledger() == []


def test_rejects_collide_only_when_written(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    out = tmp_path / "out.csv"
    refused = invoke("create", str(manifest), "--skip-invalid", "--rejects", str(out), "--results", str(out))
    assert_usage_error(refused, f"--rejects {out}", f"the same file as --results {out}")
    assert env.ledger() == []
    # Without --skip-invalid no rejects file is written: nothing to collide with.
    ok = invoke("create", str(manifest), "-o", "ndjson", "--rejects", str(out), "--results", str(out))
    assert ok.exit_code == 0, ok.stderr
    assert len(env.ledger()) == 2 and len(ndjson(ok.stdout)) == 2


def test_a_manifest_on_stdin_has_no_path_but_outputs_still_must_differ(env: Sandbox, tmp_path: Path) -> None:
    text = make_manifest(tmp_path / "orders.csv", 2).read_text()
    out = tmp_path / "out.csv"
    refused = invoke("create", "-", "--results", str(out), "--failed", str(out), input=text)
    assert_usage_error(refused, "--failed", "the same file as --results")
    assert env.ledger() == []
    ok = invoke("create", "-", "-o", "ndjson", "--results", str(out), "--failed", str(tmp_path / "f.csv"), input=text)
    assert ok.exit_code == 0, ok.stderr
    assert len(env.ledger()) == 2


# -- 2. a name too long ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--results", "--failed", "--rejects", "--labels-dir"])
def test_an_output_name_too_long_is_a_usage_error_naming_the_flag(env: Sandbox, tmp_path: Path, flag: str) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    long = tmp_path / ("x" * 300 + ".csv")
    extra = ["--skip-invalid"] if flag == "--rejects" else []
    result = invoke("create", str(manifest), "-o", "ndjson", *extra, flag, str(long))
    assert_usage_error(result, flag, "File name too long")
    assert "unexpected" not in result.stderr
    assert env.ledger() == []


def test_a_folder_name_too_long_in_an_output_path_is_a_usage_error(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    result = invoke("create", str(manifest), "--failed", str(tmp_path / ("d" * 300) / "f.csv"))
    assert_usage_error(result, "--failed", "File name too long")
    assert env.ledger() == []


# -- 3. refund - takes only what that run bought ----------------------------------------------------------------


def found_new_and_failed(env: Sandbox, tmp_path: Path) -> list[dict[str, object]]:
    """A run that found 2 labels an earlier journal bought, bought 1, and failed 1 row after creating its shipment."""
    earlier = write_manifest(tmp_path / "earlier.csv", [row(0), row(1)])
    assert invoke("create", str(earlier), "-o", "ndjson").exit_code == 0
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1), row(2), row(3, carrier="NoSuch")])
    result = invoke("create", str(manifest), "-o", "ndjson", "--check-references")
    assert result.exit_code == 3, result.stderr
    records = ndjson(result.stdout)
    kinds = Counter((r["status"], r["purchase"]) for r in records)
    assert kinds == Counter({("bought", "found"): 2, ("bought", "new"): 1, ("failed", None): 1})
    assert all(r["shipment_id"] for r in records)  # the failed row's shipment was created, never bought
    assert len(env.ledger()) == 3
    return records


def test_refund_from_create_output_refunds_only_this_runs_purchases(env: Sandbox, tmp_path: Path) -> None:
    records = found_new_and_failed(env, tmp_path)
    stdin = "".join(json.dumps(r) + "\n" for r in records)

    result = invoke("refund", "-", "-o", "ndjson", input=stdin)

    assert result.exit_code == 0, result.stderr
    new = [r["shipment_id"] for r in records if r["purchase"] == "new"]
    assert [r["shipment_id"] for r in ndjson(result.stdout)] == new
    assert "3 records were not bought by that run (found, failed): skipped" in result.stderr.splitlines()
    assert ": 1 submitted" in result.stderr
    found = [str(r["shipment_id"]) for r in records if r["purchase"] == "found"]
    assert [refund_status(env, i) for i in found] == [None, None]  # another run's labels stay valid


def test_refund_from_a_json_array_skips_the_same_records(env: Sandbox, tmp_path: Path) -> None:
    records = found_new_and_failed(env, tmp_path)
    result = invoke("refund", "-", "-o", "ndjson", input=json.dumps(records, indent=2))
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 1
    assert "3 records were not bought by that run (found, failed): skipped" in result.stderr


def test_track_takes_every_record_with_a_tracking_code(env: Sandbox, tmp_path: Path) -> None:
    records = found_new_and_failed(env, tmp_path)
    result = invoke("track", "-", "-o", "ndjson", input="".join(json.dumps(r) + "\n" for r in records))
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 3
    assert "1 line had no tracking_code (a failed row): skipped" in result.stderr.splitlines()
    assert "not bought by that run" not in result.stderr


def test_records_without_a_status_give_any_shipment_id(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    bought = ndjson(invoke("create", str(manifest), "-o", "ndjson").stdout)
    stdin = "".join(json.dumps({"id": r["shipment_id"], "shipment_id": r["shipment_id"]}) + "\n" for r in bought)
    result = invoke("refund", "-", "-o", "ndjson", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 2
    assert "skipped" not in result.stderr


# -- 4. label_format is not part of the row ------------------------------------------------------------------


def _journal_digest(journal: Path, reference: str, value: str | None = None) -> str:
    with sqlite3.connect(journal) as db:
        if value is not None:
            db.execute("UPDATE rows SET digest = ? WHERE reference = ?", (value, reference))
        (digest,) = db.execute("SELECT digest FROM rows WHERE reference = ?", (reference,)).fetchone()
    db.close()
    return str(digest)


def _row(manifest: Path) -> object:
    (item,) = [i for i in ManifestSource(manifest).rows() if isinstance(i, ValidRow)]
    return item.row


def test_changing_only_the_label_format_is_not_an_edit(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, label_format="PNG")])
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    write_manifest(manifest, [row(0, label_format="PDF")])

    again = invoke("create", str(manifest), "-o", "ndjson")

    assert again.exit_code == 0, again.stderr
    (record,) = ndjson(again.stdout)
    assert record["status"] == "bought" and record["error_code"] is None
    assert "EDITED_AFTER_PURCHASE" not in again.stderr
    assert len(env.ledger()) == 1


def test_a_digest_an_older_shipctl_stored_still_matches(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, label_format="PNG")])
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    journal = tmp_path / "orders.csv.journal.db"
    # What an older shipctl stored: the row hashed with its label_format in it.
    legacy = _digest_with_format(_row(manifest), "PNG")  # type: ignore[arg-type]
    assert _journal_digest(journal, "ORD-00000") != legacy
    _journal_digest(journal, "ORD-00000", legacy)
    write_manifest(manifest, [row(0, label_format="ZPL")])

    again = invoke("create", str(manifest), "-o", "ndjson")

    assert again.exit_code == 0, again.stderr
    assert ndjson(again.stdout)[0]["error_code"] is None
    assert len(env.ledger()) == 1


def test_a_real_edit_under_an_old_digest_is_still_flagged_in_words(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, label_format="PNG")])
    assert invoke("create", str(manifest), "-o", "ndjson").exit_code == 0
    journal = tmp_path / "orders.csv.journal.db"
    _journal_digest(journal, "ORD-00000", _digest_with_format(_row(manifest), "PNG"))  # type: ignore[arg-type]
    write_manifest(manifest, [row(0, label_format="PNG", weight=30)])

    again = invoke("create", str(manifest), "-o", "ndjson")

    assert again.exit_code == 3, again.stderr
    assert ndjson(again.stdout)[0]["error_code"] == "EDITED_AFTER_PURCHASE"
    assert "1 row with a label needs a person (EDITED_AFTER_PURCHASE ×1)" in again.stderr
    assert len(env.ledger()) == 1


# -- 5. label files saved earlier --------------------------------------------------------------------------------


def suffixes(folder: Path) -> Counter[str]:
    return Counter(p.suffix for p in folder.iterdir())


def test_label_format_and_a_new_labels_dir_apply_to_labels_saved_earlier(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    l1, l2 = tmp_path / "L1", tmp_path / "L2"
    first = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(l1))
    assert first.exit_code == 0, first.stderr
    assert suffixes(l1) == Counter({".png": 3})

    pdf = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(l1), "--label-format", "PDF")

    assert pdf.exit_code == 0, pdf.stderr
    assert suffixes(l1) == Counter({".png": 3, ".pdf": 3})
    paths = [Path(r["label_path"]) for r in ndjson(pdf.stdout)]
    assert all(p.parent == l1 and p.suffix == ".pdf" and p.read_bytes().startswith(b"%PDF") for p in paths)
    assert f"{l1} (3 label files saved)" in pdf.stderr

    moved = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(l2))

    assert moved.exit_code == 0, moved.stderr
    assert len(list(l2.iterdir())) == 3
    assert all(Path(r["label_path"]).parent == l2 for r in ndjson(moved.stdout))
    assert f"{l2} (3 label files saved)" in moved.stderr

    again = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(l2))
    assert f"{l2} (3 label files: 0 saved by this run, 3 already there)" in again.stderr
    assert len(env.ledger()) == 3


def test_the_same_format_in_the_same_folder_is_not_saved_again(env: Sandbox, tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    labels = tmp_path / "labels"
    assert invoke("create", str(manifest), "--labels-dir", str(labels), "--label-format", "PDF").exit_code == 0
    again = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels), "--label-format", "pdf")
    assert again.exit_code == 0, again.stderr
    assert suffixes(labels) == Counter({".pdf": 2})
    assert f"{labels} (2 label files: 0 saved by this run, 2 already there)" in again.stderr
    assert len(env.ledger()) == 2
