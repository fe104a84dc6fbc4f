"""Each level of the precedence, flag > environment > profile > file > built-in default, seen through real
commands against the sandbox: the rate `create --dry-run` chooses flips at every level (`select`), labels land in
the directory and format the file or a profile names, the engine takes the file's concurrency, and a manifest
without an origin ships from the file's. `config show` names the same sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke, ndjson
from tests.manifests import ORIGIN, make_manifest, row, write_manifest


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("SHIPCTL_CONFIG", str(path))
    return path


class Chooser:
    """`create --dry-run` on one manifest, each run with its own journal: what it chose, per reference."""

    def __init__(self, tmp_path: Path) -> None:
        self.manifest = make_manifest(tmp_path / "orders.csv", 4)
        self.tmp_path = tmp_path
        self.runs = 0

    def choose(self, *before: str, after: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
        self.runs += 1
        journal = self.tmp_path / f"run{self.runs}.journal.db"
        result = invoke(*before, "create", str(self.manifest), "--dry-run", "-o", "ndjson", "-q",
                        "--journal", str(journal), *after)
        assert result.exit_code == 0, result.stderr
        return {r["reference"]: (r["carrier"], r["service"]) for r in ndjson(result.stdout)}


@pytest.fixture
def chooser(env: Sandbox, tmp_path: Path) -> Chooser:
    return Chooser(tmp_path)


@pytest.fixture
def picks(chooser: Chooser) -> dict[str, dict[str, tuple[str, str]]]:
    """What each rule picks for this manifest, told by the flag alone; the test only means something if they
    differ."""
    found = {rule: chooser.choose(after=("--select", rule)) for rule in ("cheapest", "fastest")}
    assert found["cheapest"] != found["fastest"]
    return found


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_default_when_nothing_is_configured(chooser: Chooser, picks: dict[str, Any], config_file: Path) -> None:
    assert not config_file.exists()
    assert chooser.choose() == picks["cheapest"]


def test_file_beats_default(chooser: Chooser, picks: dict[str, Any], config_file: Path) -> None:
    write(config_file, 'select = "fastest"\n')
    assert chooser.choose() == picks["fastest"]


def test_profile_beats_file(chooser: Chooser, picks: dict[str, Any], config_file: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, 'select = "fastest"\n\n[profiles.thrifty]\nselect = "cheapest"\n')
    assert chooser.choose("--profile", "thrifty") == picks["cheapest"]
    monkeypatch.setenv("SHIPCTL_PROFILE", "thrifty")  # the same profile chosen by the environment
    assert chooser.choose() == picks["cheapest"]
    monkeypatch.delenv("SHIPCTL_PROFILE")
    assert chooser.choose() == picks["fastest"]  # no profile: the top level


def test_environment_beats_profile(chooser: Chooser, picks: dict[str, Any], config_file: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, 'select = "cheapest"\n\n[profiles.rush]\nselect = "fastest"\n')
    monkeypatch.setenv("SHIPCTL_SELECT", "cheapest")
    assert chooser.choose("--profile", "rush") == picks["cheapest"]


def test_flag_beats_environment(chooser: Chooser, picks: dict[str, Any], config_file: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, 'select = "cheapest"\n\n[profiles.thrifty]\nselect = "cheapest"\n')
    monkeypatch.setenv("SHIPCTL_SELECT", "cheapest")
    assert chooser.choose("--profile", "thrifty", after=("--select", "fastest")) == picks["fastest"]


def test_config_show_names_each_source(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, 'select = "fastest"\nverify = "strict"\nconcurrency = 8\n\n'
                       '[profiles.east]\nverify = "off"\nlabel_format = "pdf"\ncarriers = ["UPS", "USPS"]\n')
    monkeypatch.setenv("SHIPCTL_CONCURRENCY", "auto")
    result = invoke("--profile", "east", "config", "show", "-o", "json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["path"] == str(config_file)
    assert (shown["profile"], shown["profile_source"]) == ("east", "flag --profile")
    settings = {name: (s["value"], s["source"]) for name, s in shown["settings"].items()}
    assert settings["select"] == ("fastest", "file")
    assert settings["verify"] == ("off", "profile east")
    assert settings["label_format"] == ("PDF", "profile east")  # canonical, as the flag takes it
    assert settings["carriers"] == ("UPS,USPS", "profile east")
    assert settings["concurrency"] == ("auto", "env SHIPCTL_CONCURRENCY")
    assert settings["services"] == (None, "default")

    table = invoke("--profile", "east", "config", "show")
    assert table.exit_code == 0, table.stderr
    lines = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
    assert lines["select"][1:] == ["fastest", "file"]
    assert lines["verify"][1:] == ["off", "profile", "east"]
    assert lines["concurrency"][1:] == ["auto", "env", "SHIPCTL_CONCURRENCY"]
    assert lines["services"][1:] == ["-", "default"]


def test_labels_dir_and_format_from_the_file_and_a_profile(env: Sandbox, tmp_path: Path, config_file: Path) -> None:
    labels = tmp_path / "labels"
    write(config_file, f'labels_dir = {json.dumps(str(labels))}\n\n[profiles.pdf]\nlabel_format = "PDF"\n')
    manifest = make_manifest(tmp_path / "orders.csv", 2)
    result = invoke("--profile", "pdf", "create", str(manifest), "-o", "ndjson", "-q")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in labels.iterdir()) == ["ORD-00000.pdf", "ORD-00001.pdf"]
    assert len(env.ledger()) == 2


def test_concurrency_from_the_file(env: Sandbox, tmp_path: Path, config_file: Path) -> None:
    write(config_file, "concurrency = 3\n")
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    result = invoke("create", str(manifest), "--dry-run", "-o", "ndjson", "-v")
    assert result.exit_code == 0, result.stderr
    assert "in-flight limit 3 (fixed)" in result.stderr
    flagged = invoke("create", str(manifest), "--dry-run", "-o", "ndjson", "-v", "--concurrency", "5", "--fresh")
    assert "in-flight limit 5 (fixed)" in flagged.stderr


def test_origin_from_the_file(env: Sandbox, tmp_path: Path, config_file: Path) -> None:
    origin = {k.removeprefix("from_"): v for k, v in ORIGIN.items()}
    rows = [{k: v for k, v in row(i).items() if not k.startswith("from_")} for i in range(2)]
    manifest = write_manifest(tmp_path / "no-origin.csv", rows)
    refused = invoke("create", str(manifest), "--dry-run", "-o", "ndjson", "-q")
    assert refused.exit_code == 2  # no origin anywhere: the rows are invalid
    for text in ("[from]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in origin.items()),  # a TOML table
                 "from = " + json.dumps(json.dumps(origin)) + "\n"):  # the same as inline JSON, as --from takes it
        write(config_file, text)
        shown = json.loads(invoke("config", "show", "-o", "json").stdout)["settings"]["from"]
        assert shown["source"] == "file"
        result = invoke("create", str(manifest), "--dry-run", "-o", "ndjson", "-q", "--fresh")
        assert result.exit_code == 0, result.stderr
        assert [r["status"] for r in ndjson(result.stdout)] == ["planned", "planned"]
