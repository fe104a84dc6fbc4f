"""`shipctl config`: show, path, set, edit, set-key; and `configure`, which the root runs before every command.

`configure` reads the config file once per invocation (`shipctl.config`) and gives every command's options their
defaults through Click's `default_map` on the root context: Click ranks it below the command line and an
option's own envvar and above the built-in default, so no command has code for it. A config file that cannot
be read ends any other command with one line (exit 2); the `config` commands still run, to show and fix it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from shipctl.cli.app import add_group, guarded
from shipctl.cli.help import ShipctlCommand, ShipctlGroup
from shipctl.cli.options import choice
from shipctl.cli.terminal import terminal
from shipctl.config import (
    PATH_SETTINGS,
    SETTINGS,
    Config,
    ConfigError,
    activate,
    config_path,
    load,
    parse,
    path_in_file,
    read_text,
)
from shipctl.errors import UsageError
from shipctl.secrets import scrub

config_app = typer.Typer(
    help="The config file: defaults for every run and named profiles (`shipctl config show` to start).",
    cls=ShipctlGroup,
    no_args_is_help=True,
)
add_group(config_app, "config")

_root_profile: str | None = None
_deferred: ConfigError | None = None


def configure(ctx: typer.Context, profile: str | None) -> None:
    """Read the config for this invocation and hand its values to every command as option defaults."""
    global _root_profile, _deferred
    _root_profile, _deferred = profile, None
    activate(None)
    try:
        settings = load(profile)
    except ConfigError as exc:
        if ctx.invoked_subcommand == "config":  # the commands that show and fix the file must still run
            _deferred = exc
            return
        terminal().error(scrub(exc.message))
        raise typer.Exit(int(exc.exit_code)) from None
    activate(settings)
    # Only while this command runs: the next invocation in the same process (a test's) reads its own.
    ctx.call_on_close(lambda: activate(None))
    defaults = option_defaults(ctx.command, settings.option_defaults())
    if defaults:
        ctx.default_map = defaults


def option_defaults(group: Any, by_flag: dict[str, str]) -> dict[str, dict[str, str]]:
    """Click's `default_map` for `group`: per command, per parameter name, the value for each option whose flag
    is a setting (`--select` in `create`; `--concurrency` in every API command)."""
    out: dict[str, dict[str, str]] = {}
    if not by_flag:
        return out
    for name, command in getattr(group, "commands", {}).items():
        for param in command.params:
            for flag in getattr(param, "opts", ()):
                if flag in by_flag and param.name:
                    out.setdefault(name, {})[param.name] = by_flag[flag]
    return out


def _settings() -> Config:
    if _deferred is not None:
        raise _deferred
    from shipctl.config import active

    return active()


def _target_profile(profile: str | None) -> str | None:
    """The profile a `config` command acts on: its own --profile, else the root's, else SHIPCTL_PROFILE."""
    from shipctl.config import PROFILE_ENV

    return profile or _root_profile or os.environ.get(PROFILE_ENV, "").strip() or None


ProfileOption = Annotated[str | None, typer.Option(
    "--profile", metavar="NAME", help="Act on this profile (default: the one in use, else the top level).",
)]


@config_app.command("path", cls=ShipctlCommand)
@guarded
def path_command() -> None:
    """Print where the config file is (SHIPCTL_CONFIG moves it), whether or not it exists."""
    terminal().out.print(str(config_path()), markup=False, soft_wrap=True)


@config_app.command("show", cls=ShipctlCommand)
@guarded
def show(
    output: Annotated[str | None, choice(
        "--output", ("table", "json"), "table for a person, json for a script (default table).", short="-o",
    )] = None,
) -> None:
    """Print the settings in effect and where each came from: env VAR, profile NAME, file or default.

    A flag on the command line beats all of them (flag > environment > profile > file > default).
    """
    import json

    settings = _settings()
    key_source = _key_source(settings)
    if output == "json":
        document = {
            "path": str(settings.path),
            "exists": settings.exists,
            "profile": settings.profile,
            "profile_source": settings.profile_source,
            "profiles": list(settings.profiles),
            "settings": {name: {"value": value.value, "source": value.source, "flag": SETTINGS[name].flag,
                                "env": SETTINGS[name].env} for name, value in settings.values.items()},
            "api_key": {"source": key_source},
        }
        terminal().stdout.write(json.dumps(document, indent=2) + "\n")
        return
    out = terminal().out
    out.print(f"config file: {settings.path}{'' if settings.exists else ' (not there: built-in defaults)'}",
              markup=False, soft_wrap=True)
    out.print(f"profile: {settings.profile} ({settings.profile_source})" if settings.profile else "profile: none",
              markup=False)
    rows = [(name, "-" if v.value is None else v.value, v.source) for name, v in settings.values.items()]
    rows.append(("api key", "set" if key_source else "none (the built-in sandbox)", key_source or "-"))
    widths = [max(len(row[i]) for row in [("SETTING", "VALUE", "SOURCE"), *rows]) for i in range(2)]
    for row in [("SETTING", "VALUE", "SOURCE"), *rows]:
        out.print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}", markup=False, soft_wrap=True)
    out.print("A flag on the command line beats all of these.", markup=False)


def _key_source(settings: Config) -> str | None:
    """Where the key would come from, never the key; a key_command is not run to find out."""
    from shipctl.keys import keychain_key

    if os.environ.get("EASYPOST_API_KEY", "").strip():
        return "env EASYPOST_API_KEY"
    command = settings.values["key_command"]
    if command.value is not None:
        return f"key_command ({command.source})"
    if keychain_key(settings.keychain_user):
        return f"keychain (shipctl/{settings.keychain_user})"
    return None


@config_app.command("set", cls=ShipctlCommand)
@guarded
def set_command(
    key: str = typer.Argument(..., metavar="KEY", help=f"One of: {', '.join(SETTINGS)}."),
    value: str = typer.Argument(..., metavar="VALUE", help="Its value, as the flag takes it (carriers: UPS,USPS)."),
    profile: ProfileOption = None,
) -> None:
    """Set KEY to VALUE in the config file (in a profile with --profile), keeping its comments and layout.

    Examples:

      shipctl config set select fastest

      shipctl config set from 94104 --profile warehouse-west
    """
    import tomlkit

    setting = SETTINGS.get(key)
    if setting is None:
        if key in ("api_key", "key", "easypost_api_key"):
            raise UsageError("shipctl never writes an API key to a file: use `shipctl config set-key` "
                             "(the OS keychain) or key_command")
        raise UsageError(f"unknown key {key!r} (known: {', '.join(SETTINGS)})")
    try:
        canonical = setting.check(value)
    except ValueError as exc:
        raise UsageError(f"{key} {exc}") from None
    # Written as a person would write it: names as a list, a number as a number, a choice in its canonical
    # spelling; a path or an origin as given (`~` kept, for the file to stay valid on another account), save a
    # relative path, made absolute from here: the file reads relative paths from its own folder.
    item: Any = value.strip() if key in ("from", "labels_dir", "key_command") else canonical
    if key in PATH_SETTINGS and not item.startswith("~"):
        item = path_in_file(key, item, Path.cwd())
    if key in ("carriers", "services"):
        item = canonical.split(",")
    elif key == "concurrency" and canonical.isdigit():
        item = int(canonical)
    name = _target_profile(profile)
    path = config_path()
    text = read_text(path)
    if text is not None:
        parse(text, path)  # a file that is already wrong is fixed with `config edit`, not written over
    doc = tomlkit.parse(text) if text is not None else tomlkit.document()
    if name is None:
        doc[key] = item
    else:
        if "profiles" not in doc:
            doc["profiles"] = tomlkit.table(is_super_table=True)
        profiles: Any = doc["profiles"]
        if name not in profiles:
            profiles[name] = tomlkit.table()
        profiles[name][key] = item
    new_text = tomlkit.dumps(doc)
    parse(new_text, path)
    _write(path, new_text)
    where = f"[profiles.{name}] of " if name else ""
    terminal().info(f"set {key} = {_new_value(new_text, path, key, name)} in {where}{path}")


def _new_value(text: str, path: Path, key: str, profile: str | None) -> str:
    top, profiles = parse(text, path)
    return (profiles[profile] if profile else top)[key]


def _write(path: Path, text: str) -> None:
    """Write the file whole or not at all, keeping an existing file's permissions (0600 for a new one)."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        from shipctl.errors import WriteFailure

        raise WriteFailure.from_os(f"the config file {path}", exc) from None


TEMPLATE = """\
# shipctl's configuration. `shipctl config show` prints what is in effect and where each value came from;
# a flag on the command line beats the environment (SHIPCTL_<KEY>), which beats a profile, which beats the top
# level here. Keys: from, carriers, services, select, label_format, labels_dir, verify, concurrency, mode,
# key_command. API keys are never kept here: EASYPOST_API_KEY, `shipctl config set-key`, or key_command.

# select = "cheapest"
# label_format = "PDF"

# [profiles.warehouse-east]      # shipctl --profile warehouse-east create orders.csv
# from = "10001"
# mode = "production"
# key_command = "pass show easypost/prod"
"""


@config_app.command("edit", cls=ShipctlCommand)
@guarded
def edit() -> None:
    """Open the config file in $VISUAL or $EDITOR (a commented starter file when there is none), then check it."""
    path = config_path()
    editor = os.environ.get("VISUAL", "").strip() or os.environ.get("EDITOR", "").strip()
    if not editor:
        editor = "notepad" if os.name == "nt" else "vi"
    if not path.exists():
        _write(path, TEMPLATE)
    try:
        argv = [*shlex.split(editor), str(path)]
        done = subprocess.run(argv, check=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot run the editor {editor!r} ($VISUAL/$EDITOR): {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"the editor {editor!r} exited with {done.returncode}; the file was not checked")
    text = read_text(path)
    if text is not None:
        try:
            parse(text, path)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} (run `shipctl config edit` again to fix it)") from None
    terminal().info(f"{path}: ok")


@config_app.command("set-key", cls=ShipctlCommand)
@guarded
def set_key(profile: ProfileOption = None) -> None:
    """Store an EasyPost API key in the OS keychain (never in a file): read from stdin, or asked for unechoed.

    Needs the optional keychain support: pip install 'shipctl[keyring]'.

    Examples:

      shipctl config set-key --profile warehouse-east

      pass show easypost/prod | shipctl config set-key
    """
    from shipctl.config import DEFAULT_USER
    from shipctl.keys import KEYRING_MISSING, keyring_module, store
    from shipctl.target import key_mode

    if keyring_module() is None:
        raise UsageError(KEYRING_MISSING)
    name = _target_profile(profile)
    term = terminal()
    if term.interactive:
        key = typer.prompt("EasyPost API key (not shown)", hide_input=True, err=True)
    else:
        key = term.stdin.readline()
    key = key.strip()
    if not key or any(ch.isspace() for ch in key):
        raise UsageError("no key read (one line, no spaces)")
    declared = _declared_mode(name)
    mode = key_mode(key)
    if declared is not None and mode is not None and mode != declared:
        raise UsageError(f"profile {name} declares mode = \"{declared}\" but this is a {mode} key; not stored")
    user = name or DEFAULT_USER
    backend = store(user, key)
    term.info(f"stored the {mode or 'API'} key for {'profile ' + name if name else 'the default'} in the keychain "
              f"(service shipctl, user {user}; {backend})")


def _declared_mode(profile: str | None) -> str | None:
    """The mode the profile (or the top level) declares; a file that cannot be read declares nothing here."""
    path = config_path()
    try:
        text = read_text(path)
        if text is None:
            return None
        top, profiles = parse(text, path)
    except ConfigError:
        return None
    return (profiles.get(profile, {}) if profile else {}).get("mode") or top.get("mode")
