"""`labels MANIFEST` accounts for every manifest row: one the journal never recorded (a `create` stopped before
it) is a `not_attempted` record, counted on stderr, and the exit code is 3 — not dropped from the count while the
pile looks complete; an invalid row (one `--skip-invalid` left out) is an `invalid` record, told to be fixed."""

from __future__ import annotations

from pathlib import Path

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest


def test_rows_the_journal_never_recorded_are_each_a_record_and_the_run_is_partial(
    env: Sandbox, tmp_path: Path
) -> None:
    bought = [row(0), row(1, reference=""), row(2)]  # row 1 has no reference: its content key is the journal's
    orders = write_manifest(tmp_path / "orders.csv", bought)
    created = invoke("create", str(orders), "-q", "-o", "ndjson")
    assert created.exit_code == 0, created.stderr
    # The rows a stopped create never reached: the journal has no trace of them (an invalid one, no reference).
    write_manifest(orders, [*bought, row(3), row(4), row(5, reference="", to_zip="ABCDE")])

    result = invoke("labels", str(orders), "--out", str(tmp_path / "today.pdf"), "-o", "ndjson")

    assert result.exit_code == 3, result.stderr
    records = ndjson(result.stdout)
    assert [r["status"] for r in records] == ["printed"] * 3 + ["not_attempted"] * 2 + ["invalid"]  # manifest order
    assert [r["reference"] for r in records[3:]] == ["ORD-00003", "ORD-00004", "line 7"]
    assert [r["error_code"] for r in records[3:]] == ["NOT_ATTEMPTED", "NOT_ATTEMPTED", "INVALID_ROW"]
    assert "3 labels: " in result.stderr
    assert "2 not yet attempted (ORD-00003, ORD-00004; rerun create for them)" in result.stderr
    assert "1 invalid in the manifest (line 7; fix it and rerun create)" in result.stderr


def test_rows_skipped_as_invalid_are_told_to_be_fixed_and_leave_the_exit_code_alone(
    env: Sandbox, tmp_path: Path
) -> None:
    orders = write_manifest(tmp_path / "orders.csv", [row(0), row(1, to_zip="ABCDE")])
    created = invoke("create", str(orders), "-q", "-o", "ndjson", "--skip-invalid",
                     "--rejects", str(tmp_path / "rejects.csv"))
    assert created.exit_code == 3, created.stderr  # create's run was partial; the pile of what it bought is whole

    result = invoke("labels", str(orders), "--out", str(tmp_path / "today.pdf"), "-o", "ndjson")

    assert result.exit_code == 0, result.stderr
    assert [(r["reference"], r["status"]) for r in ndjson(result.stdout)] == [
        ("ORD-00000", "printed"), ("ORD-00001", "invalid")]
    assert "1 invalid in the manifest (ORD-00001; fix it and rerun create)" in result.stderr


def test_a_journal_alone_is_not_held_to_a_manifest(env: Sandbox, tmp_path: Path) -> None:
    orders = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(orders), "-q", "-o", "ndjson").exit_code == 0
    write_manifest(orders, [row(0), row(1), row(2)])
    journal = Path(f"{orders}.journal.db")
    result = invoke("labels", "--journal", str(journal), "--out", str(tmp_path / "j.pdf"))
    assert result.exit_code == 0, result.stderr
    assert "2 labels: " in result.stderr and "left out" not in result.stderr
