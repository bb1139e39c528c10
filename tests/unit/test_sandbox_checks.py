"""The sandbox's pure checks: interface compatibility of an uploaded component, and per-plugin limits."""

from __future__ import annotations

import re

import pytest

from app.core.limits import PLATFORM_DEFAULT, PLATFORM_MAXIMUM, Limits, effective, from_env, problems
from app.sandbox.engine import ComponentRejected, _compatible, check_component_bytes, component_imports

HEADER = b"\x00asm\x0d\x00\x01\x00"


@pytest.mark.parametrize(
    ("version", "ok"),
    [("0.1.0", True), ("0.0.9", False), ("0.2.0", False), ("1.1.0", False), ("0.1.1", False)],
)
def test_interface_versions(version: str, ok: bool) -> None:
    assert _compatible(version) is ok


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00asm\x01\x00\x00\x00rest", "core WebAssembly module, not a component"),
        (b"PK\x03\x04", "not a WebAssembly component"),
        (HEADER + b"no interface here", "does not export the portal:plugin/guest interface"),
        (HEADER + b"portal:plugin/host@0.1.0 portal:plugin/guest@0.2.0", "built against portal:plugin@0.2.0"),
    ],
)
def test_bad_components_are_refused_with_a_reason(blob: bytes, message: str) -> None:
    with pytest.raises(ComponentRejected, match=message):
        check_component_bytes(blob)


def test_a_compatible_component_header_passes() -> None:
    check_component_bytes(HEADER + b"..portal:plugin/host@0.1.0..portal:plugin/guest@0.1.0..")


def component_with_imports(*names: str) -> bytes:
    """A component binary with one import section (each name an instance import, type 0) and a custom
    section naming our guest export, as the fast check reads it."""

    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def section(kind: int, body: bytes) -> bytes:
        return bytes([kind]) + leb(len(body)) + body

    imports = leb(len(names)) + b"".join(b"\x00" + leb(len(n)) + n.encode() + b"\x05\x00" for n in names)
    custom = b"\x04note" + b"portal:plugin/guest@0.1.0"
    return HEADER + section(10, imports) + section(0, custom)


def test_imports_are_read_from_the_binary_and_foreign_ones_refused() -> None:
    allowed = component_with_imports("portal:plugin/host@0.1.0", "wasi:clocks/wall-clock@0.2.0")
    assert component_imports(allowed) == ["portal:plugin/host@0.1.0", "wasi:clocks/wall-clock@0.2.0"]
    check_component_bytes(allowed)
    foreign = component_with_imports("portal:plugin/host@0.1.0", "wasi:http/types@0.2.0", "acme:db/sql@1.0.0")
    with pytest.raises(
        ComponentRejected, match=re.escape("does not provide: acme:db/sql@1.0.0, wasi:http/types@0.2.0")
    ):
        check_component_bytes(foreign)
    with pytest.raises(ComponentRejected, match="not a well-formed"):
        check_component_bytes(foreign[:30] + b"portal:plugin/guest@0.1.0")


def test_limits_tighten_and_loosen_within_the_maximum() -> None:
    mine = effective({"deadline_ms": 100, "fuel": 10**12}, PLATFORM_DEFAULT, PLATFORM_MAXIMUM)
    assert mine.deadline_ms == 100 and mine.fuel == PLATFORM_MAXIMUM.fuel
    assert mine.memory_mb == PLATFORM_DEFAULT.memory_mb
    assert problems({"fuel": 10**12, "host_calls": 5}, PLATFORM_MAXIMUM) == [
        f"limits.fuel: {10**12} is above the platform maximum {PLATFORM_MAXIMUM.fuel}"
    ]


def test_limits_from_the_environment() -> None:
    got = from_env({"PORTAL_WASM_DEADLINE_MS": "900", "PORTAL_WASM_MAX_FUEL": "5"}, "PORTAL_WASM_", Limits())
    assert got.deadline_ms == 900 and got.fuel == Limits().fuel


def test_declared_extensions_need_the_extensions_export() -> None:
    old = HEADER + b"..portal:plugin/host@0.1.0..portal:plugin/guest@0.1.0.."
    check_component_bytes(old)  # a component built before extension points still installs
    with pytest.raises(ComponentRejected) as caught:
        check_component_bytes(old, needs_extensions=True)
    assert "declares [[extensions]] but plugin.wasm does not export portal:plugin/extensions@0.1.0" in str(
        caught.value
    )
    check_component_bytes(old + b"portal:plugin/extensions@0.1.0", needs_extensions=True)


def test_plugins_with_extensions_build_for_the_extended_world(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.sandbox.build import EXTENSIONS_WORLD, WORLD, world_for

    (tmp_path / "plugin.toml").write_text('[plugin]\nid = "x"\n', encoding="utf-8")
    assert world_for(tmp_path) == WORLD
    (tmp_path / "plugin.toml").write_text(
        '[[extensions]]\npoint = "condition"\nname = "a"\n', encoding="utf-8"
    )
    assert world_for(tmp_path) == EXTENSIONS_WORLD == "plugin-with-extensions"
    (tmp_path / "plugin.toml").write_text("not toml [", encoding="utf-8")
    assert world_for(tmp_path) == WORLD  # the manifest's errors are reported by its validation
