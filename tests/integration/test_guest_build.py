"""Plugin authoring end to end, with real componentize-py builds (cached by source hash, so only the
first run on a machine pays for them): `portal plugin new` scaffolds a plugin, `portal plugin build`
turns its Python guest into a component of the plugin world, the component renders its custom page
and handles its form inside wasmtime (against a recording stand-in host), `portal plugin pack` zips
what the package reader accepts, and build errors name the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Variant

from app.cli import main
from app.manifest import parse_manifest
from app.plugins.packages import read_package
from app.sandbox.build import BuildError, build_component, cache_dir, ensure_built, source_hash
from app.sandbox.wasi import wasi_import_allowed
from app.ui import parse_ui

NAME = "stock-notes"
ENTITY = "stock_notes_item"
HOST = "portal:plugin/host@0.1.0"
GUEST = "portal:plugin/guest@0.1.0"


@pytest.fixture(scope="module", autouse=True)
def syntax_error_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Future[Path]]]:
    """A failing build cannot be cached and takes as long as a real one: start it first, in the
    background, so it overlaps the other tests."""
    plugin = tmp_path_factory.mktemp("bad") / "bad"
    (plugin / "guest").mkdir(parents=True)
    app_py = plugin / "guest" / "app.py"
    app_py.write_text("from portal_guest import Plugin\n\ndef broken(:\n    pass\n")
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield app_py, pool.submit(build_component, plugin)


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("authoring")
    out = CliRunner().invoke(main, ["plugin", "new", NAME, "--dir", str(parent)])
    assert out.exit_code == 0, out.output
    return parent / NAME


@pytest.fixture(scope="module")
def built(scaffolded: Path) -> Path:
    out = CliRunner().invoke(main, ["plugin", "build", str(scaffolded)])
    assert out.exit_code == 0, out.output
    wasm = scaffolded / "plugin.wasm"
    assert f"Built {wasm}" in out.output and " MiB) in " in out.output
    return wasm


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def component(engine: Engine, built: Path) -> Component:
    return Component.from_file(engine, str(built))  # compiling ~18 MB takes seconds: once per module


def test_new_scaffolds_a_valid_plugin(scaffolded: Path) -> None:
    files = sorted(p.relative_to(scaffolded).as_posix() for p in scaffolded.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "guest/app.py", "plugin.toml", "tests/test_plugin.py"]
    manifest = parse_manifest((scaffolded / "plugin.toml").read_text())
    assert manifest.id == NAME and manifest.capabilities.database
    assert [(p.path, p.type) for p in manifest.pages] == [
        (f"/{NAME}/items", "crud"),
        (f"/{NAME}/overview", "custom"),
    ]
    assert [e.name for e in manifest.entities] == [ENTITY]


def test_new_refuses_an_existing_folder_and_bad_names(scaffolded: Path) -> None:
    again = CliRunner().invoke(main, ["plugin", "new", NAME, "--dir", str(scaffolded.parent)])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(main, ["plugin", "new", "Not_An_Id", "--dir", str(scaffolded.parent)])
    assert bad.exit_code == 1 and "is not a plugin id" in bad.output
    assert not (scaffolded.parent / "Not_An_Id").exists()


def test_component_implements_the_plugin_world(engine: Engine, component: Component) -> None:
    ty = component.type
    imports, exports = ty.imports(engine), ty.exports(engine)
    # The host interface, and WASI: clocks, random and stdout/stderr (files and sockets are linked but
    # refuse everything); nothing the portal does not provide (wasi:http).
    assert HOST in imports
    assert all(wasi_import_allowed(name) for name in imports if name != HOST), list(imports)
    assert any(name.startswith("wasi:clocks/wall-clock") for name in imports)
    assert GUEST in exports  # (componentize-py also exports its own "exports" instance)
    assert set(exports[GUEST].ty.exports(engine)) == {
        "init",
        "on-tenant-created",
        "handle-event",
        "render-page",
        "handle-action",
    }
    assert "db-query" in imports[HOST].ty.exports(engine)


def test_rebuild_of_unchanged_sources_is_a_cache_copy(scaffolded: Path, built: Path, tmp_path: Path) -> None:
    cached = cache_dir() / f"{source_hash(scaffolded)}.wasm"
    assert cached.read_bytes() == built.read_bytes()
    out = build_component(scaffolded, out=tmp_path / "copy.wasm")
    assert out.read_bytes() == built.read_bytes()
    assert ensure_built(scaffolded) == scaffolded / "plugin.wasm"
    # Any source change is a different build.
    shadow = tmp_path / "shadow"
    (shadow / "guest").mkdir(parents=True)
    (shadow / "guest" / "app.py").write_text((scaffolded / "guest" / "app.py").read_text() + "\n# changed\n")
    assert source_hash(shadow) != source_hash(scaffolded)


@dataclass
class FakeHost:
    """The host interface as canned answers; enough to drive the scaffolded guest inside wasmtime."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def functions(self) -> dict[str, Callable[..., Any]]:
        def ok(value: Any) -> Variant:
            return Variant("ok", value)

        def insert(entity: str, data: str) -> Variant:
            row = {"id": f"r{len(self.rows) + 1}", "version": 1, **json.loads(data)}
            self.rows.append(row)
            return ok(json.dumps(row))

        def query(entity: str, filter_json: str, page: str) -> Variant:
            return ok(json.dumps({"rows": self.rows, "total": len(self.rows)}))

        def aggregate(entity: str, query_json: str) -> Variant:
            sums: dict[str, int] = {}
            for r in self.rows:
                sums[r["category"]] = sums.get(r["category"], 0) + r["quantity"]
            return ok(
                json.dumps([{"category": c, "sum_quantity": s, "count": 1} for c, s in sorted(sums.items())])
            )

        return {
            "db-insert": insert,
            "db-query": query,
            "db-update": lambda *a: Variant("err", "not here"),
            "db-delete": lambda *a: None,
            "db-aggregate": aggregate,
            "event-publish": lambda *a: None,
            "config-get": lambda *a: Variant("ok", None),
            "log-write": lambda *a: None,
            "current-user": lambda: ok('{"id": "u1"}'),
            "check-permission": lambda *a: True,
            "notify": lambda *a: len(a[0]),  # componentize-py imports the whole host interface
            "file-read": lambda *a: Variant("err", "not here"),
        }


def _instantiate(engine: Engine, component: Component, fake: FakeHost) -> Callable[..., Any]:
    linker = Linker(engine)
    with linker.root() as root, root.add_instance(HOST) as host:
        for name, fn in fake.functions().items():

            def recorded(_store: Any, *args: Any, _name: str = name, _fn: Callable[..., Any] = fn) -> Any:
                fake.calls.append((_name, args))
                return _fn(*args)

            host.add_func(name, recorded)
    linker.add_wasip2()  # as the portal links it: the guest imports WASI (clocks, random, stdout/stderr)
    store = Store(engine)
    store.set_wasi(WasiConfig())
    instance = linker.instantiate(store, component)
    guest = instance.get_export_index(store, GUEST)

    def call(name: str, *args: Any) -> Any:
        func = instance.get_func(store, instance.get_export_index(store, name, guest))
        out = func(store, *args)
        func.post_return(store)
        return out

    return call


def test_scaffolded_guest_renders_and_handles_its_form(engine: Engine, component: Component) -> None:
    fake = FakeHost()
    call = _instantiate(engine, component, fake)
    assert call("init") is None

    rendered = call("render-page", f"/{NAME}/overview", "{}")
    assert rendered.tag == "ok", rendered.payload
    doc = json.loads(rendered.payload)
    assert doc["version"] == 1 and doc["title"] == "Overview"
    assert [b["type"] for b in doc["blocks"]] == ["columns", "chart", "table", "card"]
    assert parse_ui(rendered.payload, can=lambda _p: True).problems == []  # the host accepts it
    form = doc["blocks"][3]["blocks"][0]
    assert form["type"] == "form" and form["action"] == "add"
    assert doc["blocks"][3]["permission"] == f"db.{ENTITY}.insert"

    added = call(
        "handle-action",
        f"/{NAME}/overview",
        "add",
        json.dumps({"name": "Laptop stand", "category": "software", "quantity": "3"}),
    )
    assert added.tag == "ok", added.payload
    result = json.loads(added.payload)
    assert result["toast"] == {"level": "success", "text": "Added Laptop stand"}
    assert parse_ui(added.payload, can=lambda _p: True).problems == []
    assert fake.rows[0]["name"] == "Laptop stand" and fake.rows[0]["quantity"] == 3
    chart = next(b for b in result["blocks"] if b["type"] == "chart")
    assert chart["series"] == [{"name": "Quantity", "values": [0, 3, 0]}]

    invalid = json.loads(
        call("handle-action", f"/{NAME}/overview", "add", '{"name": "", "quantity": "x"}').payload
    )
    fields = {f["name"]: f for f in invalid["blocks"][0]["blocks"][0]["fields"]}
    assert fields["name"]["error"] == "Enter a name" and fields["quantity"]["error"] == "Enter a whole number"
    assert len(fake.rows) == 1

    # Dispatcher errors come back as error results; the instance keeps working.
    assert call("render-page", f"/{NAME}/missing", "{}") == Variant("err", f"no page '/{NAME}/missing'")
    assert call("handle-action", f"/{NAME}/overview", "zap", "{}").tag == "err"
    assert call("render-page", f"/{NAME}/overview", "{}").tag == "ok"
    assert (
        "db-insert",
        (
            ENTITY,
            json.dumps(
                {"name": "Laptop stand", "category": "software", "quantity": 3}, separators=(",", ":")
            ),
        ),
    ) in fake.calls


def test_pack_zips_only_the_package_files(scaffolded: Path, built: Path, tmp_path: Path) -> None:
    (scaffolded / "icon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (scaffolded / ".secret").write_text("x")
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        out = runner.invoke(main, ["plugin", "pack", str(scaffolded)])
        assert out.exit_code == 0, out.output
        archive = Path(f"{NAME}-0.1.0.zip").resolve()
    assert archive.is_file() and f"{NAME}-0.1.0.zip" in out.output
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["README.md", "icon.svg", "plugin.toml", "plugin.wasm"]
    package = read_package(archive)  # what `portal plugin install` and the admin upload read
    assert package.wasm == built.read_bytes()
    assert parse_manifest(package.manifest_text).id == NAME
    # Same content, same bytes: a re-pack is recognised as the installed package.
    again = runner.invoke(main, ["plugin", "pack", str(scaffolded), "-o", str(tmp_path / "again.zip")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again.zip").read_bytes() == archive.read_bytes()
    (scaffolded / "icon.svg").unlink()
    (scaffolded / ".secret").unlink()


def test_pack_reports_manifest_errors_with_their_location(scaffolded: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (scaffolded / "plugin.toml").read_text().replace('type = "integer"', 'type = "number"')
    (broken / "plugin.toml").write_text(text)
    out = CliRunner().invoke(main, ["plugin", "pack", str(broken), "-o", str(tmp_path / "x.zip")])
    assert out.exit_code == 1
    assert "schema.entities[0].fields[2].type" in out.output
    assert not (tmp_path / "x.zip").exists()


def test_pack_defers_what_depends_on_other_plugins(tmp_path: Path) -> None:
    # Checked against a bare platform, a dependency is "not installed" and its entities unknown.
    (tmp_path / "plugin.toml").write_text(
        '[plugin]\nid = "inv-extra"\nname = "Inv extra"\nversion = "1.0.0"\n'
        '[dependencies]\nplugins = ["inventory"]\n'
        '[[schema.entities]]\nname = "inv_extra_note"\n'
        'fields = [{ name = "item_id", type = "reference", entity = "inventory_item" }]\n'
    )
    out = CliRunner().invoke(main, ["plugin", "pack", str(tmp_path), "-o", str(tmp_path / "p.zip")])
    assert out.exit_code == 0, out.output
    assert "checked at install time: dependencies.plugins[0]" in out.output
    assert read_package(tmp_path / "p.zip").files.keys() == {"plugin.toml"}


def test_build_errors_name_the_file(syntax_error_build: tuple[Path, Future[Path]]) -> None:
    app_py, build = syntax_error_build
    with pytest.raises(BuildError) as caught:
        build.result(timeout=300)
    message = str(caught.value)
    assert f"{app_py}" in message and "SyntaxError" in message and "line 3" in message
    assert "Stack backtrace" not in message and "Caused by" not in message
    assert not (app_py.parent.parent / "plugin.wasm").exists()


def test_missing_guest_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"guest/app.py not found"):
        build_component(tmp_path)
    assert ensure_built(tmp_path) is None
    out = CliRunner().invoke(main, ["plugin", "build", str(tmp_path)])
    assert out.exit_code == 1 and "app.py not found" in out.output


def test_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    from app.sandbox.build import _prune

    for i, name in enumerate(["old", "mid", "new"]):
        entry = tmp_path / f"{name}.wasm"
        entry.write_bytes(b"x")
        os.utime(entry, (1000 + i, 1000 + i))
    _prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.wasm", "new.wasm"]


def test_pack_knows_the_platform_base_modules(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text(
        '[plugin]\nid = "notifier"\nname = "Notifier"\nversion = "1.0.0"\n'
        '[dependencies]\nmodules = ["auth", "message"]\n[permissions]\nmessages = true\n'
    )
    out = CliRunner().invoke(main, ["plugin", "pack", str(tmp_path), "-o", str(tmp_path / "p.zip")])
    assert out.exit_code == 0, out.output
    assert "messages = true" in read_package(tmp_path / "p.zip").manifest_text


def test_portal_plugin_test_runs_the_scaffold_tests_without_portal_imports(
    built: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / NAME
    shutil.copytree(built.parent, folder, ignore=shutil.ignore_patterns(".portal-dev", "__pycache__"))
    test_file = folder / "tests" / "test_plugin.py"
    assert "from app" not in test_file.read_text() and "import app" not in test_file.read_text()

    def plugin_test() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "plugin", "test", str(folder)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    passed = plugin_test()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "2 passed" in passed.stdout
    test_file.write_text(test_file.read_text().replace(f'== "{NAME}"', '== "someone-else"'))
    failed = plugin_test()
    assert failed.returncode == 1 and "1 failed, 1 passed" in failed.stdout, failed.stdout
