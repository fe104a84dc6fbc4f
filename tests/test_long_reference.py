"""A reference too long for a file name still gets its label saved, and a rerun is clean (defect 12)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from shipctl.jobs.purchase import label_filename
from shipctl.sandbox import Sandbox
from tests.cli import ndjson
from tests.manifests import row, write_manifest

NAME_MAX = 255  # bytes in one file name on every filesystem shipctl targets


def shipctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipctl", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


def test_a_300_character_reference_is_bought_and_its_label_saved(env: Sandbox, tmp_path: Path) -> None:
    shared = "ORD-" + "x" * 250
    long_a, long_b = shared + "A" * 46, shared + "B" * 46  # 300 characters, the first 296 shared
    manifest = write_manifest(tmp_path / "orders.csv", [row(0, reference=long_a), row(1, reference=long_b)])
    labels = tmp_path / "labels"
    args = ("create", str(manifest), "--labels-dir", str(labels), "-q", "-o", "ndjson")

    first = shipctl(*args)
    assert first.returncode == 0, first.stderr
    records = {r["reference"]: r for r in ndjson(first.stdout)}
    assert set(records) == {long_a, long_b}
    paths = {ref: Path(r["label_path"]) for ref, r in records.items()}
    assert all(r["status"] == "bought" and not r["error_code"] for r in records.values())
    assert paths[long_a] != paths[long_b]  # a shared prefix never makes two labels one file
    for path in paths.values():
        assert path.parent == labels and path.read_bytes().startswith(b"\x89PNG")
        assert len(path.name.encode()) < 200 and path.name.startswith("ORD-xxxx")  # readable, well under limits
    assert sorted(p.name for p in labels.iterdir()) == sorted(p.name for p in paths.values())

    again = shipctl(*args)
    assert again.returncode == 0, again.stderr
    assert {r["reference"]: r["label_path"] for r in ndjson(again.stdout)} == {
        ref: str(path) for ref, path in paths.items()
    }
    assert Counter(e["reference"] for e in env.ledger()) == Counter({long_a: 1, long_b: 1})


def test_ordinary_references_keep_their_names_and_long_ones_fit() -> None:
    url = "http://127.0.0.1/labels/x.png"
    assert label_filename("ORD-00001", url) == "ORD-00001.png"
    assert label_filename("ORD-00001", url, shipment_id="shp_1") == "ORD-00001-shp_1.png"
    unicode_long = "é" * 300  # 600 bytes in UTF-8
    for reference in ("x" * 300, unicode_long, "a/" * 200):
        for shipment_id in (None, "shp_" + "f" * 32):
            name = label_filename(reference, url, shipment_id=shipment_id)
            assert len(name.encode()) <= NAME_MAX - 40, name  # room for the download's temporary name
    assert label_filename("x" * 300, url) != label_filename("x" * 299 + "y", url)
