"""Computed fields in the manifest: row formulas and rollups, with located errors."""

from __future__ import annotations

from typing import Any

import pytest

from app.manifest import ManifestError, Rollup, parse_manifest
from tests.unit.test_manifest import base

ORDER = {
    "name": "sales_order",
    "fields": [
        {"name": "code", "type": "string"},  # 0
        {
            "name": "total",
            "type": "decimal",
            "rollup": {"entity": "line", "op": "sum", "field": "amount"},
        },  # 1
        {"name": "lines", "type": "integer", "rollup": {"entity": "line", "op": "count"}},  # 2
        {"name": "gross", "type": "decimal", "formula": "round(total * 1.19, 2)"},  # 3
    ],
}
LINE = {
    "name": "line",
    "fields": [
        {"name": "order_id", "type": "reference", "entity": "sales_order", "required": True},  # 0
        {"name": "quantity", "type": "integer"},  # 1
        {"name": "unit_price", "type": "decimal"},  # 2
        {"name": "amount", "type": "decimal", "formula": "quantity * unit_price"},  # 3
    ],
}
PLAIN = {"name": "sales_order", "fields": [{"name": "code", "type": "string"}]}
OF = "schema.entities[2].fields"
L = "schema.entities[3].fields"


def doc(order: dict[str, Any] | None = None, line: dict[str, Any] | None = None) -> dict[str, Any]:
    d = base()
    d["schema"]["entities"] += [order or ORDER, line or LINE]
    return d


def only_issue(d: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(d)
    issues = caught.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0].path, issues[0].message


def test_formulas_and_rollups_parse_and_resolve_the_reference() -> None:
    m = parse_manifest(doc())
    order, line = m.entity("sales_order"), m.entity("line")
    assert order.field("total").rollup == Rollup("line", "order_id", "sum", "amount")
    assert order.field("lines").rollup == Rollup("line", "order_id", "count", None)
    assert order.field("gross").formula == "round(total * 1.19, 2)" and order.field("gross").computed
    assert line.field("amount").computed and not line.field("quantity").computed


def changed(entity: dict[str, Any], index: int, **attrs: Any) -> dict[str, Any]:
    e = {**entity, "fields": [dict(f) for f in entity["fields"]]}
    e["fields"][index].update(attrs)
    return e


@pytest.mark.parametrize(
    ("d", "path", "fragment"),
    [
        (
            doc(PLAIN, changed(LINE, 3, formula="quantity * price")),
            f"{L}[3].formula",
            "unknown field 'price'",
        ),
        (doc(PLAIN, changed(LINE, 3, formula="amount + 1")), f"{L}[3].formula", "unknown field 'amount'"),
        (
            doc(PLAIN, changed(LINE, 3, formula="__import__('os')")),
            f"{L}[3].formula",
            "not a formula function",
        ),
        (doc(PLAIN, changed(LINE, 1, type="string")), f"{L}[3].formula", "unknown field 'quantity'"),
        (doc(PLAIN, changed(LINE, 3, type="string")), f"{L}[3].formula", "does not apply to string"),
        (doc(PLAIN, changed(LINE, 3, required=True)), f"{L}[3].required", "computed"),
        (doc(PLAIN, changed(LINE, 3, default=1)), f"{L}[3].default", "computed"),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "nope", "op": "sum", "field": "x"})),
            f"{OF}[1].rollup.entity",
            "unknown entity 'nope'",
        ),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "widget", "op": "count"})),
            f"{OF}[1].rollup.entity",
            "no reference field to 'sales_order'",
        ),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "line", "op": "avg", "field": "amount"})),
            f"{OF}[1].rollup.op",
            "unknown rollup 'avg'",
        ),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "line", "op": "sum"})),
            f"{OF}[1].rollup.field",
            "sum needs the child field",
        ),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "line", "op": "count", "field": "amount"})),
            f"{OF}[1].rollup.field",
            "takes no field",
        ),
        (
            doc(order=changed(ORDER, 1, rollup={"entity": "line", "op": "max", "field": "order_id"})),
            f"{OF}[1].rollup.field",
            "reference field 'order_id'",
        ),
        (
            doc(
                order=changed(
                    ORDER, 1, rollup={"entity": "line", "op": "sum", "field": "amount", "via": "quantity"}
                )
            ),
            f"{OF}[1].rollup.via",
            "not a reference",
        ),
        (doc(order=changed(ORDER, 1, rollup="line.amount")), f"{OF}[1].rollup", "expected a table"),
        (doc(order=changed(ORDER, 1, formula="1")), f"{OF}[1]", "not both"),
    ],
)
def test_each_bad_computed_field_is_one_located_issue(d: dict[str, Any], path: str, fragment: str) -> None:
    at, message = only_issue(d)
    assert at == path and fragment in message


def test_formulas_may_not_depend_on_themselves_through_others() -> None:
    line = {
        "name": "line",
        "fields": [
            {"name": "order_id", "type": "reference", "entity": "sales_order"},
            {"name": "a", "type": "integer", "formula": "b + 1"},
            {"name": "b", "type": "integer", "formula": "a * 2"},
        ],
    }
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc(PLAIN, line))
    assert [(i.path, "depends on itself" in i.message) for i in caught.value.issues] == [
        (f"{L}[1].formula", True),
        (f"{L}[2].formula", True),
    ]
