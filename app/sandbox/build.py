"""Build a plugin's Python guest (``<plugin>/guest/app.py``) into ``plugin.wasm`` with componentize-py.

A build takes seconds and yields a ~18 MB component, so results are cached by a hash of everything
that goes into them (the guest sources, the SDK, ``wit/plugin.wit`` and the componentize-py
version): a rebuild of unchanged sources only copies the cached file. The cache lives in
``$PORTAL_BUILD_CACHE`` or ``~/.cache/portal/guest-builds/``.

The SDK is ``sdk/python/portal_guest`` (see :func:`sdk_dir`). Only ``guest/`` and the SDK are hashed: third-party pure-Python code a guest needs belongs in
``guest/`` (componentize-py would also find the active virtualenv's site-packages, but those are
not part of the hash).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from app.core.nesting import TextRejected, loads_toml
from app.manifest import MANIFEST_MAX_BYTES, MANIFEST_MAX_DEPTH

__all__ = [
    "BuildError",
    "build_component",
    "cache_dir",
    "componentize_py",
    "componentize_py_version",
    "ensure_built",
    "has_guest_sources",
    "sdk_dir",
    "source_hash",
    "wit_dir",
]

WORLD = "plugin"
#: The world of a plugin whose manifest declares [[extensions]] (it also exports the extensions interface).
EXTENSIONS_WORLD = "plugin-with-extensions"
ENTRY_MODULE = "app"
BUILD_TIMEOUT_S = 600
#: Cached components kept (~18 MB each); the least recently used beyond this are removed.
CACHE_KEEP = 32
_ERROR_TAIL_LINES = 40
#: componentize-py options of every build (part of the cache key). No --stub-wasi: the guest imports
#: WASI and the host provides clocks, randomness and stdout/stderr (and no files or network).
COMPONENTIZE_OPTIONS: tuple[str, ...] = ()


class BuildError(Exception):
    """The guest could not be built; the message says why (with componentize-py's error output)."""


def wit_dir() -> Path:
    """The folder holding ``plugin.wit`` (the plugin world)."""
    return Path(__file__).resolve().parents[2] / "wit"


def sdk_dir() -> Path:
    """The folder put on the guest's Python path; it holds the ``portal_guest`` package.

    ``$PORTAL_GUEST_SDK`` when set, else ``sdk/python`` of the checkout the app runs from (the SDK is
    its own package: it runs inside the component, not in the host).
    """
    configured = os.environ.get("PORTAL_GUEST_SDK")
    folder = (
        Path(configured).expanduser()
        if configured
        else Path(__file__).resolve().parents[2] / "sdk" / "python"
    )
    if not (folder / "portal_guest" / "__init__.py").is_file():
        raise BuildError(
            f"the guest SDK (portal_guest) is not in {folder}; set PORTAL_GUEST_SDK to its folder"
        )
    return folder


def cache_dir() -> Path:
    configured = os.environ.get("PORTAL_BUILD_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "portal" / "guest-builds"


def componentize_py() -> str:
    """The componentize-py executable: next to the running interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError("componentize-py is not installed (pip install componentize-py==0.25.1)")
    return found


@functools.cache
def _version_of(executable: str) -> str:
    try:
        done = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise BuildError(f"cannot run {executable}: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(f"{executable} --version failed: {_tail(done.stderr or done.stdout)}")
    return done.stdout.strip()


def componentize_py_version() -> str:
    return _version_of(componentize_py())


def _files(root: Path) -> list[tuple[str, Path]]:
    # Bytecode caches are not sources and change whenever the host happens to import a module.
    return sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def world_for(plugin_dir: Path) -> str:
    """The WIT world to build: with the extensions export when plugin.toml declares [[extensions]]."""
    try:
        data = loads_toml(
            (Path(plugin_dir) / "plugin.toml").read_text(encoding="utf-8"),
            max_depth=MANIFEST_MAX_DEPTH,
            max_bytes=MANIFEST_MAX_BYTES,
        )
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, TextRejected):
        return WORLD  # the manifest's own problems are reported when it is validated
    return EXTENSIONS_WORLD if data.get("extensions") else WORLD


def source_hash(plugin_dir: Path) -> str:
    """sha256 over the guest files, the SDK files, the WIT world, componentize-py's version and options."""
    digest = hashlib.sha256()

    def add(section: str, name: str, content: bytes) -> None:
        # Lengths make the encoding unambiguous (no file can imitate a section boundary).
        head = f"{section}\0{name}\0{len(content)}\0".encode()
        digest.update(head)
        digest.update(content)

    for rel, path in _files(plugin_dir / "guest"):
        add("guest", rel, path.read_bytes())
    for rel, path in _files(sdk_dir()):
        add("sdk", rel, path.read_bytes())
    add("wit", "plugin.wit", (wit_dir() / "plugin.wit").read_bytes())
    add("world", "name", world_for(plugin_dir).encode())
    add("tool", "componentize-py", componentize_py_version().encode())
    add("tool", "options", " ".join(COMPONENTIZE_OPTIONS).encode())
    return digest.hexdigest()


def _tail(text: str, lines: int = _ERROR_TAIL_LINES) -> str:
    # strip("\n"), not strip(): a traceback's first line keeps its indentation.
    return "\n".join(text.rstrip().strip("\n").splitlines()[-lines:])


def _error_text(stderr: str, paths: list[Path]) -> str:
    """componentize-py's error without its Rust backtrace and wrapper traceback, with real file names."""
    text = stderr.split("\nStack backtrace:", 1)[0]
    # The interesting part follows "AssertionError: " (componentize-py's Python wrapper re-raises) and
    # comes before anyhow's "Caused by:" summary of the same error.
    marker = text.find("AssertionError: ")
    if marker >= 0:
        text = text[marker + len("AssertionError: ") :]
    head, sep, _cause = text.partition("\nCaused by:")
    if sep and head.strip():
        text = head
    # componentize-py mounts each -p folder as /0, /1, ... inside the component.
    for i, path in enumerate(paths):
        text = re.sub(rf"(?<![\w/])/{i}/", f"{path.as_posix()}/", text)
    return _tail(text) or "(no error output)"


def _write_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process's prune
        return 0.0


def _prune(folder: Path, keep: int = CACHE_KEEP) -> None:
    entries = sorted(folder.glob("*.wasm"), key=_mtime, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)


def _same_file_content(a: Path, b: Path) -> bool:
    if not (a.is_file() and b.is_file()) or a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def _run_componentize(guest: Path, target: Path, quiet: bool, world: str = WORLD) -> None:
    paths = [guest, sdk_dir()]
    args = [componentize_py(), "-d", str(wit_dir()), "-w", world, "componentize", *COMPONENTIZE_OPTIONS]
    for path in paths:
        args += ["-p", str(path)]
    args += [ENTRY_MODULE, "-o", str(target)]
    env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"}
    try:
        done = subprocess.run(
            args, cwd=guest, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"componentize-py did not finish within {BUILD_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise BuildError(f"cannot run componentize-py: {exc}") from exc
    if not quiet:
        sys.stderr.write(done.stdout)
    if done.returncode != 0 or not target.is_file():
        detail = _error_text(done.stderr, paths)
        if "has no attribute 'Guest'" in detail:
            detail += "\n(app.py must end with `Guest = plugin.guest_class()`)"
        if "has no attribute 'Extensions'" in detail:
            detail += (
                "\n(plugin.toml declares [[extensions]]: define `Extensions` in app.py, or let "
                "`Guest = plugin.guest_class()` define it from your @plugin.condition/... handlers)"
            )
        raise BuildError(f"componentize-py failed for {guest / 'app.py'}:\n{detail}")


def _build_wat(source: Path, target: Path) -> Path:
    """A component written in the text format, assembled by wasmtime's parser (milliseconds: no cache)."""
    import wasmtime

    try:
        binary = bytes(wasmtime.wat2wasm(source.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, wasmtime.WasmtimeError) as exc:
        raise BuildError(f"{source} is not valid WebAssembly text:\n{_tail(str(exc))}") from exc
    if not (target.is_file() and target.read_bytes() == binary):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(binary)
        os.replace(tmp, target)
    return target


def build_component(plugin_dir: Path, *, out: Path | None = None, quiet: bool = True) -> Path:
    """Build ``<plugin_dir>/guest`` (entry module ``app``) into ``out`` (default ``<plugin_dir>/plugin.wasm``).

    Unchanged sources are served from the cache; ``out`` is rewritten only when its content differs.
    Raises :class:`BuildError` when there is no ``guest/app.py`` or componentize-py fails.
    """
    plugin_dir = Path(plugin_dir).resolve()
    guest = plugin_dir / "guest"
    if (guest / "app.js").is_file():  # a JavaScript guest: componentize-js
        from app.sandbox.build_js import build_js_component

        return build_js_component(plugin_dir, out=out)
    if (guest / "app.wat").is_file():  # a hand-written component in the text format
        return _build_wat(
            guest / "app.wat", Path(out).resolve() if out is not None else plugin_dir / "plugin.wasm"
        )
    if not (guest / f"{ENTRY_MODULE}.py").is_file():
        raise BuildError(f"{guest / (ENTRY_MODULE + '.py')} not found (the guest's entry module)")
    target = Path(out).resolve() if out is not None else plugin_dir / "plugin.wasm"
    cached = cache_dir() / f"{source_hash(plugin_dir)}.wasm"

    if cached.is_file():
        with contextlib.suppress(OSError):
            os.utime(cached)  # marks it recently used for _prune
        if not quiet:
            sys.stderr.write(f"cache hit: {cached}\n")
    else:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Build into a private temp file in the cache dir, then rename: concurrent builds of the same
        # sources (parallel test workers) never see a half-written component.
        with tempfile.TemporaryDirectory(prefix="build-", dir=cached.parent) as work:
            built = Path(work) / "plugin.wasm"
            _run_componentize(guest, built, quiet, world_for(plugin_dir))
            os.replace(built, cached)
        _prune(cached.parent)

    if not _same_file_content(cached, target):
        _write_atomic(cached, target)
    return target


def has_guest_sources(plugin_dir: Path) -> bool:
    """Whether the folder holds a guest to build: ``guest/app.py`` (Python), ``guest/app.js`` (JavaScript)
    or ``guest/app.wat`` (a component in the WebAssembly text format)."""
    guest = Path(plugin_dir) / "guest"
    return any((guest / f"{ENTRY_MODULE}.{ext}").is_file() for ext in ("py", "js", "wat"))


def ensure_built(plugin_dir: Path) -> Path | None:
    """Build the guest if the folder has ``guest/app.py`` (or ``guest/app.js``); return the wasm path (an
    existing prebuilt ``plugin.wasm`` when there is no guest, ``None`` when there is neither)."""
    plugin_dir = Path(plugin_dir)
    if has_guest_sources(plugin_dir):
        return build_component(plugin_dir)
    wasm = plugin_dir / "plugin.wasm"
    return wasm if wasm.is_file() else None


def package_from(path: Path) -> Any:
    """A plugin package from a zip, a built folder, or a source folder (whose guest is built first,
    through the cache; its sources stay out of the package)."""
    from app.plugins.packages import read_package, read_source_folder

    if path.is_dir() and has_guest_sources(path):
        # Built beside the cache, not into the source folder (a bundled plugin's folder stays sources only).
        with tempfile.TemporaryDirectory(prefix="package-") as work:
            return read_source_folder(
                path, build_component(path, out=Path(work) / "plugin.wasm").read_bytes()
            )
    return read_package(path)
