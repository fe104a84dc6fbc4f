"""Typer's help renderer (`typer.rich_utils`), loaded without the two parts shipctl's help never draws.

`typer.rich_utils` imports `rich.markdown` (with markdown-it) and `rich.traceback` (with pygments) at its top: the
first for its "markdown" markup mode, the second for typer's pretty tracebacks. shipctl uses neither (its markup
mode is "rich"; its tracebacks are its own, `pretty_exceptions_enable=False`), yet the two are ~70 ms of a ~0.27 s
`shipctl --help`. `load()` imports the renderer with a stand-in for each of those two names; a stand-in imports the
real class the first time anything calls it or reads from it, so a typer that did use one would still get the
real thing, only later. The help drawn is the same, byte for byte (tests/test_lazy_imports.py holds both).

This leans on how typer's renderer imports its parts (`from rich.markdown import Markdown` at module level, in
every typer shipctl supports): if a typer stops doing so, `load()` still imports it, at the old cost.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

#: The modules the renderer imports for features shipctl's help does not use, and the one name it takes of each.
DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """The type of a stand-in class: every use reaches the real class, imported at that moment."""

    _module: str
    _name: str

    def real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls._name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, attribute: str) -> Any:  # only for what the class itself lacks: `from_exception`, ...
        return getattr(cls.real(), attribute)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.real())

    def __subclasscheck__(cls, subclass: Any) -> bool:
        return issubclass(subclass, cls.real())


def stand_in(module: str, name: str) -> type:
    """A class that stands for `module.name` until something uses it."""
    return _Deferred(name, (), {"_module": module, "_name": name})


def load() -> None:
    """Import `typer.rich_utils` (once) with stand-ins for the parts in `DEFERRED` not imported yet."""
    if "typer.rich_utils" in sys.modules:
        return
    placed: dict[str, types.ModuleType] = {}
    for module, name in DEFERRED.items():
        if module not in sys.modules:
            placeholder = types.ModuleType(module)
            setattr(placeholder, name, stand_in(module, name))
            placed[module] = sys.modules[module] = placeholder
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        # Taken out again whatever happened: a later `import rich.markdown` must load the real module.
        for module, placeholder in placed.items():
            if sys.modules.get(module) is placeholder:
                del sys.modules[module]
