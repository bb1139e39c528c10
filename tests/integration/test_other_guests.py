"""Guests in other languages, built from source, packed, installed and used like the Python ones: the
JavaScript example (sdk/js/example, componentize-js from the pinned toolchain in sdk/js) and the
hand-written WAT example (sdk/wat/example), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app.audit import Actor
from app.cli import main
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_package
from app.sandbox.engine import check_component_bytes
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import built_plugin
from tests.helpers import login, post_form, text_of
from tests.integration.test_record_pages import in_db

SDK = Path(__file__).resolve().parents[2] / "sdk"
HX = {"HX-Request": "true"}
JS_PAGE = "/t/acme/p/js-notes/js-notes/board"
WAT_PAGE = "/t/acme/p/hello-wat/hello-wat/hello"


@pytest.fixture(scope="session")
def js_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JS example built from guest/app.js (the first run of a machine runs `npm ci` of sdk/js)."""
    return built_plugin("example", tmp_path_factory.mktemp("js-guest"), source=SDK / "js")


@pytest.fixture(scope="session")
def wat_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("example", tmp_path_factory.mktemp("wat-guest"), source=SDK / "wat")


def _pack(folder: Path, target: Path, env: dict[str, str]) -> Path:
    packed = CliRunner().invoke(main, ["plugin", "pack", str(folder), "-o", str(target)], env=env)
    assert packed.exit_code == 0, packed.output
    return target


def _install_and_enable(client: Any, app: Any, package: Path, plugin_id: str) -> Any:
    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_package(package), app.state.settings, install_now=True)
        await directory.create_tenant(s, actor, "acme", "Acme")

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(client, f"/t/acme/admin/plugins/{plugin_id}/enable", {}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


def test_the_js_component_imports_only_what_the_host_provides(js_example: Path) -> None:
    from wasmtime import Engine
    from wasmtime.component import Component

    wasm = (js_example / "plugin.wasm").read_bytes()
    check_component_bytes(wasm)  # what an upload checks
    imports = set(Component(Engine(), wasm).type.imports(Engine()))
    assert "portal:plugin/host@0.1.0" in imports
    assert not [name for name in imports if name.startswith(("wasi:http", "wasi:sockets"))], imports


def test_js_guest_packed_installed_renders_and_acts(
    js_example: Path, client: Any, app: Any, settings_env: dict[str, str], tmp_path: Path
) -> None:
    package = _pack(js_example, tmp_path / "js-notes.zip", settings_env)
    acme = _install_and_enable(client, app, package, "js-notes")
    page = acme.get(JS_PAGE)
    assert page.status_code == 200, page.text[:500]
    text = text_of(page.text)
    assert "JS Notes" in text and "No notes yet." in text and "Add note" in text
    # A host-call error (a required field left empty) comes back to the guest as an exception whose
    # payload is the host's message; the guest shows it on the form, the input kept.
    refused = post_form(acme, JS_PAGE + "/actions/add", {"title": " "}, headers=HX)
    assert refused.status_code == 200, refused.text[:500]
    assert "title" in text_of(refused.text).lower() and "required" in text_of(refused.text).lower()
    added = post_form(acme, JS_PAGE + "/actions/add", {"title": "Written in JavaScript"}, headers=HX)
    assert added.status_code == 200, added.text[:500]
    assert "Note added" in text_of(added.text) and "Written in JavaScript" in text_of(added.text)
    again = text_of(acme.get(JS_PAGE).text)
    assert "Written in JavaScript" in again and "No notes yet." not in again


def test_wat_guest_is_the_smallest_plugin(
    wat_example: Path, client: Any, app: Any, settings_env: dict[str, str], tmp_path: Path
) -> None:
    wasm = wat_example / "plugin.wasm"
    assert wasm.stat().st_size < 4096
    check_component_bytes(wasm.read_bytes())
    package = _pack(wat_example, tmp_path / "hello-wat.zip", settings_env)
    acme = _install_and_enable(client, app, package, "hello-wat")
    page = acme.get(WAT_PAGE)
    assert page.status_code == 200, page.text[:500]
    assert "This page comes from a hand-written component." in text_of(page.text)
    waved = post_form(acme, WAT_PAGE + "/actions/wave", {}, headers=HX)
    assert waved.status_code == 200 and "Hello back" in text_of(waved.text)


def test_pack_and_install_refuse_a_component_missing_what_the_manifest_declares(
    tmp_path: Path, settings_env: dict[str, str]
) -> None:
    folder = tmp_path / "hello-wat"
    (folder / "guest").mkdir(parents=True)
    # The WAT example with its event handler and action handler exported under other names.
    wat = (SDK / "wat" / "example" / "guest" / "app.wat").read_text()
    (folder / "guest" / "app.wat").write_text(
        wat.replace("handle-event", "handle-evnt").replace("handle-action", "handle-actn")
    )
    manifest = (SDK / "wat" / "example" / "plugin.toml").read_text()
    manifest = manifest.replace(
        "[[ui.pages]]",
        '[dependencies]\nmodules = ["auth"]\n\n[permissions]\nevents = true\n\n'
        '[events]\nsubscribed = ["user.created"]\n\n[[ui.pages]]',
    )
    (folder / "plugin.toml").write_text(manifest)
    runner = CliRunner()
    packed = runner.invoke(
        main, ["plugin", "pack", str(folder), "-o", str(tmp_path / "p.zip")], env=settings_env
    )
    assert packed.exit_code == 1 and not (tmp_path / "p.zip").exists(), packed.output
    assert "does not export what plugin.toml declares: handle-action, handle-event" in packed.stderr
    installed = runner.invoke(main, ["plugin", "install", str(folder)], env=settings_env)
    assert installed.exit_code == 1, installed.output
    assert "does not export what plugin.toml declares: handle-action, handle-event" in installed.stderr
    # The same component is fine for a manifest that needs neither (no custom page, no subscription).
    (folder / "plugin.toml").write_text(manifest.split("[dependencies]")[0])
    fine = runner.invoke(
        main, ["plugin", "pack", str(folder), "-o", str(tmp_path / "p.zip")], env=settings_env
    )
    assert fine.exit_code == 0, fine.output
