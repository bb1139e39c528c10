"""Data scopes: which rows of an entity a user may see and touch, from their role and reporting line.

A role grants per entity (or as its default, entity '*') one of
  all      every row of the tenant (the default when nothing is set)
  subtree  rows owned by the user or anyone below them in the reporting hierarchy
  own      rows owned by the user
optionally narrowed to rows of the member's unit (`by_unit`, for entities naming a `unit_field`).
The owner of a row is `created_by` unless the manifest names an `owner_field`.

Tenant Admins (the built-in admin role) and platform admins bypass scopes. The record service asks a
`DataScope` for a SQL condition and applies it to every read and write. Per-user data (role rules,
unit, subordinate ids) is cached per worker and keyed by the tenant's `hierarchy_version` (bumped by
every hierarchy, unit or scope change) and `policy_version` (bumped by role and membership changes),
so a change made through any worker is seen by all on their next request.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.i18n import N_
from app.core.models import Membership, Role, RoleScope, Tenant

SCOPE_KINDS: tuple[str, ...] = ("all", "subtree", "own")
DEFAULT_ENTITY = "*"
# How a subtree filter reaches the database: "ids" binds the cached id list (one array parameter on
# PostgreSQL), "cte" embeds the recursive query. bench/scope_bench.py measures both.
SUBTREE_STRATEGIES: tuple[str, ...] = ("ids", "cte")
ScopeVersion = tuple[int, int]  # (tenant.hierarchy_version, tenant.policy_version)


@dataclass(frozen=True)
class ScopeRule:
    kind: str = "all"
    by_unit: bool = False

    @property
    def label(self) -> str:
        return self.kind + (" within their unit" if self.by_unit else "")

    def as_json(self) -> dict[str, Any]:
        return {"scope": self.kind, "unit": self.by_unit}


ALL = ScopeRule()


@dataclass
class UserScopeData:
    """What one member's row visibility depends on; cached per worker."""

    role_name: str | None
    rules: dict[str, ScopeRule]  # entity name or '*' -> rule
    unit: str | None
    subtree: frozenset[str] | None = None  # ids (canonical text) of the user and their reports; on first need
    subtree_list: list[str] = field(default_factory=list)  # the same, the user first
    # Built SQL conditions by (table, strategy): SQL expressions are immutable and reusable, and
    # building one (an ARRAY bind of thousands of ids) costs more than the rest of a cache hit.
    conditions: dict[tuple[sa.Table, str], sa.ColumnElement[bool] | None] = field(default_factory=dict)

    def rule_for(self, entity: str) -> tuple[ScopeRule, str]:
        """The rule for an entity and where it comes from (a message the explain page translates)."""
        if entity in self.rules:
            return self.rules[entity], N_(
                "role %(role)s scope for %(entity)s", role=self.role_name, entity=entity
            )
        if DEFAULT_ENTITY in self.rules:
            return self.rules[DEFAULT_ENTITY], N_("role %(role)s default scope", role=self.role_name)
        if self.role_name is None:
            return ALL, N_("no role in this tenant (platform staff see all rows)")
        return ALL, N_("role %(role)s sets no scope (all is the default)", role=self.role_name)


def subtree_select(tenant_id: uuid.UUID, user_id: uuid.UUID) -> sa.Select[Any]:
    """The user and everyone below them, by a recursive query (SQLite and PostgreSQL).

    UNION (not UNION ALL) stops on a cycle even if one ever slipped in.
    """
    tu = Membership.__table__
    top = sa.select(tu.c.user_id).where(tu.c.tenant_id == tenant_id, tu.c.user_id == user_id)
    tree = top.cte("subtree", recursive=True)
    below = (
        sa.select(tu.c.user_id)
        .join(tree, tu.c.manager_id == tree.c.user_id)
        .where(tu.c.tenant_id == tenant_id)
    )
    tree = tree.union(below)
    return sa.select(tree.c.user_id)


async def subordinate_ids(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The user (always) and every member below them in the tenant's hierarchy."""
    stmt = subtree_select(tenant_id, user_id)
    if session.bind.dialect.name == "postgresql":
        # psycopg already returns UUIDs; skip the GUID type's per-row conversion (thousands of rows).
        tree = stmt.subquery()
        stmt = sa.select(sa.type_coerce(tree.c.user_id, sa.Uuid()))
    found = (await session.scalars(stmt)).all()
    return [user_id, *(u for u in found if u != user_id)]


async def subordinate_texts(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    """subordinate_ids as canonical text, the user first.

    On PostgreSQL the database joins them into one string: thousands of rows would cost more to
    fetch one by one (a few µs each through the driver and the ORM) than the recursive query itself.
    """
    if session.bind.dialect.name == "postgresql":
        tree = subtree_select(tenant_id, user_id).subquery()
        joined = await session.scalar(sa.select(sa.func.string_agg(sa.cast(tree.c.user_id, sa.Text), ",")))
        found = joined.split(",") if joined else []
    else:
        found = [str(u) for u in (await session.scalars(subtree_select(tenant_id, user_id))).all()]
    me = str(user_id)
    return [me, *(u for u in found if u != me)]


async def load_user_data(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserScopeData:
    """The member's role name, unit and the role's scope rules, in one query."""
    rows = (
        await session.execute(
            sa.select(Role.name, Membership.unit, RoleScope.entity, RoleScope.scope, RoleScope.by_unit)
            .join(Role, Role.id == Membership.role_id)
            .outerjoin(RoleScope, RoleScope.role_id == Membership.role_id)
            .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        )
    ).all()
    if not rows:
        return UserScopeData(None, {}, None)
    rules = {e: ScopeRule(k, bool(u)) for _, _, e, k, u in rows if e is not None}
    return UserScopeData(rows[0][0], rules, rows[0][1])


class ScopeCache:
    """Per-worker cache of UserScopeData, keyed by (tenant, user) and checked against the tenant's versions."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[uuid.UUID, uuid.UUID], tuple[ScopeVersion, UserScopeData]] = (
            OrderedDict()
        )
        self._max = max_entries
        self.loads = 0

    def peek(self, tenant_id: uuid.UUID, user_id: uuid.UUID, version: ScopeVersion) -> UserScopeData | None:
        key = (tenant_id, user_id)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == version:
            self._entries.move_to_end(key)
            return hit[1]
        return None

    async def data(
        self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, version: ScopeVersion
    ) -> UserScopeData:
        hit = self.peek(tenant_id, user_id, version)
        if hit is not None:
            return hit
        data = await load_user_data(session, tenant_id, user_id)
        self.loads += 1
        self._entries[(tenant_id, user_id)] = (version, data)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return data

    async def subtree(
        self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, data: UserScopeData
    ) -> list[str]:
        if data.subtree is None:
            data.subtree_list = await subordinate_texts(session, tenant_id, user_id)
            data.subtree = frozenset(data.subtree_list)
        return data.subtree_list


def scope_version(tenant: Tenant) -> ScopeVersion:
    """What cached scope data of a tenant depends on: its hierarchy and its roles/memberships."""
    return (tenant.hierarchy_version, tenant.policy_version)


async def current_scope_version(session: AsyncSession, tenant_id: uuid.UUID) -> ScopeVersion:
    row = (
        await session.execute(
            sa.select(Tenant.hierarchy_version, Tenant.policy_version).where(Tenant.id == tenant_id)
        )
    ).one()
    return (int(row[0]), int(row[1]))


async def bump_hierarchy_version(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Invalidate every worker's cached scope data of this tenant (compared per request).

    On PostgreSQL the UPDATE also locks the tenant row until commit, which serialises concurrent
    hierarchy changes of a tenant (two crossing moves cannot both pass the cycle check).
    """
    await session.execute(
        sa.update(Tenant).where(Tenant.id == tenant_id).values(hierarchy_version=Tenant.hierarchy_version + 1)
    )


class DataScope:
    """Row visibility of one user in one tenant; resolved lazily, on the first record access."""

    def __init__(
        self,
        cache: ScopeCache,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID | None,
        version: ScopeVersion,
        *,
        bypass: bool = False,
        strategy: str = "ids",
    ) -> None:
        self.cache = cache
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.version = version
        self.bypass = bypass or user_id is None
        self.strategy = strategy

    async def data(self, session: AsyncSession) -> UserScopeData:
        assert self.user_id is not None
        return await self.cache.data(session, self.tenant_id, self.user_id, self.version)

    async def rule(self, session: AsyncSession, entity: str) -> tuple[ScopeRule, str]:
        if self.bypass:
            return ALL, "administrators bypass data scopes"
        return (await self.data(session)).rule_for(entity)

    async def condition(self, session: AsyncSession, entity: Any) -> sa.ColumnElement[bool] | None:
        """A WHERE condition for `entity` (an EntityRef), or None when every tenant row is visible."""
        if self.bypass:
            return None
        data = await self.data(session)
        key = (entity.table, self._strategy(session))
        if key not in data.conditions:
            data.conditions[key] = await self._build(session, entity, data)
        return data.conditions[key]

    def _strategy(self, session: AsyncSession) -> str:
        # The CTE compares tenant_users' GUIDs with plugin tables' uuid columns, which share one
        # storage format on PostgreSQL only; elsewhere the id list is used.
        return self.strategy if session.bind.dialect.name == "postgresql" else "ids"

    async def _build(
        self, session: AsyncSession, entity: Any, data: UserScopeData
    ) -> sa.ColumnElement[bool] | None:
        rule, _ = data.rule_for(entity.name)
        if rule == ALL or (rule.kind == "all" and not entity.spec.unit_field):
            return None
        table = entity.table
        parts: list[sa.ColumnElement[bool]] = []
        owner = table.c[entity.spec.owner_column]
        if rule.kind == "own":
            parts.append(owner == self.user_id)
        elif rule.kind == "subtree":
            parts.append(await self._in_subtree(session, owner, data))
        if rule.by_unit and entity.spec.unit_field:
            unit_col = table.c[entity.spec.unit_field]
            value = _unit_value(unit_col, data.unit)
            parts.append(unit_col == value if value is not None else sa.false())  # no unit: no rows
        return sa.and_(*parts) if parts else None

    async def _in_subtree(
        self, session: AsyncSession, owner: sa.ColumnElement[Any], data: UserScopeData
    ) -> sa.ColumnElement[bool]:
        assert self.user_id is not None
        if self._strategy(session) == "cte":
            return owner.in_(subtree_select(self.tenant_id, self.user_id).scalar_subquery())
        ids = await self.cache.subtree(session, self.tenant_id, self.user_id, data)
        if len(ids) == 1:
            return owner == self.user_id
        if session.bind.dialect.name == "postgresql":
            # One uuid[] parameter instead of thousands of bound values, in its text form, built once
            # (the condition is cached per user): nothing is adapted per id per request.
            literal = "{" + ",".join(ids) + "}"
            return owner == sa.any_(sa.bindparam("scope_ids", literal, type_=UuidArrayText(), unique=True))
        return owner.in_([uuid.UUID(i) for i in ids])

    async def write_problem(
        self, session: AsyncSession, entity: Any, row: Mapping[str, Any]
    ) -> dict[str, str] | None:
        """Why a row (the result of a write) would fall outside this scope, by field; None when inside.

        Checked in Python with exactly the semantics of the SQL condition.
        """
        if self.bypass:
            return None
        data = await self.data(session)
        rule, _ = data.rule_for(entity.name)
        spec = entity.spec
        owner = row.get(spec.owner_column)
        outside = rule.kind == "own" and owner != self.user_id
        if rule.kind == "subtree":
            assert self.user_id is not None  # self.data() above holds only for a user
            members = (
                data.subtree
                if data.subtree is not None
                else frozenset(await self.cache.subtree(session, self.tenant_id, self.user_id, data))
            )
            outside = owner is None or str(owner) not in members
        if outside:
            return {
                spec.owner_column: f"Your data scope ({rule.label}) would not include this {spec.label}; "
                "choose an owner within it."
            }
        if rule.by_unit and spec.unit_field:
            expected = _unit_value(entity.table.c[spec.unit_field], data.unit)
            if expected is None or row.get(spec.unit_field) != expected:
                return {
                    spec.unit_field: "You may only write rows of your own unit"
                    + (f" ({data.unit})." if data.unit else "; you have none.")
                }
        return None


class UuidArrayText(sa.TypeDecorator[str]):
    """A uuid[] parameter given as its text form ('{id,id}'); the server parses it once per statement."""

    impl = postgresql.ARRAY(sa.Uuid())
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None


def _unit_value(column: sa.ColumnElement[Any], unit: str | None) -> Any:
    """The member's unit as the unit column's type (uuid columns compare with a UUID); None: matches nothing."""
    if unit is None:
        return None
    if isinstance(column.type, sa.Uuid):
        try:
            return uuid.UUID(unit)
        except ValueError:
            return None
    return unit


async def role_rules(session: AsyncSession, role_id: uuid.UUID) -> dict[str, ScopeRule]:
    rows = (
        await session.execute(
            sa.select(RoleScope.entity, RoleScope.scope, RoleScope.by_unit)
            .where(RoleScope.role_id == role_id)
            .order_by(RoleScope.entity)
        )
    ).all()
    return {e: ScopeRule(k, bool(u)) for e, k, u in rows}


def normalize_unit(raw: str | None) -> str | None:
    """A member's unit as stored: trimmed, None when empty, canonical form when it is a uuid."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


def parse_rule(raw: Any, where: str) -> tuple[ScopeRule | None, str | None]:
    """A rule from API/form input: "subtree", "unit" (= all rows of the member's unit),
    {"scope": "own", "unit": true}, or None/"" (unset).

    Returns (rule, problem)."""
    if raw is None or raw == "" or raw == "inherit":
        return None, None
    if raw == "unit":  # shorthand: every row of the member's unit
        return ScopeRule("all", by_unit=True), None
    kind: object
    if isinstance(raw, str):
        kind, by_unit = raw, False
    elif isinstance(raw, Mapping):
        kind, by_unit = raw.get("scope"), raw.get("unit", False)
        unknown = sorted(set(raw) - {"scope", "unit"})
        if unknown:
            return None, f"{where}: unknown key {unknown[0]!r} (use scope and unit)"
        if not isinstance(by_unit, bool):
            return None, f"{where}.unit: expected true or false"
    else:
        return None, f"{where}: expected a scope name or an object with scope and unit"
    if kind not in SCOPE_KINDS:
        return None, f"{where}: unknown scope {kind!r} (use {', '.join(SCOPE_KINDS)})"
    return ScopeRule(str(kind), bool(by_unit)), None


async def set_role_scopes(
    session: AsyncSession,
    actor: Any,
    role: Role,
    wanted: Mapping[str, ScopeRule],
    entities: Mapping[str, Any],
) -> dict[str, ScopeRule]:
    """Make the role's scopes exactly `wanted` (entity name or '*' -> rule); audited.

    `entities` maps the entity names that may carry a scope (installed plugins) to their EntitySpec.
    """
    from app import audit
    from app.core.errors import Conflict, ValidationFailed

    if role.builtin == "admin":
        raise Conflict(
            N_(
                "%(name)s is the built-in admin role: its members bypass data scopes, so a scope on it would have no effect",
                name=role.name,
            )
        )
    errors: dict[str, str] = {}
    clean: dict[str, ScopeRule] = {}
    for key, rule in wanted.items():
        name = key.split(".", 1)[1] if "." in key else key  # accept plugin.entity too
        if name != DEFAULT_ENTITY and name not in entities:
            errors[f"scopes.{key}"] = f"no installed plugin has an entity {name!r}"
            continue
        if rule.by_unit and name != DEFAULT_ENTITY and not entities[name].unit_field:
            errors[f"scopes.{key}"] = (
                f"{name} names no unit_field in its manifest, so a scope cannot be narrowed "
                "to the member's unit"
            )
            continue
        clean[name] = rule
    if errors:
        raise ValidationFailed(errors)
    before = await role_rules(session, role.id)
    if before == clean:
        return clean
    await session.execute(sa.delete(RoleScope).where(RoleScope.role_id == role.id))
    session.add_all(
        [
            RoleScope(tenant_id=role.tenant_id, role_id=role.id, entity=e, scope=r.kind, by_unit=r.by_unit)
            for e, r in clean.items()
        ]
    )
    await session.flush()
    await bump_hierarchy_version(session, role.tenant_id)
    await audit.record(
        session,
        actor,
        "role.scopes",
        "role",
        role.id,
        tenant_id=role.tenant_id,
        summary=f"Changed data scopes of {role.name}",
        before={e: r.label for e, r in before.items()},
        after={e: r.label for e, r in clean.items()},
    )
    return clean


async def scope_entities(session: AsyncSession) -> dict[str, Any]:
    """Entity name -> EntitySpec of every installed plugin (what a role scope may name)."""
    from app.plugins import runtime

    return {
        name: ref.spec for plugin in await runtime.installed(session) for name, ref in plugin.entities.items()
    }


def rules_json(rules: Mapping[str, ScopeRule]) -> dict[str, Any]:
    return {e: r.as_json() for e, r in sorted(rules.items())}
