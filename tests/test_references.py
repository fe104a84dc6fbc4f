"""One order written two ways is one reference: in a manifest (a duplicate, nothing bought) and across journals
(the claims find the label bought under the other spelling). What is sent and printed stays the row's own."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from shipctl.references import reference_key
from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import row, write_manifest

NFC = "Caf\u00e9-3"
NFD = "Cafe\u0301-3"


@pytest.mark.parametrize(
    ("one", "other"),
    [(NFC, NFD), ("N-6\u200b", "N-6"), ("\ufeffN-7", "N-7"), ("\uff2e-4", "N-4"), ("7002.0", "7002"),
     ("\uff17\uff10\uff10\uff12", "7002")],
)
def test_two_spellings_of_one_order_have_one_key(one: str, other: str) -> None:
    assert one != other and reference_key(one) == reference_key(other)


@pytest.mark.parametrize("plain", ["ORD-1001", "ord-1001", "7002.5", "10.0.1", "R 12", ""])
def test_other_references_are_their_own_key(plain: str) -> None:
    assert reference_key(plain) == plain  # case kept: EasyPost's references are case-sensitive


def test_a_manifest_holding_one_order_twice_spelled_apart_is_refused(env: Sandbox, tmp_path: Path) -> None:
    manifest = tmp_path / "orders.json"
    manifest.write_text(json.dumps([row(0, reference=NFC), row(1, reference=NFD), row(2, reference=7002),
                                    row(3, reference=7002.0), row(4, reference="N-6\u200b"), row(5, reference="N-6")]))
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2 and result.stdout == ""
    problems = [line for line in result.stderr.splitlines() if line.startswith("row ")]
    assert problems == [
        f"row 2, column reference: duplicate reference {NFD!r} (first on row 1, the same order written another "
        "way: Unicode form, an invisible character or a .0)",
        "row 4, column reference: duplicate reference '7002.0' (first on row 3, the same order written another "
        "way: Unicode form, an invisible character or a .0)",
        "row 6, column reference: duplicate reference 'N-6' (first on row 5)",  # row 5's has a zero-width space
    ]
    assert env.ledger() == []


def test_an_export_in_another_unicode_form_finds_the_label_bought_not_buying_it_again(
    env: Sandbox, tmp_path: Path
) -> None:
    # A test key and no --check-references: only this state directory's claims can tell the two exports apart.
    first = write_manifest(tmp_path / "orders.csv", [row(0, reference=NFC), row(1)])
    assert invoke("create", str(first), "-q").exit_code == 0
    again = write_manifest(tmp_path / "re-export.csv", [row(0, reference=NFD), row(1)])
    result = invoke("create", str(again), "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    records = ndjson(result.stdout)
    assert sorted((r["reference"], r["purchase"]) for r in records) == sorted([(NFD, "found"), ("ORD-00001", "found")])
    assert Counter(e["reference"] for e in env.ledger()) == Counter({NFC: 1, "ORD-00001": 1})
