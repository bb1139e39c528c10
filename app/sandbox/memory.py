"""Linear memories allocated by the host (wasmtime's memory-creator hook), so that the portal knows
each guest instance's memory size: the peak memory of a call, and whether a failure hit the cap.

wasmtime-py exposes no memory statistics for components; with this hook every memory is an mmap
reservation we made, made accessible page by page as the guest grows it. The cap itself stays with
`Store.set_limits` (wasmtime refuses the growth before asking us)."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import threading
from dataclasses import dataclass
from typing import Any

from wasmtime import Config
from wasmtime import _ffi as ffi

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_PROT_NONE, _PROT_RW = 0, 3
_MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_NORESERVE = 0x02, 0x20, 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value
_PAGE = 4096
_DEFAULT_RESERVATION = 4 << 30


@dataclass
class LinearMemory:
    base: int
    reserved: int  # bytes mapped (reservation + guard)
    size: int  # bytes accessible now: the guest's current memory size
    maximum: int


_memories: dict[int, LinearMemory] = {}
_ids = itertools.count(1)
_local = threading.local()


def _round(n: int) -> int:
    return (n + _PAGE - 1) // _PAGE * _PAGE


def _error(message: str) -> int:
    return ctypes.cast(ffi.wasmtime_error_new(message.encode()), ctypes.c_void_p).value or 0


@ffi.wasmtime_memory_get_callback_t
def _get_memory(env: int, size_ptr: Any, max_ptr: Any) -> int:
    memory = _memories[env]
    size_ptr[0] = memory.size
    max_ptr[0] = memory.maximum
    return memory.base


@ffi.wasmtime_memory_grow_callback_t
def _grow_memory(env: int, new_size: int) -> int:
    memory = _memories[env]
    if new_size > memory.size:
        if _libc.mprotect(memory.base, _round(new_size), _PROT_RW) != 0:
            return _error(f"cannot grow linear memory to {new_size} bytes (errno {ctypes.get_errno()})")
        memory.size = new_size
    return 0


_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@_FINALIZER
def _finalize(env: int) -> None:
    memory = _memories.pop(env, None)
    if memory is not None:
        _libc.munmap(memory.base, memory.reserved)


@ffi.wasmtime_new_memory_callback_t
def _new_memory(_env: Any, _ty: Any, minimum: int, maximum: int, reserved: int, guard: int, out: Any) -> int:
    total = (reserved or _DEFAULT_RESERVATION) + guard
    base = _libc.mmap(None, total, _PROT_NONE, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
    if base in (None, _MAP_FAILED):
        return _error(f"cannot reserve {total} bytes for a linear memory")
    if minimum and _libc.mprotect(base, _round(minimum), _PROT_RW) != 0:
        _libc.munmap(base, total)
        return _error(f"cannot commit {minimum} bytes of linear memory")
    memory_id = next(_ids)
    memory = LinearMemory(base, total, minimum, maximum or (reserved or _DEFAULT_RESERVATION))
    _memories[memory_id] = memory
    created = getattr(_local, "created", None)
    if created is not None:
        created.append(memory)
    out[0].env = memory_id
    out[0].get_memory = _get_memory
    out[0].grow_memory = _grow_memory
    out[0].finalizer = _finalize
    return 0


@_FINALIZER
def _creator_finalize(_env: Any) -> None:
    return None


_creator = ffi.wasmtime_memory_creator_t()
_creator.env = None  # type: ignore[assignment]  # wasmtime annotates the ctypes fields as pointers; NULL and CFUNCTYPE are what C takes
_creator.new_memory = _new_memory  # type: ignore[assignment]  # (same: a CFUNCTYPE callback in a pointer-annotated field)
_creator.finalizer = _creator_finalize  # type: ignore[assignment]  # (same)


def install(config: Config) -> None:
    """Let our creator allocate every linear memory of engines made from `config` (no copy-on-write
    images then: instantiation copies the data segments, a few milliseconds for a Python guest)."""
    config.memory_init_cow = False
    ffi.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(_creator))


class Collect:
    """`with Collect() as memories:` gathers the memories created in this thread meanwhile (an
    instantiation); with `enabled` false (engines without our creator) it gathers nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> list[LinearMemory]:
        self.memories: list[LinearMemory] = []
        if self.enabled:
            _local.created = self.memories
        return self.memories

    def __exit__(self, *_exc: Any) -> None:
        _local.created = None
