"""Which labels `labels` considers and in what order, without an API: records on stdin, `--reference`,
`--sort-by` (natural order, numbers, blanks last, stable, aliases), and the journal read without its lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipctl.errors import UsageError
from shipctl.jobs.label_rows import (
    LabelRow,
    ManifestColumn,
    pick_references,
    read_journal,
    rows_from_records,
    sort_rows,
)
from shipctl.journal import Journal
from tests.manifests import row, write_manifest


def test_records_say_what_to_print_and_the_same_shipment_twice_is_one_label() -> None:
    lines = [
        {"reference": "A", "status": "bought", "shipment_id": "shp_a", "tracking_code": "1", "label_path": "a.png"},
        {"reference": "B", "status": "refunded", "shipment_id": "shp_b"},
        {"reference": "C", "status": "failed", "shipment_id": "shp_c"},
        {"reference": "D", "status": "bought", "shipment_id": None},
        {"reference": "A", "status": "bought", "shipment_id": "shp_a"},
        {"reference": "E", "status": "printed", "shipment_id": "shp_e"},  # `labels -o ndjson` fed back
        {"reference": "F", "status": "printed_before", "shipment_id": "shp_f"},
        {"reference": "G", "status": "printing_elsewhere", "shipment_id": "shp_g"},  # another --only-new run's
    ]
    text = "# today's run\n" + "\n".join(json.dumps(line) for line in lines) + "\nshp_plain\n\n"
    rows = rows_from_records(text)
    assert [(r.reference, r.shipment_id, r.state) for r in rows] == [
        ("A", "shp_a", "bought"), ("B", "shp_b", "voided"), ("C", "shp_c", "not_bought"),
        ("D", None, "not_bought"), ("E", "shp_e", "bought"), ("F", "shp_f", "bought"), ("G", "shp_g", "bought"),
        ("shp_plain", "shp_plain", "bought"),
    ]
    assert rows[0].label_path == "a.png" and rows[0].tracking_code == "1"
    as_array = rows_from_records(json.dumps(lines[:2], indent=2))
    assert [r.state for r in as_array] == ["bought", "voided"]
    with pytest.raises(UsageError, match="no records on stdin"):
        rows_from_records("\n# nothing\n")


def test_references_pick_in_pile_order_and_an_unknown_one_is_named() -> None:
    rows = [LabelRow(ref, f"shp_{ref}", "bought") for ref in ("A", "B", "C", "D")]
    assert [r.reference for r in pick_references(rows, ["D", "B"], "journal j")] == ["B", "D"]
    with pytest.raises(UsageError, match=r"not in journal j: X, Y; nothing was printed"):
        pick_references(rows, ["A", "X", "Y"], "journal j")


def rows_for(count: int) -> list[LabelRow]:
    return [LabelRow(f"ORD-{i:05d}", f"shp_{i}", "bought", line=i + 2) for i in range(count)]


@pytest.mark.parametrize(("values", "order"), [
    (["B10", "a2", "B2", "A10", "", "A2"], [1, 5, 3, 2, 0, 4]),  # natural, case-blind, stable, blank last
    (["10", "9", "100", "1.5", "1.25", ""], [4, 3, 1, 0, 2, 5]),  # all numbers: as numbers
    (["1.5", "1.25", "x"], [0, 1, 2]),  # not all numbers: digit runs as numbers, 5 before 25
])
def test_sort_by_orders_naturally_and_stably(tmp_path: Path, values: list[str], order: list[int]) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [row(i, Bin=v) for i, v in enumerate(values)])
    ordered = sort_rows(rows_for(len(values)), ManifestColumn(manifest, "bin"))
    assert [r.reference for r in ordered] == [f"ORD-{i:05d}" for i in order]


def test_sort_by_finds_a_column_by_its_alias_and_rows_by_line_when_the_manifest_has_no_reference(
    tmp_path: Path
) -> None:
    rows = []
    for i, zip_code in enumerate(["60606", "10118", "94111"]):
        data = row(i, to_zip=zip_code)
        del data["reference"]  # references made from the content: the rows are found by their line
        rows.append({("Ship To Zip" if k == "to_zip" else k): v for k, v in data.items()})
    manifest = write_manifest(tmp_path / "m.csv", rows)
    ordered = sort_rows(rows_for(3), ManifestColumn(manifest, "zip"))
    assert [r.line for r in ordered] == [3, 2, 4]


def test_read_journal_reads_without_the_lock_and_sorts_states(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:  # held, as a running `create` holds it
        journal.plan([("A", 2, "d"), ("B", 3, "d"), ("C", 4, "d"), ("D", 5, "d")])
        journal.update("A", state="bought", shipment_id="shp_a", tracking_code="1")
        journal.update("B", state="bought", shipment_id="shp_b", refund_status="submitted")
        journal.update("C", state="bought", shipment_id="shp_c", refund_status="rejected")
        journal.set_meta("target", "sandbox")
        read = read_journal(path)
    assert read.target == "sandbox"
    assert [(r.reference, r.state) for r in read.rows] == [
        ("A", "bought"), ("B", "voided"), ("C", "bought"), ("D", "not_bought")]
    with pytest.raises(UsageError, match="does not exist"):
        read_journal(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "not.db").write_text("hello")
    with pytest.raises(UsageError, match=r"not a shipctl journal|cannot be opened"):
        read_journal(tmp_path / "not.db")
