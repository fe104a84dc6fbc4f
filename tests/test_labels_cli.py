"""`shipctl labels` end to end: a real `create` against the sandbox (the real SDK over HTTP), then the print file
read back with pypdf — page count, page size, bookmarks, the tracking code on each page — or as ZPL text."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest

INTERNATIONAL = {
    "to_street1": "Unter den Linden 77", "to_city": "Berlin", "to_state": "", "to_zip": "10117", "to_country": "DE",
    "customs_contents_type": "merchandise", "customs_signer": "Steve Brule", "item_description": "T-shirt",
    "item_quantity": 2, "item_value": "23.50", "item_weight": 8, "item_origin_country": "US",
    "item_hs_tariff_number": "6109.10",
}


def manifest(path: Path, count: int, international: tuple[int, ...] = (), **columns: Any) -> Path:
    """`count` rows; those in `international` ship to Berlin with customs; `columns` maps a name to a function
    of the row number (extra manifest columns such as a bin)."""
    rows = []
    for i in range(count):
        extra = {name: make(i) for name, make in columns.items()}
        rows.append(row(i, **(INTERNATIONAL if i in international else {}), **extra))
    return write_manifest(path, rows)


def create(path: Path, *args: str) -> list[dict[str, Any]]:
    result = invoke("create", str(path), "--output", "ndjson", "--quiet", *args)
    assert result.exit_code == 0, result.stderr
    records = ndjson(result.stdout)
    assert all(r["status"] == "bought" for r in records)
    return sorted(records, key=lambda r: r["reference"])  # stdout is in finishing order; ORD-00000… is the manifest's


def labels(*args: str, input: str | None = None, code: int = 0) -> Any:
    result = invoke("labels", *args, input=input)
    assert result.exit_code == code, result.stderr
    return result


def outline(reader: PdfReader) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """(title, page index, [(child title, page index)]) per top-level bookmark."""
    entries: list[tuple[str, int, list[tuple[str, int]]]] = []
    for item in reader.outline:
        if isinstance(item, list):
            title, page, _ = entries[-1]
            entries[-1] = (title, page, [(c.title, reader.get_destination_page_number(c)) for c in item])
        else:
            entries.append((item.title, reader.get_destination_page_number(item), []))
    return entries


def sizes(reader: PdfReader) -> set[tuple[float, ...]]:
    return {tuple(float(v) for v in page.mediabox) for page in reader.pages}


def zpl_codes(text: str) -> list[str]:
    """The tracking code in each `^XA … ^XZ` label (the sandbox's barcode field), in file order."""
    blocks = re.findall(r"\^XA.*?\^XZ", text, re.S)
    return [re.search(r"\^BC[^\^]*\^FD([^\^]+)\^FS", b).group(1) for b in blocks]  # type: ignore[union-attr]


def cached_files(state: Path) -> dict[str, int]:
    """Every file in the label cache, by name, with its inode (a file fetched again is a new file)."""
    root = state / "label-files"
    return {p.name: p.stat().st_ino for p in root.glob("*/*") if p.suffix in (".png", ".pdf", ".zpl")}


# --- the Done-when: one page per label, 4×6, in order, invoices after their labels --------------------------------


def test_a_pdf_has_one_4x6_page_per_label_in_manifest_order_with_invoices_after_their_labels(
    env: Sandbox, tmp_path: Path
) -> None:
    orders = manifest(tmp_path / "orders.csv", 24, international=(5, 17))
    bought = create(orders)
    before = len(env.ledger())
    out = tmp_path / "today.pdf"
    result = labels(str(orders), "--out", str(out), "-o", "ndjson")

    reader = PdfReader(out)
    assert len(reader.pages) == 24 + 2  # a one-page commercial invoice for each international row
    assert sizes(reader) == {(0.0, 0.0, 288.0, 432.0)}
    marks = outline(reader)
    assert [title for title, _, _ in marks] == [f"{r['reference']} · {r['tracking_code']}" for r in bought]
    assert [page for _, page, _ in marks] == sorted(page for _, page, _ in marks)
    for i, (_, page, children) in enumerate(marks):
        if i in (5, 17):
            assert children == [("commercial invoice", page + 1)]
            text = reader.pages[page + 1].extract_text()
            assert "COMMERCIAL INVOICE" in text and bought[i]["tracking_code"] in text
        else:
            assert children == []
    records = ndjson(result.stdout)
    assert [(r["reference"], r["status"], r["page"]) for r in records] == [
        (title.split(" · ")[0], "printed", page + 1) for title, page, _ in marks]
    assert [r["forms"] for r in records if r["forms"]] == [1, 1]
    assert len(env.ledger()) == before  # printing buys nothing
    assert "24 labels: " in result.stderr and "(26 pages" in result.stderr and str(out) in result.stderr


def test_pdf_labels_keep_their_text_so_each_page_shows_its_own_tracking_code(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 12)
    bought = create(orders, "--label-format", "PDF")
    out = tmp_path / "today.pdf"
    labels(str(orders), "--out", str(out))
    reader = PdfReader(out)
    assert len(reader.pages) == 12 and sizes(reader) == {(0.0, 0.0, 288.0, 432.0)}
    codes = [re.search(r"\b\d{22}\b", page.extract_text()).group(0) for page in reader.pages]  # type: ignore[union-attr]
    assert codes == [r["tracking_code"] for r in bought]


def test_sort_by_a_manifest_column_gives_the_picking_order_stably(env: Sandbox, tmp_path: Path) -> None:
    bins = ["B10", "A2", "B2", "A10", "", "A2", "B1", "A1", "A2", "C3", "B10", "A1"]
    orders = manifest(tmp_path / "orders.csv", len(bins), bin=lambda i: bins[i])
    bought = create(orders, "--label-format", "PDF")
    out = tmp_path / "picking.pdf"
    labels(str(orders), "--out", str(out), "--sort-by", "Bin")  # the header's case does not matter
    order = sorted(range(len(bins)), key=lambda i: (bins[i] == "", _natural(bins[i])))  # sorted() is stable
    reader = PdfReader(out)
    assert [t.split(" · ")[0] for t, _, _ in outline(reader)] == [bought[i]["reference"] for i in order]
    codes = [re.search(r"\b\d{22}\b", p.extract_text()).group(0) for p in reader.pages]  # type: ignore[union-attr]
    assert codes == [bought[i]["tracking_code"] for i in order]


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text) if p]


def test_a_zpl_file_has_one_label_per_row_in_order_and_the_invoices_beside_it(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 10, international=(3,), bin=lambda i: 10 - i)
    bought = create(orders)
    out = tmp_path / "today.zpl"
    result = labels(str(orders), "--out", str(out), "--sort-by", "bin", "-o", "ndjson")
    text = out.read_text()
    assert len(re.findall(r"\^XA", text)) == len(re.findall(r"\^XZ", text)) == 10
    assert zpl_codes(text) == [r["tracking_code"] for r in reversed(bought)]  # bin 10 … 1
    assert {r["source"] for r in ndjson(result.stdout)} == {"converted"}  # PNG labels, converted by the API
    forms = PdfReader(tmp_path / "today.forms.pdf")
    assert len(forms.pages) == 1 and sizes(forms) == {(0.0, 0.0, 612.0, 792.0)}
    assert bought[3]["tracking_code"] in forms.pages[0].extract_text()
    assert "today.forms.pdf" in result.stderr


def test_reprinting_three_references_gives_three_pages_in_pile_order(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 15)
    bought = create(orders)
    labels(str(orders), "--out", str(tmp_path / "all.pdf"))
    out = tmp_path / "reprint.pdf"
    wanted = [bought[11]["reference"], bought[2]["reference"], bought[7]["reference"]]
    labels(str(orders), "--out", str(out), "-r", wanted[0], "--reference", f"{wanted[1]},{wanted[2]}")
    reader = PdfReader(out)
    assert len(reader.pages) == 3 and sizes(reader) == {(0.0, 0.0, 288.0, 432.0)}
    assert [t for t, _, _ in outline(reader)] == [
        f"{bought[i]['reference']} · {bought[i]['tracking_code']}" for i in (2, 7, 11)]


# --- what is left out -------------------------------------------------------------------------------------------


def test_refunded_labels_are_never_printed_whoever_refunded_them(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 8)
    bought = create(orders)
    journal = tmp_path / "orders.csv.journal.db"
    done = invoke("refund", "--journal", str(journal), "-r", bought[1]["reference"], "--quiet")
    assert done.exit_code == 0, done.stderr
    # Refunded by id, outside the journal: only the API knows.
    by_id = invoke("refund", bought[6]["shipment_id"], "--quiet")
    assert by_id.exit_code == 0, by_id.stderr
    out = tmp_path / "today.pdf"
    result = labels(str(orders), "--out", str(out), "-o", "json")
    reader = PdfReader(out)
    printed = [i for i in range(8) if i not in (1, 6)]
    assert [t for t, _, _ in outline(reader)] == [
        f"{bought[i]['reference']} · {bought[i]['tracking_code']}" for i in printed]
    records = json.loads(result.stdout)
    assert [r["status"] for r in records] == ["voided" if i in (1, 6) else "printed" for i in range(8)]
    assert (f"left out: 2 voided ({bought[1]['reference']}, {bought[6]['reference']})") in result.stderr
    # Named and void: the reprint asked for cannot be made, and the exit code says so.
    named = labels(str(orders), "--out", str(tmp_path / "one.pdf"), "-r", bought[1]["reference"], code=3)
    assert "nothing printed (1 voided" in named.stderr
    assert not (tmp_path / "one.pdf").exists()


def test_only_new_prints_what_no_earlier_run_put_in_a_file(env: Sandbox, tmp_path: Path) -> None:
    first = manifest(tmp_path / "orders.csv", 6)
    create(first)
    labels(str(first), "--out", str(tmp_path / "morning.pdf"))
    # The afternoon's orders join the same manifest: create buys the new rows only.
    later = manifest(tmp_path / "orders.csv", 10)
    bought = create(later)
    out = tmp_path / "afternoon.pdf"
    result = labels(str(later), "--out", str(out), "--only-new")
    assert [t for t, _, _ in outline(PdfReader(out))] == [
        f"{r['reference']} · {r['tracking_code']}" for r in bought[6:]]
    assert "6 printed before" in result.stderr
    again = labels(str(later), "--out", str(tmp_path / "evening.pdf"), "--only-new")
    assert "nothing printed (10 printed before" in again.stderr
    assert not (tmp_path / "evening.pdf").exists()


# --- never fetched twice ----------------------------------------------------------------------------------------


def test_labels_are_fetched_once_then_served_from_the_cache_and_a_labels_dir_is_used_as_it_is(
    env: Sandbox, tmp_path: Path
) -> None:
    orders = manifest(tmp_path / "orders.csv", 6)
    create(orders)
    one = labels(str(orders), "--out", str(tmp_path / "a.pdf"), "-o", "ndjson")
    assert {r["source"] for r in ndjson(one.stdout)} == {"fetched"}
    state = tmp_path / "state"
    files = cached_files(state)
    assert len(files) == 6
    two = labels(str(orders), "--out", str(tmp_path / "b.pdf"), "-o", "ndjson")
    assert {r["source"] for r in ndjson(two.stdout)} == {"cache"}
    assert cached_files(state) == files  # the same files, not fetched and renamed in again
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()

    # ZPL is another format: fetched (converted) once, then cached too.
    zpl_one = labels(str(orders), "--out", str(tmp_path / "a.zpl"), "-o", "ndjson")
    zpl_two = labels(str(orders), "--out", str(tmp_path / "b.zpl"), "-o", "ndjson")
    assert [r["source"] for r in ndjson(zpl_one.stdout)] == ["converted"] * 6
    assert [r["source"] for r in ndjson(zpl_two.stdout)] == ["cache"] * 6

    other = manifest(tmp_path / "other.csv", 3)
    create(other, "--labels-dir", str(tmp_path / "labels"), "--label-format", "PDF")
    before = cached_files(state)
    saved = labels(str(other), "--out", str(tmp_path / "c.pdf"), "-o", "ndjson")
    assert [r["source"] for r in ndjson(saved.stdout)] == ["labels_dir"] * 3
    assert cached_files(state) == before


def test_create_records_on_stdin_print_the_bought_ones(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 5)
    result = invoke("create", str(orders), "--output", "ndjson", "--quiet")
    records = ndjson(result.stdout)
    records.append({"reference": "ORD-FAILED", "status": "failed", "shipment_id": None})
    out = tmp_path / "piped.pdf"
    piped = labels("-", "--out", str(out), input="\n".join(json.dumps(r) for r in records) + "\n")
    assert [t for t, _, _ in outline(PdfReader(out))] == [
        f"{r['reference']} · {r['tracking_code']}" for r in records[:5]]
    assert "left out: 1 not bought (ORD-FAILED)" in piped.stderr
    # Bare shipment ids work too: the API names each label's reference.
    ids = labels("-", "--out", str(tmp_path / "ids.pdf"),
                 input="\n".join(r["shipment_id"] for r in records[:2]) + "\n")
    assert [t.split(" · ")[0] for t, _, _ in outline(PdfReader(tmp_path / "ids.pdf"))] == [
        r["reference"] for r in records[:2]]
    assert ids.stderr.count("2 labels") == 1


# --- mistakes and failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    ((), "give --out FILE"),
    (("--out", "today.txt"), "cannot tell the format from its name"),
    (("--out", "today.pdf", "--format", "zpl"), "is named .pdf but --format is zpl"),
    (("--out", "today.zpl", "--page", "letter"), "--page letter goes with a PDF"),
    (("--out", "today.pdf", "--sort-by", "aisle"), "--sort-by aisle: the manifest"),
    (("--out", "today.pdf", "-r", "ORD-99999"), "not in journal"),
    (("--out", "blocker/today.pdf"), "blocker is a file, not a folder"),
    (("--out", "orders.csv.journal.db", "--format", "pdf"), "it is the same file as the journal"),
    (("--out", "today.pdf", "--sheet", "Orders"), "--sheet goes with an .xlsx workbook"),
])
def test_mistakes_are_one_line_and_exit_2_with_nothing_fetched(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    orders = manifest(tmp_path / "orders.csv", 3)
    create(orders)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    monkeypatch.chdir(tmp_path)
    result = labels(str(orders), *args, code=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "state" / "label-files").exists()  # refused before the API: nothing fetched


def test_the_unknown_column_error_lists_the_manifests_columns(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 2, sku=lambda i: f"SKU-{i}")
    create(orders)
    result = labels(str(orders), "--out", str(tmp_path / "x.pdf"), "--sort-by", "aisle", code=2)
    assert "its columns: reference, to_name," in result.stderr and ", sku" in result.stderr


def test_no_journal_and_stdin_with_sort_by_are_usage_errors(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 2)
    missing = labels(str(orders), "--out", str(tmp_path / "x.pdf"), code=2)
    assert "no journal for" in missing.stderr and "run it first" in missing.stderr
    piped = labels("-", "--out", str(tmp_path / "x.pdf"), "--sort-by", "bin", input="shp_1\n", code=2)
    assert "--sort-by orders by a manifest column" in piped.stderr


def test_a_label_that_cannot_be_fetched_is_reported_and_the_rest_are_printed_exit_3(
    env: Sandbox, tmp_path: Path
) -> None:
    orders = manifest(tmp_path / "orders.csv", 5)
    bought = create(orders)
    journal = tmp_path / "orders.csv.journal.db"
    db = sqlite3.connect(journal)
    db.execute("UPDATE rows SET shipment_id = 'shp_gone' WHERE reference = ?", (bought[2]["reference"],))
    db.commit()
    db.close()
    out = tmp_path / "today.pdf"
    result = labels(str(orders), "--out", str(out), code=3)
    assert len(PdfReader(out).pages) == 4
    assert f"1 label not printed whole ({bought[2]['reference']})" in result.stderr
    assert "--only-new prints just the labels still missing" in result.stderr


def test_an_api_that_cannot_be_reached_is_one_line_exit_1_and_no_file(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_BASE", "http://127.0.0.1:1/v2")
    out = tmp_path / "today.pdf"
    result = labels("-", "--out", str(out), input="shp_1\nshp_2\nshp_3\n", code=1)
    assert "cannot reach the API at http://127.0.0.1:1/v2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


def test_a_journal_of_another_api_is_refused(env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orders = manifest(tmp_path / "orders.csv", 2)
    create(orders)
    monkeypatch.delenv("EASYPOST_API_KEY")
    monkeypatch.delenv("EASYPOST_API_BASE")  # the built-in sandbox: another API than the one create bought from
    result = labels(str(orders), "--out", str(tmp_path / "x.pdf"), code=2)
    assert "records purchases made against" in result.stderr and "nothing was printed" in result.stderr


def test_a_damaged_cached_label_fails_its_row_and_is_fetched_again_by_the_rerun(env: Sandbox, tmp_path: Path) -> None:
    orders = manifest(tmp_path / "orders.csv", 4)
    bought = create(orders)
    labels(str(orders), "--out", str(tmp_path / "a.pdf"))
    [damaged] = (tmp_path / "state" / "label-files").glob(f"*/{bought[1]['shipment_id']}.png")
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a PNG's signature, then nothing readable
    out = tmp_path / "b.pdf"
    second = labels(str(orders), "--out", str(out), "-o", "ndjson", code=3)
    records = ndjson(second.stdout)
    assert [r["status"] for r in records] == ["printed", "failed", "printed", "printed"]
    assert records[1]["error_code"] == "LABEL_FILE_UNREADABLE"
    assert len(PdfReader(out).pages) == 3 and not damaged.exists()
    third = labels(str(orders), "--out", str(tmp_path / "c.pdf"), "-o", "ndjson")
    assert [r["source"] for r in ndjson(third.stdout)] == ["cache", "fetched", "cache", "cache"]
