"""Per-call limits of a guest: platform defaults, tightened or (up to a platform maximum) loosened by
the plugin's `[limits]` table. The same names are used in the manifest, the settings and the health page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limits:
    deadline_ms: int = 2_000  # wall clock, enforced by epoch interruption
    fuel: int = 2_000_000_000  # instruction budget
    memory_mb: int = 128  # linear memory cap (the Python guest starts at ~12.4 MiB)
    output_bytes: int = 1_000_000  # size of a returned JSON document
    host_calls: int = 500  # host functions per guest call
    log_bytes: int = 64 * 1024  # log-write bytes per guest call
    notifications: int = (
        100  # messages the notify host function may create per guest call (recipients summed)
    )

    def describe(self, name: str) -> str:
        value = getattr(self, name)
        return {
            "deadline_ms": f"{value} ms",
            "memory_mb": f"{value} MiB",
            "output_bytes": f"{value} bytes",
            "log_bytes": f"{value} bytes",
        }.get(name, str(value))


PLATFORM_DEFAULT = Limits()
PLATFORM_MAXIMUM = Limits(
    deadline_ms=30_000,
    fuel=50_000_000_000,
    memory_mb=1024,
    output_bytes=8_000_000,
    host_calls=10_000,
    log_bytes=1_000_000,
    notifications=1_000,
)
NAMES = tuple(f.name for f in fields(Limits))


def from_env(environ: Mapping[str, str], prefix: str, base: Limits) -> Limits:
    """`PORTAL_WASM_<NAME>` (defaults) and `PORTAL_WASM_MAX_<NAME>` (maximum) override the built-in values."""
    changes = {}
    for name in NAMES:
        raw = environ.get(f"{prefix}{name.upper()}")
        if raw:
            changes[name] = int(raw)
    return replace(base, **changes)


def problems(requested: Mapping[str, int], maximum: Limits) -> list[str]:
    """Located messages for manifest limits above what the platform allows."""
    return [
        f"limits.{name}: {value} is above the platform maximum {getattr(maximum, name)}"
        for name, value in requested.items()
        if name in NAMES and value > getattr(maximum, name)
    ]


def effective(requested: Mapping[str, int], default: Limits, maximum: Limits) -> Limits:
    """The plugin's values where it gives them (never above the maximum), the platform's elsewhere."""
    return replace(
        default, **{k: min(int(v), getattr(maximum, k)) for k, v in requested.items() if k in NAMES}
    )
