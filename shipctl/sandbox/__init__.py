"""The offline EasyPost-compatible sandbox (ARCHITECTURE.md, README "The sandbox").

    from shipctl.sandbox import start_sandbox
    with start_sandbox(latency="none") as sb:
        client = easypost.EasyPostClient("EZTK...", api_base=sb.api_base)

A separate program that ships in the same package: nothing on shipctl's core paths imports it except the
CLI's embedded default.
"""

from shipctl.sandbox.server import Sandbox, start_sandbox

__all__ = ["Sandbox", "start_sandbox"]
