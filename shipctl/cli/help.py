"""What `--help` shows: a placeholder that says what each option takes, the usage line, and the epilogs.

Typer's own placeholders are its Python types (`<str>`, `<bool>`, `<list[str]>` from typer 0.26 on, `TEXT`
before), and typer 0.26+ writes a required argument as `{manifest}`. shipctl's help instead reads like `gh`'s or
`httpie`'s, on every typer it supports (0.19 and later):

* a flag shows no placeholder (it takes no value);
* an option shows what it takes: its own `metavar=` when it declares one (`PATH`, `SECONDS`, `AMOUNT`), else the
  one its name means across commands (`--from ADDRESS`, `--max-cost AMOUNT`), else its type's (`TEXT`, `N`,
  `NUMBER`, `PATH`);
* an argument is named in capitals (`MANIFEST`, and a list after one of its values: `CODE...`), in the usage line
  too: `shipctl create [OPTIONS] MANIFEST`, `shipctl track [OPTIONS] [CODE...]`.

Everything goes through `metavar`, the parameter's public setting; the one thing it cannot reach is typer
0.26+'s type column beside an argument's name, which `ShipctlCommand` leaves blank (the name already says it).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup
from typer.models import ArgumentInfo, OptionInfo, ParameterInfo

from shipctl.cli import coercion, help_renderer

#: What an option whose parameter has this name takes, in every command that has one.
_NAMED_METAVARS = {
    "from_": "ADDRESS", "from_address": "ADDRESS", "to": "ADDRESS",
    "max_cost": "AMOUNT", "interval": "SECONDS", "timeout": "SECONDS", "progress_interval": "SECONDS",
    "labels_dir": "DIR", "encoding": "CODEC", "carrier": "NAME", "sheet": "NAME",
    "journal_path": "PATH", "results": "PATH", "failed": "PATH", "rejects": "PATH",
}
_TYPE_METAVARS: dict[Any, str] = {str: "TEXT", int: "N", float: "NUMBER", Path: "PATH"}

EXIT_CODES = ("Exit codes: 0 ok · 1 error (the API unreachable, a bug) · 2 usage or invalid input, nothing done "
              "· 3 partial: some rows failed · 4 a write failed · 130 interrupted.")
SANDBOX_NOTE = ("EASYPOST_API_KEY: your EasyPost key. Without one, the built-in sandbox answers (offline, no real "
                "label is bought); EASYPOST_API_BASE points at another server.")
API_EPILOG = f"{SANDBOX_NOTE}\n\n{EXIT_CODES}"
"""The epilog of every command that calls the API (paragraphs: typer joins single newlines)."""
ROOT_EPILOG = (f"{API_EPILOG}\n\nEach command's --help has examples. Shell completion: "
               "shipctl --install-completion (bash, zsh, fish, PowerShell).")


def fill_metavars(func: Callable[..., Any]) -> None:
    """Give each option and argument of a command that declares no `metavar` the one this module's rules pick."""
    for parameter in inspect.signature(func, eval_str=True).parameters.values():
        info = _info(parameter)
        if info is None or info.metavar is not None:
            continue
        base, many = _base_type(parameter.annotation)
        if isinstance(info, ArgumentInfo):
            name = parameter.name.upper()
            info.metavar = (name.removesuffix("S") + "...") if many else name
        elif base is bool:
            info.metavar = ""
        else:
            info.metavar = _NAMED_METAVARS.get(parameter.name) or _TYPE_METAVARS.get(base, "TEXT")


def _info(parameter: inspect.Parameter) -> ParameterInfo | None:
    if isinstance(parameter.default, (OptionInfo, ArgumentInfo)):
        return parameter.default
    for extra in getattr(parameter.annotation, "__metadata__", ()):  # Annotated[T, typer.Option(...)]
        if isinstance(extra, (OptionInfo, ArgumentInfo)):
            return extra
    return None


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """`T` of `T`, `T | None`, `Annotated[T, ...]` and `list[T]`, and whether it was a list."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _tidy(params: list[Any]) -> list[Any]:
    """Flags Typer or Click add themselves (`--help`, `--install-completion`) take no value: no placeholder."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if param.param_type_name == "argument" and hasattr(param, "display_type_rich"):
            # typer 0.26+ prints the Python type (`<str>`) beside an argument's name whatever its metavar.
            param.display_type_rich = _no_type
    return params


def _no_type(ctx: Any = None) -> None:
    return None


class _Shared:
    """What every command and group of shipctl's does alike: the placeholders above for its own parameters, typer's
    coercion built only for values that need it (`coercion`), and the help drawn by the lighter renderer
    (`help_renderer`). Mixed in before typer's class, so `super()` is typer's."""

    params: list[Any]

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(list(super().get_params(ctx)))  # type: ignore[misc]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        coercion.defer(self.params)
        return list(super().parse_args(ctx, args))  # type: ignore[misc]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        help_renderer.load()
        super().format_help(ctx, formatter)  # type: ignore[misc]


class ShipctlCommand(_Shared, TyperCommand):
    """A command whose help follows the rules above."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class ShipctlGroup(_Shared, TyperGroup):
    """The root and `sandbox`: the same placeholders for their own options."""


def api_command(func: Callable[..., Any]) -> bool:
    """Whether `func` is a command that calls the API (it takes the shared engine options)."""
    return bool(getattr(func, "api_command", False))

