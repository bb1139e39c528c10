"""Property: over random reporting forests (deep chains included), random row owners and units, what
each member sees through the record service is exactly the set computed here from the forest, on
every read path, for an entity owned by `created_by` without units (inventory_item) and one owned by
an `owner_field` with a `unit_field` (a test plugin's sale); after a random move (or a refused one,
when it would close a cycle) the new expectation holds at once, with the same warm per-worker cache."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.access import roles, scopes
from app.access.scopes import DataScope, ScopeCache, ScopeRule
from app.audit import Actor
from app.core.db import make_alchemy_config
from app.core.errors import NotFound, ValidationFailed
from app.core.models import Membership
from app.core.settings import load_settings
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.service import Aggregate, ListQuery, RecordService

ROOT = Path(__file__).resolve().parents[2]
N_USERS = 10
ACTOR = Actor(None, "property-test")


@dataclass
class Case:
    parent: list[int | None]  # parent[i]: index of user i's manager
    owners: list[int | None]  # one row per entry; None: a row written by the plugin itself
    kind: str  # the Sales role's default scope
    by_unit: bool  # ... narrowed to the member's unit (where the entity names a unit field)
    member_units: list[str | None]
    row_units: list[str | None]  # the unit of each row (sales only)
    move: tuple[int, int | None]  # user, new manager (None: no manager)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    order = draw(st.permutations(range(N_USERS)))
    deep = draw(st.booleans())  # half the time a chain of 9 (8 levels below its root) starts the forest
    parent: list[int | None] = [None] * N_USERS
    for pos, user in enumerate(order[1:], start=1):
        if deep and pos < 9:
            parent[user] = order[pos - 1]
        else:
            parent[user] = draw(st.one_of(st.none(), st.sampled_from(order[:pos])))
    owners = draw(st.lists(st.one_of(st.none(), st.integers(0, N_USERS - 1)), max_size=30))
    kind = draw(st.sampled_from(["subtree", "subtree", "subtree", "own", "all"]))
    units = st.sampled_from(["north", "south", None])
    member_units = draw(st.lists(units, min_size=N_USERS, max_size=N_USERS))
    row_units = draw(st.lists(units, min_size=len(owners), max_size=len(owners)))
    move = draw(st.tuples(st.integers(0, N_USERS - 1), st.one_of(st.none(), st.integers(0, N_USERS - 1))))
    return Case(parent, owners, kind, draw(st.booleans()), member_units, row_units, move)


def below(parent: list[int | None], user: int) -> set[int]:
    """The user and everyone under them, by walking each member's chain upwards (no SQL)."""
    out = set()
    for other in range(len(parent)):
        step: int | None = other
        for _ in range(len(parent) + 1):
            if step == user:
                out.add(other)
                break
            if step is None:
                break
            step = parent[step]
    return out


def expected_rows(case: Case, parent: list[int | None], user: int, *, with_units: bool) -> set[int]:
    """Indexes of the rows `user` may see (`with_units`: the entity has a unit field)."""
    rows = set(range(len(case.owners)))
    if case.kind != "all":
        owners = {user} if case.kind == "own" else below(parent, user)
        rows = {i for i in rows if case.owners[i] in owners}
    if case.by_unit and with_units:
        mine = case.member_units[user]
        rows = {i for i in rows if mine is not None and case.row_units[i] == mine}
    return rows


SALES_PLUGIN = """
[plugin]
id = "sales"
name = "Sales"
version = "1.0.0"
description = "Sales per shop"
author = "Tests"
min_platform_version = "1.0.0"

[dependencies]
modules = ["auth"]

[permissions]
database = true

[[schema.entities]]
name = "sale"
label = "Sale"
display_field = "ref"
owner_field = "seller"
unit_field = "shop"
fields = [
  { name = "ref", type = "string", required = true },
  { name = "seller", type = "uuid" },
  { name = "shop", type = "string", max_length = 20 },
]
"""


@dataclass
class World:
    config: Any
    tenant_id: uuid.UUID
    users: list[uuid.UUID]
    role: Any
    cache: ScopeCache


async def _setup(settings_env: dict[str, str], sales: Path) -> tuple[uuid.UUID, list[uuid.UUID], uuid.UUID]:
    config = make_alchemy_config(load_settings(settings_env))
    try:
        async with config.get_session() as s:
            tenant = await directory.create_tenant(s, ACTOR, "forest", "Forest")
            for folder in (ROOT / "plugins" / "inventory", sales):
                row = await lifecycle.upload(
                    s, ACTOR, read_folder(folder), load_settings(settings_env), install_now=True
                )
                await lifecycle.enable(s, ACTOR, tenant.id, row.plugin_id)
            role = await roles.create_role(s, ACTOR, tenant.id, "Sales")
            users = []
            for i in range(N_USERS):
                user = await directory.create_user(s, ACTOR, f"u{i}@forest.test", "forest-password-1")
                await directory.add_member(s, ACTOR, tenant.id, user, role)
                users.append(user.id)
            await s.commit()
            return tenant.id, users, role.id
    finally:
        await config.get_engine().dispose()


async def _arrange(w: World, case: Case) -> dict[str, list[uuid.UUID]]:
    """Reset the tenant to the case's forest, units, scope and rows (through the real services)."""
    async with w.config.get_session() as s:
        await s.execute(
            sa.update(Membership).where(Membership.tenant_id == w.tenant_id).values(manager_id=None)
        )
        for i, p in enumerate(case.parent):
            if p is not None:  # edges of an acyclic forest, added one by one, never close a cycle
                await hierarchy.set_manager(s, ACTOR, w.tenant_id, w.users[i], str(w.users[p]))
            await hierarchy.set_unit(s, ACTOR, w.tenant_id, w.users[i], case.member_units[i])
        role = await roles.get_role(s, w.tenant_id, w.role)
        await scopes.set_role_scopes(
            s, ACTOR, role, {"*": ScopeRule(case.kind, case.by_unit)}, await scopes.scope_entities(s)
        )
        item = await runtime.entity_in_tenant(s, w.tenant_id, "inventory", "inventory_item")
        sale = await runtime.entity_in_tenant(s, w.tenant_id, "sales", "sale")
        ids = {"item": [uuid.uuid4() for _ in case.owners], "sale": [uuid.uuid4() for _ in case.owners]}
        now = dt.datetime.now(dt.UTC)
        std = {"tenant_id": w.tenant_id, "created_at": now, "updated_at": now, "version": 1}
        owner = [w.users[o] if o is not None else None for o in case.owners]
        for ref, rows in (
            (
                item,
                [
                    {
                        **std,
                        "id": rid,
                        "created_by": owner[n],
                        "sku": f"S-{n}",
                        "name": f"Row {n}",
                        "quantity": 0,
                        "unit": "pcs",
                        "threshold": 1,
                        "status": "active",
                    }
                    for n, rid in enumerate(ids["item"])
                ],
            ),
            (
                sale,
                [
                    {
                        **std,
                        "id": rid,
                        "created_by": None,
                        "seller": owner[n],
                        "ref": f"R-{n}",
                        "shop": case.row_units[n],
                    }
                    for n, rid in enumerate(ids["sale"])
                ],
            ),
        ):
            await s.execute(sa.delete(ref.table).where(ref.table.c.tenant_id == w.tenant_id))
            if rows:
                await s.execute(sa.insert(ref.table), rows)
        await s.commit()
    return ids


async def _check_all(
    w: World, case: Case, parent: list[int | None], all_ids: dict[str, list[uuid.UUID]]
) -> None:
    async with w.config.get_session() as s:
        version = await scopes.current_scope_version(s, w.tenant_id)
        entities = {
            "item": await runtime.entity_in_tenant(s, w.tenant_id, "inventory", "inventory_item"),
            "sale": await runtime.entity_in_tenant(s, w.tenant_id, "sales", "sale"),
        }
        for (name, item), u in ((e, u) for e in entities.items() for u in range(N_USERS)):
            uid, ids = w.users[u], all_ids[name]
            want = {ids[i] for i in expected_rows(case, parent, u, with_units=name == "sale")}
            svc = RecordService(
                s,
                w.tenant_id,
                Actor(uid, f"u{u}@forest.test"),
                lambda _p: True,
                scope=DataScope(w.cache, w.tenant_id, uid, version),
            )
            listed = await svc.list(item, ListQuery(size=200, sort="created_at"))
            assert {r["id"] for r in listed.rows} == want, (name, u, parent, case.owners)
            assert listed.total == len(want) and not listed.capped
            assert {r["id"] async for r in svc.iterate(item, ListQuery(sort="created_at"), batch=7)} == want
            assert set(await svc.labels(item, ids)) == want
            counted = await svc.aggregate(item, Aggregate())
            assert counted[0]["count"] == len(want)
            hidden = [rid for rid in ids if rid not in want]
            if hidden:
                with pytest.raises(NotFound):
                    await svc.get(item, hidden[0])
                with pytest.raises(NotFound):
                    await svc.update(item, hidden[0], {}, 1)
                with pytest.raises(NotFound):
                    await svc.delete(item, hidden[-1])
            if want:
                assert (await svc.get(item, next(iter(want))))["id"] in want
        await s.rollback()


async def _example(w: World, case: Case) -> None:
    ids = await _arrange(w, case)
    parent = list(case.parent)
    await _check_all(w, case, parent, ids)
    user, target = case.move
    cycle = target is not None and target in below(parent, user)
    async with w.config.get_session() as s:
        try:
            await hierarchy.set_manager(
                s, ACTOR, w.tenant_id, w.users[user], str(w.users[target]) if target is not None else ""
            )
            await s.commit()
            assert not cycle, f"moving {user} under {target} should close a cycle in {parent}"
            parent[user] = target
        except ValidationFailed as exc:
            assert cycle, exc.errors
            assert "cycle" in exc.errors["manager"] or "own manager" in exc.errors["manager"]
    await _check_all(w, case, parent, ids)  # same warm cache: the move must show at once


def test_what_each_member_sees_matches_the_forest(settings_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "sales").mkdir()
    (tmp_path / "sales" / "plugin.toml").write_text(SALES_PLUGIN)
    tenant_id, users, role_id = asyncio.run(_setup(settings_env, tmp_path / "sales"))
    cache = ScopeCache()  # shared by every example, as one worker's cache would be

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=cases())
    def check(case: Case) -> None:
        async def run() -> None:
            w = World(make_alchemy_config(load_settings(settings_env)), tenant_id, users, role_id, cache)
            try:
                await _example(w, case)
            finally:
                await w.config.get_engine().dispose()

        asyncio.run(run())

    check()
    assert cache.loads > 0
