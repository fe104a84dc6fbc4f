"""The configuration file: defaults for the options every run repeats, named profiles, and where each value came from.

One TOML file (`config.toml` in the platform's user config directory; `SHIPCTL_CONFIG` moves it). Its top level
holds defaults; each `[profiles.NAME]` table holds a profile's, chosen with `--profile NAME` or `SHIPCTL_PROFILE`.
A value is decided here for every level but the command line: environment (`SHIPCTL_<KEY>`) > profile > top level
> built-in default. The CLI hands the result to Click as its `default_map`, which Click ranks below a flag (and an
option's own envvar), so a flag always wins without any command knowing about this file.

Cheap at start-up: every command runs through here, `--help` and usage errors too, so the file is parsed only when
it exists (tomllib, tomli before 3.11) and platformdirs is imported only off Linux. No typer, no rich.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipctl.errors import UsageError

CONFIG_ENV = "SHIPCTL_CONFIG"
PROFILE_ENV = "SHIPCTL_PROFILE"
KEYRING_SERVICE = "shipctl"
"""The keychain entry's service name; its username is the profile's name, or `DEFAULT_USER` without one."""
DEFAULT_USER = "default"


class ConfigError(UsageError):
    """The config file cannot be used (bad TOML, an unknown key, a bad value, a missing profile): exit 2."""


def _choice(*choices: str, case_sensitive: bool = True) -> Callable[[Any], str]:
    canonical = {(c if case_sensitive else c.lower()): c for c in choices}
    *first, last = choices

    def check(value: Any) -> str:
        found = canonical.get(value if case_sensitive else str(value).lower()) if isinstance(value, str) else None
        if found is None:
            raise ValueError(f"must be {', '.join(first)} or {last}, not {value!r}")
        return found

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {value!r}")
    return value.strip()


def _origin(value: Any) -> str:
    """What `--from` takes (a ZIP, inline JSON or a JSON file); a TOML table is taken as the inline JSON."""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return _text(value)


def _names(value: Any) -> str:
    """A comma-separated string or a list of names, as `--carriers UPS,USPS` takes them."""
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v.strip() and "," not in v for v in value):
            raise ValueError(f"must be names, as a list of strings or one comma-separated string, not {value!r}")
        return ",".join(v.strip() for v in value)
    return _text(value)


def _directory(value: Any) -> str:
    return os.path.expanduser(_text(value))


_NOT_A_PATH = re.compile(r"\s*(?:[{\[].*|\d{5}(?:-\d{4})?\s*)", re.DOTALL)
"""A `from` that is inline JSON or a ZIP, not a file."""
PATH_SETTINGS = ("from", "labels_dir")
"""Settings that may name a file or folder: in the config file, a relative one is relative to the file's folder."""


def path_in_file(key: str, value: str, folder: Path) -> str:
    """A path setting's value as a config file in `folder` means it: `~` expanded, a relative path taken from that
    folder (a cron job runs from anywhere; the file and its origin JSON travel together)."""
    if key not in PATH_SETTINGS or (key == "from" and _NOT_A_PATH.fullmatch(value)):
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else folder / path)


def _concurrency(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 1:
        raise ValueError(f"must be a number of at least 1 or 'auto', not {value!r}")
    return str(number)


def _command(value: Any) -> str:
    text = _text(value)
    try:
        shlex.split(text)
    except ValueError as exc:  # an unclosed quote: it could never run
        raise ValueError(f"cannot be split into a command ({exc})") from None
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    flag: str | None
    """The option it is the default of, in every command that has it; None for the key's settings."""
    env: str | None
    default: str | None
    """The built-in default as `config show` prints it (the option's own default is what applies)."""
    check: Callable[[Any], str]
    help: str


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("from", "--from", "SHIPCTL_FROM", None, _origin,
            "default origin: a ZIP, inline JSON, a JSON file, or a TOML table of address fields"),
    Setting("carriers", "--carriers", "SHIPCTL_CARRIERS", None, _names, "only these carriers (a list or 'UPS,USPS')"),
    Setting("services", "--services", "SHIPCTL_SERVICES", None, _names, "only these services"),
    Setting("select", "--select", "SHIPCTL_SELECT", "cheapest", _choice("cheapest", "fastest"),
            "rate rule for unpinned rows: cheapest or fastest"),
    Setting("label_format", "--label-format", "SHIPCTL_LABEL_FORMAT", "PNG",
            _choice("PDF", "PNG", "ZPL", case_sensitive=False), "label file format: PDF, PNG or ZPL"),
    Setting("labels_dir", "--labels-dir", "SHIPCTL_LABELS_DIR", None, _directory, "download each label here"),
    Setting("verify", "--verify", "SHIPCTL_VERIFY", "warn", _choice("off", "warn", "strict"),
            "address verification: off, warn or strict"),
    Setting("concurrency", "--concurrency", "SHIPCTL_CONCURRENCY", "16", _concurrency,
            "in-flight API calls, or 'auto'"),
    Setting("mode", None, None, None, _choice("production", "test"),
            "the key's mode this profile insists on: a key of the other mode is refused before any call"),
    Setting("key_command", None, None, None, _command,
            "a command (run without a shell) whose first line of output is the API key"),
)}
_NOT_HERE = ("api_key", "key", "easypost_api_key")


@dataclass(frozen=True)
class Value:
    value: str | None
    source: str
    """'env VAR', 'profile NAME', 'file' or 'default'."""


@dataclass(frozen=True)
class Config:
    path: Path
    exists: bool
    profile: str | None
    profile_source: str | None
    """'flag --profile' or 'env SHIPCTL_PROFILE' when a profile is in use."""
    profiles: tuple[str, ...]
    values: Mapping[str, Value]

    def get(self, name: str) -> str | None:
        return self.values[name].value

    @property
    def keychain_user(self) -> str:
        return self.profile or DEFAULT_USER

    def option_defaults(self) -> dict[str, str]:
        """The defaults for the command line, by flag: only values that did not come from the built-in default
        (those the options have already)."""
        out: dict[str, str] = {}
        for setting in SETTINGS.values():
            value = self.values[setting.name]
            if setting.flag is not None and value.source != "default" and value.value is not None:
                out[setting.flag] = value.value
        return out


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`SHIPCTL_CONFIG`, else `config.toml` in platformdirs' user config directory for shipctl."""
    env = os.environ if environ is None else environ
    override = env.get(CONFIG_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return _config_dir(env) / "config.toml"


def _config_dir(env: Mapping[str, str]) -> Path:
    if sys.platform.startswith("linux"):
        # platformdirs' own rule on Linux (an absolute XDG_CONFIG_HOME, else ~/.config), without its import: every
        # `--help` and usage error comes through here, and those load nothing they do not need.
        xdg = env.get("XDG_CONFIG_HOME", "")
        return Path(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.config")) / "shipctl"
    import platformdirs

    return platformdirs.user_config_path("shipctl", appauthor=False)


def load(profile: str | None = None, environ: Mapping[str, str] | None = None, path: Path | None = None) -> Config:
    """The effective settings: `profile` is `--profile` (None: SHIPCTL_PROFILE, else none)."""
    env = os.environ if environ is None else environ
    path = path or config_path(env)
    text = read_text(path)
    top, profiles = parse(text, path) if text is not None else ({}, {})
    source = "flag --profile" if profile else f"env {PROFILE_ENV}"
    name = profile or env.get(PROFILE_ENV, "").strip() or None
    if name is not None and name not in profiles:
        where = (f"{path} has {', '.join(sorted(profiles))}" if profiles
                 else f"{path} has none" if text is not None else f"{path} does not exist")
        raise ConfigError(f"no profile {name!r} ({source}): {where}")
    values: dict[str, Value] = {}
    for setting in SETTINGS.values():
        raw = env.get(setting.env, "").strip() if setting.env else ""
        if raw:
            try:
                values[setting.name] = Value(setting.check(raw), f"env {setting.env}")
            except ValueError as exc:
                raise ConfigError(f"{setting.env} {exc}") from None
        elif name is not None and setting.name in profiles[name]:
            values[setting.name] = Value(profiles[name][setting.name], f"profile {name}")
        elif setting.name in top:
            values[setting.name] = Value(top[setting.name], "file")
        else:
            values[setting.name] = Value(setting.default, "default")
    return Config(path, text is not None, name, source if name else None, tuple(sorted(profiles)), values)


def read_text(path: Path) -> str | None:
    """The file's text, or None when there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None


def parse(text: str, path: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(top-level values, profiles' values), every value checked and canonical; any fault is one ConfigError
    naming the file and the line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised by CI's 3.10 jobs
        import tomli as tomllib
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(path, str(exc))) from None
    profiles_doc = doc.pop("profiles", {})
    top = _checked(doc, (), text, path)
    if not isinstance(profiles_doc, dict):
        raise ConfigError(_at(path, _line_of(text, (), "profiles"), "'profiles' must be tables: [profiles.NAME]"))
    profiles: dict[str, dict[str, str]] = {}
    for name, table in profiles_doc.items():
        if not isinstance(table, dict):
            raise ConfigError(_at(path, _line_of(text, ("profiles",), name),
                                  f"profile {name!r} must be a table: [profiles.{name}]"))
        profiles[name] = _checked(table, ("profiles", name), text, path)
    return top, profiles


def _checked(table: dict[str, Any], where: tuple[str, ...], text: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    place = f" in [{'.'.join(where)}]" if where else ""
    for key, raw in table.items():
        setting = SETTINGS.get(key)
        line = _line_of(text, where, key)
        if setting is None:
            if key in _NOT_HERE:
                raise ConfigError(_at(path, line, f"{key!r}{place}: shipctl never reads an API key from a file; "
                                                  "use EASYPOST_API_KEY, `shipctl config set-key` or key_command"))
            raise ConfigError(_at(path, line, f"unknown key {key!r}{place} (known: {', '.join(SETTINGS)})"))
        try:
            out[key] = path_in_file(key, setting.check(raw), path.parent)
        except ValueError as exc:
            raise ConfigError(_at(path, line, f"{key}{place} {exc}")) from None
    return out


def _at(path: Path, line: int | None, message: str) -> str:
    return f"config file {path}, line {line}: {message}" if line else f"config file {path}: {message}"


_SYNTAX_PLACE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _syntax_message(path: Path, message: str) -> str:
    found = _SYNTAX_PLACE.search(message)
    if found is None:
        return f"config file {path}: not valid TOML: {message}"
    reason = message[: found.start()].strip()
    return f"config file {path}, line {found.group(1)}: not valid TOML: {reason} (column {found.group(2)})"


_HEADER = re.compile(r"^\s*\[(?!\[)\s*(.+?)\s*\]\s*(#.*)?$")


def _line_of(text: str, table: tuple[str, ...], key: str) -> int | None:
    """The line `key` is set on in `table` (best effort: a key written as a dotted key elsewhere may be missed)."""
    assign = re.compile(r"^\s*(?:" + re.escape(key) + r"|\"" + re.escape(key) + r"\"|'" + re.escape(key)
                        + r"')\s*[=.\]]")
    current: tuple[str, ...] = ()
    fallback = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            if current == (*table, key):
                return number
            continue
        if assign.match(line):
            if current == table:
                return number
            fallback = fallback or number
    return fallback


# -- the configuration of this invocation ---------------------------------------------------------------------

_active: Config | None = None


def activate(config: Config | None) -> None:
    """Set what this invocation runs with (the CLI's root, once per command; None: read it again when asked)."""
    global _active
    _active = config


def active() -> Config:
    """This invocation's settings; outside a command (a job run from Python), read afresh each time."""
    return _active if _active is not None else load()
