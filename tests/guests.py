"""Plugin folders with real components built from the guest sources under tests/fixtures/guests
(componentize-py, cached by source hash, so only the first run of a machine pays for the build)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "guests"


BUNDLED = Path(__file__).resolve().parents[1] / "plugins"


def built_plugin(
    name: str, target_parent: Path, *, guest_from: str | None = None, source: Path = FIXTURES
) -> Path:
    """Copy plugin folder `source/name` under `target_parent` and build its plugin.wasm (with the
    guest of fixture `guest_from` when given)."""
    from app.sandbox.build import build_component

    target = target_parent / name
    shutil.copytree(source / name, target, ignore=shutil.ignore_patterns("__pycache__", "plugin.wasm"))
    if guest_from:
        shutil.copytree(FIXTURES / guest_from / "guest", target / "guest")
    build_component(target)
    shutil.rmtree(target / "guest")  # a package holds the component, not its sources
    precompile(target / "plugin.wasm")
    return target


def precompile(wasm: Path, *, memory_stats: bool = False) -> None:
    """Fill the tests' shared compile cache, as the server does in the background after an install."""
    from app.sandbox.engine import ComponentStore, sha256_file, shared_engine
    from tests.conftest import WASM_CACHE

    compiler = os.environ.get("PORTAL_WASM_COMPILER") or "cranelift"
    store = ComponentStore(
        shared_engine(memory_stats, compiler)[0], WASM_CACHE, memory_stats=memory_stats, compiler=compiler
    )
    store.get(wasm.read_bytes, sha256_file(wasm), wait=None)
