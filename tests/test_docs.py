"""The docs cover the tool as it is: every command and option in the README, every module in ARCHITECTURE.md.

sqlite-utils checks its docs the same way: a new option that nobody documented fails here, not in a user's hands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from shipctl.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, path + " ")
        else:
            yield path, command


COMMANDS = list(_commands(typer.main.get_command(app)))
OPTIONS = sorted(
    {(path, opt) for path, command in COMMANDS for param in command.params
     for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []) if opt.startswith("--")}
)


def test_the_app_has_the_commands_we_think() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"create", "rates", "track", "refund", "validate", "sandbox serve"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_every_command_is_in_the_readme(path: str) -> None:
    assert f"shipctl {path}" in README, f"README.md never mentions `shipctl {path}`"


@pytest.mark.parametrize(("path", "option"), OPTIONS)
def test_every_option_is_in_the_readme(path: str, option: str) -> None:
    if option == "--help":
        return
    assert re.search(re.escape(option) + r"(?![\w-])", README), f"README.md never mentions {option} (of {path})"


def _layout() -> str:
    start = ARCHITECTURE.index("## Layout")
    end = ARCHITECTURE.index("\n## ", start + 1)
    return ARCHITECTURE[start:end]


@pytest.mark.parametrize(
    "module", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "shipctl").rglob("*.py") if p.name != "__init__.py")
)
def test_every_module_is_in_the_architecture_layout(module: str) -> None:
    layout = _layout()
    path = Path(module)
    folder_row = next((line for line in layout.splitlines() if line.startswith(f"| `{path.parent}/`")), "")
    assert module in layout or path.name in folder_row, f"ARCHITECTURE.md's layout does not name {module}"


def test_the_layout_names_nothing_that_is_gone() -> None:
    for named in re.findall(r"`(shipctl/[\w/]+\.py)`", _layout()):
        assert (ROOT / named).exists(), f"ARCHITECTURE.md names {named}, which does not exist"
