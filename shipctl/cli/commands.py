"""Import every command module so each registers itself on the app."""

from shipctl.cli import create, rates, refund, sandbox, track, validate  # noqa: F401
