"""Approval rule kinds: entry conditions ("is this step needed for this record?") and approver
selectors ("who decides this step?").

A process step names a kind and carries its config dict. The built-in kinds live here; each is
registered by name in CONDITIONS / SELECTORS, so another implementation (a plugin's WASM extension,
issue 6's extension points) plugs in with `register_condition` / `register_selector` and the same two
methods: `check` (validate and normalise a config when an admin saves a process; errors keyed by the
config field) and `evaluate` / `select` (at run time, never raising for bad data: a selector returns
nobody plus the reason, and the engine stops the instance as `stuck` with that reason).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, ValidationFailed
from app.core.models import Membership
from app.identity.directory import active_member_ids
from app.manifest import FieldSpec
from app.plugins.runtime import EntityRef
from app.records.values import FieldError, parse

MAX_CLAUSES = 20


@dataclass(frozen=True)
class RuleContext:
    """What a condition or selector sees at run time."""

    session: AsyncSession
    tenant_id: uuid.UUID
    entity: EntityRef
    record: Mapping[str, Any]  # typed field values (the instance's snapshot, parsed per field)
    requester_id: uuid.UUID | None


@dataclass(frozen=True)
class Selection:
    user_ids: list[uuid.UUID]
    reason: str = ""  # why nobody was selected (shown to admins on a stuck instance)


class ConditionKind(Protocol):
    name: str
    label: str

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def evaluate(self, ctx: RuleContext, config: Mapping[str, Any]) -> bool: ...

    def describe(self, config: Mapping[str, Any]) -> str: ...


class SelectorKind(Protocol):
    name: str
    label: str

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection: ...

    def describe(self, config: Mapping[str, Any]) -> str: ...


CONDITIONS: dict[str, ConditionKind] = {}
SELECTORS: dict[str, SelectorKind] = {}


def register_condition(kind: ConditionKind) -> None:
    CONDITIONS[kind.name] = kind


def register_selector(kind: SelectorKind) -> None:
    SELECTORS[kind.name] = kind


# --- conditions over field values ----------------------------------------------------------------

ORDERED_OPS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
OPS = {"eq": "=", "ne": "≠", **ORDERED_OPS, "in": "is one of", "empty": "is empty"}
ORDERED_TYPES = {"integer", "decimal", "date", "datetime", "string"}
COMPARABLE_TYPES = ORDERED_TYPES | {"select", "boolean", "uuid", "reference", "text"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | uuid.UUID):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    return value


class FieldCondition:
    """All of a list of clauses `field op value` hold (op: eq ne gt ge lt le in empty)."""

    name = "fields"
    label = "Field values (all of)"

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        clauses = config.get("all")
        if not isinstance(clauses, list) or not clauses:
            raise ValidationFailed({"all": "give at least one clause (field, operator, value)"})
        if len(clauses) > MAX_CLAUSES:
            raise ValidationFailed({"all": f"at most {MAX_CLAUSES} clauses"})
        errors: dict[str, str] = {}
        out = []
        for i, clause in enumerate(clauses):
            where = f"all[{i}]"
            if not isinstance(clause, Mapping):
                errors[where] = "must be a table with field, op and value"
                continue
            name, op = str(clause.get("field") or ""), str(clause.get("op") or "")
            spec = entity.spec.field(name) if entity.spec.has_field(name) else None
            if spec is None:
                errors[f"{where}.field"] = f"{entity.name} has no field {name!r}"
                continue
            if op not in OPS:
                errors[f"{where}.op"] = f"unknown operator {op!r} (use {', '.join(OPS)})"
                continue
            if spec.type not in COMPARABLE_TYPES:
                errors[f"{where}.field"] = f"{spec.label} ({spec.type}) cannot be compared"
                continue
            if op in ORDERED_OPS and spec.type not in ORDERED_TYPES:
                errors[f"{where}.op"] = f"{spec.label} ({spec.type}) has no order; use eq, ne, in or empty"
                continue
            try:
                value = self._value(spec, op, clause.get("value"))
            except FieldError as exc:
                errors[f"{where}.value"] = str(exc)
                continue
            out.append({"field": name, "op": op, "value": value})
        if errors:
            raise ValidationFailed(errors)
        return {"all": out}

    @staticmethod
    def _value(spec: FieldSpec, op: str, raw: Any) -> Any:
        if op == "empty":
            return None
        if op == "in":
            items = raw if isinstance(raw, list) else [s for s in str(raw or "").split(",")]
            parsed = [parse(spec, item) for item in items]
            if not [p for p in parsed if p is not None]:
                raise FieldError("give one or more values, separated by commas")
            return [_jsonable(p) for p in parsed if p is not None]
        value = parse(spec, raw)
        if value is None:
            raise FieldError("give a value to compare with (or use the 'empty' operator)")
        return _jsonable(value)

    async def evaluate(self, ctx: RuleContext, config: Mapping[str, Any]) -> bool:
        return all(self._holds(ctx.entity, ctx.record, clause) for clause in config.get("all", []))

    @staticmethod
    def _holds(entity: EntityRef, record: Mapping[str, Any], clause: Mapping[str, Any]) -> bool:
        spec = entity.spec.field(clause["field"]) if entity.spec.has_field(clause["field"]) else None
        if spec is None:  # the field was removed by an upgrade: the clause cannot hold
            return False
        actual, op = record.get(spec.name), clause["op"]
        if op == "empty":
            return actual in (None, "")
        if op == "in":
            return actual is not None and actual in [parse(spec, v) for v in clause["value"]]
        wanted = parse(spec, clause["value"])
        if op == "eq":
            return actual == wanted
        if op == "ne":
            return actual != wanted
        if actual is None:
            return False  # an empty value is neither above nor below anything
        try:
            return {
                "gt": actual > wanted,
                "ge": actual >= wanted,
                "lt": actual < wanted,
                "le": actual <= wanted,
            }[op]
        except TypeError:
            return False

    def describe(self, config: Mapping[str, Any]) -> str:
        parts = []
        for c in config.get("all", []):
            value = (
                ""
                if c["op"] == "empty"
                else (", ".join(map(str, c["value"])) if c["op"] == "in" else str(c["value"]))
            )
            parts.append(f"{c['field']} {OPS.get(c['op'], c['op'])} {value}".strip())
        return " and ".join(parts)


# --- approver selectors --------------------------------------------------------------------------


class RoleSelector:
    """Every active member holding a role of the tenant (any one of them decides)."""

    name = "role"
    label = "Members with a role"

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        ref = str(config.get("role") or config.get("role_id") or "").strip()
        if not ref:
            raise ValidationFailed({"role": "choose a role"})
        from app.access.roles import get_role

        try:
            role = await get_role(session, tenant_id, ref)
        except NotFound:
            raise ValidationFailed({"role": f"no role {ref!r} in this tenant"}) from None
        return {"role_id": str(role.id), "role": role.name}

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection:
        users = await active_member_ids(
            ctx.session, ctx.tenant_id, Membership.role_id == uuid.UUID(config["role_id"])
        )
        return Selection(users, "" if users else f"nobody holds the role {config.get('role')!r}")

    def describe(self, config: Mapping[str, Any]) -> str:
        return f"anyone with the role {config.get('role')}"


class UserSelector:
    """One named member of the tenant."""

    name = "user"
    label = "A named user"

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        from app.identity.hierarchy import resolve_member

        ref = str(config.get("user") or config.get("user_id") or "").strip()
        if not ref:
            raise ValidationFailed({"user": "enter the email of a member of this tenant"})
        try:
            user = await resolve_member(session, tenant_id, ref, "user")
        except ValidationFailed as exc:  # its message talks about managers
            raise ValidationFailed({"user": f"{ref!r} is not a member of this tenant"}) from exc
        return {"user_id": str(user.id), "user": user.email}

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection:
        users = await active_member_ids(
            ctx.session, ctx.tenant_id, Membership.user_id == uuid.UUID(config["user_id"])
        )
        return Selection(
            users, "" if users else f"{config.get('user')} is no longer an active member of this tenant"
        )

    def describe(self, config: Mapping[str, Any]) -> str:
        return str(config.get("user"))


class ManagerSelector:
    """The requester's manager in this tenant (tenant_users.manager_id, app.identity.hierarchy)."""

    name = "manager"
    label = "The requester's manager"

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {}

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection:
        if ctx.requester_id is None:
            return Selection([], "the request was not made by a user, so there is no manager to ask")
        manager = await ctx.session.scalar(
            sa.select(Membership.manager_id).where(
                Membership.tenant_id == ctx.tenant_id, Membership.user_id == ctx.requester_id
            )
        )
        if manager is None:
            return Selection([], "the requester has no manager in this tenant")
        users = await active_member_ids(ctx.session, ctx.tenant_id, Membership.user_id == manager)
        return Selection(
            users, "" if users else "the requester's manager is not an active member of this tenant"
        )

    def describe(self, config: Mapping[str, Any]) -> str:
        return "the requester's manager"


register_condition(FieldCondition())
register_selector(RoleSelector())
register_selector(UserSelector())
register_selector(ManagerSelector())
