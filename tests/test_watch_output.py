"""`track --watch` as a person reads it: a table only when something changed, and one way of saying when the
next poll is."""

from __future__ import annotations

import re

from shipctl.sandbox import Sandbox
from tests.cli import invoke

NEXT_POLL = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\d+ codes?) not final yet; next poll in (\S+) s$")


def test_an_unchanged_poll_prints_no_table(env: Sandbox) -> None:
    # EZ2000000002 stays in transit: every poll after the first finds nothing new.
    result = invoke("track", "EZ2000000002", "--watch", "--interval", "0.02", "--timeout", "0.3", "-o", "table")
    assert result.exit_code == 3  # the timeout came with a code not final
    polls = int(re.search(r", (\d+) polls", result.stderr).group(1))  # type: ignore[union-attr]
    assert polls >= 2
    headers = [line for line in result.stdout.splitlines() if "tracking_code" in line]
    assert len(headers) == 1  # the first report's table; no header-only table after each unchanged poll
    assert result.stdout.count("EZ2000000002") == 1


def test_the_next_poll_is_announced_with_the_date_and_seconds_to_one_decimal(env: Sandbox) -> None:
    result = invoke("track", "EZ2000000002", "--watch", "--interval", "0.5", "--timeout", "1.2", "-o", "ndjson")
    assert result.exit_code == 3
    announced = [NEXT_POLL.match(line) for line in result.stderr.splitlines() if "next poll in" in line]
    assert len(announced) >= 2 and all(announced), result.stderr
    waits = [m.group(3) for m in announced if m is not None]
    # One rule for every wait: the full interval and the last, shorter one (the timeout's rest) alike.
    assert all(re.fullmatch(r"\d+\.\d", w) for w in waits), waits
    assert waits[0] == "0.5"
    assert all(m.group(2) == "1 code" for m in announced if m is not None)
