"""Which module registers each command: a command's module is imported only when the command is looked up.

The order is the order `shipctl --help` lists them in. `tests/test_help.py` holds this table to what the modules
register, so a command added without a line here fails there.
"""

COMMANDS: dict[str, str] = {
    "rates": "shipctl.cli.rates",
    "create": "shipctl.cli.create",
    "plan": "shipctl.cli.plan",
    "apply": "shipctl.cli.plan",
    "track": "shipctl.cli.track",
    "refund": "shipctl.cli.refund",
    "reconcile": "shipctl.cli.reconcile",
    "labels": "shipctl.cli.labels",
    "close": "shipctl.cli.close",
    "report": "shipctl.cli.report",
    "validate": "shipctl.cli.validate",
    "verify": "shipctl.cli.verify",
    "sandbox": "shipctl.cli.sandbox",
    "config": "shipctl.cli.config",
}
