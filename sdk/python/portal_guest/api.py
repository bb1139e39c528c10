"""Typed wrappers around the host imports (``portal:plugin/host``): Python values in, Python values out.

Guest-side code: runs inside the plugin component, never in the portal host.

A refused or failed host call raises :class:`HostError` with the host's message. Left uncaught in a
page or action handler, the :class:`~portal_guest.plugin.Plugin` dispatcher returns that message as
the call's error result.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from . import _bindings
from ._jsonutil import dumps

__all__ = ["HostError", "can", "config", "current_user", "db", "events", "files", "log", "notify"]


class HostError(Exception):
    """The host refused or failed a call; ``message`` is its explanation (meant for people)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _call(name: str, *args: Any) -> Any:
    host = _bindings.host
    if host is None:
        raise HostError(f"host.{name} is only available inside a plugin component")
    try:
        return getattr(host, name)(*args)
    except _bindings.Err as exc:
        raise HostError(str(exc.value)) from None


def _parse(text: str, call: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError as exc:
        raise HostError(f"{call}: the host sent invalid JSON ({exc})") from None


class Db:
    """The plugin's entities (and those of plugins it depends on), in the acting user's tenant."""

    def insert(self, entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row; returns it with its standard fields (``id``, ``version``, ...)."""
        return _parse(_call("db_insert", entity, dumps(dict(data))), "db.insert")

    def query(
        self,
        entity: str,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        sort: str | None = None,
        q: str | None = None,
        expand: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Rows matching ``filter``: ``{"rows": [...], "total": n}``.

        ``filter`` maps a field to a value (equality) or to operator tests such as
        ``{"quantity": {"lt": 10}}`` (eq, ne, lt, lte, gt, gte). ``sort`` is a field name, ``-field``
        for descending (the host's default is ``-created_at``); ``q`` a search string. ``expand``
        names child sets of the entity (its ``children`` in plugin.toml, e.g. ``["lines"]``) to nest
        into each row as a list of child rows, in their order.
        """
        page: dict[str, Any] = {"limit": limit, "offset": offset}
        if sort is not None:
            page["sort"] = sort
        if q is not None:
            page["q"] = q
        names = [expand] if isinstance(expand, str) else list(expand)
        if names:
            page["expand"] = names
        return _parse(_call("db_query", entity, dumps(dict(filter or {})), dumps(page)), "db.query")

    def get(self, entity: str, id: str, *, expand: Iterable[str] = ()) -> dict[str, Any] | None:
        """The live row with this id, or None when there is none (or the acting user may not see it);
        ``expand`` nests child sets as in :meth:`query`."""
        rows = self.query(entity, {"id": str(id)}, limit=1, expand=expand)["rows"]
        return rows[0] if rows else None

    def save_with_children(
        self,
        entity: str,
        data: Mapping[str, Any],
        children: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        id: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Create (no ``id``) or update (``id`` and the ``version`` you read) a row together with its child
        sets, all in one write that is kept whole or not at all, e.g. an order and its lines::

            db.save_with_children("purchase_order", {"order_no": "PO-7"},
                                  {"lines": [{"item_id": item, "quantity": 5}]})

        Each set lists all the rows the parent should have, in order: a row with ``id`` (and the
        ``version`` it was read at) updates that child, a row without one is added, a child left out is
        deleted. Returns the parent with each set nested. A refusal raises :class:`HostError` naming the
        row and field (``lines[1].quantity: ...``).
        """
        body = {**dict(data), **{name: [dict(row) for row in rows] for name, rows in children.items()}}
        if id is None:
            return _parse(_call("db_insert", entity, dumps(body)), "db.insert")
        if version is None:
            raise HostError("db.save_with_children: updating a row needs the version you read")
        return _parse(_call("db_update", entity, str(id), dumps(body), int(version)), "db.update")

    def update(self, entity: str, id: str, data: Mapping[str, Any], version: int) -> dict[str, Any]:
        """Update a row read at ``version`` (a conflict if someone changed it since); returns the new row."""
        return _parse(_call("db_update", entity, str(id), dumps(dict(data)), int(version)), "db.update")

    def delete(self, entity: str, id: str) -> None:
        """Soft-delete a row (it can be restored from the crud page)."""
        _call("db_delete", entity, str(id))

    def aggregate(
        self,
        entity: str,
        group_by: Iterable[str] = (),
        metrics: Iterable[tuple[str, str | None] | str | Mapping[str, Any]] = (),
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Grouped figures, one dict per group, e.g.
        ``db.aggregate("item", ["category"], [("sum", "quantity"), ("count", None)])``.

        A metric is ``(fn, field)`` (fn: count, sum, avg, min, max), ``(fn, None)``/``"count"`` for
        a row count, or a ready ``{"fn", "field"}`` dict. Each group's dict holds the ``group_by``
        fields and one key per metric: ``count``, or ``<fn>_<field>`` such as ``sum_quantity``
        (decimals arrive as strings). ``limit`` caps the number of groups.
        """
        query: dict[str, Any] = {"group_by": list(group_by), "metrics": [_metric(m) for m in metrics]}
        if filter is not None:
            query["filter"] = dict(filter)
        if limit is not None:
            query["limit"] = limit
        out = _parse(_call("db_aggregate", entity, dumps(query)), "db.aggregate")
        # Accept both a bare list and {"rows": [...]} so the SDK does not pin the host's envelope.
        if isinstance(out, dict) and isinstance(out.get("rows"), list):
            return out["rows"]
        return out if isinstance(out, list) else []


def _metric(m: tuple[str, str | None] | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(m, str):
        return {"fn": m}
    if isinstance(m, Mapping):
        return dict(m)
    fn, field_name = m
    return {"fn": fn} if field_name is None else {"fn": fn, "field": field_name}


class Events:
    def publish(self, event_type: str, payload: Mapping[str, Any] | None = None) -> None:
        """Publish ``<plugin>.<entity>.<action>`` (declared in the manifest); delivered after the call commits."""
        _call("event_publish", event_type, dumps(dict(payload or {})))


class Config:
    def get(self, key: str, default: Any = None) -> Any:
        """A value of this tenant's active configuration of the plugin (or its declared default), typed by
        the manifest's ``[[config.fields]]``: ``str`` (string, text, select, url, email, secrets), ``int``,
        :class:`~decimal.Decimal` or ``bool``; ``default`` when unset or not declared."""
        value = _call("config_get", key)
        if value is None:
            return default
        try:  # the host answers JSON text; decimals are exact JSON numbers
            return json.loads(value, parse_float=Decimal)
        except ValueError as exc:
            raise HostError(f"config.get: the host sent invalid JSON ({exc})") from None


class Log:
    """The plugin's log (shown to administrators). ``print`` does not work in a component: use this."""

    def _write(self, level: str, message: Any) -> None:
        host = _bindings.host
        if host is not None:  # outside a component there is nowhere to log to
            host.log_write(level, str(message))

    def debug(self, message: Any) -> None:
        self._write("debug", message)

    def info(self, message: Any) -> None:
        self._write("info", message)

    def warning(self, message: Any) -> None:
        self._write("warning", message)

    def error(self, message: Any) -> None:
        self._write("error", message)


db = Db()


class Files:
    """Files of records' file and image fields (``files = true`` under [permissions]), read through
    the record: only files of records the acting user may see."""

    def info(self, entity: str, id: str, file_id: str) -> dict[str, Any]:
        """``{"id", "field", "name", "size", "content_type"}`` of one file of a record."""
        return _parse(_call("file_read", entity, id, file_id, False), "files.info") or {}

    def read(self, entity: str, id: str, file_id: str) -> bytes:
        """The file's bytes (up to 8 MiB)."""
        found = _parse(_call("file_read", entity, id, file_id, True), "files.read") or {}
        return base64.b64decode(found.get("content") or "")


events = Events()
files = Files()
config = Config()
log = Log()


def current_user() -> dict[str, Any]:
    """The acting user: ``{"id", "email", "display_name", "tenant_id", "tenant_slug", "language"}``."""
    return _parse(_call("current_user"), "current_user") or {}


def can(permission: str) -> bool:
    """Whether the acting user holds ``permission`` (``db.<entity>.<op>`` or ``ui.<plugin>.<code>``)."""
    return bool(_call("check_permission", permission))


def notify(user_ids: Iterable[str], title: str, body: str = "", link: str | None = None) -> int:
    """Send an in-app notification to members of the tenant (``messages = true`` under [permissions]).

    ``link`` must be a relative URL inside the portal (``/t/<tenant>/...``). Nothing is sent when any
    recipient is not a member of the tenant (:class:`HostError`). Returns how many users were notified.
    """
    if isinstance(user_ids, str):  # a lone id would otherwise be split into characters
        user_ids = [user_ids]
    return int(_call("notify", [str(u) for u in user_ids], title, body, link))
