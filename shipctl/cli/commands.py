"""Import every command module so each registers itself on the app. One line per command."""

from shipctl.cli import validate  # noqa: F401
from shipctl.cli import sandbox  # noqa: F401
from shipctl.cli import create  # noqa: F401
from shipctl.cli import track  # noqa: F401
from shipctl.cli import refund  # noqa: F401
from shipctl.cli import rates  # noqa: F401
