"""Guests in Python, JavaScript and hand-written WAT side by side (bench/guests/*: a page making
exactly three host calls — db-query, current-user, check-permission — answered by a canned host, so
the figures are the guest's language runtime and the boundary, not the database):

    .venv/bin/python bench/guest_languages.py      (also the last part of bench/wasm_bench.py)

For each, with each compiler (Cranelift, and Winch: PORTAL_WASM_COMPILER): the component's size, its
build time (cached builds are 0), compile time (wall, and CPU of all compile threads: the figure that
does not depend on how busy the machine is), the compiled artefact's size, cold first call (instantiate +
init + the first page, median of 5) and a warm page (median of 200 calls on one instance).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GUESTS = ROOT / "bench" / "guests"
LANGUAGES = ("python", "js", "wat")
HOST = "portal:plugin/host@0.1.0"
GUEST = "portal:plugin/guest@0.1.0"
FUEL = 10**12


def _host_functions() -> dict[str, Any]:
    from wasmtime.component import Variant

    rows = json.dumps({"rows": [{"id": "1", "title": "a"}], "total": 1})
    user = json.dumps({"id": "u1", "email": "bench@portal.test"})
    refuse = Variant("err", "not in the bench")
    return {
        "db-insert": lambda *a: refuse,
        "db-query": lambda *a: Variant("ok", rows),
        "db-update": lambda *a: refuse,
        "db-delete": lambda *a: refuse,
        "db-aggregate": lambda *a: refuse,
        "event-publish": lambda *a: refuse,
        "config-get": lambda *a: Variant("ok", None),
        "notify": lambda *a: refuse,
        "file-read": lambda *a: refuse,
        "log-write": lambda *a: None,
        "current-user": lambda *a: Variant("ok", user),
        "check-permission": lambda *a: True,  # result<bool, string>: untagged in wasmtime-py
    }


def _instance(engine: Any, component: Any) -> Any:
    from wasmtime import Store, WasiConfig
    from wasmtime.component import Linker

    linker = Linker(engine)
    with linker.root() as root, root.add_instance(HOST) as host:
        for name, fn in _host_functions().items():
            host.add_func(name, lambda _store, *args, _fn=fn: _fn(*args))
    linker.add_wasip2()  # as the portal links it (clocks, random, stdout/stderr; no files, no sockets)
    store = Store(engine)
    store.set_fuel(FUEL)
    store.set_epoch_deadline(10**9)
    store.set_wasi(WasiConfig())
    instance = linker.instantiate(store, component)
    guest = instance.get_export_index(store, GUEST)

    def call(name: str, *args: Any) -> Any:
        func = instance.get_func(store, instance.get_export_index(store, name, guest))
        out = func(store, *args)
        func.post_return(store)
        return out

    return call


COMPILERS = ("cranelift", "winch")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process: parallel compiles
    return usage.ru_utime + usage.ru_stime


def build(language: str, work: Path) -> tuple[bytes, float]:
    from app.sandbox.build import build_component

    folder = work / language
    shutil.copytree(GUESTS / language, folder)
    t = time.perf_counter()
    wasm = build_component(folder)
    return wasm.read_bytes(), time.perf_counter() - t


def measure(data: bytes, built_s: float, compiler: str) -> dict[str, float]:
    from wasmtime.component import Component

    from app.sandbox.engine import make_engine

    engine = make_engine(compiler=compiler)
    t, cpu = time.perf_counter(), _cpu()
    component = Component(engine, data)
    compile_ms = (time.perf_counter() - t) * 1000
    compile_cpu_s = _cpu() - cpu
    artefact = len(component.serialize())
    # Cold: a fresh instance of the compiled component, init, the first page (as a worker's first call).
    colds = []
    for _ in range(5):
        t = time.perf_counter()
        call = _instance(engine, component)
        assert call("init") is None
        page = call("render-page", "/bench", "{}")
        colds.append((time.perf_counter() - t) * 1000)
        assert page.tag == "ok" and json.loads(page.payload)["blocks"], page.payload
    warm = []
    for _ in range(200):
        t = time.perf_counter()
        call("render-page", "/bench", "{}")
        warm.append((time.perf_counter() - t) * 1000)
    return {
        "size_bytes": len(data),
        "build_s": built_s,
        "compile_ms": compile_ms,
        "compile_cpu_s": compile_cpu_s,
        "artefact_bytes": artefact,
        "cold_ms": statistics.median(colds),
        "warm_ms": statistics.median(warm),
    }


def _size(size: float) -> str:
    return f"{size / 1048576:.1f} MiB" if size >= 1048576 else f"{size / 1024:.1f} KiB"


def report(
    languages: tuple[str, ...] = LANGUAGES, compilers: tuple[str, ...] = COMPILERS
) -> dict[str, dict[str, float]]:
    figures = {}
    with tempfile.TemporaryDirectory(prefix="portal-guest-bench-") as work:
        for language in languages:
            data, built_s = build(language, Path(work))
            for compiler in compilers:
                figures[f"{language}/{compiler}"] = measure(data, built_s, compiler)
                print(f"  measured {language} with {compiler}", flush=True)
    print()
    print(
        f"{'guest/compiler':<16} {'size':>9} {'build s':>8} {'compile ms':>11} {'compile CPU s':>14}"
        f" {'artefact':>10} {'cold call ms':>13} {'warm 3 calls ms':>16}"
    )
    for name, f in figures.items():
        print(
            f"{name:<16} {_size(f['size_bytes']):>9} {f['build_s']:>8.1f} {f['compile_ms']:>11.1f}"
            f" {f['compile_cpu_s']:>14.2f} {_size(f['artefact_bytes']):>10} {f['cold_ms']:>13.2f}"
            f" {f['warm_ms']:>16.3f}"
        )
    return figures


if __name__ == "__main__":
    report(tuple(sys.argv[1:]) or LANGUAGES)
