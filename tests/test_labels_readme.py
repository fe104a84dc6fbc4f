"""The README's `labels` sample is what the command prints, run as written on a copy of `examples/` after the
README's own `create`, with no key (the built-in sandbox); times, ports and the file's size are masked."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.test_readme_samples import mask, run, sample, shell  # noqa: F401 -- `shell` is a fixture

BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "shipctl").exists(), reason="the shipctl console script is not installed"),
]

_SIZE = re.compile(r"\d+(\.\d+)? (B|KiB|MiB)\b")


def test_the_labels_sample(shell: Path) -> None:  # noqa: F811 -- the fixture, by name
    bought = run("shipctl create examples/manifest.csv --quiet > results.ndjson", shell)
    assert bought.returncode == 0, bought.stderr
    command = "shipctl labels examples/manifest.csv --out today.pdf"
    done = run(command, shell)
    assert done.returncode == 0, done.stderr
    assert _SIZE.sub("SIZE", mask(done.stderr)) == _SIZE.sub("SIZE", mask(sample(command)))
    reader = PdfReader(shell / "today.pdf")
    assert len(reader.pages) == 55
    assert {tuple(float(v) for v in page.mediabox) for page in reader.pages} == {(0.0, 0.0, 288.0, 432.0)}
