"""`portal plugin run` as an author uses it: from the plugin folder with no database configured (a
scratch one under the folder), each edit installed under a dev revision, events, and exit codes that
say when anything went wrong; `portal plugin disable` and `uninstall`."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from tests.conftest import WASM_CACHE
from tests.guests import built_plugin, precompile


@pytest.fixture(scope="session")
def dev_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("dev-guests")
    folders = {name: built_plugin(name, base) for name in ("probe", "listener")}
    for folder in folders.values():  # `plugin run` measures memory: the engine of that mode
        precompile(folder / "plugin.wasm", memory_stats=True)
    return folders


def _scratch_env() -> dict[str, Any]:
    # No database configured: None removes the variable for the invoked command.
    return {"DATABASE_URL": None, "PORTAL_DATA_DIR": None, "PORTAL_WASM_CACHE_DIR": str(WASM_CACHE)}


def _run(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["plugin", "run", str(folder), *args], env=_scratch_env())


def _heard(folder: Path) -> list[str]:
    with sqlite3.connect(folder / ".portal-dev" / "portal.db") as db:
        table = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%heard'"
        ).fetchone()
        if table is None:  # a dry run rolls the install back too, DDL included
            return []
        return [r[0] for r in db.execute(f'SELECT event_type FROM "{table[0]}"')]


def test_plugin_run_from_the_plugin_folder_uses_a_scratch_database_and_dev_revisions(
    dev_packages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "probe"
    shutil.copytree(dev_packages["probe"], folder)
    monkeypatch.chdir(folder)
    first = _run(folder, "--page", "/probe", "--params", '{"mode": "hello"}')
    assert first.exit_code == 0, first.output
    assert "scratch database" in first.stderr and "created: tenant dev" in first.stderr
    assert '"text": "notes=0"' in first.stdout and "probe 1.0.0 /probe" in first.stderr
    assert (folder / ".portal-dev" / "portal.db").is_file() and not (folder / "var").exists()

    again = _run(folder, "--page", "/probe", "--params", '{"mode": "hello"}', "--commit")  # installs 1.0.0
    assert again.exit_code == 0, again.output
    assert "scratch database" in again.stderr and "created" not in again.stderr

    # An edit, same version, kept: installed under a dev revision, no "bump the version".
    toml = folder / "plugin.toml"
    toml.write_text(toml.read_text().replace("Sandbox test plugin", "Sandbox test plugin, edited"))
    kept = _run(folder, "--page", "/probe", "--action", "add", "--data", '{"title": "kept"}', "--commit")
    assert kept.exit_code == 0, kept.output
    assert "probe 1.0.0-dev." in kept.stderr and "added kept" in kept.stdout
    toml.write_text(toml.read_text().replace("edited", "edited twice"))
    edited = _run(folder, "--page", "/probe", "--params", '{"mode": "hello"}')
    assert edited.exit_code == 0, edited.output
    assert "probe 1.0.0-dev." in edited.stderr and '"text": "notes=1"' in edited.stdout
    # The package never takes the scratch folder in.
    from app.plugins.packages import read_folder

    assert not any(name.startswith(".portal-dev") for name in read_folder(folder).files)


def test_plugin_run_exits_non_zero_on_any_problem_with_the_right_metering(
    dev_packages: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "probe"
    shutil.copytree(dev_packages["probe"], folder)
    invalid = _run(folder, "--page", "/probe", "--params", '{"mode": "unknown-block"}')
    assert invalid.exit_code == 1 and "problem:" in invalid.stderr and "problem(s)" in invalid.stderr
    looping = _run(folder, "--page", "/probe", "--params", '{"mode": "loop"}')
    assert looping.exit_code == 1, looping.output
    assert "deadline" in looping.stderr
    assert "fuel 0," not in looping.stderr and "fuel " in looping.stderr  # what the loop burnt


def test_plugin_run_delivers_an_event_to_handle_event(dev_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "listener"
    shutil.copytree(dev_packages["listener"], folder)
    dry = _run(folder, "--event", "user.created", "--payload", '{"record": {"title": "dry"}}')
    assert dry.exit_code == 0, dry.output
    assert "event user.created" in dry.stderr and "host calls 1" in dry.stderr
    assert _heard(folder) == []  # rolled back
    kept = _run(folder, "--event", "user.created", "--payload", '{"record": {"title": "x"}}', "--commit")
    assert kept.exit_code == 0, kept.output
    assert _heard(folder) == ["user.created"]
    refused = _run(folder, "--event", "user.created", "--payload", '{"record": {"title": "err"}}')
    assert refused.exit_code == 1 and "the listener refuses" in refused.stderr
    both = _run(folder, "--event", "user.created", "--page", "/x")
    assert both.exit_code == 2


def test_plugin_disable_and_uninstall(dev_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "listener"
    shutil.copytree(dev_packages["listener"], folder)
    env = {**_scratch_env(), "PORTAL_DATA_DIR": str(folder / ".portal-dev")}
    runner = CliRunner()
    assert _run(folder, "--event", "user.created", "--commit").exit_code == 0  # installed, enabled in dev
    busy = runner.invoke(main, ["plugin", "uninstall", "listener"], env=env)
    assert busy.exit_code == 2 and "still enabled in: dev" in busy.stderr
    off = runner.invoke(main, ["plugin", "disable", "listener", "--tenant", "dev"], env=env)
    assert off.exit_code == 0 and "Disabled listener in dev" in off.stdout
    again = runner.invoke(main, ["plugin", "disable", "listener", "--tenant", "dev"], env=env)
    assert again.exit_code == 2 and "not enabled" in again.stderr
    gone = runner.invoke(main, ["plugin", "uninstall", "listener"], env=env)
    assert gone.exit_code == 0 and "Uninstalled listener 1.0.0" in gone.stdout
    listed = runner.invoke(main, ["plugin", "list"], env=env)
    assert "uninstalled" in listed.stdout.split("listener", 1)[1].splitlines()[0]


def test_pack_and_install_refuse_a_component_importing_what_the_host_does_not_provide(
    tmp_path: Path, settings_env: dict[str, str]
) -> None:
    from tests.guests import FIXTURES
    from tests.unit.test_sandbox_checks import component_with_imports

    folder = tmp_path / "probe"
    folder.mkdir()
    shutil.copy(FIXTURES / "probe" / "plugin.toml", folder / "plugin.toml")
    (folder / "plugin.wasm").write_bytes(
        component_with_imports("portal:plugin/host@0.1.0", "wasi:http/outgoing-handler@0.2.0")
    )
    runner = CliRunner()
    packed = runner.invoke(
        main, ["plugin", "pack", str(folder), "-o", str(tmp_path / "p.zip")], env=settings_env
    )
    assert packed.exit_code == 1 and not (tmp_path / "p.zip").exists()
    assert "does not provide: wasi:http/outgoing-handler@0.2.0" in packed.stderr
    installed = runner.invoke(main, ["plugin", "install", str(folder)], env=settings_env)
    assert installed.exit_code == 1, installed.output
    assert "does not provide: wasi:http/outgoing-handler@0.2.0" in installed.stderr
    listed = runner.invoke(main, ["plugin", "list"], env=settings_env)
    assert "probe" not in listed.stdout


def test_plugin_run_now_fixes_the_clock_pages_are_told(dev_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "probe"
    shutil.copytree(dev_packages["probe"], folder)
    fixed = _run(
        folder, "--page", "/probe", "--params", '{"mode": "clock-context"}', "--now", "2026-03-01T09:30:00"
    )
    assert fixed.exit_code == 0, fixed.output
    assert "2026-03-01T09:30:00+00:00" in fixed.stdout and "2026-03-01" in fixed.stdout
    bad = _run(folder, "--page", "/probe", "--now", "next tuesday")
    assert bad.exit_code == 1 and "--now takes an ISO 8601" in bad.stderr


def test_plugin_dev_runs_again_after_a_change(dev_packages: dict[str, Path], tmp_path: Path) -> None:
    import threading
    import time

    folder = tmp_path / "probe"
    shutil.copytree(dev_packages["probe"], folder)
    toml = folder / "plugin.toml"

    def edit() -> None:
        time.sleep(1.0)
        toml.write_text(toml.read_text().replace("Sandbox test plugin", "Sandbox test plugin, edited"))

    threading.Thread(target=edit, daemon=True).start()
    args = ["plugin", "dev", str(folder), "--page", "/probe", "--params", '{"mode": "hello"}']
    result = CliRunner().invoke(main, [*args, "--interval", "0.1", "--runs", "2"], env=_scratch_env())
    assert result.exit_code == 0, result.output
    assert "run 1" in result.stderr and "run 2" in result.stderr
    assert result.stderr.count("probe 1.0.0 /probe") == 2  # the edited manifest installed again
    assert result.stdout.count('"text": "notes=0"') == 2
