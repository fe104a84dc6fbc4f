"""Parsed values coerced only when there is a value: typer's per-parameter pydantic adapters, built lazily.

Recent typer (0.2x) coerces every parameter's value through a pydantic `TypeAdapter` it builds for that parameter
the first time it coerces one, about 1 ms each, and it coerces every parameter of the command run, given or not. An
option not given is None, which its coercion hands back untouched, so `create`'s 32 adapters were built to return
None 21 times (25–40 ms of a one-row `create`, about 5% of its CPU). `defer` puts a stand-in where typer keeps a
parameter's built coercion: it answers None for None itself, exactly as typer's `RuntimeParam.coerce` does, and
has typer build the real one for anything else.

This leans on typer's internals (`_runtime_param`, `get_runtime_param`): a typer without them (any before the
adapters) is left alone, and anything but `coerce` asked of the stand-in builds and asks the real one.
`tests/test_lazy_imports.py` holds that no adapter is built for an option not given, on the typer installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class _WhenGiven:
    """Stands for a parameter's coercion until a value that needs it comes."""

    __slots__ = ("_param",)

    def __init__(self, param: Any) -> None:
        self._param = param

    def _real(self) -> Any:
        param = self._param
        param._runtime_param = None  # typer builds it on this call and keeps it in place of this stand-in
        return param.get_runtime_param()

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None and not (param.multiple or param.nargs == -1):
            return None  # what typer's coercion answers for None, without its adapter
        return self._real().coerce(value, param=param, ctx=ctx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def defer(params: Iterable[Any]) -> None:
    """Give each parameter whose coercion typer has not built yet the stand-in (none on a typer without it)."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None and hasattr(param, "get_runtime_param"):
            param._runtime_param = _WhenGiven(param)
