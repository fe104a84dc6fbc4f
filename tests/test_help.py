"""`--help` reads like a manual: what each option takes, named arguments, examples that fit, the key and the exit
codes; `-V`; shell completion.

Run at 80 and 140 columns. Typer's own placeholders are Python types (`<str>`, `<bool>`, `<list[str]>` from
typer 0.26, `{manifest}` for a required argument): none may show.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from shipctl import __version__
from shipctl.cli.app import app
from tests.cli import invoke

COMMANDS = ["create", "track", "rates", "refund", "validate", "sandbox serve"]
API_COMMANDS = ["create", "track", "rates", "refund"]
WIDTHS = [80, 140]


def help_text(command: str, columns: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("NO_COLOR", "1")
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    return str(result.stdout)


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("command", ["", "sandbox", *COMMANDS])
def test_no_python_type_placeholders(command: str, columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text(command, columns, monkeypatch)
    assert not re.search(r"<(str|bool|int|float|path|list\[[^\]]*\])>", text), text
    assert not re.search(r"\b(BOOLEAN|TEXT\.\.\.)\b", text), text
    assert "{" not in text.split("\n\n")[0] + text[:400], text  # typer 0.26+ writes a required argument {like_this}
    assert max(len(line) for line in text.splitlines()) <= columns


@pytest.mark.parametrize("flag", ["--quiet", "--verbose", "--sandbox", "--help"])
def test_a_flag_shows_no_value(flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text("rates", 140, monkeypatch)
    line = next(line for line in text.splitlines() if re.match(rf"│ +{flag} ", line))
    after = line.split(flag, 1)[1]
    words = after.strip("│ ").split()
    assert words[0].startswith("-") or (words[0][0].isupper() and words[0][1:2].islower()), line  # -q, then help


@pytest.mark.parametrize(("command", "option", "metavar"), [
    ("rates", "--to", "ADDRESS"), ("rates", "--weight", "WEIGHT"), ("rates", "--dims", "LxWxH"),
    ("rates", "--output", "table|json|ndjson|csv"), ("rates", "--concurrency", "N|auto"),
    ("rates", "--progress-interval", "SECONDS"), ("rates", "--encoding", "CODEC"), ("rates", "--carriers", "NAMES"),
    ("refund", "--journal", "PATH"), ("refund", "--reference", "REF"),
    ("create", "--max-cost", "AMOUNT"), ("create", "--labels-dir", "DIR"), ("create", "--results", "PATH"),
    ("track", "--interval", "SECONDS"), ("track", "--timeout", "SECONDS"),
    ("sandbox serve", "--port", "PORT"),
])
def test_a_value_option_says_what_it_takes(command: str, option: str, metavar: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text(command, 140, monkeypatch)
    line = next(line for line in text.splitlines() if re.match(rf"│ +{re.escape(option)} ", line))
    assert re.search(rf"{re.escape(option)}\s+(-\w\s+)?{re.escape(metavar)}\s", line), line


@pytest.mark.parametrize(("command", "usage"), [
    ("create", "Usage: shipctl create [OPTIONS] MANIFEST"),
    ("validate", "Usage: shipctl validate [OPTIONS] MANIFEST"),
    ("rates", "Usage: shipctl rates [OPTIONS] [MANIFEST]"),
    ("track", "Usage: shipctl track [OPTIONS] [CODE...]"),
    ("refund", "Usage: shipctl refund [OPTIONS] [SHIPMENT_ID...]"),
])
def test_arguments_are_named(command: str, usage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text(command, 80, monkeypatch)
    assert usage in text
    name = usage.split()[-1].strip("[]")
    arguments = text.split("Arguments")[1].split("╰")[0]
    assert name in arguments or name.rstrip(".").lower() in arguments.lower()


@pytest.mark.parametrize("command", ["", *API_COMMANDS])
def test_the_key_and_the_exit_codes_are_in_the_help(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = " ".join(help_text(command, 80, monkeypatch).split())
    assert "EASYPOST_API_KEY" in text and "built-in sandbox" in text
    assert "no real label is bought" in text
    for code in ("0 ok", "1 error", "2 usage or invalid input", "3 partial", "4 a write failed", "130 interrupted"):
        assert code in text


def test_the_root_help_tells_how_to_install_completion(monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text("", 80, monkeypatch)
    assert "--install-completion" in text and "--show-completion" in text
    assert "shipctl --install-completion" in " ".join(text.split())


def _examples(command: str) -> list[str]:
    """The example command lines of a command's docstring."""
    cli = typer.main.get_command(app)
    for part in command.split():
        cli = cli.commands[part]  # type: ignore[attr-defined]
    found = []
    for line in (cli.help or "").splitlines():
        line = re.sub(r"^\s*Examples?(, [^:]+)?:\s*", "", line.strip())
        for piece in re.split(r" · |; (?=shipctl)", line):
            if "shipctl " in piece:
                found.append(piece.strip())
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_fits_on_a_line_at_80_columns(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = _examples(command)
    assert examples, f"{command} --help has no example"
    lines = [" ".join(line.split()) for line in help_text(command, 80, monkeypatch).splitlines()]
    for example in examples:
        assert any(" ".join(example.split()) in line for line in lines), f"{example!r} is broken across lines"


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout == f"shipctl {__version__}\n"


@pytest.mark.slow
def test_shell_completion_completes_commands_and_choices(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "shipctl"
    if not script.exists():
        pytest.skip("the shipctl console script is not installed in this environment")

    def complete(words: str) -> list[str]:
        env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ")
                   else 1)), _SHIPCTL_COMPLETE="complete_bash", HOME=str(tmp_path))
        done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
        return done.stdout.split()

    assert "create" in complete("shipctl cre")
    assert complete("shipctl create --output ") == ["table", "json", "ndjson", "csv"]


def test_the_command_table_names_every_command_and_its_module() -> None:
    """`shipctl.cli.commands.COMMANDS` says which module registers each command (it is imported on lookup): every
    command and sub-group the modules register is in it, under the module that registers it."""
    import importlib

    import typer.main

    from shipctl.cli import app as cli_app
    from shipctl.cli.commands import COMMANDS

    registry = cli_app._registry
    found: dict[str, str] = {}
    for module in dict.fromkeys(listed.module for listed in COMMANDS.values()):
        importlib.import_module(module)
    for info in registry.registered_commands:
        assert info.callback is not None
        found[info.name or typer.main.get_command_name(info.callback.__name__)] = info.callback.__module__
    for group in registry.registered_groups:
        assert group.name is not None and group.typer_instance is not None
        found[group.name] = next(iter(group.typer_instance.registered_commands)).callback.__module__  # type: ignore[union-attr]
    assert found == {name: listed.module for name, listed in COMMANDS.items()}


def test_each_commands_line_in_the_root_help_is_the_first_paragraph_of_its_own_help() -> None:
    """The root's help lists commands from `COMMANDS` without building them; each line must be what the command
    itself says first (its help's first paragraph), so a command reworded without its line here fails."""
    import inspect

    import typer.main

    from shipctl.cli.commands import COMMANDS

    root = typer.main.get_command(app)
    for name, listed in COMMANDS.items():
        real = root.commands[name]  # type: ignore[attr-defined]
        first = inspect.cleandoc(real.help or "").split("\n\n")[0]
        assert " ".join(first.split()) == listed.summary, name
        assert real.short_help in (None, listed.summary), name


def test_the_root_help_imports_no_command() -> None:
    """`shipctl --help` lists every command and imports none of their modules (nor the SDK, nor pydantic)."""
    probe = (
        "import sys\n"
        "sys.argv = ['shipctl', '--help']\n"
        "from shipctl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in sys.modules if m.startswith(('shipctl.cli.create', 'shipctl.cli.rates', 'shipctl.jobs', "
        "'easypost', 'pydantic'))]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert "LOADED []" in done.stderr, done.stderr
    from shipctl.cli.commands import COMMANDS

    for name, listed in COMMANDS.items():
        assert re.search(rf"│ {name} +{re.escape(listed.summary[:40])}", done.stdout), (name, done.stdout)
