"""The `shipctl` Typer application and its error edge.

User errors (`ShipctlError`) become one line on stderr and their exit code, inside the command call so that
CliRunner tests see the same codes as a shell. Anything else is a bug: one line and exit 1, with the traceback
only under `--debug` / SHIPCTL_DEBUG=1 (the terminal object holds which), and even then with secrets scrubbed.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

import typer
import typer.main
import typer.models
from typer.core import TyperCommand

from shipctl import __version__, startup
from shipctl.cli.commands import COMMANDS
from shipctl.cli.help import API_EPILOG, ROOT_EPILOG, ShipctlCommand, ShipctlGroup, api_command, fill_metavars
from shipctl.cli.terminal import begin_invocation, terminal
from shipctl.errors import ShipctlError
from shipctl.exit_codes import ExitCode
from shipctl.secrets import scrub

F = TypeVar("F", bound=Callable[..., Any])


def guarded(func: F) -> F:
    """Turn exceptions from a command body into one line on stderr and the right exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        term = terminal()
        try:
            return func(*args, **kwargs)
        except ShipctlError as exc:
            term.error(scrub(exc.message))
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as an interruption, and keep the interpreter's final
            # flush from failing again on the closed pipe.
            term.silence_stdout()
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except KeyboardInterrupt:
            term.error("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:  # the last line of defence: never a raw traceback for a user
            if term.debug:
                import traceback

                term.line(scrub(traceback.format_exc()))
            term.error(scrub(f"unexpected {type(exc).__name__}: {exc}") + " (rerun with --debug for details)")
            raise typer.Exit(int(ExitCode.ERROR)) from None

    return wrapper  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`app.command` with the error edge applied and shipctl's help (placeholders, usage line, and for a command
    that calls the API the epilog naming EASYPOST_API_KEY and the exit codes); every command registers through
    this."""

    def decorate(func: F) -> F:
        fill_metavars(func)
        kwargs.setdefault("cls", ShipctlCommand)
        name = args[0] if args else kwargs.get("name") or typer.main.get_command_name(func.__name__)
        if name in COMMANDS:  # the root's listing shows the table's line, built or not (`RootGroup`)
            kwargs.setdefault("short_help", COMMANDS[name].summary)
        if api_command(func):
            kwargs.setdefault("epilog", API_EPILOG)
        _registry.command(*args, **kwargs)(guarded(func))
        return func

    return decorate


# The commands, registered here rather than on `app`: typer would make every one a Click command (its parameters
# read from its signature and type hints, ~3 ms each) at every start, and a run invokes one. `_Commands` imports
# a command's module and makes it when it is first looked up, sub-groups (`sandbox`, `config`: `add_group`) too.
_registry = typer.Typer()
_Command = Any  # a Click command: Click's own class before typer 0.22, typer's vendored copy after


class _Commands(MutableMapping[str, _Command]):
    """The root's commands by name, in `COMMANDS`' order: a command's module is imported, and the command made, when
    it is first looked up (a run, `--help`, completion), so listing the names imports and builds nothing."""

    def __init__(self, built: Mapping[str, _Command]) -> None:
        self._built = dict(built)
        self._order = [*COMMANDS, *(name for name in built if name not in COMMANDS)]

    def _registered(self, name: str) -> Any:
        """What registered `name` (a `CommandInfo`, or a sub-group's `TyperInfo`), its module imported first."""
        importlib.import_module(COMMANDS[name].module)  # KeyError for a name nobody registered, as a dict says
        for info in _registry.registered_commands:
            if info.callback is not None and (info.name or typer.main.get_command_name(info.callback.__name__)) == name:
                return info
        return next(info for info in _registry.registered_groups if info.name == name)

    def __getitem__(self, name: str) -> _Command:
        if name not in self._built:
            self._built[name] = _made(self._registered(name))
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in COMMANDS

    def __setitem__(self, name: str, command: _Command) -> None:
        self._built[name] = command
        if name not in self._order:
            self._order.append(name)

    def __delitem__(self, name: str) -> None:
        if name not in self._order:
            raise KeyError(name)
        self._built.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)


def _made(info: Any) -> _Command:
    """A registered command (`CommandInfo`) or sub-group (`TyperInfo`, as `add_group` registers) as typer makes it."""
    settings: dict[str, Any] = {
        "pretty_exceptions_short": app.pretty_exceptions_short, "rich_markup_mode": app.rich_markup_mode,
    }
    if isinstance(info, typer.models.CommandInfo):
        return typer.main.get_command_from_info(info, **settings)
    if "suggest_commands" in inspect.signature(typer.main.get_group_from_info).parameters:  # typer 0.20 and later
        settings["suggest_commands"] = True
    return typer.main.get_group_from_info(info, **settings)


def add_group(group: typer.Typer, name: str) -> None:
    """Register a sub-group (`sandbox`, `config`) under the root, made when first looked up like any command."""
    _registry.add_typer(group, name=name)


class RootGroup(ShipctlGroup):
    """`shipctl` itself: its commands made on demand (`_Commands`). Its own help lists them from `COMMANDS`' lines,
    so `shipctl --help` imports and builds none of them (~40 ms of a ~0.2 s help)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands)
        self._listing = 0  # a count, not a flag: a help drawn inside a help must not end the outer one's listing

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing += 1
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing -= 1

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing and cmd_name in COMMANDS:
            return _listed(cmd_name)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, debug_first(args))


def debug_first(args: list[str]) -> list[str]:
    """`--debug` is the root's, but people add it where the trouble is (`shipctl create x.csv --debug`): taken from
    anywhere before a `--`, as if given first, rather than "No such option" and exit 2."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug", *(a for a in args[:end] if a != "--debug"), *args[end:]]


def _listed(name: str) -> _Command:
    """What the root's help needs of a command to list it (its name and line), made without its module."""
    summary = COMMANDS[name].summary
    return TyperCommand(name=name, help=summary, short_help=summary)


app = typer.Typer(
    name="shipctl",
    help="Buy shipping labels in bulk from a manifest, through EasyPost (or the built-in sandbox).",
    epilog=ROOT_EPILOG,
    cls=RootGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        terminal().out.print(f"shipctl {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    profile: str | None = typer.Option(
        None, "--profile", metavar="NAME", help="Use this profile of the config file ($SHIPCTL_PROFILE)."
    ),
) -> None:
    # Per invocation: a `--debug` run must not leave debug on for the next command run in the same process.
    begin_invocation(debug=debug)
    from shipctl.cli.config import configure

    # The config file's values become every command's option defaults (below a flag and an option's envvar).
    configure(ctx, profile)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    startup.begin()  # here too for callers of this function; `shipctl.cli.main` calls it before these imports
    import signal

    # SIGTERM (`timeout`, systemd, `kill`) stops a command as Ctrl-C does, exit 130 with its temp files removed,
    # outside the engine too (reading stdin, validating). The engine and `sandbox serve` install their own.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted)
    app()

