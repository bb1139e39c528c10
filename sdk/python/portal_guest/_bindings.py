"""The componentize-py bindings, or stand-ins when they are absent.

Guest-side code: runs inside the plugin component. Inside the component the generated modules
always exist. On the host (the SDK's unit tests) they do not, so ``host`` is ``None`` (tests assign a
stub object) and ``Err``/``GuestBase`` are local stand-ins with the same behaviour.

Everything is imported at module level on purpose: componentize-py snapshots the interpreter after
importing ``app``, and a component built with ``--stub-wasi`` has no filesystem, so an ``import``
that runs later (inside a call) traps.
"""

from __future__ import annotations

from typing import Any

try:
    from componentize_py_types import Err
    from wit_world import exports as _exports
    from wit_world.imports import host as _host_module

    GuestBase: type = _exports.Guest
    # Worlds before extension points had no `extensions` export (None then: nothing to implement).
    ExtensionsBase: type | None = getattr(_exports, "Extensions", None)
    host: Any = _host_module
    IN_COMPONENT = True
except ImportError:  # on the host: no generated bindings

    class Err(Exception):  # type: ignore[no-redef]
        """Stand-in for ``componentize_py_types.Err``: the error case of a WIT ``result``."""

        def __init__(self, value: Any) -> None:
            super().__init__(value)
            self.value = value

    GuestBase = object
    ExtensionsBase = None
    host = None
    IN_COMPONENT = False

__all__ = ["IN_COMPONENT", "Err", "ExtensionsBase", "GuestBase", "host"]
