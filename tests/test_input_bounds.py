"""Inputs that would hold the process for good are refused at once: an endless or huge `--from` file, a
concurrency no API serves, a manifest argument that is a stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest


def test_an_endless_from_file_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    """`--from /dev/zero` was read whole into memory (7 GB in 15 s); an address file is read up to 64 KiB."""
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    done = invoke("validate", str(manifest), "--from", "/dev/zero")
    assert done.exit_code == 2
    assert "larger than 64 KiB, not an address" in done.stderr
    big = tmp_path / "big.json"
    big.write_text('{"name": "' + "x" * (70 << 10) + '"}')
    assert "larger than 64 KiB" in invoke("validate", str(manifest), "--from", str(big)).stderr


@pytest.mark.parametrize("flags", [("--concurrency", "1000000"), ("--concurrency", "auto", "--max-concurrency", "5000"),
                                   ("--workers", "100000")])
def test_a_concurrency_no_api_serves_is_refused_before_anything(env: Sandbox, tmp_path: Path,
                                                                flags: tuple[str, ...]) -> None:
    """A million in flight sized a connection pool and threads to match and held the run for good, calling nothing."""
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    done = invoke("create", str(manifest), *flags)
    assert done.exit_code == 2
    assert "must be at most 1024" in done.stderr
    assert env.ledger() == []
    assert invoke("create", str(manifest), "--concurrency", "1024", "-q").exit_code == 0
