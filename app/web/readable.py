"""Audit entries, events and approval tasks as people read them: labels, never ids or raw JSON.

`Reader` resolves, in a few batched queries per page (never one per row):
- user ids and emails to display names;
- a record's entity to its label in the reader's language, the record to its display value, and a link
  to the live record when the reader may select that entity and the row is in their data scope;
- changed fields to their labels, select values to option labels, booleans to Yes/No, references to
  the referenced row's display value, or "(hidden)" when the reader may not see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.core.i18n import N_
from app.core.models import User
from app.manifest import FieldSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records.query import declared
from app.records.values import display
from app.web.context import RequestContext
from app.web.i18n import localize
from app.web.records.display import STANDARD_LABELS
from app.web.records.target import page_url_for

HIDDEN = N_("(hidden)")
SKIPPED = {"version", "updated_at", "updated_by", "created_at", "created_by", "tenant_id", "deleted_at"}
CREATED, CHANGED, DELETED, RESTORED = N_("created"), N_("changed"), N_("deleted"), N_("restored")
VERBS = {
    "create": CREATED,
    "created": CREATED,
    "update": CHANGED,
    "updated": CHANGED,
    "delete": DELETED,
    "deleted": DELETED,
    "restore": RESTORED,
    "restored": RESTORED,
}


def as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass
class Change:
    label: str
    before: str
    after: str


@dataclass
class RecordRef:
    """A record named for people: its entity's label, its display value (or "(hidden)"), a link or None."""

    entity: str
    text: str
    href: str | None = None
    may_select: bool = True  # the reader may select this entity: the raw JSON may be shown


@dataclass
class Readable:
    """One audit entry or event, readable: who did what to which record, and the changed fields."""

    who: str
    verb: str = ""
    record: RecordRef | None = None
    changes: list[Change] = field(default_factory=list)


@dataclass
class _Item:
    entity: EntityRef | None
    record_id: uuid.UUID | None
    before: Mapping[str, Any]
    after: Mapping[str, Any]


class Reader:
    """Collects what a page shows, then resolves it all at once (`resolve`)."""

    def __init__(self, ctx: RequestContext, plugins: list[LoadedPlugin]) -> None:
        self.ctx = ctx
        self.plugins = plugins
        self.language = getattr(ctx, "language", None) or "en"
        self._wanted: dict[str, set[uuid.UUID]] = {}  # entity name -> row ids
        self._user_ids: set[uuid.UUID] = set()
        self._emails: set[str] = set()
        self._labels: dict[str, dict[Any, str]] = {}
        self._names_by_id: dict[uuid.UUID, str] = {}
        self._names_by_email: dict[str, str] = {}

    @classmethod
    async def for_request(cls, ctx: RequestContext) -> Reader:
        return cls(ctx, await runtime.enabled_for(ctx.db, ctx.tenant_id))

    def entity(self, target_type: str) -> EntityRef | None:
        """The entity of an audit target type or event type (`plugin.entity[.action]`), if loaded."""
        parts = (target_type or "").split(".")
        if len(parts) < 2:
            return None
        ref = runtime.find_entity(self.plugins, parts[1])
        return ref if ref is not None and ref.plugin_id == parts[0] else None

    # --- collecting ---------------------------------------------------------------------------

    def want_user(self, user_id: Any = None, email: str | None = None) -> None:
        if (u := as_uuid(user_id) if user_id else None) is not None:
            self._user_ids.add(u)
        if email:
            self._emails.add(email.lower())

    def want_record(
        self,
        entity: EntityRef | None,
        record_id: Any,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> _Item:
        item = _Item(entity, as_uuid(record_id) if record_id else None, before or {}, after or {})
        if entity is not None:
            if item.record_id is not None:
                self._wanted.setdefault(entity.name, set()).add(item.record_id)
            for values in (item.before, item.after):
                for key, value in values.items():
                    spec = declared(entity, key)
                    if spec is not None and spec.type == "reference" and (u := as_uuid(value or "")):
                        self._wanted.setdefault(spec.entity or "", set()).add(u)
        return item

    # --- resolving ----------------------------------------------------------------------------

    async def resolve(self) -> None:
        """One query per entity named (rows the reader may see only) and one or two for user names."""
        svc = self.ctx.records()
        for name, ids in self._wanted.items():
            ref = runtime.find_entity(self.plugins, name)
            found = await svc.labels(ref, ids) if ref is not None and ids else {}
            by = declared(ref, ref.spec.display_field) if ref is not None else None
            if by is not None and by.type == "reference" and found:
                # A row named by a reference (a link table such as customer tags): the name of the row it
                # points at, within the reader's permission and scope like any other reference.
                target = runtime.find_entity(self.plugins, by.entity or "")
                pointed = {u for v in found.values() if (u := as_uuid(v))}
                names = await svc.labels(target, pointed) if target is not None and pointed else {}
                hidden = self.label(HIDDEN)
                found = {k: names.get(as_uuid(v), hidden) for k, v in found.items()}
            self._labels[name] = found
        if self._user_ids or self._emails:
            cond = []
            if self._user_ids:
                cond.append(User.id.in_(self._user_ids))
            if self._emails:
                cond.append(User.email.in_(self._emails))
            for uid, email, name in (
                await self.ctx.db.execute(
                    sa.select(User.id, User.email, User.display_name).where(sa.or_(*cond))
                )
            ).all():
                self._names_by_id[uid] = name
                self._names_by_email[email] = name

    # --- reading ------------------------------------------------------------------------------

    def user(self, user_id: Any = None, email: str | None = None) -> str:
        """A user's display name; the email when the account is gone; "—" when nobody (the system)."""
        if (u := as_uuid(user_id) if user_id else None) is not None and u in self._names_by_id:
            return self._names_by_id[u]
        if email:
            return self._names_by_email.get(email.lower(), email)
        return "—"

    def label(self, text: Any) -> str:
        return localize(self.ctx, text)

    def record(self, item: _Item) -> RecordRef | None:
        if item.entity is None:
            return None
        entity = self.label(item.entity.spec.label)
        may_select = self.ctx.can(item.entity.permission("select"))
        if item.record_id is None:
            return RecordRef(entity, "", may_select=may_select)
        text = self._labels.get(item.entity.name, {}).get(item.record_id)
        if text is None:
            return RecordRef(entity, self.label(HIDDEN), may_select=may_select)
        base = page_url_for(self.ctx, self.plugins, item.entity.name)
        return RecordRef(entity, text, f"{base}/{item.record_id}" if base else None)

    def value(self, spec: FieldSpec | None, value: Any) -> str:
        if value is None or value == "":
            return "—"
        if spec is None:
            return str(value)[:200]
        if spec.type == "reference":
            u = as_uuid(value)
            found = self._labels.get(spec.entity or "", {}).get(u) if u else None
            return found if found is not None else self.label(HIDDEN)
        if spec.type == "select":
            option = next((o for o in spec.options if o.value == value), None)
            return self.label(option.label) if option is not None else str(value)
        if spec.type == "boolean" and isinstance(value, bool):
            return self.label(N_("Yes") if value else N_("No"))
        return display(spec, value)

    def changes(self, item: _Item) -> list[Change]:
        """The fields that differ between before and after (all of after when there is no before)."""
        if item.entity is None:
            return []
        before, after = item.before, item.after
        out = []
        for key in [*after, *(k for k in before if k not in after)]:
            if key in SKIPPED or key == "id" or (before and after and before.get(key) == after.get(key)):
                continue
            spec = declared(item.entity, key)
            label = self.label(spec.label if spec else STANDARD_LABELS.get(key, key))
            out.append(Change(label, self.value(spec, before.get(key)), self.value(spec, after.get(key))))
        return out

    def readable(self, who: str, action: str, item: _Item) -> Readable:
        verb = VERBS.get(action.rsplit(".", 1)[-1])
        return Readable(
            who=who,
            verb=self.label(verb) if verb else "",
            record=self.record(item),
            changes=self.changes(item) if action.endswith(("update", "updated")) else [],
        )
