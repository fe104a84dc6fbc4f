"""The process's start: the cyclic garbage collector is paused while a command loads its modules.

A command imports ~650 modules (the SDK, requests, pydantic, typer, rich, shipctl's own) whose objects live as
long as the process. The collector's passes over them while they load are pure cost: about 60 ms, 15% of the CPU
of a one-row `create` (`python benchmarks/bench_engine.py --skip compare,throttle,auto,cpu,display`). `main()`
pauses it; the first real work (`work_begins`: a manifest read, an API session or a sandbox started, a report
begun) resumes it with the start-up objects frozen out of later passes (`gc.freeze`), so a long run's full
collections do not walk them again; a timer resumes it anyway after `RESUME_AFTER` seconds.

Pydantic plugins (third-party packages that hook every model, found through entry points) are switched off unless
the environment says otherwise: shipctl's models carry customers' names and addresses, which no plugin installed
for another program should see, and finding them costs a scan of every installed distribution (~12 ms).
"""

from __future__ import annotations

import gc
import os
import threading

#: Whatever a command does, the collector runs again after this long (a command whose work starts somewhere that
#: does not say so, such as a server that runs for hours, never goes on without it).
RESUME_AFTER = 3.0

_paused = False
_timer: threading.Timer | None = None


def begin(resume_after: float = RESUME_AFTER) -> None:
    """At the very start of `main()`, before the command's modules load."""
    global _paused, _timer
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if gc.isenabled():
        gc.disable()
        _paused = True
        _timer = threading.Timer(resume_after, work_begins)
        _timer.daemon = True
        _timer.start()


def work_begins() -> None:
    """The command's modules are loaded and its work starts: collect garbage again (idempotent; a no-op when the
    process did not start through `main()`, as under a test runner)."""
    global _paused
    if _paused:  # the timer's thread may get here at the same moment: freezing and enabling twice is harmless
        _paused = False
        gc.freeze()
        gc.enable()
