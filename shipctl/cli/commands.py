"""Import every command module so each registers itself on the app.

The import order is the order `shipctl --help` lists the commands in (track before rates, as it always was).
"""

# isort: off
from shipctl.cli import create, plan, track, rates, refund, reconcile, labels, close, report, sandbox, validate, verify, config  # noqa: F401,E501
# isort: on
