"""What a guest call ends with: its figures (`CallStats`), the failure it raises (`GuestFailure`), how a
trap is told apart (limit breach or crash), and the p50/p95 summary of recent calls."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import Variant

from app.sandbox.host import CallContext

_PANIC = re.compile(r"thread '.*' .*panicked at ")


@dataclass
class CallStats:
    plugin_id: str
    tenant_id: str
    call: str
    ok: bool
    duration_ms: float
    fuel: int
    host_calls: int
    output_bytes: int
    memory_mb: float = 0.0  # the instance's linear memory after the call: its peak (memories only grow)
    kind: str = "ok"
    fresh_instance: bool = False
    at: float = field(default_factory=time.time)
    logs: list[tuple[str, str]] = field(default_factory=list, repr=False)


class GuestFailure(Exception):
    """A guest call failed. `message` is safe to show to end users; `detail` is for admins' logs."""

    def __init__(
        self,
        plugin_id: str,
        kind: str,
        message: str,
        detail: str = "",
        *,
        counts_as_trap: bool = False,
        stats: CallStats | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(message)
        self.plugin_id = plugin_id
        self.kind = kind
        self.message = message
        self.detail = detail
        self.counts_as_trap = counts_as_trap
        self.stats = stats
        self.disabled = disabled


class InitFailed(Exception):
    """The guest's init returned an error."""


def trap_kind(exc: Exception, ctx: CallContext) -> tuple[str, str]:
    """The failure kind and the user-facing message of a trap (or a limit the host enforced)."""
    text = str(exc)
    if ctx.breach is not None:
        return ctx.breach.kind, str(ctx.breach)
    if ctx.memory_mb >= ctx.limits.memory_mb * 0.9:  # a guest that cannot allocate crashes in many ways
        return "memory_mb", f"the plugin needed more than its {ctx.limits.memory_mb} MiB memory limit"
    if "interrupt" in text:
        return (
            "deadline_ms",
            f"the plugin ran longer than its {ctx.limits.deadline_ms} ms deadline and was stopped",
        )
    if "fuel" in text:
        return "fuel", f"the plugin used up its instruction budget ({ctx.limits.fuel:,} fuel) and was stopped"
    if "memory" in text.lower() and "limit" in text.lower():
        return "memory_mb", f"the plugin needed more than its {ctx.limits.memory_mb} MiB memory limit"
    first = next((line.strip() for line in reversed(text.splitlines()) if "trap" in line), "") or "trap"
    return "trap", f"the plugin crashed ({first})"


def with_stderr(failure: GuestFailure, tail: list[str]) -> None:
    """Add the guest's last stderr lines to a trap: for a Python guest its traceback's end (the last
    line, the exception, also goes into the message of a crash)."""
    failure.detail = f"{failure.detail}\nthe guest's last stderr lines:\n" + "\n".join(tail)
    # componentize-py's runtime panics after printing the traceback: its panic lines are not the cause.
    cause = [line for line in tail[: next((i for i, t in enumerate(tail) if _PANIC.match(t)), len(tail))]]
    if failure.kind == "trap" and cause:
        failure.message = f"{failure.message}: {cause[-1].strip()[:300]}"


def payload_size(payload: Any) -> int:
    if payload is None or isinstance(payload, bool):
        return 0
    if isinstance(payload, str):
        return len(payload.encode("utf-8", "replace"))
    if isinstance(payload, list):
        return sum(len(str(item).encode("utf-8", "replace")) + 1 for item in payload)
    return len(str(payload))


def error_of(result: Any) -> str | None:
    """The error of a guest result: a Variant for result<string, string>, a bare string for result<_, string>."""
    if isinstance(result, Variant):
        return str(result.payload) if result.tag == "err" else None
    return result if isinstance(result, str) else None


def figures(recent: Iterable[CallStats], *, memory_stats: bool) -> dict[str, Any]:
    """p50/p95 of recent calls of a plugin (`memory_mb` only when memory is measured)."""
    calls = list(recent)
    if not calls:
        return {"calls": 0}

    def pct(values: list[float], q: float) -> float:
        if len(values) == 1:
            return values[0]
        return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)

    out: dict[str, Any] = {"calls": len(calls), "failures": sum(1 for c in calls if not c.ok)}
    measured = ("duration_ms", "fuel", "host_calls", "memory_mb", "output_bytes")
    for name in measured if memory_stats else tuple(n for n in measured if n != "memory_mb"):
        values = sorted(float(getattr(c, name)) for c in calls)
        out[name] = {"p50": pct(values, 50), "p95": pct(values, 95), "max": values[-1]}
    return out
