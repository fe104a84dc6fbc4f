"""The thin CLI: one module per command over the core jobs (`shipctl.jobs`); the terminal object, the
shared options and the error edge beside them."""


def main() -> None:
    """The `shipctl` entry point: start-up settings first (`shipctl.startup`), then the application's modules."""
    from shipctl import startup

    startup.begin()
    from shipctl.cli.app import main as run

    run()
