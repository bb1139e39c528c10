"""The call's clock: pages and actions receive ``now`` and ``today`` from the host, in the tenant's
time zone (UTC when it has none). Guest-side code, no binding imports.

    from portal_guest import now, today

    @plugin.page("overview")
    def overview(params: dict) -> dict:
        return page("Overview", text(f"as of {now():%H:%M}, {today()}"))

Outside a page or action (events, extension points) ``now()`` reads the WASI wall clock in UTC.
The dispatcher takes the host's values out of the parameters (key ``_portal``) before the handler
sees them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["CONTEXT_KEY", "now", "time_zone", "today"]

CONTEXT_KEY = "_portal"
# One call runs at a time in an instance: the dispatcher sets this before a handler and clears it after.
_current: dict[str, str] = {}


def _enter(args: dict[str, Any]) -> dict[str, Any]:
    """Take the host's clock out of a page's parameters or an action's data (the dispatcher calls this)."""
    _current.clear()
    context = args.pop(CONTEXT_KEY, None)
    if isinstance(context, dict):
        _current.update({k: v for k, v in context.items() if isinstance(v, str)})
    return args


def _leave() -> None:
    _current.clear()


def now() -> dt.datetime:
    """The current time (timezone-aware): the host's, in the tenant's time zone, during a page or action."""
    value = _current.get("now")
    if value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    """Today's date in the tenant's time zone (during a page or action), else in UTC."""
    value = _current.get("today")
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return now().date()


def time_zone() -> str:
    """The name of the time zone of ``now()`` and ``today()`` ("UTC" when the tenant has none)."""
    return _current.get("time_zone") or "UTC"
