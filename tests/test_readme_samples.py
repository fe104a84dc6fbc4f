"""The README's samples are what the commands print: each one here is run as written, in a shell, on a copy of
`examples/`, with no key (the built-in sandbox), and compared with the README once times, rates per second,
ports and dates are masked. A change of wording that forgets the README fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "shipctl").exists(), reason="the shipctl console script is not installed"),
]

MASKS = [
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:PORT"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "T s"),
    (re.compile(r"\(\d+(\.\d+)?/s\)"), "(R/s)"),
    (re.compile(r"\d{4}-\d\d-\d\d"), "DATE"),
]


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def sample(command: str) -> str:
    """What the README shows under `$ command` in a console block: the lines up to the next prompt or fence."""
    start = README.index(f"$ {command}\n") + len(f"$ {command}\n")
    lines = []
    for line in README[start:].splitlines():
        if line.startswith(("$ ", "```")):
            break
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture
def shell(tmp_path: Path) -> Path:
    """A folder holding a copy of examples/, and an environment with no key: the built-in sandbox answers."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def run(command: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EASYPOST_API_KEY", "EASYPOST_API_BASE", "SHIPCTL_FROM", "NO_COLOR")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", SHIPCTL_STATE_DIR=str(cwd / "state"), COLUMNS="80",
               **extra)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_readme_command_buys_the_example_manifest(shell: Path) -> None:
    command = "shipctl create examples/manifest.csv --quiet > results.ndjson"
    assert "shipctl create examples/manifest.csv" in README.split("## Two commands")[1].split("\n## ")[0]
    done = run(command, shell)
    assert done.returncode == 0, done.stderr
    assert mask(done.stderr) == mask(sample(command))
    assert (shell / "results.ndjson").read_text().count('"status":"bought"') == 50


def test_the_bulk_rates_sample(shell: Path) -> None:
    command = "shipctl rates examples/manifest.csv --output csv > quotes.csv"
    done = run(command, shell)
    assert done.returncode == 0, done.stderr
    assert mask(done.stderr) == mask(sample(command))
    assert (shell / "quotes.csv").read_text().startswith("reference,")


def _cells(table: str) -> list[list[str]]:
    """The data rows of a table, cell by cell (its borders and rules are the renderer's business)."""
    rows = []
    for line in mask(table).splitlines():
        if "│" in line:
            rows.append([cell.strip() for cell in line.split("│")])
    return rows


def test_the_one_parcel_rates_table(shell: Path) -> None:
    command = "shipctl rates --to 10001 --from 94105 --weight 1.5lb --dims 10x8x4"
    done = run(command + " --output table", shell)
    assert done.returncode == 0, done.stderr
    assert _cells(done.stdout) == _cells(sample(command))


@pytest.mark.parametrize("command", [
    "shipctl validate examples/manifest.csv",
    "shipctl validate examples/excel_export.csv --from examples/from.json    # BOM, CRLF, \"Recipient Name\", "
    "\"Weight (lb)\"",
])
def test_the_validate_samples(shell: Path, command: str) -> None:
    done = run(command, shell)
    assert done.returncode == 0, done.stderr
    assert mask(done.stdout + done.stderr) == mask(sample(command))


def test_the_unreachable_api_line(shell: Path) -> None:
    done = run("shipctl refund shp_0a1b shp_2c3d", shell,
               EASYPOST_API_BASE="http://127.0.0.1:1/v2", EASYPOST_API_KEY="EZTK0123456789abcdef0123456789")
    assert done.returncode == 1
    shown = re.search(r"```\n(error: cannot reach the API at [^\n]+)\n```", README)
    assert shown is not None
    assert done.stderr.strip() == shown.group(1)
    assert shown.group(1).removeprefix("error: ") in README.split("## Exit codes")[1]
