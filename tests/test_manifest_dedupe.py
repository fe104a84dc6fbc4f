"""Duplicate references are found exactly, with the line each was first seen on, however far apart they are: in the
in-memory batch, in the SQLite table it spills to, and behind the filter in front of the table.

The batch is made small here so a few hundred references cross it many times; the code paths are the ones a
manifest of millions of rows takes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shipctl.manifest import InvalidRow, ValidRow, dedupe, iter_rows
from tests.manifests import row, write_manifest


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedupe, "_BATCH", 16)
    monkeypatch.setattr(dedupe, "_ROWS_PER_INSERT", 3)  # 5 statements of 3 rows, then 1 row alone, per batch


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.usefixtures("small_batches")
def test_every_repeat_names_the_first_line(seed: int) -> None:
    rng = random.Random(seed)
    seen = dedupe.ReferenceSet()
    first: dict[str, int] = {}
    try:
        for line in range(2, 1500):
            reference = f"ORD-{rng.randrange(600)}"  # about half of them repeats, some hundreds of lines apart
            assert seen.add(reference, line) == first.get(reference), (reference, line)
            first.setdefault(reference, line)
        assert seen._db is not None  # the table was used
    finally:
        seen.close()


@pytest.mark.usefixtures("small_batches")
def test_a_duplicate_far_down_a_long_manifest_is_reported(tmp_path: Path) -> None:
    rows = [row(i) for i in range(200)] + [row(3, to_name="Someone Else")]
    manifest = write_manifest(tmp_path / "orders.csv", rows)
    results = list(iter_rows(manifest))
    assert all(isinstance(r, ValidRow) for r in results[:200])
    last = results[-1]
    assert isinstance(last, InvalidRow)
    assert [str(p) for p in last.problems] == [
        "row 202, column reference: duplicate reference 'ORD-00003' (first on row 5)"
    ]


def test_up_to_one_batch_needs_no_table() -> None:
    """A manifest of up to one batch of references (most of them) never opens SQLite nor allocates the filter."""
    seen = dedupe.ReferenceSet()
    for line in range(2, 1002):
        assert seen.add(f"ORD-{line}", line) is None
    assert seen.add("ORD-500", 9999) == 500
    assert seen._db is None and seen._filter is None
    seen.close()
