"""A list without a data scope runs a statement built once per shape (filter fields and operators,
search or not, sort) with the values as parameters (app.records.reads._list_statement); the CSV export
(`iterate`) builds its statement per call with the values inline (`_filtered`). Over random searches,
filters and sorts, on both databases, the two must pick the same rows in the same order, with the same
count, and refuse the same bad filters."""

from __future__ import annotations

import random
from typing import Any

import pytest

from app.audit import Actor
from app.core.errors import ValidationFailed
from app.identity import directory
from app.plugins import runtime
from app.records.service import ListQuery, RecordService
from tests.integration.test_record_pages import in_db, seed_items, tenants  # noqa: F401 (fixture)

FILTERS: list[tuple[str, list[str]]] = [
    ("quantity", ["3", "12"]),
    ("quantity__from", ["5", "20"]),
    ("quantity__to", ["9", "25"]),
    ("quantity__gt", ["14"]),
    ("quantity__lt", ["7"]),
    ("quantity__ne", ["10"]),
    ("unit_price__from", ["500.5"]),
    ("status", ["active", "discontinued"]),
    ("name", ["widget 1", "GADGET", "%", "_"]),
    ("sku", ["SKU-0", "sku-12"]),
    ("unit__empty", ["true", "false"]),
    ("category_id__empty", ["true", "false"]),
    ("created_at__from", ["2000-01-01T00:00"]),
    ("created_at__to", ["2000-01-01T00:00", "2999-12-31T23:59"]),
]
SEARCHES = ["", "", "widget", "ADG", "1", "no such thing", "50%"]
SORTS = ["-created_at", "name", "-quantity", "sku", "unit_price"]


def random_query(rng: random.Random, categories: list[str]) -> ListQuery:
    chosen = rng.sample([*FILTERS, ("category_id", categories)], rng.randint(0, 3))
    return ListQuery(
        q=rng.choice(SEARCHES),
        filters={key: rng.choice(values) for key, values in chosen},
        sort=rng.choice(SORTS),
        size=rng.choice([5, 50]),
        page=rng.choice([1, 1, 2]),
        contains=frozenset({"name"}),
    )


def test_prebuilt_and_inline_statements_agree(tenants, app):
    categories = list(seed_items(tenants, n=24).values())
    rng = random.Random(20261206)

    async def work(s: Any) -> list[int]:
        tenant = (await directory.get_tenant(s, "acme")).id
        item = await runtime.entity_in_tenant(s, tenant, "inventory", "inventory_item")
        svc = RecordService(s, tenant, Actor(None, "shapes-test"), lambda _p: True)
        totals = []
        for _ in range(80):
            query = random_query(rng, categories)
            listed = await svc.list(item, query)
            every = [r["id"] async for r in svc.iterate(item, query, batch=7)]
            start = (query.page - 1) * query.size
            assert [r["id"] for r in listed.rows] == every[start : start + query.size], query
            assert (listed.total, listed.capped) == (len(every), False), query
            totals.append(len(every))
        for bad in ({"quantity": "many"}, {"nope": "1"}, {"quantity__near": "3"}, {"unit__empty": "maybe"}):
            with pytest.raises(ValidationFailed) as raised:
                await svc.list(item, ListQuery(filters=bad))
            assert set(raised.value.errors) == set(bad)
        return totals

    totals = in_db(app, work)
    # The random queries exercise both ends: empty results and long ones.
    assert 0 in totals and max(totals) >= 10, totals
