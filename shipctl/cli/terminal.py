"""The terminal: the one object that touches stdin, stdout, stderr and what they are connected to.

stdout carries data only; stderr carries everything a person reads (messages, progress, the summary, the
question before money is spent). Commands and the CLI's helpers reach the streams through `terminal()`, never
through `sys.std*`, so a test can put its own streams and answers in place (`use`), and facts such as "is a
person at a keyboard" are decided in one place. The core jobs never see this object: they are handed plain
callbacks (`shipctl.jobs.Host`).

A question is asked where a person can answer it: on stdin when it is a terminal nobody has read data from, else
on the controlling terminal (`/dev/tty`, as sudo and ssh do), so `export | shipctl create -` can still be asked
before money is spent. Either way stderr must be a terminal: someone is watching. Without both (cron, CI,
`setsid`, Windows) no question is asked and the caller refuses.

The streams are looked up at the moment they are used, not when the object is made: Click's test runner swaps
`sys.stdout` for each invocation, and a redirection must be seen as it is.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Literal, TextIO, cast

from shipctl.cli.plain import PlainConsole, shows_plain

if TYPE_CHECKING:
    from rich.console import Console

    from shipctl.output import OutputFormat

_DEBUG_ENV = "SHIPCTL_DEBUG"


def _env_debug() -> bool:
    return os.environ.get(_DEBUG_ENV, "") not in ("", "0")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


_CONTROLLING_TERMINAL = "/dev/tty"


def _open_controlling_terminal() -> TextIO | None:
    """The process's controlling terminal, open for reading and writing; None when it has none (cron, CI, `setsid`,
    a daemon: the open fails with ENXIO) or the platform has no `/dev/tty` (Windows, where a file of that name on
    the current drive must never be taken for a person)."""
    if os.name == "nt":
        return None
    try:
        fd = os.open(_CONTROLLING_TERMINAL, os.O_RDWR | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        # As getpass does: unbuffered bytes under a text layer, so the question is written before the read.
        return io.TextIOWrapper(io.FileIO(fd, "r+"), errors="replace", write_through=True)
    except (OSError, ValueError):
        os.close(fd)
        return None


def _has_controlling_terminal() -> bool:
    tty = _open_controlling_terminal()
    if tty is None:
        return False
    tty.close()
    return True


Channel = Literal["stdin", "tty"]
"""Where a question's answer is read: stdin (the question on stderr), or the controlling terminal (both ways)."""


class Terminal:
    """stdin/stdout/stderr, what they are, the rich consoles on them, debug, and asking a person yes or no.

    Every argument defaults to the process's own: tests pass streams (and `interactive=True` with `answer`, the
    function that reads a reply) to drive a command the way a person at a terminal would.
    """

    def __init__(
        self,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        interactive: bool | None = None,
        answer: Callable[[str], str] | None = None,
        debug: bool | None = None,
        err_console: Console | None = None,
    ) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._stdout_closed = False
        self._stderr = stderr
        self._interactive = interactive
        self._answer = answer
        self._stdin_holds: str | None = None  # what this invocation read from stdin as data: it answers nothing
        self.debug = _env_debug() if debug is None else debug
        self._out: Console | None = None
        self._rich_err = err_console
        self._err_given = err_console is not None  # a caller's own console (a benchmark drawing into nothing)
        self._plain_err = PlainConsole(lambda: self.stderr, self._rich_stderr, stderr=stderr is None)

    # -- the consoles (rich is loaded only for a stream that shows it) -----------------------------------

    @property
    def out(self) -> Console:
        """The rich console on stdout (a table, `--version`)."""
        if self._out is None:
            from rich.console import Console

            # emoji=False: text from manifests (a column named ":smile:") must print as written.
            self._out = Console(file=self._stdout, soft_wrap=True, highlight=False, emoji=False)
        return self._out

    @property
    def err(self) -> Console | PlainConsole:
        """The console on stderr: rich's on a terminal, the plain one (`shipctl.cli.plain`) where rich would show
        no colour anyway (a pipe, a file, cron)."""
        if not self._err_given and shows_plain(self.stderr):
            return self._plain_err
        return self._rich_stderr()

    def _rich_stderr(self) -> Console:
        if self._rich_err is None:
            from rich.console import Console

            self._rich_err = Console(file=self._stderr, stderr=self._stderr is None, soft_wrap=True, highlight=False,
                                     emoji=False)
        return self._rich_err

    # -- the streams -------------------------------------------------------------------------------------

    @property
    def stdin(self) -> TextIO:
        return self._stdin if self._stdin is not None else sys.stdin

    @property
    def stdout(self) -> TextIO:
        if self._stdout is not None:
            return self._stdout
        if sys.stdout is None:  # started with stdout closed (`>&-`): nobody reads the data, as with > /dev/null
            self._stdout = open(os.devnull, "w")  # noqa: SIM115 -- lives as long as the process
            self._stdout_closed = True
            return self._stdout
        return sys.stdout

    @property
    def stdout_closed(self) -> bool:
        """The process started with stdout closed (`>&-`): its data goes to /dev/null. Often a script's mistake, so
        a command whose results matter says so (`create`); a reader gone mid-run (`| head`) is a BrokenPipeError."""
        return self._stdout_closed or (self._stdout is None and sys.stdout is None)

    @property
    def stderr(self) -> TextIO:
        if self._stderr is not None:
            return self._stderr
        if sys.stderr is None:  # started with stderr closed (`2>&-`): messages go nowhere, the run goes on
            self._stderr = open(os.devnull, "w")  # noqa: SIM115 -- lives as long as the process
            return self._stderr
        return sys.stderr

    def stdin_bytes(self, holds: str) -> IO[bytes]:
        """stdin as bytes, to be read as data (a manifest on stdin is read as bytes, its encoding sniffed like a
        file's). From now on it answers no question; `holds` names what it carries, for the refusal's reason."""
        self._stdin_holds = holds
        stream = self.stdin
        return stream.buffer if hasattr(stream, "buffer") else cast(IO[bytes], stream)

    def forget_stdin(self) -> None:
        """A new invocation: an earlier one's data on stdin says nothing of this one's (tests run many in one
        process)."""
        self._stdin_holds = None

    def stdin_text(self, holds: str) -> TextIO:
        """stdin as text, to be read as data (ids, tracking codes, create's records): as `stdin_bytes`."""
        self._stdin_holds = holds
        return self.stdin

    # -- what they are connected to ---------------------------------------------------------------------

    @property
    def stdout_is_terminal(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_terminal(self) -> bool:
        return _isatty(self.stderr)

    @property
    def interactive(self) -> bool:
        """A person types on stdin: stdin and stderr are both a terminal (not cron, not a pipe). `config set-key`
        prompts then, and reads a piped key otherwise; a yes/no question goes by `can_ask`."""
        if self._interactive is not None:
            return self._interactive
        return _isatty(self.stdin) and self.stderr_is_terminal

    @property
    def can_ask(self) -> bool:
        """A person can answer a yes/no question, on stdin or on the controlling terminal (`_channel`)."""
        return self._channel() is not None

    def _channel(self) -> Channel | None:
        if self._interactive is not None:
            # A test's scripted streams and answers: never the developer's own terminal behind the test runner.
            return "stdin" if self._interactive else None
        if not self.stderr_is_terminal:  # cron, CI, `2> log`: nobody is watching for a question
            return None
        if self._stdin_holds is None and _isatty(self.stdin):
            return "stdin"
        # stdin is a pipe or a file, or carried the manifest (even typed at this terminal, ended by Ctrl-D):
        # an answer read from it would be the data's next line, never a person's.
        return "tty" if _has_controlling_terminal() else None

    def why_no_question(self) -> str:
        """Why `can_ask` is false, for a person at a terminal who sees no question come; "" when stderr is not a
        terminal (a log read later, as before)."""
        if not self.stderr_is_terminal:
            return ""
        stdin = f"stdin holds {self._stdin_holds}" if self._stdin_holds else "stdin is not a terminal"
        if os.name == "nt":
            return f"{stdin}: there is no one to ask"
        return f"{stdin} and there is no controlling terminal to ask on"

    @property
    def width(self) -> int | None:
        """The columns of the terminal stdout is on (`COLUMNS` when set, as every terminal program honours it);
        None when stdout is a file or a pipe: a table written there has no screen to fit."""
        if not self.stdout_is_terminal:
            return None
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        try:
            return os.get_terminal_size(self.stdout.fileno()).columns or 80
        except (AttributeError, OSError, ValueError):
            return 80

    def shares_screen(self) -> bool:
        """stdout and stderr are the same terminal: a person reads data and progress on one screen."""
        if not (self.stdout_is_terminal and self.stderr_is_terminal):
            return False
        try:
            return os.ttyname(self.stdout.fileno()) == os.ttyname(self.stderr.fileno())
        except (AttributeError, OSError, ValueError):
            return False

    def default_output(self) -> OutputFormat:
        """A table for a person at a terminal, NDJSON for a pipe or a file."""
        return "table" if self.stdout_is_terminal else "ndjson"

    # -- messages on stderr -----------------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.err.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.err.print("warning: " + message, markup=False, style="yellow")

    def error(self, message: str) -> None:
        self.err.print("error: " + message, markup=False, style="red")

    def line(self, text: str) -> None:
        """A line as written: no markup, no highlighting (a manifest's problems, a traceback)."""
        self.err.print(text, markup=False, highlight=False, emoji=False)

    # -- asking --------------------------------------------------------------------------------------------

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question; no by default. Only call it when `can_ask`: on stderr with the answer read from
        stdin, or both on the controlling terminal when stdin cannot answer.

        Ctrl-C or end of input at the question is a no, and so is a controlling terminal gone since `can_ask`.
        (Ctrl-C while a bulk run waits here is heard first by the run's own signal watcher, which ends the
        process: see `shipctl.jobs.create`.)
        """
        prompt = f"{question} [y/N]: "
        channel = self._channel()
        if channel is None:
            # Nobody to ask any more (a terminal gone since `can_ask`): a no. Never a line of stdin, which may be
            # the manifest's.
            return False
        if channel == "tty":
            reply = _ask_on_controlling_terminal(prompt)
        else:
            try:
                reply = self._read_answer(prompt)
            except (KeyboardInterrupt, EOFError):
                self.err.print()
                return False
        return reply is not None and reply.strip().lower() in ("y", "yes")

    def _read_answer(self, prompt: str) -> str:
        self.stderr.write(prompt)
        self.stderr.flush()
        if self._answer is not None:
            return self._answer(prompt)
        reply = self.stdin.readline()
        if not reply:
            raise EOFError
        return reply

    # -- leaving -------------------------------------------------------------------------------------------

    def silence_stdout(self) -> None:
        """Point fd 1 at /dev/null once the reader has closed the pipe, so later writes and the final flush pass."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a real file (a test's buffer)
            pass
        finally:
            os.close(devnull)

    def exit_now(self, code: int) -> None:
        """Leave at once (a second Ctrl-C): stdout flushed, the cursor the live display hid shown again."""
        with contextlib.suppress(Exception):
            self.stdout.flush()
        if self.stderr_is_terminal:
            self.stderr.write("\x1b[?25h\n")
        with contextlib.suppress(Exception):
            self.stderr.flush()
        os._exit(code)


def _ask_on_controlling_terminal(prompt: str) -> str | None:
    """`prompt` written to the controlling terminal and a line read back from it; None for no answer (end of input,
    Ctrl-C, or no terminal any more)."""
    tty = _open_controlling_terminal()
    if tty is None:
        return None
    with tty:
        try:
            tty.write(prompt)
            tty.flush()
            reply = tty.readline()
        except (KeyboardInterrupt, OSError):
            reply = ""
        if not reply:
            with contextlib.suppress(OSError):
                tty.write("\n")  # the prompt's line ended, so what follows starts on its own
            return None
        return reply


_current: Terminal | None = None


def terminal() -> Terminal:
    """The terminal of this invocation (the process's own streams unless a test put one in place)."""
    global _current
    if _current is None:
        _current = Terminal()
    return _current


@contextlib.contextmanager
def use(term: Terminal) -> Iterator[Terminal]:
    """Run commands against `term` while the block runs (tests: scripted answers, captured streams)."""
    global _current
    previous, _current = _current, term
    try:
        yield term
    finally:
        _current = previous


def begin_invocation(*, debug: bool) -> Terminal:
    """Called once per command invocation: debug comes from `--debug` or SHIPCTL_DEBUG, never from the last run."""
    term = terminal()
    term.debug = debug or _env_debug()
    term.forget_stdin()
    return term
