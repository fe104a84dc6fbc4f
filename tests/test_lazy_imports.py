"""A command loads only what it runs: `shipctl --help` and every command's `--help` never import the SDK, HTTP,
pydantic, the engine's async stack, psutil, openpyxl or SQLite; `validate` never imports the SDK or the engine.

Structural, not timed: each case runs in a fresh interpreter and lists `sys.modules` afterwards, so a module-level
import of a heavy package slipped into a command module (or into a light helper it imports) fails here, whatever
the machine's speed. The rule these tests hold is in ARCHITECTURE.md, "Lazy imports".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shipctl.cli.commands import COMMANDS
from tests.manifests import make_manifest

# The packages `shipctl --help` must not load (and the shipctl modules that would pull them in).
HEAVY = (
    "easypost", "requests", "urllib3", "pydantic", "pydantic_core", "anyio", "uvloop", "asyncio", "psutil",
    "openpyxl", "sqlite3", "platformdirs", "rich.live",
    "shipctl.jobs", "shipctl.engine.runner", "shipctl.carrier", "shipctl.sandbox", "shipctl.manifest.models",
    "shipctl.journal", "shipctl.claims",
)
# What typer's help renderer imports for features shipctl's help never draws (`shipctl.cli.help_renderer`).
HELP_UNUSED = ("rich.markdown", "markdown_it", "rich.traceback", "rich.syntax", "pygments")
# What a run that calls no API must not load.
API_ONLY = ("easypost", "requests", "urllib3", "anyio", "uvloop", "asyncio", "psutil", "shipctl.jobs",
            "shipctl.engine.runner", "shipctl.carrier", "shipctl.sandbox", "shipctl.journal", "shipctl.claims")

_RUN = """
import contextlib, io, json, sys
from shipctl.cli.app import main
sys.argv = ["shipctl", *json.loads(sys.argv[1])]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def modules_after(*args: str) -> tuple[object, set[str]]:
    """Run `shipctl ARGS` in a fresh interpreter: (exit code, every module loaded by the end)."""
    done = subprocess.run([sys.executable, "-c", _RUN, json.dumps(args)], capture_output=True, text=True,
                          check=True, timeout=120)
    report = json.loads(done.stdout.splitlines()[-1])
    return report["code"], set(report["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


def heavy(modules: set[str]) -> list[str]:
    """The heavy modules loaded. Recent typer (0.29) coerces every parsed value through a pydantic `TypeAdapter`
    (`typer._adapters`), so once a command's own options are parsed pydantic is typer's, not shipctl's: then only
    shipctl's own pydantic users (the models, the address parser) count."""
    names: tuple[str, ...] = HEAVY
    if "typer._adapters" in modules:
        names = (*(n for n in HEAVY if not n.startswith("pydantic")), "shipctl.manifest.address_arg")
    return loaded(modules, names)


def test_importing_the_app_loads_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, shipctl.cli.app; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    modules = set(json.loads(done.stdout))
    # No command's module yet: each is imported when its command is looked up (`shipctl.cli.commands`).
    assert [listed.module for listed in COMMANDS.values() if listed.module in modules] == []
    assert loaded(modules, HEAVY) == []  # typer's own pydantic use is not even loaded yet


def test_the_root_help_loads_nothing_heavy() -> None:
    code, modules = modules_after("--help")
    assert code == 0
    assert "rich.console" in modules  # the help was drawn
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, HELP_UNUSED) == []


def every_command() -> list[str]:
    """Every command the app registers (`sandbox serve` for a group's), so a new command is checked too."""
    import typer.main

    from shipctl.cli.app import app

    def walk(group: Any, prefix: str) -> list[str]:  # a click Group (typer 0.29+ ships its own click)
        names = []
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                names += walk(command, f"{prefix}{name} ")
            else:
                names.append(prefix + name)
        return names

    return walk(typer.main.get_command(app), "")


@pytest.mark.parametrize("command", every_command())
def test_help_loads_nothing_heavy(command: str) -> None:
    code, modules = modules_after(*command.split(), "--help")
    assert code == 0
    assert "typer" in modules
    assert heavy(modules) == []
    assert loaded(modules, HELP_UNUSED) == []


def test_validate_loads_the_models_but_not_the_api_stack(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "orders.csv", 3)
    code, modules = modules_after("validate", str(manifest))
    assert code == 0
    assert "shipctl.manifest.models" in modules  # it did validate
    assert loaded(modules, (*API_ONLY, "openpyxl")) == []


def test_a_usage_error_loads_nothing_heavy(tmp_path: Path) -> None:
    """Refused on its options before anything runs: `--concurrency 0` is checked before the job is imported."""
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    code, modules = modules_after("create", str(manifest), "--concurrency", "0")
    assert code == 2
    assert heavy(modules) == []


def test_a_run_into_a_pipe_never_loads_rich(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr a pipe or a file: messages, progress lines and the summary are written as plain text, without rich
    (`shipctl.cli.plain`); rich is loaded only where it would draw colour."""
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("EASYPOST_API_KEY", raising=False)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    code, modules = modules_after("create", str(manifest), "--progress", "plain", "--progress-interval", "0.01")
    assert code == 0
    assert "shipctl.jobs.create" in modules and "shipctl.cli.summary" in modules  # it did run, and summed up
    # rich's own modules, not the package: typer before 0.22 imports `rich` itself to see whether it is installed.
    assert loaded(modules, ("rich.console", "rich.text", "rich.table", "shipctl.cli.live_view")) == []
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's own switch: colour even into a pipe, so rich draws it
    code, modules = modules_after("create", str(manifest), "--journal", str(tmp_path / "second.journal.db"))
    assert code == 0
    assert "rich.console" in modules


# What a plain `create` (no plan, no --from, no label file to save, SHIPCTL_STATE_DIR set) must not load: `apply`'s
# plan module, the `rates` command, the label and refund modules, the address parser, platformdirs.
CREATE_NEVER = ("shipctl.plans", "shipctl.cli.rates", "shipctl.carrier.labels", "shipctl.carrier.refunds",
                "shipctl.manifest.address_arg", "platformdirs")


def test_a_create_loads_only_what_its_run_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    for name in ("EASYPOST_API_KEY", "SHIPCTL_FROM"):
        monkeypatch.delenv(name, raising=False)
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    code, modules = modules_after("create", str(manifest), "-o", "ndjson", "--progress", "off")
    assert code == 0
    assert "shipctl.jobs.purchase" in modules  # it did buy
    assert loaded(modules, CREATE_NEVER) == []


# What `report` must not load: it reads journals on this machine and calls no API (`--delivery` aside).
REPORT_NEVER = ("easypost", "requests", "urllib3", "anyio", "uvloop", "asyncio", "psutil", "openpyxl",
                "shipctl.engine.runner", "shipctl.carrier", "shipctl.sandbox", "shipctl.jobs.session",
                "shipctl.jobs.create", "shipctl.jobs.reconcile", "shipctl.manifest.models",
                "shipctl.manifest.address_arg", "shipctl.cli.report_delivery", "shipctl.jobs.report_delivery")


@pytest.mark.parametrize("fmt", ["ndjson", "table"])
def test_report_loads_the_journals_but_not_the_api_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        fmt: str) -> None:
    from shipctl.claims import Claims
    from shipctl.journal import Journal

    monkeypatch.setenv("SHIPCTL_STATE_DIR", str(tmp_path / "state"))
    journal = tmp_path / "orders.csv.journal.db"
    with Journal(journal) as j:
        j.plan([("A-1", 2, "d")])
        j.update("A-1", state="bought", shipment_id="shp_1", carrier="USPS", service="Priority", rate="7.80",
                 currency="USD")
    (tmp_path / "state").mkdir()
    with Claims(tmp_path / "state", journal=str(journal)).open("test account acct_1"):
        pass  # the run that wrote it registers its journal
    code, modules = modules_after("report", "-o", fmt)
    assert code == 0
    assert "shipctl.jobs.report" in modules and "shipctl.claims" in modules  # it did read the journals
    assert loaded(modules, REPORT_NEVER) == []


_HELP_TEXT = """
import contextlib, io, json, sys
if sys.argv[2] == "real":  # the renderer's parts imported first, so typer's renderer gets the real ones
    import rich.markdown, rich.traceback
from shipctl.cli.app import main
sys.argv = ["shipctl", *json.loads(sys.argv[1])]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(out.getvalue()))
"""


@pytest.mark.parametrize("args", [["--help"], ["create", "--help"], ["sandbox", "serve", "--help"]])
def test_help_without_the_unused_renderer_parts_is_the_same_help(args: list[str]) -> None:
    """The stand-ins change what is imported, not what is drawn: the same bytes as with the real modules."""

    def help_text(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", _HELP_TEXT, json.dumps(args), mode], capture_output=True,
                              text=True, check=True, timeout=120, env={**os.environ, "COLUMNS": "100"})
        return str(json.loads(done.stdout.splitlines()[-1]))

    deferred = help_text("deferred")
    assert "Usage: shipctl" in deferred and "--help" in deferred
    assert deferred == help_text("real")


def test_a_stand_in_is_the_real_class_once_used() -> None:
    """Should a typer call the renderer's markdown or traceback part, it gets the real class."""
    from rich.markdown import Markdown
    from rich.traceback import Traceback

    from shipctl.cli.help_renderer import stand_in

    deferred_markdown = stand_in("rich.markdown", "Markdown")
    made = deferred_markdown("# Title")
    assert type(made) is Markdown
    assert isinstance(made, deferred_markdown)
    assert issubclass(Markdown, deferred_markdown)
    deferred_traceback = stand_in("rich.traceback", "Traceback")
    assert deferred_traceback.from_exception == Traceback.from_exception


_AFTER_LOAD = """
import sys
from shipctl.cli import help_renderer
help_renderer.load()
import typer.rich_utils
from rich.markdown import Markdown
print(type(typer.rich_utils.Markdown).__name__, Markdown.__module__, type(Markdown).__name__,
      "markdown_it" in sys.modules)
"""


def test_the_stand_ins_leave_no_placeholder_module_behind() -> None:
    """After `load()`, typer's renderer holds a stand-in, but `import rich.markdown` loads the real module."""
    done = subprocess.run([sys.executable, "-c", _AFTER_LOAD], capture_output=True, text=True, check=True,
                          timeout=120)
    assert done.stdout.split() == ["_Deferred", "rich.markdown", "type", "True"]


def test_an_option_not_given_builds_no_coercion_and_a_given_one_is_coerced(tmp_path: Path) -> None:
    """typer 0.2x builds a pydantic adapter per parameter to coerce its value, None too (`shipctl.cli.coercion`):
    only the parameters given (or with a default that is not None) get one; their values are coerced as before."""
    import typer.main

    from shipctl.cli.app import app
    from shipctl.cli.coercion import _WhenGiven

    manifest = make_manifest(tmp_path / "orders.csv", 1)
    create = typer.main.get_command(app).commands["create"]  # type: ignore[attr-defined]
    if not hasattr(create.params[0], "get_runtime_param"):
        pytest.skip("this typer coerces without per-parameter adapters")
    ctx = create.make_context("create", [str(manifest), "--journal", str(tmp_path / "j.db"), "--concurrency", "4"])
    assert ctx.params["journal_path"] == tmp_path / "j.db"  # coerced to a Path, as typer does
    by_name = {p.name: p for p in create.params}
    assert not isinstance(by_name["journal_path"]._runtime_param, _WhenGiven)  # given: built and used
    left = [name for name, value in ctx.params.items() if value is None]
    assert left and all(isinstance(by_name[name]._runtime_param, _WhenGiven) for name in left)
