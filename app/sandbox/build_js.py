"""Build a plugin's JavaScript guest (``<plugin>/guest/app.js``) into ``plugin.wasm`` with the Bytecode
Alliance's componentize-js (a SpiderMonkey embedding; ~12 MB components).

The toolchain is pinned by ``sdk/js/package.json`` and its committed ``package-lock.json``: the first
build of a machine runs ``npm ci`` into ``<cache>/js-toolchain/<hash of the lock>/`` (the only step that
needs the npm registry); later builds are offline. Components are cached like Python ones, by a hash of
the guest files, ``wit/plugin.wit``, the world, the lock file and the build options.

Builds disable WASI HTTP and the fetch event (``--disable http fetch-event``): the guest then imports
only the WASI clocks, random, cli (stdio, terminal) and filesystem interfaces, which the host links
(files are refused: no directory is preopened).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from app.sandbox.build import (
    BUILD_TIMEOUT_S,
    BuildError,
    _files,
    _prune,
    _same_file_content,
    _tail,
    _write_atomic,
    cache_dir,
    wit_dir,
    world_for,
)

__all__ = ["JS_ENTRY", "JS_OPTIONS", "build_js_component", "is_js_guest", "js_source_hash", "js_toolchain"]

JS_ENTRY = "app.js"
#: componentize-js options of every build (part of the cache key).
JS_OPTIONS: tuple[str, ...] = ("--disable", "http", "fetch-event")
NPM_TIMEOUT_S = 900


def js_sdk_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "sdk" / "js"


def is_js_guest(plugin_dir: Path) -> bool:
    return (Path(plugin_dir) / "guest" / JS_ENTRY).is_file()


def _lock_bytes() -> bytes:
    lock = js_sdk_dir() / "package-lock.json"
    try:
        return lock.read_bytes() + (js_sdk_dir() / "package.json").read_bytes()
    except OSError as exc:
        raise BuildError(f"the JavaScript toolchain's lock file is missing: {exc}") from exc


def js_toolchain() -> Path:
    """The componentize-js executable of the pinned toolchain, installed with `npm ci` on first use."""
    key = hashlib.sha256(_lock_bytes()).hexdigest()[:16]
    home = cache_dir().parent / "js-toolchain" / key
    binary = home / "node_modules" / ".bin" / "componentize-js"
    if binary.is_file():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BuildError("building a JavaScript guest needs node and npm (apt-get install nodejs npm)")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="install-", dir=home.parent) as work:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(js_sdk_dir() / name, Path(work) / name)
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"npm ci of the JavaScript toolchain failed: {exc}") from exc
        if done.returncode != 0:
            raise BuildError(
                f"npm ci of the JavaScript toolchain failed:\n{_tail(done.stderr or done.stdout)}"
            )
        try:
            os.replace(work, home)
        except OSError:  # another process installed it meanwhile
            if not binary.is_file():
                raise
        Path(work).mkdir(exist_ok=True)  # TemporaryDirectory cleans up the (moved) folder's name
    return binary


def js_source_hash(plugin_dir: Path) -> str:
    digest = hashlib.sha256()

    def add(section: str, name: str, content: bytes) -> None:
        digest.update(f"{section}\0{name}\0{len(content)}\0".encode())
        digest.update(content)

    for rel, path in _files(Path(plugin_dir) / "guest"):
        add("guest", rel, path.read_bytes())
    add("wit", "plugin.wit", (wit_dir() / "plugin.wit").read_bytes())
    add("world", "name", world_for(plugin_dir).encode())
    add("tool", "lock", _lock_bytes())
    add("tool", "options", " ".join(JS_OPTIONS).encode())
    return "js-" + digest.hexdigest()


def build_js_component(plugin_dir: Path, *, out: Path | None = None) -> Path:
    """Build ``<plugin_dir>/guest/app.js`` into ``out`` (default ``<plugin_dir>/plugin.wasm``), through the cache."""
    plugin_dir = Path(plugin_dir).resolve()
    entry = plugin_dir / "guest" / JS_ENTRY
    if not entry.is_file():
        raise BuildError(f"{entry} not found (the JavaScript guest's entry module)")
    target = Path(out).resolve() if out is not None else plugin_dir / "plugin.wasm"
    cached = cache_dir() / f"{js_source_hash(plugin_dir)}.wasm"
    if cached.is_file():
        os.utime(cached)
    else:
        tool = js_toolchain()
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=cached.parent) as work:
            built = Path(work) / "plugin.wasm"
            args = [str(tool), str(entry), "--wit", str(wit_dir()), "--world-name", world_for(plugin_dir)]
            args += [*JS_OPTIONS, "--out", str(built)]
            try:
                done = subprocess.run(
                    args,
                    cwd=entry.parent,
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise BuildError(f"componentize-js failed for {entry}: {exc}") from exc
            if done.returncode != 0 or not built.is_file():
                detail = _tail(done.stderr or done.stdout) or "(no error output)"
                raise BuildError(f"componentize-js failed for {entry}:\n{detail}")
            os.replace(built, cached)
        _prune(cached.parent)
    if not _same_file_content(cached, target):
        _write_atomic(cached, target)
    return target
