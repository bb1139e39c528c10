"""The shared wasmtime Engine, its epoch ticker, the compile cache and the interface check.

Compiling a Python guest takes seconds, so it happens once per wasm hash and wasmtime version, in the
background, and the artefact is kept under the data dir; every later start deserializes the file
(a few milliseconds, memory-mapped). The wasm itself comes from the database (`load`, given by the
sandbox), so every host over one database compiles into its own cache on first need.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wasmtime import Config, Engine
from wasmtime import _ffi as wasmtime_ffi
from wasmtime.component import Component

from app.core.i18n import N_
from app.sandbox import memory
from app.sandbox.wasi import WASI_INTERFACES, wasi_import_allowed

log = logging.getLogger("portal.sandbox")

INTERFACE_PACKAGE = "portal:plugin"
INTERFACE_VERSION = "0.1.0"
HOST_IMPORT = f"{INTERFACE_PACKAGE}/host@{INTERFACE_VERSION}"
GUEST_EXPORT = f"{INTERFACE_PACKAGE}/guest@{INTERFACE_VERSION}"
GUEST_FUNCTIONS = ("init", "on-tenant-created", "handle-event", "render-page", "handle-action")
# Optional export (added to 0.1.0 like the notify import): components built before it still load.
EXTENSIONS_EXPORT = f"{INTERFACE_PACKAGE}/extensions@{INTERFACE_VERSION}"
EXTENSION_FUNCTIONS = ("check-condition", "select-users", "validate-record", "verify-auth")
EPOCH_TICK_SECONDS = 0.005
WASMTIME_VERSION = importlib.metadata.version("wasmtime")
_COMPONENT_LAYER = b"\x00asm\x0d\x00\x01\x00"
_CORE_MODULE = b"\x00asm\x01\x00\x00\x00"
_INTERFACE_NAME = re.compile(rb"portal:plugin/(host|guest|extensions)@(\d+\.\d+\.\d+)")


class ComponentRejected(Exception):
    """The wasm cannot run here; the message says why, for the person who uploaded it."""


def _compatible(version: str) -> bool:
    """Semver: 0.x versions are compatible within the same minor, others within the same major."""
    ours = [int(p) for p in INTERFACE_VERSION.split(".")]
    theirs = [int(p) for p in version.split(".")]
    if ours[0] == 0:
        return theirs[:2] == ours[:2] and theirs[2] <= ours[2]
    return theirs[0] == ours[0] and theirs[1:] <= ours[1:]


def check_component_bytes(wasm: bytes, *, needs_extensions: bool = False) -> None:
    """A fast check at pack and upload, before the (slow) compile: a component of our interface version
    (and, when the manifest declares [[extensions]], one that exports the extensions interface) that
    imports nothing the host does not link."""
    if wasm.startswith(_CORE_MODULE):
        raise ComponentRejected(
            N_(
                "plugin.wasm is a core WebAssembly module, not a component; build it with `portal plugin build` (componentize-py) against wit/plugin.wit"
            )
        )
    if not wasm.startswith(_COMPONENT_LAYER):
        raise ComponentRejected(N_("plugin.wasm is not a WebAssembly component (wrong magic bytes)"))
    names = {(m.group(1).decode(), m.group(2).decode()) for m in _INTERFACE_NAME.finditer(wasm)}
    guest = {v for kind, v in names if kind == "guest"}
    if not guest:
        raise ComponentRejected(
            N_(
                "plugin.wasm does not export the %(interface_package)s/guest interface (build it against wit/plugin.wit, package %(interface_package)s@%(interface_version)s)",
                interface_package=INTERFACE_PACKAGE,
                interface_version=INTERFACE_VERSION,
            )
        )
    bad = sorted(v for _, v in names if not _compatible(v))
    if bad:
        raise ComponentRejected(
            N_(
                "plugin.wasm was built against %(interface_package)s@%(bad)s; this portal provides %(interface_package)s@%(interface_version)s — rebuild it with `portal plugin build`",
                interface_package=INTERFACE_PACKAGE,
                bad=bad[0],
                interface_version=INTERFACE_VERSION,
            )
        )
    if needs_extensions and not any(kind == "extensions" for kind, _ in names):
        raise ComponentRejected(
            N_(
                "plugin.toml declares [[extensions]] but plugin.wasm does not export %(extensions_export)s (it was built before extension points existed: rebuild it with `portal plugin build`)",
                extensions_export=EXTENSIONS_EXPORT,
            )
        )
    missing = missing_imports(wasm)
    if missing:
        raise ComponentRejected(
            N_(
                "plugin.wasm imports what this portal does not provide: %(missing)s (a plugin may import only %(host_import)s and WASI %(names)s)",
                missing=", ".join(missing),
                host_import=HOST_IMPORT,
                names=", ".join(p.rstrip("/") for p in WASI_INTERFACES),
            )
        )


#: The extension functions each extension point calls (wit/plugin.wit, interface extensions).
_POINT_FUNCTIONS = {
    "condition": "check-condition",
    "user-selector": "select-users",
    "record-validator": "validate-record",
    "auth-verifier": "verify-auth",
}


def needed_exports(custom_pages: bool, subscribes: bool, extension_points: list[str]) -> list[str]:
    """The guest functions a manifest will call: `init` (every fresh instance) and `on-tenant-created`
    (first enable in a tenant) always, `render-page` and `handle-action` for custom pages, `handle-event`
    for subscribed events, one function per declared extension point."""
    needs = ["init", "on-tenant-created"]
    if custom_pages:
        needs += ["render-page", "handle-action"]
    if subscribes:
        needs += ["handle-event"]
    needs += sorted({_POINT_FUNCTIONS[p] for p in extension_points if p in _POINT_FUNCTIONS})
    return needs


def missing_exports(wasm: bytes, needs: list[str]) -> list[str]:
    """Which of `needs` the component certainly does not export: a name that occurs nowhere in the
    binary as a length-prefixed name (every export of a component's instance is written so). A fast,
    conservative check at pack and upload (no false refusals); the compile checks the full type."""
    return [name for name in needs if bytes([len(name)]) + name.encode() not in wasm]


_IMPORT_SECTION = 10


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at `pos`: its value and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def component_imports(wasm: bytes) -> list[str]:
    """The names a component imports (its top-level import sections), read from the binary without
    compiling it: what an upload can check in milliseconds. Raises ComponentRejected when the binary
    is cut short or malformed."""
    names: list[str] = []
    pos = len(_COMPONENT_LAYER)
    try:
        while pos < len(wasm):
            section = wasm[pos]
            size, pos = _leb(wasm, pos + 1)
            end = pos + size
            if section == _IMPORT_SECTION:
                count, at = _leb(wasm, pos)
                for _ in range(count):
                    form = wasm[at]  # 0x00: name; 0x01: name with a version suffix
                    length, at = _leb(wasm, at + 1)
                    names.append(wasm[at : at + length].decode("utf-8"))
                    at += length
                    if form == 0x01:
                        length, at = _leb(wasm, at)
                        at += length
                    kind = wasm[at]  # externdesc: a sort, then an index (or a bound) by sort
                    at += 1
                    if kind in (0x00, 0x02):  # core module (0x11 typeidx); value (bound typeidx)
                        _, at = _leb(wasm, at + 1)
                    elif kind == 0x03:  # type: eq typeidx, or a fresh resource
                        at = _leb(wasm, at + 1)[1] if wasm[at] == 0x00 else at + 1
                    else:  # func, component, instance: a type index
                        _, at = _leb(wasm, at)
            pos = end
    except (IndexError, UnicodeDecodeError) as exc:
        raise ComponentRejected(N_("plugin.wasm is not a well-formed WebAssembly component")) from exc
    return names


def missing_imports(wasm: bytes) -> list[str]:
    """What the component imports that this portal does not link (none: it can run here)."""
    return sorted(i for i in component_imports(wasm) if i != HOST_IMPORT and not wasi_import_allowed(i))


def check_component_type(engine: Engine, component: Component) -> None:
    """The full check on the compiled component: what it imports and exports."""
    ctype = component.type
    imports = set(ctype.imports(engine))
    exports = set(ctype.exports(engine))
    if GUEST_EXPORT not in exports:
        raise ComponentRejected(
            N_(
                "the component does not export %(guest_export)s (it exports: %(value)s)",
                guest_export=GUEST_EXPORT,
                value=", ".join(sorted(exports)) or "nothing",
            )
        )
    foreign = sorted(i for i in imports if i != HOST_IMPORT and not wasi_import_allowed(i))
    if foreign:
        raise ComponentRejected(
            N_(
                "the component imports %(foreign)s, which this portal does not provide (only %(host_import)s and WASI %(names)s)",
                foreign=", ".join(foreign),
                host_import=HOST_IMPORT,
                names=", ".join(p.rstrip("/") for p in WASI_INTERFACES),
            )
        )


#: wasmtime's `wasmtime_strategy_t`: wasmtime-py offers only auto and cranelift as names.
_STRATEGIES = {"cranelift": 1, "winch": 2}


def make_engine(memory_stats: bool = False, compiler: str = "cranelift") -> Engine:
    """An engine with fuel and epoch interruption. With `memory_stats` our own memory creator
    allocates every linear memory, so each call's peak memory is known — at the price of
    copy-on-write images: an extra instance then costs ~12 MiB of RSS instead of ~2 MiB (bench/wasm_bench.py).
    `compiler`: cranelift (optimised code) or winch (a baseline compiler: a Python guest compiles in a
    fraction of the time, its code runs slower and its artefact is larger; bench/compile_bench.py)."""
    config = Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    wasmtime_ffi.wasmtime_config_strategy_set(config.ptr(), _STRATEGIES[compiler])
    if memory_stats:
        memory.install(config)
    return Engine(config)


@dataclass
class CompileJob:
    wasm_sha256: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def state(self) -> str:
        if not self.done.is_set():
            return "compiling"
        return "failed" if self.error else "ready"

    @property
    def seconds(self) -> float:
        return round((self.finished or time.monotonic()) - self.started, 1)


class ComponentStore:
    """Compiled components by wasm hash: memory, then the cache file, then a compile."""

    def __init__(
        self, engine: Engine, cache_dir: Path, *, memory_stats: bool = False, compiler: str = "cranelift"
    ) -> None:
        self.engine = engine
        self.cache_dir = cache_dir
        self.memory_stats = memory_stats
        self.compiler = compiler
        self._components: dict[str, Component] = {}
        self._jobs: dict[str, CompileJob] = {}
        self._lock = threading.Lock()

    def cache_path(self, wasm_sha256: str) -> Path:
        # The engine's settings are part of the artefact (the host memory creator disables CoW images).
        mode = ("-hostmem" if self.memory_stats else "") + ("-winch" if self.compiler == "winch" else "")
        return self.cache_dir / f"{wasm_sha256}-wasmtime{WASMTIME_VERSION}{mode}.cwasm"

    def job(self, wasm_sha256: str) -> CompileJob | None:
        return self._jobs.get(wasm_sha256)

    def state(self, wasm_sha256: str) -> str:
        """ready | compiling | failed | pending (never compiled in this process nor cached)."""
        if wasm_sha256 in self._components or self.cache_path(wasm_sha256).exists():
            return "ready"
        job = self._jobs.get(wasm_sha256)
        return job.state if job else "pending"

    def start_compile(self, load: Callable[[], bytes], wasm_sha256: str) -> CompileJob:
        """Compile in a background thread (once per hash); the returned job tells progress. `load` gives
        the wasm (it runs in that thread, and may read the database: no transaction is held meanwhile)."""
        with self._lock:
            job = self._jobs.get(wasm_sha256)
            if job is not None and job.state != "failed":
                return job
            job = CompileJob(wasm_sha256)
            self._jobs[wasm_sha256] = job
            if self.cache_path(wasm_sha256).exists():
                job.finished = time.monotonic()
                job.done.set()
                return job
        threading.Thread(
            target=self._compile, args=(load, job), daemon=True, name=f"compile-{wasm_sha256[:8]}"
        ).start()
        return job

    def _compile(self, load: Callable[[], bytes], job: CompileJob) -> None:
        try:
            wasm = load()
            if hashlib.sha256(wasm).hexdigest() != job.wasm_sha256:
                raise ComponentRejected(N_("plugin.wasm does not match the hash it was installed with"))
            component = Component(self.engine, wasm)
            check_component_type(self.engine, component)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            target = self.cache_path(job.wasm_sha256)
            tmp = target.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(component.serialize())
            tmp.replace(target)
            self._components[job.wasm_sha256] = component
        except ComponentRejected as exc:
            job.error = str(exc)
        except Exception as exc:  # a compile failure must reach the admin, not kill the thread silently
            log.exception("Compiling %s failed", job.wasm_sha256)
            job.error = f"the component does not compile: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        finally:
            job.finished = time.monotonic()
            job.done.set()

    def get(
        self, load: Callable[[], bytes], wasm_sha256: str, *, wait: float | None = None
    ) -> Component | None:
        """The compiled component, or None while it is still compiling after `wait` seconds. May wait for
        a compile: never call it with a transaction open (Sandbox.ready is the one caller)."""
        hit = self.cached(wasm_sha256)
        if hit is not None:
            return hit
        job = self.start_compile(load, wasm_sha256)
        if not job.done.wait(wait):
            return None
        if job.error:
            raise ComponentRejected(job.error)
        return self._components.get(wasm_sha256)

    def forget(self, wasm_sha256: str) -> None:
        """Drop the in-process component (with its cache file removed, the next need compiles again)."""
        self._components.pop(wasm_sha256, None)

    def cached(self, wasm_sha256: str) -> Component | None:
        """The component from memory or the compile cache file — never a compile, never a wait.
        What a call inside a transaction may use: deserializing takes milliseconds, compiling seconds
        (holding a transaction, or SQLite's write lock, that long fails everyone else's writes)."""
        hit = self._components.get(wasm_sha256)
        if hit is not None:
            return hit
        cached = self.cache_path(wasm_sha256)
        if not cached.exists():
            return None
        try:
            component = Component.deserialize_file(self.engine, str(cached))
        except Exception:
            log.warning("Compile cache %s is unusable; it will be recompiled", cached)
            cached.unlink(missing_ok=True)
            return None
        self._components[wasm_sha256] = component
        return component

    def loaded(self, wasm_sha256: str) -> Component | None:
        """The component if this process already holds it (no file access: safe on the event loop)."""
        return self._components.get(wasm_sha256)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EpochTicker:
    """Advances the engine's epoch every few milliseconds; guests' deadlines are counted in ticks.
    The thread starts with the first guest call, so processes that never run a guest pay nothing."""

    def __init__(self, engine: Engine, interval: float = EPOCH_TICK_SECONDS) -> None:
        self.engine = engine
        self.interval = interval
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Ticks since the thread started, as far as this thread knows (the engine's epoch cannot be
        #: read): a host call measures the ticks it spent with it (app.sandbox.host.Deadline).
        self.now = 0

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.engine.increment_epoch()
            self.now += 1

    def ticks(self, milliseconds: int) -> int:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True, name="wasm-epoch")
                    self._thread.start()
        return max(1, int(milliseconds / 1000 / self.interval) + 1)


_shared: dict[tuple[bool, str], tuple[Engine, EpochTicker]] = {}
_shared_lock = threading.Lock()


def shared_engine(memory_stats: bool = False, compiler: str = "cranelift") -> tuple[Engine, EpochTicker]:
    """One Engine (and epoch ticker) per process, memory mode and compiler: engines are thread-safe and
    compiled code is per engine."""
    with _shared_lock:
        key = (memory_stats, compiler)
        if key not in _shared:
            engine = make_engine(memory_stats, compiler)
            _shared[key] = (engine, EpochTicker(engine))
        return _shared[key]
