"""Options, declared once: the engine-and-output options every API command shares, and the choices they take.

`@engine_options("Rows")` adds `--output`, `--concurrency`, `--max-concurrency`, `--workers`, `--chunk-size`,
`--progress`, `--progress-interval`, `--quiet`, `--verbose` and `--sandbox` to a command and hands it one
checked `RunOptions` as its `run` parameter (sqlite-utils' `output_options` is the model). A choice is
checked while the command line is parsed, listed in `--help` and completion, and a wrong one is refused with
the flag and its choices.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, cast

import typer

from shipctl.cli.terminal import terminal
from shipctl.engine.sizing import Sizing, size_pools
from shipctl.errors import UsageError
from shipctl.exit_codes import ExitCode

F = TypeVar("F", bound=Callable[..., Any])

OutputFormat = Literal["table", "json", "ndjson", "csv"]
ProgressMode = Literal["auto", "live", "plain", "off"]
ManifestFormatName = Literal["csv", "json", "ndjson"]
SelectRule = Literal["cheapest", "fastest"]
LabelFormat = Literal["PDF", "PNG", "ZPL"]

ENGINE_PANEL = "Engine and output"
MANIFEST_PANEL = "Manifest"
RATES_PANEL = "Rate choice"


def choice(flag: str, choices: Sequence[str], help: str, *, short: str | None = None,
           case_sensitive: bool = True, panel: str | None = None) -> Any:
    """A `typer.Option` for `flag` that takes one of `choices` (use it in `Annotated[...]`, the default after
    `=`): listed in `--help` and in shell completion, checked while the command line is parsed, refused as
    `--output must be table, json, ndjson or csv`.

    Case-insensitive ones hand back the canonical spelling (`pdf` -> `PDF`).
    """
    names = (flag, short) if short else (flag,)
    canonical = {(c if case_sensitive else c.lower()): c for c in choices}
    *first, last = choices

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        found = canonical.get(value if case_sensitive else value.lower())
        if found is None:
            # One line and exit 2, like every other usage error (Click's own would draw the usage box).
            terminal().error(f"{flag} must be {', '.join(first)} or {last}")
            raise typer.Exit(int(ExitCode.USAGE))
        return found

    # No brackets round the choices: `[table|json|ndjson|csv]` is one column too wide for the engine panel at 80
    # columns, and brackets say "optional" in a usage line.
    return typer.Option(
        *names, help=help, rich_help_panel=panel, metavar="|".join(choices), callback=check,
        autocompletion=lambda: list(choices),
    )


# Manifest reading and rate choice, shared by `create` and `rates`.
ManifestFormat = Annotated[str | None, choice(
    "--format", ("csv", "json", "ndjson"), "Manifest format (default: sniffed from the name and content).",
    panel=MANIFEST_PANEL,
)]
Encoding = Annotated[str | None, typer.Option(
    "--encoding", metavar="CODEC", help="Manifest text encoding (default UTF-8).", rich_help_panel=MANIFEST_PANEL
)]
Sheet = Annotated[str | None, typer.Option(
    "--sheet", rich_help_panel=MANIFEST_PANEL, help="The sheet of an .xlsx workbook (default: the first)."
)]
DefaultFrom = Annotated[str | None, typer.Option(
    "--from", envvar="SHIPCTL_FROM", rich_help_panel=MANIFEST_PANEL,
    help="Origin of rows without one: a JSON file or inline JSON ($SHIPCTL_FROM).",
)]
Select = Annotated[str, choice("--select", ("cheapest", "fastest"), "Rate rule for unpinned rows.", panel=RATES_PANEL)]
Verify = Annotated[str, choice(
    "--verify", ("off", "warn", "strict"),
    "Have EasyPost verify each destination inside shipment.create (no extra call): warn reports a failure and "
    "buys; strict buys no row whose address fails; off sends no verification.", panel=MANIFEST_PANEL,
)]
Carriers = Annotated[str | None, typer.Option(
    "--carriers", metavar="NAMES", help="Only these carriers (comma-separated; case, spaces and _ do not count).",
    rich_help_panel=RATES_PANEL,
)]
Services = Annotated[str | None, typer.Option(
    "--services", metavar="NAMES", help="Only these services (comma-separated; 'Ground Advantage' = GroundAdvantage).",
    rich_help_panel=RATES_PANEL,
)]

# `--deliver-within` and `--confidence`, shared by `create`, `plan` and `rates` (SmartRate's percentiles; 90 is
# `selection.DEFAULT_CONFIDENCE`, spelled here so that --help needs no import). Here, not in `cli/rates.py`: a
# `create` would otherwise import the `rates` command's module, and register and decorate that command, for them.
CONFIDENCE_CHOICES = ("50", "75", "85", "90", "95", "97", "99")
DeliverWithin = Annotated[str | None, typer.Option(
    "--deliver-within", metavar="DAYS", rich_help_panel=RATES_PANEL,
    help="The cheapest rate that arrives within DAYS business days (1-30) at --confidence, by EasyPost SmartRate "
    "(one paid call per row); a row's deliver_within column wins.",
)]
Confidence = Annotated[str | None, choice(
    "--confidence", CONFIDENCE_CHOICES,
    "The SmartRate percentile a delivery-time rule is judged at (default 90: 9 parcels in 10 on time).",
    panel=RATES_PANEL,
)]


def parse_deliver_within(value: str | None) -> int | None:
    """`--deliver-within`: business days as the manifest's deliver_within column takes them (`3`, `3d`, `3 days`)."""
    if value is None:
        return None
    from shipctl.manifest.normalize import business_days

    try:
        return business_days(value)
    except ValueError as exc:
        raise UsageError(f"--deliver-within: {exc}") from None


def parse_confidence(value: str | None) -> int:
    from shipctl.selection import DEFAULT_CONFIDENCE

    return DEFAULT_CONFIDENCE if value is None else int(value)


@dataclass(frozen=True)
class RunOptions:
    """The checked engine-and-output options; `progress` is already "off" under `--quiet`."""

    output: OutputFormat | None
    sizing: Sizing
    progress: ProgressMode
    progress_interval: float
    quiet: bool
    verbose: bool
    force_sandbox: bool


MOST_IN_FLIGHT = 1024
"""The most API calls in flight (`--concurrency`, `--max-concurrency`) and threads (`--workers`) one run takes: the
HTTP connection pool and the threads are sized to them, and a million held the process for good, calling nothing;
no API serves one client more (EasyPost answers 429 long before)."""


def parse_sizing(concurrency: str, max_concurrency: int, workers: int | None, chunk_size: int | None) -> Sizing:
    auto = concurrency.strip().lower() == "auto"
    start = None if auto else _at_most("--concurrency", _at_least_one("--concurrency", _number(concurrency)))
    _at_most("--max-concurrency", _at_least_one("--max-concurrency", max_concurrency))
    _at_most("--workers", _at_least_one("--workers", workers))
    _at_least_one("--chunk-size", chunk_size)
    return size_pools(
        concurrency=start, auto=auto, max_concurrency=max_concurrency, workers=workers, chunk_size=chunk_size
    )


def _number(concurrency: str) -> int:
    try:
        return int(concurrency)
    except ValueError:
        raise UsageError(f"--concurrency must be a number or 'auto', not {concurrency!r}") from None


def _at_least_one(flag: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be at least 1")
    return value


def _at_most(flag: str, value: int | None) -> int | None:
    if value is not None and value > MOST_IN_FLIGHT:
        raise UsageError(f"{flag} must be at most {MOST_IN_FLIGHT}, not {value}")
    return value


def _engine_parameters(chunk_what: str, output_help: str) -> list[inspect.Parameter]:
    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    def opt(*names: str, help: str, metavar: str | None = None) -> Any:
        return typer.Option(*names, help=help, metavar=metavar, rich_help_panel=ENGINE_PANEL)

    return [
        option("output", Annotated[str | None, choice(
            "--output", ("table", "json", "ndjson", "csv"),
            output_help, short="-o", panel=ENGINE_PANEL,
        )], None),
        option("concurrency", Annotated[str, opt(
            "--concurrency", metavar="N|auto", help="In-flight API calls, or 'auto' to probe upward.")], "16"),
        option("max_concurrency", Annotated[int, opt(
            "--max-concurrency", metavar="N", help="Ceiling for --concurrency auto.")], 64),
        option("workers", Annotated[int | None, opt(
            "--workers", metavar="N", help="Worker threads (default min(40, 2×cores), ≥ limit).")], None),
        option("chunk_size", Annotated[int | None, opt(
            "--chunk-size", metavar="N", help=f"{chunk_what} per chunk (8).")], None),
        option("progress", Annotated[str, choice(
            "--progress", ("auto", "live", "plain", "off"),
            "Progress on stderr: live bars on a terminal, plain lines for logs (auto picks).", panel=ENGINE_PANEL,
        )], "auto"),
        option("progress_interval", Annotated[float, opt(
            "--progress-interval", metavar="SECONDS", help="Seconds between plain lines.")], 10.0),
        option("quiet", Annotated[bool, opt("--quiet", "-q", help="Only errors and a one-line summary on stderr.")],
               False),
        option("verbose", Annotated[bool, opt(
            "--verbose", "-v", help="Print engine sizing and the event loop in use.")], False),
        option("sandbox", Annotated[bool, opt(
            "--sandbox", help="Use the built-in sandbox even if a key is set.")], False),
    ]


_ENGINE_NAMES = ("output", "concurrency", "max_concurrency", "workers", "chunk_size", "progress",
                 "progress_interval", "quiet", "verbose", "sandbox")


def run_options(values: dict[str, Any]) -> RunOptions:
    """Check the engine-and-output options (progress, then sizing) and group them."""
    if values["progress_interval"] <= 0:
        raise UsageError("--progress-interval must be positive")
    sizing = parse_sizing(values["concurrency"], values["max_concurrency"], values["workers"], values["chunk_size"])
    return RunOptions(
        output=cast("OutputFormat | None", values["output"]),
        sizing=sizing,
        progress="off" if values["quiet"] else cast(ProgressMode, values["progress"]),
        progress_interval=values["progress_interval"],
        quiet=values["quiet"],
        verbose=values["verbose"],
        force_sandbox=values["sandbox"],
    )


def engine_options(
    chunk_what: str, output_help: str = "Result format (default: table on a terminal, else ndjson).",
) -> Callable[[F], F]:
    """Give a command the shared engine-and-output options, as one `run: RunOptions` parameter.

    The command's own parameters come first in `--help`, the shared ones after them in their own panel.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "run"]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            shared = {name: kwargs.pop(name) for name in _ENGINE_NAMES}
            return func(run=run_options(shared), **kwargs)

        parameters = own + _engine_parameters(chunk_what, output_help)
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        wrapper.api_command = True  # type: ignore[attr-defined]  # its help names the key and the exit codes
        return cast(F, wrapper)

    return decorate


def split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())
