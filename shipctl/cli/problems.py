"""The validation report on stderr: a manifest's problems grouped (`shipctl.manifest.problems`), printed as written.

`validate` and `create` print through it; `rates` reports through its job's host, which groups the same way.
"""

from __future__ import annotations

from shipctl.cli.terminal import terminal
from shipctl.manifest.problems import ProblemGroups


def problem_report() -> ProblemGroups:
    """A report that prints on this invocation's stderr, each line as written (no markup: cells are user text).

    Use it as a context manager: the grouped problems are printed when the block ends, also when reading
    stops on a manifest error, so what was found before it is not lost.
    """
    return ProblemGroups(terminal().line)
