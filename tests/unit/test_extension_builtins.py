"""Built-in approval conditions over field values: normalising a config (typed values, located errors)
and evaluating each operator on typed record values; the per-app registry of the kinds."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.core.errors import ValidationFailed
from app.extensions.builtins import FieldCondition, RuleContext, standard_registry
from app.manifest import ValidationContext, load_manifest
from app.plugins.modules import available_modules
from app.plugins.runtime import EntityRef
from app.schema import build_table

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest(
    ROOT / "plugins" / "inventory" / "plugin.toml", ValidationContext(available_modules=available_modules())
)
SPEC = next(e for e in MANIFEST.entities if e.name == "purchase_order")
PO = EntityRef("inventory", SPEC, build_table(SPEC, sa.MetaData()))
COND = FieldCondition()


def check(*clauses: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(COND.check(None, None, PO, {"all": list(clauses)}))  # type: ignore[arg-type]


def holds(config: dict[str, Any], **record: Any) -> bool:
    ctx = RuleContext(None, None, PO, record, None)  # type: ignore[arg-type]
    return asyncio.run(COND.evaluate(ctx, config))


def test_each_registry_holds_the_built_in_kinds_and_is_its_own() -> None:
    one, other = standard_registry(), standard_registry()
    assert set(one.conditions) == {"fields", "extension"}
    assert set(one.selectors) == {"role", "user", "manager", "extension"}
    assert {point for point, _ in one.builtins} == {"condition", "user-selector"}
    # A kind added to one app's registry (as a test does) is not in another's.
    one.selectors["odd"] = one.selectors["role"]
    assert "odd" not in other.selectors and one.sandbox is None


def test_config_is_normalised_to_typed_json_values() -> None:
    assert check({"field": "total_amount", "op": "gt", "value": "1000"}) == {
        "all": [{"field": "total_amount", "op": "gt", "value": "1000.00"}]
    }
    assert check({"field": "status", "op": "in", "value": "draft, submitted"})["all"][0]["value"] == [
        "draft",
        "submitted",
    ]
    assert (
        check({"field": "order_date", "op": "le", "value": "2026-12-31"})["all"][0]["value"] == "2026-12-31"
    )
    assert check({"field": "notes", "op": "empty"})["all"][0]["value"] is None


@pytest.mark.parametrize(
    ("clause", "where", "message"),
    [
        ({"field": "nope", "op": "eq", "value": "1"}, "all[0].field", "purchase_order has no field 'nope'"),
        ({"field": "total_amount", "op": "between", "value": "1"}, "all[0].op", "unknown operator 'between'"),
        (
            {"field": "total_amount", "op": "gt", "value": "lots"},
            "all[0].value",
            "Enter a number, like 12.50.",
        ),
        ({"field": "total_amount", "op": "gt", "value": ""}, "all[0].value", "give a value to compare with"),
        ({"field": "status", "op": "gt", "value": "draft"}, "all[0].op", "has no order"),
        ({"field": "status", "op": "eq", "value": "shipped"}, "all[0].value", ""),
        ({"field": "supplier_id", "op": "gt", "value": "x"}, "all[0].op", "has no order"),
        ({"field": "supplier_id", "op": "eq", "value": "not-a-uuid"}, "all[0].value", ""),
    ],
)
def test_bad_clauses_are_located(clause: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check(clause)
    assert list(caught.value.errors) == [where] and message in caught.value.errors[where]


def test_empty_or_oversized_condition_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        check()
    with pytest.raises(ValidationFailed) as caught:
        check(*[{"field": "notes", "op": "empty"}] * 21)
    assert "at most 20" in caught.value.errors["all"]


def test_operators_on_typed_values() -> None:
    big = check({"field": "total_amount", "op": "gt", "value": "1000"})
    assert holds(big, total_amount=Decimal("1000.01")) and not holds(big, total_amount=Decimal("1000.00"))
    assert not holds(big, total_amount=None)  # an empty amount is neither above nor below
    ge = check({"field": "total_amount", "op": "ge", "value": "1000"})
    assert holds(ge, total_amount=Decimal("1000")) and not holds(ge, total_amount=Decimal("999.99"))
    early = check({"field": "order_date", "op": "lt", "value": "2026-06-01"})
    assert holds(early, order_date=dt.date(2026, 5, 31)) and not holds(early, order_date=dt.date(2026, 6, 1))
    le = check({"field": "order_date", "op": "le", "value": "2026-06-01"})
    assert holds(le, order_date=dt.date(2026, 6, 1))
    status = check({"field": "status", "op": "in", "value": ["draft", "submitted"]})
    assert (
        holds(status, status="submitted")
        and not holds(status, status="approved")
        and not holds(status, status=None)
    )
    ne = check({"field": "status", "op": "ne", "value": "draft"})
    assert holds(ne, status="approved") and not holds(ne, status="draft")
    eq = check({"field": "order_no", "op": "eq", "value": "PO-1"})
    assert holds(eq, order_no="PO-1") and not holds(eq, order_no="PO-2")
    empty = check({"field": "notes", "op": "empty"})
    assert holds(empty, notes=None) and holds(empty, notes="") and not holds(empty, notes="urgent")
    both = check(
        {"field": "total_amount", "op": "gt", "value": "1000"},
        {"field": "status", "op": "eq", "value": "draft"},
    )
    assert holds(both, total_amount=Decimal(5000), status="draft")
    assert not holds(both, total_amount=Decimal(5000), status="submitted")
    assert COND.describe(both) == "total_amount > 1000.00 and status = draft"


def test_a_clause_on_a_field_removed_by_an_upgrade_never_holds() -> None:
    assert not holds({"all": [{"field": "gone", "op": "empty", "value": None}]}, notes=None)
