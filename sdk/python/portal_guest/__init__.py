"""portal_guest: the SDK for writing Portal plugins in Python.

Guest-side code: this package runs INSIDE a plugin's WebAssembly component (built by
``portal plugin build`` with componentize-py); the portal host never imports it. It uses only the
standard library and the generated ``wit_world``/``componentize_py_types`` bindings.

    from portal_guest import Plugin, db, page, stat, table

    plugin = Plugin()

    @plugin.page("overview")
    def overview(params: dict) -> dict:
        rows = db.query("note", limit=10)
        return page("Overview", stat("Notes", rows["total"]), table(["title"], rows["rows"]))

    Guest = plugin.guest_class()

See docs/plugin-authors.md (the SDK) and docs/ui-instructions.md (the UI vocabulary).
"""

from __future__ import annotations

from .api import HostError, can, config, current_user, db, events, log, notify
from .clock import now, time_zone, today
from .plugin import Plugin
from .ui import (
    alert,
    button,
    card,
    cell_link,
    chart,
    columns,
    field,
    form,
    heading,
    item_list,
    link,
    page,
    redirect,
    result,
    stat,
    table,
    text,
    toast,
)

__all__ = [
    "HostError",
    "Plugin",
    "alert",
    "button",
    "can",
    "card",
    "cell_link",
    "chart",
    "columns",
    "config",
    "current_user",
    "db",
    "events",
    "field",
    "form",
    "heading",
    "item_list",
    "link",
    "log",
    "notify",
    "now",
    "page",
    "redirect",
    "result",
    "stat",
    "table",
    "text",
    "time_zone",
    "toast",
    "today",
]
