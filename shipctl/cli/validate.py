"""`shipctl validate` (placeholder until the manifest reader lands)."""

from __future__ import annotations

from shipctl.cli.app import command


@command()
def validate(manifest: str) -> None:
    """Validate a manifest and report every bad row."""
    raise NotImplementedError
