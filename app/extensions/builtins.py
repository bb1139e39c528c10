"""The built-in approval rule kinds and extension implementations, and the per-app registry of them.

Approval steps (app.workflow) name a kind and carry its config dict: entry conditions ("is this step
needed for this record?") and approver selectors ("who decides this step?"). Each kind has `check`
(validate and normalise a config when an admin saves a process; errors keyed by the config field) and
`evaluate` / `select` (at run time, never raising for bad data: a selector returns nobody plus the
reason, and the engine stops the instance as `stuck` with that reason). Built in: the field condition,
the role / user / manager selectors, and the "extension" kinds that run a configuration kept under
Extension points (built-in or a plugin's WASM). The same built-in kinds are the extension points'
built-in implementations, configured by values instead of a step's config.

`standard_registry` builds an app's ExtensionRegistry from them (app.server; a test may add kinds to its
app's registry): nothing here is a module-level registry.
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
from app.core.i18n import N_
from app.core.models import ExtensionConfig, Membership
from app.extensions.calls import check_condition, config_values, select_users
from app.extensions.registry import (
    CONDITION,
    USER_SELECTOR,
    Builtin,
    BuiltinCheck,
    BuiltinRun,
    Context,
    ExtensionFailed,
    ExtensionRegistry,
    Implementation,
    NobodySelected,
    resolve,
)
from app.identity.directory import active_member_ids
from app.manifest import ConfigFieldSpec, FieldSpec, SelectOption
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


# --- conditions over field values ----------------------------------------------------------------

ORDERED_OPS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
OPS = {"eq": "=", "ne": "≠", **ORDERED_OPS, "in": N_("is one of"), "empty": N_("is empty")}
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
    label = N_("Field values (all of)")

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        clauses = config.get("all")
        if not isinstance(clauses, list) or not clauses:
            raise ValidationFailed({"all": N_("give at least one clause (field, operator, value)")})
        if len(clauses) > MAX_CLAUSES:
            raise ValidationFailed({"all": N_("at most %(n)s clauses", n=MAX_CLAUSES)})
        errors: dict[str, str] = {}
        out = []
        for i, clause in enumerate(clauses):
            where = f"all[{i}]"
            if not isinstance(clause, Mapping):
                errors[where] = N_("must be a table with field, op and value")
                continue
            name, op = str(clause.get("field") or ""), str(clause.get("op") or "")
            spec = entity.spec.field(name) if entity.spec.has_field(name) else None
            if spec is None:
                errors[f"{where}.field"] = N_(
                    "%(entity)s has no field %(field)s", entity=entity.name, field=repr(name)
                )
                continue
            if op not in OPS:
                errors[f"{where}.op"] = N_(
                    "unknown operator %(op)s (use %(ops)s)", op=repr(op), ops=", ".join(OPS)
                )
                continue
            if spec.type not in COMPARABLE_TYPES:
                errors[f"{where}.field"] = N_(
                    "%(field)s (%(type)s) cannot be compared", field=spec.label, type=spec.type
                )
                continue
            if op in ORDERED_OPS and spec.type not in ORDERED_TYPES:
                errors[f"{where}.op"] = N_(
                    "%(field)s (%(type)s) has no order; use eq, ne, in or empty",
                    field=spec.label,
                    type=spec.type,
                )
                continue
            try:
                value = self._value(spec, op, clause.get("value"))
            except FieldError as exc:
                errors[f"{where}.value"] = exc.message
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
                raise FieldError(N_("give one or more values, separated by commas"))
            return [_jsonable(p) for p in parsed if p is not None]
        value = parse(spec, raw)
        if value is None:
            raise FieldError(N_("give a value to compare with (or use the 'empty' operator)"))
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
    label = N_("Members with a role")
    description = N_("Every active member holding a role of the tenant (any one of them decides).")

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        ref = str(config.get("role") or config.get("role_id") or "").strip()
        if not ref:
            raise ValidationFailed({"role": N_("choose a role")})
        from app.access.roles import get_role

        try:
            role = await get_role(session, tenant_id, ref)
        except NotFound:
            raise ValidationFailed({"role": N_("no role %(role)s in this tenant", role=repr(ref))}) from None
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
    label = N_("A named user")
    description = N_("One named member of the tenant.")

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        from app.identity.hierarchy import resolve_member

        ref = str(config.get("user") or config.get("user_id") or "").strip()
        if not ref:
            raise ValidationFailed({"user": N_("enter the email of a member of this tenant")})
        try:
            user = await resolve_member(session, tenant_id, ref, "user")
        except ValidationFailed as exc:  # its message talks about managers
            raise ValidationFailed(
                {"user": N_("%(user)s is not a member of this tenant", user=repr(ref))}
            ) from exc
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
    label = N_("The requester's manager")
    description = N_("The requester's manager in this tenant.")

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


# --- the same kinds as extension implementations ------------------------------------------------


def _text_field(
    key: str,
    label: str,
    help_text: str,
    *,
    ftype: str = "string",
    required: bool = True,
    options: tuple[SelectOption, ...] = (),
) -> ConfigFieldSpec:
    return ConfigFieldSpec(
        key=key, type=ftype, label=label, help=help_text, required=required, options=options
    )


def builtin_implementations() -> dict[tuple[str, str], Builtin]:
    """The built-in implementations of the extension points (the kinds above, configured by values)."""
    fields_kind, role_kind, user_kind, manager_kind = (
        FieldCondition(),
        RoleSelector(),
        UserSelector(),
        ManagerSelector(),
    )
    found: list[Builtin] = []
    add = found.append

    async def fields_run(ctx: Context, values: Mapping[str, Any]) -> bool:
        if ctx.entity is None:
            raise ExtensionFailed(N_("a field condition needs a record"))
        clause = {"field": values.get("field"), "op": values.get("op"), "value": values.get("value")}
        try:
            checked = await fields_kind.check(ctx.session, ctx.tenant_id, ctx.entity, {"all": [clause]})
        except ValidationFailed as exc:
            raise ExtensionFailed("; ".join(v for v in exc.errors.values())) from None
        return await fields_kind.evaluate(_rule_context(ctx), checked)

    add(
        Builtin(
            Implementation(
                CONDITION,
                "",
                "fields",
                N_("Field value"),
                N_("A field of the record compared with a value (e.g. amount > 1000)."),
                (
                    _text_field("field", N_("Field"), N_("The field's name, e.g. amount")),
                    _text_field(
                        "op",
                        N_("Operator"),
                        N_("How to compare"),
                        ftype="select",
                        options=tuple(SelectOption(k, v) for k, v in OPS.items()),
                    ),
                    _text_field(
                        "value",
                        N_("Value"),
                        N_("Compared with; several values separated by commas for “is one of”"),
                        required=False,
                    ),
                ),
            ),
            fields_run,
        )
    )

    async def selector_run(kind: Any, ctx: Context, values: Mapping[str, Any]) -> list[uuid.UUID]:
        try:
            checked = await kind.check(ctx.session, ctx.tenant_id, ctx.entity, values)
        except ValidationFailed as exc:
            raise ExtensionFailed("; ".join(v for v in exc.errors.values())) from None
        selection = await kind.select(_rule_context(ctx), checked)
        if not selection.user_ids:
            raise NobodySelected(selection.reason)
        return list(selection.user_ids)

    def selector_runner(kind: Any) -> BuiltinRun:
        async def run(ctx: Context, values: Mapping[str, Any]) -> list[uuid.UUID]:
            return await selector_run(kind, ctx, values)

        return run

    def selector_check(kind: Any) -> BuiltinCheck:
        async def check(
            session: AsyncSession, tenant_id: uuid.UUID, values: Mapping[str, Any]
        ) -> dict[str, str]:
            try:
                await kind.check(session, tenant_id, None, values)
            except ValidationFailed as exc:
                return {f"values.{k}": v for k, v in exc.errors.items()}
            return {}

        return check

    for kind, fields in (
        (role_kind, (_text_field("role", N_("Role"), N_("The role's name")),)),
        (user_kind, (_text_field("user", N_("User"), N_("The email of a member"), ftype="email"),)),
        (manager_kind, ()),
    ):
        add(
            Builtin(
                Implementation(USER_SELECTOR, "", kind.name, kind.label, kind.description, fields),
                selector_runner(kind),
                selector_check(kind),
            )
        )
    return {(b.impl.point, b.impl.name): b for b in found}


def _rule_context(ctx: Context) -> RuleContext:
    assert ctx.entity is not None
    return RuleContext(ctx.session, ctx.tenant_id, ctx.entity, ctx.record, ctx.requester_id)


# --- kinds that run a configured implementation ---------------------------------------------------


def _context(ctx: RuleContext) -> Context:
    return Context(ctx.session, ctx.tenant_id, ctx.entity, ctx.record, ctx.requester_id)


class _ConfiguredKind:
    point = ""

    async def check(
        self, session: AsyncSession, tenant_id: uuid.UUID, entity: EntityRef, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        # The API names a configuration by id; the process form by its name (typed or chosen).
        ref = str(config.get("config_id") or config.get("extension") or "").strip()
        if not ref:
            raise ValidationFailed(
                {"config_id": N_("choose a configuration (Administration → Extension points)")}
            )
        try:
            uuid.UUID(ref)
        except ValueError:
            found = await session.scalar(
                sa.select(ExtensionConfig.id).where(
                    ExtensionConfig.tenant_id == tenant_id,
                    ExtensionConfig.point == self.point,
                    ExtensionConfig.name == ref[:100],
                )
            )
            if found is None:
                raise ValidationFailed(
                    {
                        "config_id": N_(
                            "no %(point)s configuration called %(ref)s in this tenant (Administration → Extension points)",
                            point=self.point,
                            ref=repr(ref[:100]),
                        )
                    }
                ) from None
            ref = str(found)
        try:
            resolved = await resolve(session, tenant_id, ref, self.point, enabled_only=False)
        except NotFound as exc:
            raise ValidationFailed({"config_id": exc.detail}) from None
        if resolved.plugin is None and resolved.impl.point == CONDITION:
            # A built-in field condition names a field: it must be one of this entity's.
            clause = {k: config_values(session, resolved).get(k) for k in ("field", "op", "value")}
            try:
                await FieldCondition().check(session, tenant_id, entity, {"all": [clause]})
            except ValidationFailed as exc:
                raise ValidationFailed(
                    {"config_id": f"{resolved.config.name}: " + "; ".join(exc.errors.values())}
                ) from None
        return {"config_id": str(resolved.config.id), "name": resolved.config.name}

    def describe(self, config: Mapping[str, Any]) -> str:
        return f"{config.get('name')} (extension)"


class ConfiguredCondition(_ConfiguredKind):
    """A condition configured under Extension points (built-in or a plugin's)."""

    name = "extension"
    label = N_("A configured condition (extension point)")
    point = CONDITION

    async def evaluate(self, ctx: RuleContext, config: Mapping[str, Any]) -> bool:
        return await check_condition(_context(ctx), config["config_id"])


class ConfiguredSelector(_ConfiguredKind):
    """A user selector configured under Extension points; only active members of the tenant are kept."""

    name = "extension"
    label = N_("A configured user selector (extension point)")
    point = USER_SELECTOR

    async def select(self, ctx: RuleContext, config: Mapping[str, Any]) -> Selection:
        chosen = await select_users(_context(ctx), config["config_id"])
        return Selection(chosen.user_ids, chosen.reason)


# --- the per-app registry --------------------------------------------------------------------------


def standard_registry(sandbox: Any = None) -> ExtensionRegistry:
    """A new registry of the built-in implementations and approval kinds (the app's own: a test may add a
    kind to it), running plugins' implementations in `sandbox` (None: they cannot run)."""
    return ExtensionRegistry(
        builtins=builtin_implementations(),
        conditions={kind.name: kind for kind in (FieldCondition(), ConfiguredCondition())},
        selectors={
            kind.name: kind
            for kind in (RoleSelector(), UserSelector(), ManagerSelector(), ConfiguredSelector())
        },
        sandbox=sandbox,
    )
