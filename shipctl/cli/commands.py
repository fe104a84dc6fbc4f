"""Which module registers each command, and the line `shipctl --help` lists it with.

A command's module is imported only when the command is looked up; the root's help lists every command from this
table without importing or building any of them (`app.RootGroup`). The order is the order `shipctl --help` lists
them in. `tests/test_help.py` holds this table to what the modules register, and each summary to the first
paragraph of its command's own help, so a command added or reworded without its line here fails there.
"""

from typing import NamedTuple


class Listed(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Listed] = {
    "rates": Listed("shipctl.cli.rates", "Quote rates: one parcel (--to, --from, --weight), or the cheapest and "
                    "fastest offer for every manifest row."),
    "create": Listed("shipctl.cli.create", "Buy a label for every row of MANIFEST; rerun the same command to resume "
                     "after any interruption."),
    "plan": Listed("shipctl.cli.plan", "Create every shipment and choose every rate, buy nothing, and write the plan "
                   "that apply will buy."),
    "apply": Listed("shipctl.cli.plan", "Buy exactly what a plan holds: its rows, at its rates, through its "
                    "journal; a second apply buys nothing."),
    "track": Listed("shipctl.cli.track", "Track parcels by tracking code: status, estimated delivery and the latest "
                    "event of each."),
    "refund": Listed("shipctl.cli.refund", "Refund (void) bought labels; ones already refunded or submitted are "
                     "reported, never asked twice."),
    "reconcile": Listed("shipctl.cli.reconcile", "Compare the journals with the account: labels bought outside any "
                        "journal, journal rows the account does not know, refund statuses that changed. Exit 3 when "
                        "something does not match."),
    "labels": Listed("shipctl.cli.labels", "Write the labels a `create` run bought into one print-ready file: a PDF "
                     "of 4×6 in pages, or ZPL."),
    "close": Listed("shipctl.cli.close", "End the shipping day: one SCAN form per origin and carrier for the day's "
                    "labels, never twice."),
    "report": Listed("shipctl.cli.report", "Report what the journals say was bought: labels and spend per day, week, "
                     "month, carrier or service, the average and median label, refunds netted out, failed rows by "
                     "reason."),
    "validate": Listed("shipctl.cli.validate", "Validate a manifest: every problem on stderr as `row N, column C: "
                       "message`, then a summary."),
    "verify": Listed("shipctl.cli.verify", "Verify every destination (and each distinct origin) with EasyPost: "
                     "verified, corrected or failed, and why."),
    "sandbox": Listed("shipctl.cli.sandbox", "The built-in EasyPost-compatible sandbox (offline; no real labels are "
                      "bought)."),
    "config": Listed("shipctl.cli.config", "The config file: defaults for every run and named profiles (`shipctl "
                     "config show` to start)."),
}
