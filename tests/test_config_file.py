"""The config file itself: a bad file is one line with its line number and exit 2 (never a traceback), for every
command but the `config` commands that show and fix it; `config set` validates and keeps comments; `config edit`
runs the editor and checks the result; the default path is platformdirs' (without importing it at start-up)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipctl.sandbox import Sandbox
from tests.cli import invoke
from tests.manifests import make_manifest


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("SHIPCTL_CONFIG", str(path))
    return path


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_bad_toml_is_one_line_with_its_line_and_exit_2(env: Sandbox, tmp_path: Path, config_file: Path) -> None:
    config_file.write_text('select = "fastest"\n# a comment\nverify = warn\n', encoding="utf-8")
    manifest = make_manifest(tmp_path / "orders.csv", 1)
    result = invoke("create", str(manifest), "--dry-run")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert str(config_file) in line
    assert "line 3" in line and "not valid TOML" in line
    assert env.ledger() == []
    assert invoke("rates", "--to", "10001", "--from", "94104", "--weight", "8").exit_code == 2  # every command


def test_unknown_key_names_the_key_and_its_line(config_file: Path, tmp_path: Path) -> None:
    config_file.write_text('select = "fastest"\n\n[profiles.east]\n# origin\nfrom = "10001"\ncarrier = "UPS"\n',
                           encoding="utf-8")
    result = invoke("validate", str(make_manifest(tmp_path / "orders.csv", 1)))
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "line 6" in line and "unknown key 'carrier' in [profiles.east]" in line

    config_file.write_text("\nlabels = 'x'\n", encoding="utf-8")
    line = one_error_line(invoke("config", "show").stderr)
    assert "line 2" in line and "unknown key 'labels'" in line


def test_a_bad_value_names_its_line(config_file: Path) -> None:
    config_file.write_text('[profiles.west]\nselect = "quickest"\n', encoding="utf-8")
    result = invoke("--profile", "west", "config", "show")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "line 2" in line and "select in [profiles.west] must be cheapest or fastest, not 'quickest'" in line


def test_a_key_in_the_file_is_refused(config_file: Path) -> None:
    config_file.write_text('api_key = "EZAKnotreallyakey00000000"\n', encoding="utf-8")
    result = invoke("config", "show")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "never reads an API key from a file" in line
    assert "EZAKnotreallyakey" not in result.stderr


def test_a_missing_profile_is_refused(config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    manifest = str(make_manifest(tmp_path / "orders.csv", 1))
    result = invoke("--profile", "east", "validate", manifest)
    assert result.exit_code == 2
    assert "no profile 'east' (flag --profile)" in one_error_line(result.stderr)
    config_file.write_text("[profiles.west]\n", encoding="utf-8")
    monkeypatch.setenv("SHIPCTL_PROFILE", "east")
    result = invoke("validate", manifest)
    assert result.exit_code == 2
    assert "no profile 'east' (env SHIPCTL_PROFILE)" in one_error_line(result.stderr)
    assert "west" in result.stderr


def test_a_bad_environment_value_names_the_variable(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPCTL_VERIFY", "loud")
    result = invoke("config", "show")
    assert result.exit_code == 2
    assert "SHIPCTL_VERIFY must be off, warn or strict" in one_error_line(result.stderr)


def test_config_path_and_edit_still_work_on_a_broken_file(config_file: Path) -> None:
    config_file.write_text("select = \n", encoding="utf-8")
    result = invoke("config", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(config_file)


COMMENTED = """\
# Our shipping defaults (ops team)
select = "cheapest"   # keep costs down

[profiles.east]
# the New Jersey warehouse
from = "07102"
"""


def test_config_set_keeps_comments(config_file: Path) -> None:
    config_file.write_text(COMMENTED, encoding="utf-8")
    os.chmod(config_file, 0o640)
    assert invoke("config", "set", "select", "fastest").exit_code == 0
    assert invoke("config", "set", "carriers", "UPS, USPS", "--profile", "east").exit_code == 0
    assert invoke("config", "set", "concurrency", "8").exit_code == 0
    result = invoke("config", "set", "mode", "production", "--profile", "west")  # a new profile
    assert result.exit_code == 0, result.stderr
    assert f"in [profiles.west] of {config_file}" in result.stderr
    text = config_file.read_text(encoding="utf-8")
    for comment in ("# Our shipping defaults (ops team)", "# keep costs down", "# the New Jersey warehouse"):
        assert comment in text
    assert 'select = "fastest"   # keep costs down' in text
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640  # its permissions kept
    shown = json.loads(invoke("--profile", "east", "config", "show", "-o", "json").stdout)["settings"]
    assert shown["select"] == {**shown["select"], "value": "fastest", "source": "file"}
    assert (shown["carriers"]["value"], shown["carriers"]["source"]) == ("UPS,USPS", "profile east")
    assert (shown["concurrency"]["value"], shown["concurrency"]["source"]) == ("8", "file")
    assert (shown["from"]["value"], shown["from"]["source"]) == ("07102", "profile east")
    west = json.loads(invoke("--profile", "west", "config", "show", "-o", "json").stdout)["settings"]
    assert (west["mode"]["value"], west["mode"]["source"]) == ("production", "profile west")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("selekt", "fastest", "unknown key 'selekt'"),
    ("select", "quickest", "select must be cheapest or fastest"),
    ("concurrency", "0", "concurrency must be a number of at least 1"),
    ("api_key", "EZTKsomething00000000", "never writes an API key to a file"),
])
def test_config_set_refuses_a_bad_key_or_value(config_file: Path, key: str, value: str, message: str) -> None:
    config_file.write_text(COMMENTED, encoding="utf-8")
    result = invoke("config", "set", key, value)
    assert result.exit_code == 2
    assert message in one_error_line(result.stderr)
    assert "EZTKsomething" not in result.stderr
    assert config_file.read_text(encoding="utf-8") == COMMENTED


def test_config_set_creates_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new" / "dir" / "config.toml"
    monkeypatch.setenv("SHIPCTL_CONFIG", str(path))
    assert invoke("config", "set", "label_format", "zpl").exit_code == 0
    assert path.read_text(encoding="utf-8") == 'label_format = "ZPL"\n'


def editor_script(tmp_path: Path, new_text: str) -> str:
    """An $EDITOR that writes `new_text` into the file it is given, as a person would."""
    script = tmp_path / "editor.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        with open(sys.argv[1], "a", encoding="utf-8") as fh:
            fh.write({new_text!r})
    """), encoding="utf-8")
    return f"{sys.executable} {script}"


def test_config_edit_checks_what_the_editor_wrote(config_file: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", editor_script(tmp_path, 'select = "fastest"\n'))
    result = invoke("config", "edit")
    assert result.exit_code == 0, result.stderr
    text = config_file.read_text(encoding="utf-8")
    assert text.startswith("# shipctl's configuration")  # the starter file, then the editor's line
    show = json.loads(invoke("config", "show", "-o", "json").stdout)
    assert show["settings"]["select"]["value"] == "fastest"

    monkeypatch.setenv("VISUAL", editor_script(tmp_path, "verify = \n"))  # VISUAL first, as every tool does
    result = invoke("config", "edit")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "not valid TOML" in line and f"line {text.count(chr(10)) + 1}" in line


def test_the_default_path_is_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.delenv("SHIPCTL_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = invoke("config", "path")
    assert result.stdout.strip() == str(platformdirs.user_config_path("shipctl") / "config.toml")
    assert result.stdout.strip() == str(tmp_path / "xdg" / "shipctl" / "config.toml")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="platformdirs is imported off Linux")
def test_reading_the_config_loads_nothing_heavy(tmp_path: Path) -> None:
    """Every command, `--help` and usage errors too, reads the file: that must not cost platformdirs (or
    tomlkit, only `config set` needs it)."""
    (tmp_path / "shipctl").mkdir()
    (tmp_path / "shipctl" / "config.toml").write_text('select = "fastest"\n', encoding="utf-8")
    code = ("import json, sys\nfrom shipctl.cli.app import main\nsys.argv = ['shipctl', 'create', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)))")
    environ = {k: v for k, v in os.environ.items() if k != "SHIPCTL_CONFIG"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                          env={**environ, "XDG_CONFIG_HOME": str(tmp_path), "COLUMNS": "200"})
    assert "[default: fastest]" in done.stdout  # the file was read
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert not {"platformdirs", "tomlkit", "keyring"} & modules


def test_the_readme_example_is_a_valid_config(config_file: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration and profiles"):]
    example = section[section.index("```toml\n") + 8: section.index("```\n", section.index("```toml\n") + 8)]
    config_file.write_text(example, encoding="utf-8")
    east = invoke("--profile", "warehouse-east", "config", "show", "-o", "json")
    assert east.exit_code == 0, east.stderr
    settings = json.loads(east.stdout)["settings"]
    assert (settings["mode"]["value"], settings["label_format"]["value"]) == ("production", "PDF")
    west = json.loads(invoke("--profile", "warehouse-west", "config", "show", "-o", "json").stdout)["settings"]
    assert json.loads(west["from"]["value"])["zip"] == "94104"


ORIGIN = {"name": "Acme East", "street1": "1 Main St", "city": "Newark", "state": "NJ", "zip": "07102", "country": "US"}


def test_paths_in_the_file_are_read_from_its_folder_and_tilde_is_expanded(
        config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cron job runs from anywhere: `from = "east.json"` is the file beside the config, `~/…` is the home's."""
    (config_file.parent / "east.json").write_text(json.dumps(ORIGIN), encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    (home / "west.json").write_text(json.dumps({**ORIGIN, "name": "Acme West"}), encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    config_file.write_text('from = "east.json"\nlabels_dir = "labels"\n\n[profiles.west]\nfrom = "~/west.json"\n',
                           encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manifest = tmp_path / "orders.csv"
    manifest.write_text("reference,to_name,to_street1,to_city,to_state,to_zip,weight\n"
                        "A1,Ann,179 N Harbor Dr,Redondo Beach,CA,90277,12\n", encoding="utf-8")
    for args, name in ((), "Acme East"), (("--profile", "west"), "Acme West"):
        done = invoke(*args, "validate", str(manifest), "-o", "ndjson")
        assert done.exit_code == 0, done.stderr
        assert json.loads(done.stdout)["from_address"]["name"] == name
    shown = invoke("config", "show", "-o", "json")
    assert str(config_file.parent / "labels") in shown.stdout


def test_config_set_stores_a_relative_path_as_an_absolute_one(
        config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed relative to where the user stands; the file reads relative paths from its own folder: so stored whole.
    `~`, inline JSON and a ZIP are kept as typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "east.json").write_text(json.dumps(ORIGIN), encoding="utf-8")
    assert invoke("config", "set", "from", "east.json").exit_code == 0
    assert f'from = "{tmp_path / "east.json"}"' in config_file.read_text(encoding="utf-8")
    assert invoke("config", "set", "labels_dir", "~/labels").exit_code == 0
    assert invoke("config", "set", "from", "94104", "--profile", "west").exit_code == 0
    text = config_file.read_text(encoding="utf-8")
    assert 'labels_dir = "~/labels"' in text and 'from = "94104"' in text
