"""The host functions' side of the component boundary: lifting a guest's arguments and lowering our
answers, with the function's types reflected once instead of on every call.

wasmtime-py's own trampoline (`wasmtime.component._linker.func_impl`) asks the C API for the
function's parameter and result types on every call, and lowering a `result<…>` asks for its case
types three more times; that was about half of a bare host call's CPU (bench/host_call_profile.py
--cprofile). Here each registered function keeps the converters it built on its first call. That is
sound because a linker serves one package version (runner.Sandbox._linker is keyed by plugin id and
package hash), so every call of a registered function sees the same import type (the argument count
is still checked on every call).

What crosses is unchanged: the same wasmtime-py value conversions for each leaf type, exceptions
propagated the way wasmtime-py does (`catch_exceptions`: a LimitBreach raised by a host function
traps the guest and is re-raised to the caller of the guest function).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import FuncType, LinkerInstance, OptionType, ResultType, ValType, Variant
from wasmtime.component._enter import catch_exceptions
from wasmtime.component._linker import FUNCTIONS, func_finalize

Lower = Callable[[Any, Any, Any], None]  # (store, python value, pointer to a wasmtime_component_val_t)


def _lowering(ty: ValType | None) -> Lower | None:
    """A converter of a Python value to `ty`, the case types of results and options resolved now."""
    if ty is None:
        return None
    if isinstance(ty, ResultType):
        return _result_lowering(_lowering(ty.ok), _lowering(ty.err))
    if isinstance(ty, OptionType):
        return _option_lowering(_lowering(ty.payload))
    return ty.convert_to_c  # leaves (string, bool, numbers) reflect nothing


def _boxed(lower: Lower | None, store: Any, value: Any) -> Any:
    if lower is None:
        return None
    raw = ffi.wasmtime_component_val_t()
    lower(store, value, ctypes.pointer(raw))
    return ffi.wasmtime_component_val_new(ctypes.byref(raw))


def _result_lowering(ok: Lower | None, err: Lower | None) -> Lower:
    def lower(store: Any, value: Any, ptr: Any) -> None:
        if not isinstance(value, Variant) or value.tag not in ("ok", "err"):
            raise TypeError("a host function's result must be Variant('ok' | 'err', payload)")
        is_ok = value.tag == "ok"
        boxed = _boxed(ok if is_ok else err, store, value.payload)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_RESULT
        ptr.contents.of.result.is_ok = is_ok
        ptr.contents.of.result.val = boxed

    return lower


def _option_lowering(some: Lower | None) -> Lower:
    def lower(store: Any, value: Any, ptr: Any) -> None:
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_OPTION
        ptr.contents.of.option = None if value is None else _boxed(some, store, value)

    return lower


class _Plan:
    """One function's parameter lifters and result lowering, built from its type on the first call."""

    __slots__ = ("lifts", "lower", "types")

    def __init__(self, fty: FuncType) -> None:
        params = [ty for _, ty in fty.params]
        result = fty.result
        self.types = (params, result)  # kept alive: the lifters are bound methods of these objects
        self.lifts = tuple(ty.convert_from_c for ty in params)
        self.lower = _lowering(result)


class HostFunction:
    """A Python host function as the linker calls it: `fn(store, *args)` returns the result value,
    results as `Variant("ok" | "err", payload)` whatever their case types."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.plan: _Plan | None = None

    def __call__(self, store: Any, ty_raw: Any, args: Any, nargs: int, results: Any) -> None:
        plan = self.plan
        if plan is None:
            with FuncType._from_ptr(ty_raw, owner=store) as fty:
                plan = self.plan = _Plan(fty)
        if len(plan.lifts) != nargs:
            raise TypeError("the import's type differs from the one this host function was planned for")
        value = self.fn(store, *[lift(args[i]) for i, lift in enumerate(plan.lifts)])
        if plan.lower is not None:
            plan.lower(store, value, results)


@ffi.wasmtime_component_func_callback_t
def _trampoline(idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, _n: int) -> int:
    # Everything, the slot lookup included, runs under catch_exceptions: an exception escaping a ctypes
    # callback would return 0 (success) with the results unwritten, which wasmtime then reads.
    def run(store: Any) -> None:
        entry: HostFunction = FUNCTIONS.get(idx or 0)  # type: ignore[assignment]
        entry(store, ty_raw, args, nargs, results)

    return catch_exceptions(context, run)  # type: ignore[return-value]


def add_func(instance: LinkerInstance, name: str, fn: Callable[..., Any]) -> None:
    """LinkerInstance.add_func with this module's trampoline (the slot and its finalizer are wasmtime-py's)."""
    instance._assert_not_locked()
    encoded = name.encode("utf-8")
    idx = FUNCTIONS.allocate(HostFunction(fn))
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded), _trampoline, idx, func_finalize
    )
    if err:
        from wasmtime import WasmtimeError

        raise WasmtimeError._from_ptr(err)
