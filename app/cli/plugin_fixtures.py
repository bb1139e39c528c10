"""The pytest fixtures `portal plugin test` gives a plugin's own tests (loaded with ``-p``), so those
tests import nothing of the portal: the plugin folder, its manifest as a dict and the built component.

    def test_manifest(manifest):  assert manifest["plugin"]["id"] == "stock-notes"
    def test_component(plugin_wasm):  ... wasmtime.component.Component.from_file(engine, str(plugin_wasm))
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

PLUGIN_DIR_ENV = "PORTAL_PLUGIN_DIR"
PLUGIN_WASM_ENV = "PORTAL_PLUGIN_WASM"


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    """The plugin folder under test."""
    return Path(os.environ[PLUGIN_DIR_ENV])


@pytest.fixture(scope="session")
def manifest(plugin_dir: Path) -> dict[str, Any]:
    """plugin.toml as a dict (validated by `portal plugin test` before the tests run)."""
    return tomllib.loads((plugin_dir / "plugin.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def plugin_wasm() -> Path:
    """The component `portal plugin test` built from guest/ (or the folder's prebuilt plugin.wasm)."""
    value = os.environ.get(PLUGIN_WASM_ENV, "")
    if not value:
        pytest.fail("the plugin has no component (no guest/ to build and no plugin.wasm)")
    return Path(value)
