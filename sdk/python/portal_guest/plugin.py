"""The dispatcher: authors register handlers with decorators instead of writing the raw ``Guest`` class.

Guest-side code: runs inside the plugin component, never in the portal host.

    plugin = Plugin()

    @plugin.page("stocktaking")
    def stocktaking(params: dict) -> dict: ...

    @plugin.action("stocktaking", "adjust")
    def adjust(data: dict) -> dict: ...

    @plugin.condition("amount-above")
    def amount_above(config: dict, context: dict) -> bool: ...

    Guest = plugin.guest_class()   # componentize-py looks for ``app.Guest`` (and ``app.Extensions``,
                                   # which guest_class() defines in the calling module when missing)

Every export catches what the handler raises and returns it as the call's error result (a WIT
``result<_, string>``): a :class:`HostError` or :class:`ValueError` with its message, anything else
with its type, message and the handler's file and line. An uncaught exception would otherwise trap the
instance (its traceback goes to stderr, which the host keeps in the plugin's log).
"""

from __future__ import annotations

import random
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import _bindings, clock
from ._jsonutil import dumps, loads_object
from .api import HostError, log
from .ui import VERSION, _blocks

__all__ = ["Plugin"]

F = TypeVar("F", bound=Callable[..., Any])
_CO_VARARGS = 0x04


def _arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (so handlers may omit the ones they do not need)."""
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or callable object: give it everything
        return 99
    if code.co_flags & _CO_VARARGS:
        return 99
    return code.co_argcount - (1 if isinstance(fn, types.MethodType) else 0)


def _norm(path: str) -> str:
    return path.strip().strip("/")


def _where(exc: BaseException) -> str:
    # Frame attributes only: traceback.extract_tb would read source lines, and the guest has no files.
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return ""
    code = last.tb_frame.f_code
    name = code.co_filename.rsplit("/", 1)[-1]
    return f" ({name} line {last.tb_lineno}, in {code.co_name})"


def _err(exc: BaseException) -> Exception:
    if isinstance(exc, _bindings.Err):
        return exc
    if isinstance(exc, HostError):
        return _bindings.Err(exc.message)
    if isinstance(exc, ValueError):
        return _bindings.Err(str(exc))
    return _bindings.Err(f"{type(exc).__name__}: {exc}{_where(exc)}")


def _event_matches(pattern: str, event_type: str) -> bool:
    """Exact names, or ``*`` standing for one dot-separated segment (``crm.customer.*``)."""
    want, got = pattern.split("."), event_type.split(".")
    return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got, strict=True))


def _document(value: Any, what: str, *, allow_none: bool) -> dict[str, Any]:
    if value is None and allow_none:
        return {"version": VERSION, "blocks": []}
    if isinstance(value, Mapping):
        if "blocks" in value:
            doc = dict(value)
            doc.setdefault("version", VERSION)
            return doc
        if "type" in value:  # a single block
            return {"version": VERSION, "blocks": [dict(value)]}
    if isinstance(value, list | tuple):
        return {"version": VERSION, "blocks": _blocks(value, what)}
    raise ValueError(f"{what} returned {type(value).__name__}; return portal_guest.page(...) or result(...)")


class Plugin:
    """Handlers by page path, action and event pattern; :meth:`guest_class` makes the component's export."""

    def __init__(self) -> None:
        self._pages: dict[str, tuple[Callable[..., Any], int]] = {}
        self._actions: dict[tuple[str, str], tuple[Callable[..., Any], int]] = {}
        self._events: list[tuple[str, Callable[..., Any], int]] = []
        self._init: list[Callable[[], Any]] = []
        self._tenant_created: list[tuple[Callable[..., Any], int]] = []
        self._extensions: dict[tuple[str, str], Callable[..., Any]] = {}

    # ---- registration (runs at import time, i.e. at build time: mistakes fail the build) ------------

    def page(self, path: str) -> Callable[[F], F]:
        """Render the custom page ``path``: the manifest's page path or its last segment(s)
        (``"stocktaking"`` matches ``/inventory/stocktaking``). The handler gets the query
        parameters as a dict and returns ``page(...)``."""
        key = _norm(path)
        if not key:
            raise ValueError("plugin.page needs a page path")

        def register(fn: F) -> F:
            if key in self._pages:
                raise ValueError(f"page '{path}' is registered twice")
            self._pages[key] = (fn, _arity(fn))
            return fn

        return register

    def action(self, path: str, name: str) -> Callable[[F], F]:
        """Handle the form post or button ``name`` on page ``path``; the handler gets the posted data
        as a dict and returns ``result(...)``, ``page(...)``, ``redirect(...)`` or ``None``."""
        key = (_norm(path), name)
        if not key[0] or not name:
            raise ValueError("plugin.action needs a page path and an action name")

        def register(fn: F) -> F:
            if key in self._actions:
                raise ValueError(f"action '{name}' of page '{path}' is registered twice")
            self._actions[key] = (fn, _arity(fn))
            return fn

        return register

    def on_event(self, pattern: str) -> Callable[[F], F]:
        """Handle a subscribed event: an exact name or a pattern like ``crm.customer.*``. The handler
        gets ``(payload)`` or, if it takes two arguments, ``(event_type, payload)``."""
        if not pattern:
            raise ValueError("plugin.on_event needs an event name or pattern")

        def register(fn: F) -> F:
            self._events.append((pattern, fn, _arity(fn)))
            return fn

        return register

    def on_init(self, fn: F) -> F:
        """Run once per fresh instance, before any other call (decorator, no parentheses)."""
        self._init.append(fn)
        return fn

    def on_tenant_created(self, fn: F) -> F:
        """Run when a tenant is created with this plugin enabled; gets the tenant id (decorator)."""
        self._tenant_created.append((fn, _arity(fn)))
        return fn

    def _extension(self, point: str, name: str) -> Callable[[F], F]:
        if not name or not isinstance(name, str):
            raise ValueError(f"plugin.{point.replace('-', '_')} needs the extension's name from plugin.toml")

        def register(fn: F) -> F:
            if (point, name) in self._extensions:
                raise ValueError(f"{point} '{name}' is registered twice")
            self._extensions[(point, name)] = fn
            return fn

        return register

    def condition(self, name: str) -> Callable[[F], F]:
        """Implement the ``condition`` extension ``name``: ``fn(config, context) -> bool``."""
        return self._extension("condition", name)

    def user_selector(self, name: str) -> Callable[[F], F]:
        """Implement the ``user-selector`` extension ``name``: ``fn(config, context) -> list of user ids``."""
        return self._extension("user-selector", name)

    def record_validator(self, name: str) -> Callable[[F], F]:
        """Implement the ``record-validator`` extension ``name``: ``fn(config, context) -> {field: message}``
        (an empty dict or ``None`` when the record is fine)."""
        return self._extension("record-validator", name)

    def auth_verifier(self, name: str) -> Callable[[F], F]:
        """Implement the ``auth-verifier`` extension ``name``: ``fn(config, request) -> {"email": ...}`` (or
        ``{"user_id": ...}``); raise ``ValueError("why")`` to refuse the link."""
        return self._extension("auth-verifier", name)

    # ---- dispatch: the Guest export's behaviour; raises Err(message) for an error result -------------

    def _find_page(self, keys: Any, page_path: str) -> str | None:
        wanted = _norm(page_path)
        if wanted in keys:
            return wanted
        # The longest registered suffix wins: "stock/count" over "count".
        matches = [k for k in keys if wanted.endswith("/" + k)]
        return max(matches, key=len) if matches else None

    def init(self) -> None:
        try:
            # The random module's state comes from the build's snapshot, the same in every instance:
            # reseed it from the host's random source (WASI) whenever an instance starts.
            random.seed()
            for fn in self._init:
                fn()
        except Exception as exc:
            raise _err(exc) from None

    def tenant_created(self, tenant_id: str) -> None:
        try:
            for fn, arity in self._tenant_created:
                fn(*(tenant_id,)[:arity])
        except Exception as exc:
            raise _err(exc) from None

    def handle_event(self, event_type: str, payload: str) -> None:
        try:
            handlers = [(fn, n) for pattern, fn, n in self._events if _event_matches(pattern, event_type)]
            if not handlers:
                log.warning(f"no handler for event '{event_type}' (add @plugin.on_event(\"{event_type}\"))")
                return
            data = loads_object(payload, f"payload of event '{event_type}'")
            for fn, arity in handlers:
                fn(*((data,) if arity < 2 else (event_type, data)))
        except Exception as exc:
            raise _err(exc) from None

    def render_page(self, page_path: str, params: str) -> str:
        try:
            key = self._find_page(self._pages, page_path)
            if key is None:
                raise ValueError(f"no page '{page_path}'")
            fn, arity = self._pages[key]
            args = clock._enter(loads_object(params, "page parameters"))
            doc = _document(fn(*(args,)[:arity]), f"page '{page_path}'", allow_none=False)
            return dumps(doc)
        except Exception as exc:
            raise _err(exc) from None
        finally:
            clock._leave()

    def handle_action(self, page_path: str, action: str, data: str) -> str:
        try:
            # Match among the pages having this action, so "stocktaking" and "/inventory/stocktaking"
            # spellings of the same page may be mixed between @page and @action.
            key = self._find_page({k for k, a in self._actions if a == action}, page_path)
            if key is None:
                if self._find_page({k for k, _ in self._actions} | set(self._pages), page_path) is None:
                    raise ValueError(f"no page '{page_path}'")
                raise ValueError(f"no action '{action}' on page '{page_path}'")
            fn, arity = self._actions[(key, action)]
            args = clock._enter(loads_object(data, f"data of action '{action}'"))
            doc = _document(fn(*(args,)[:arity]), f"action '{action}'", allow_none=True)
            return dumps(doc)
        except Exception as exc:
            raise _err(exc) from None
        finally:
            clock._leave()

    def run_extension(self, point: str, name: str, config: str, context: str) -> Any:
        """Call the handler of extension ``name``; its answer is checked for the point's shape here, so
        a wrong return type is a clear error rather than a trap while lowering it."""
        try:
            fn = self._extensions.get((point, name))
            if fn is None:
                raise ValueError(
                    f"this plugin implements no {point} '{name}' (register it with "
                    f'@plugin.{point.replace("-", "_")}("{name}"))'
                )
            answer = fn(loads_object(config, "config"), loads_object(context, "context"))
            if point == "condition":
                if not isinstance(answer, bool):
                    raise ValueError(
                        f"condition '{name}' returned {type(answer).__name__}, not True or False"
                    )
                return answer
            if point == "user-selector":
                if not isinstance(answer, list | tuple) or not all(isinstance(u, str) for u in answer):
                    raise ValueError(
                        f"user selector '{name}' returned {type(answer).__name__}, not a list of "
                        "user id strings"
                    )
                return list(answer)
            if point == "record-validator":
                answer = answer or {}
                if not isinstance(answer, Mapping):
                    raise ValueError(
                        f"record validator '{name}' returned {type(answer).__name__}, not a dict "
                        "of field -> message"
                    )
                return dumps({str(k): str(v) for k, v in answer.items()})
            if not isinstance(answer, Mapping):
                raise ValueError(
                    f"auth verifier '{name}' returned {type(answer).__name__}, not a dict with "
                    "'email' or 'user_id'"
                )
            return dumps(dict(answer))
        except Exception as exc:
            raise _err(exc) from None

    def extensions_class(self) -> type:
        """A class implementing ``wit_world.exports.Extensions`` (the extension points), dispatching to
        the handlers registered with @plugin.condition and friends; unregistered names answer an error."""
        plugin = self
        base = _bindings.ExtensionsBase or object

        class Extensions(base):  # type: ignore[misc,valid-type]
            def check_condition(self, name: str, config: str, context: str) -> bool:
                return bool(plugin.run_extension("condition", name, config, context))

            def select_users(self, name: str, config: str, context: str) -> list[str]:
                return list(plugin.run_extension("user-selector", name, config, context))

            def validate_record(self, name: str, config: str, context: str) -> str:
                return str(plugin.run_extension("record-validator", name, config, context))

            def verify_auth(self, name: str, config: str, request: str) -> str:
                return str(plugin.run_extension("auth-verifier", name, config, request))

        return Extensions

    def guest_class(self) -> type:
        """A class implementing ``wit_world.exports.Guest`` that dispatches to this plugin's handlers.
        Assign it to ``Guest`` at the top level of ``app.py``."""
        plugin = self

        class Guest(_bindings.GuestBase):  # type: ignore[misc,valid-type]
            def init(self) -> None:
                plugin.init()

            def on_tenant_created(self, tenant_id: str) -> None:
                plugin.tenant_created(tenant_id)

            def handle_event(self, event_type: str, payload: str) -> None:
                plugin.handle_event(event_type, payload)

            def render_page(self, page_path: str, params: str) -> str:
                return plugin.render_page(page_path, params)

            def handle_action(self, page_path: str, action: str, data: str) -> str:
                return plugin.handle_action(page_path, action, data)

        # componentize-py also wants `app.Extensions`; guests written before extension points (and those
        # implementing none) get the dispatcher here, so they keep building unchanged.
        if _bindings.ExtensionsBase is not None:
            sys._getframe(1).f_globals.setdefault("Extensions", self.extensions_class())
        return Guest
