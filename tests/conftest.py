"""Shared fixtures: a running in-process sandbox and a real EasyPost SDK client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import easypost
import pytest

from shipctl.sandbox import Sandbox, start_sandbox

TEST_KEY = "EZTKtest0000000000000000000000000"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox on 127.0.0.1, latency none, no faults, in-memory state."""
    with start_sandbox(latency="none") as sb:
        yield sb


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[easypost.EasyPostClient]:
    """The official SDK, unchanged, talking to the sandbox over loopback HTTP."""
    c = easypost.EasyPostClient(TEST_KEY, api_base=sandbox.api_base)
    try:
        yield c
    finally:
        c._requests_session.close()
