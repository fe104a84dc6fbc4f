"""The collector is paused while a command loads (`shipctl.startup`) and running again once its work begins.

Each case runs in a fresh interpreter: the collector's state is the process's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.manifests import make_manifest

_PROBE = """
import gc, json, os, sys
from shipctl import startup
startup.begin()
paused = not gc.isenabled()
{work}
print(json.dumps({{"paused": paused, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "plugins": os.environ.get("PYDANTIC_DISABLE_PLUGINS")}}))
"""


def _probe(work: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(work=work), *args], capture_output=True, text=True,
                          check=True, timeout=120)
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_reading_a_manifest_resumes_the_collector_with_the_start_up_objects_frozen(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path / "m.csv", 3)
    found = _probe("from shipctl.manifest import iter_rows\nrows = list(iter_rows(sys.argv[1]))", str(manifest))
    assert found["paused"] is True
    assert found["enabled"] is True
    assert isinstance(found["frozen"], int) and found["frozen"] > 0


def test_without_work_the_collector_stays_paused_and_plugins_stay_off() -> None:
    found = _probe("import shipctl.cli.app")
    assert found == {"paused": True, "enabled": False, "frozen": 0, "plugins": "__all__"}


def test_an_api_session_resumes_the_collector() -> None:
    work = ("from shipctl.engine.sizing import size_pools\nfrom shipctl.jobs.session import open_session\n"
            "with open_session(size_pools(concurrency=1), force_sandbox=True):\n    pass")
    found = _probe(work)
    assert found["enabled"] is True


def test_a_plugin_setting_of_the_environment_is_kept() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(work="")], capture_output=True, text=True,
                          check=True, timeout=120, env={**os.environ, "PYDANTIC_DISABLE_PLUGINS": "x"})
    assert json.loads(done.stdout.splitlines()[-1])["plugins"] == "x"


def test_a_sandbox_started_resumes_the_collector() -> None:
    found = _probe("from shipctl.sandbox import start_sandbox\nwith start_sandbox():\n    pass")
    assert found["paused"] is True and found["enabled"] is True


def test_whatever_the_command_does_the_collector_is_resumed_by_the_timer() -> None:
    code = ("import gc, json\nfrom shipctl import startup\nstartup.begin(resume_after=0.01)\n"
            "paused = not gc.isenabled()\nassert startup._timer is not None\nstartup._timer.join(timeout=30)\n"
            "print(json.dumps([paused, gc.isenabled(), gc.get_freeze_count() > 0]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(done.stdout) == [True, True, True]
