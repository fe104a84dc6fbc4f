"""The CLI's side of a job (`shipctl.jobs.Host`): notices and progress on the terminal, and the money question.

One rule for every command that spends or voids money: a test key spends nothing real and is never asked;
production, or a mode nobody can tell, needs `--yes` or a person's yes at a terminal (asked on the controlling
terminal when stdin is the manifest: `Terminal.can_ask`); with neither (cron, CI, no terminal) the job is refused,
never left waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from shipctl.cli.options import RunOptions
from shipctl.cli.terminal import Terminal, terminal
from shipctl.exit_codes import ExitCode
from shipctl.money import format_totals
from shipctl.output import OutputFormat, TableLayout, Writer, counted, open_writer

if TYPE_CHECKING:
    from shipctl.cli.progress import Display
    from shipctl.engine.sizing import Sizing
    from shipctl.engine.stats import RunStats
    from shipctl.jobs.host import Spend


def smartrate_note(calls: int) -> str:
    """The money question's and the dry run's word on SmartRate (billed beyond EasyPost's free tier); "" for none."""
    if not calls:
        return ""
    return f"; {calls} SmartRate call{'' if calls == 1 else 's'} made to choose rates by delivery time"


class CliHost:
    def __init__(self, run: RunOptions, *, noun: str, yes: bool = False, term: Terminal | None = None) -> None:
        self.run = run
        self.noun = noun
        self.yes = yes
        self.term = term or terminal()
        self._display: Display | None = None

    def info(self, message: str) -> None:
        self.term.info(message)

    def warn(self, message: str) -> None:
        self.term.warn(message)

    def detail(self, message: str) -> None:
        if not self.run.quiet:
            self.term.info(message)

    @contextlib.contextmanager
    def progress(self, stats: RunStats) -> Iterator[object]:
        from shipctl.cli.progress import open_progress  # rich.live and psutil: only for a run that shows progress

        with open_progress(
            stats, mode=self.run.progress, interval=self.run.progress_interval, noun=self.noun,
            console=self.term.err, shared_screen=self.term.shares_screen(),
        ) as display:
            self._display = display
            try:
                yield display
            finally:
                self._display = None

    def approve(self, spend: Spend) -> bool:
        if self._display is None:
            return self._approve(spend)
        with self._display.suspended():  # the question needs the screen the live display is drawing on
            return self._approve(spend)

    def _approve(self, spend: Spend) -> bool:
        money = format_totals(spend.totals)
        mode = f"{spend.mode or 'unknown'} mode"  # as it is: an unknown mode is asked about, never called production
        what = counted(spend.count, spend.noun)
        self.term.info(f"{mode}: {what} to {spend.verb}"
                       + (f", estimated total {money}" if money else "") + smartrate_note(spend.smartrate_calls))
        if self.yes:
            return True
        if not self.term.can_ask:
            # A person at a terminal who gets no question (stdin is the manifest and the process has no controlling
            # terminal: `setsid`) is told why. Not an error line: the job ends on its own one ("nothing was bought").
            why = self.term.why_no_question()
            self.term.info(
                f"{mode}: refusing to {spend.verb} {what}"
                + (f" ({money})" if money else "")
                + " without confirmation" + (f" ({why})" if why else "") + f"; rerun with --yes to {spend.verb}"
            )
            return False
        return self.term.confirm(f"{spend.verb.capitalize()} {what}" + (f" for {money}" if money else "") + "?")

    def engine_started(self, sizing: Sizing) -> None:
        if self.run.verbose:
            import asyncio  # the engine has it loaded by now

            loop = type(asyncio.get_running_loop())
            self.term.info(f"engine: {sizing.describe()}; event loop {loop.__module__}.{loop.__qualname__}")

    def exit_now(self) -> None:
        self.term.exit_now(int(ExitCode.INTERRUPTED))

    def open_writer(self, columns: Sequence[str]) -> contextlib.AbstractContextManager[Writer]:
        """stdout's writer in the result format; a table fits the screen it is on (a file gets it whole)."""
        layout = TableLayout(width=self.term.width, notice=self.term.info)
        return open_writer(self.result_format(), self.term.stdout, columns, table=layout)

    def result_format(self) -> OutputFormat:
        """`--output`, else a table on a terminal and NDJSON otherwise."""
        return self.run.output or self.term.default_output()
