"""Row formulas: what they compute, NULL and division semantics, and everything they refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.manifest.formula import FormulaError, compile_formula

FIELDS = {"quantity", "unit_price", "discount", "amount"}


@pytest.mark.parametrize(
    ("source", "row", "expected"),
    [
        ("quantity * unit_price", {"quantity": 3, "unit_price": Decimal("2.50")}, Decimal("7.50")),
        ("round(quantity * unit_price * 1.19, 2)", {"quantity": 3, "unit_price": "9.99"}, Decimal("35.66")),
        ("round(2.5)", {}, Decimal("3")),  # half up, as people round money
        ("quantity - discount", {"quantity": 10, "discount": None}, None),  # empty operand: empty
        ("quantity / discount", {"quantity": 10, "discount": 0}, None),  # division by zero: empty
        ("quantity % 3", {"quantity": 10}, Decimal("1")),
        ("-quantity + +discount", {"quantity": 2, "discount": 5}, Decimal("3")),
        ("quantity if quantity > 0 else 0", {"quantity": -4}, Decimal("0")),
        ("quantity > 1 and unit_price <= 5", {"quantity": 2, "unit_price": 5}, Decimal("1")),
        ("not (quantity == 2) or 0", {"quantity": 2}, Decimal("0")),
        ("1 < quantity < 3", {"quantity": 2}, Decimal("1")),
        ("min(quantity, unit_price, 4)", {"quantity": 7, "unit_price": 5}, Decimal("4")),
        ("max(quantity, 0) + abs(discount)", {"quantity": -1, "discount": -2}, Decimal("2")),
        ("0.1 + 0.2", {}, Decimal("0.3")),  # decimal, not binary floating point
    ],
)
def test_formulas_compute(source: str, row: dict[str, object], expected: Decimal | None) -> None:
    assert compile_formula(source, FIELDS)(row) == expected


def test_the_fields_read_are_known() -> None:
    assert compile_formula("round(quantity * unit_price, 2)", FIELDS).names == {"quantity", "unit_price"}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "empty"),
        ("quantity *", "not an expression"),
        ("price * 2", "unknown field 'price'"),
        ("quantity.real", "not allowed"),
        ("__import__('os')", "not a formula function"),
        ("quantity[0]", "not allowed"),
        ("'text'", "only numbers"),
        ("True + 1", "only numbers"),
        ("[quantity]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("quantity ** 2", "not allowed"),
        ("quantity in (1, 2)", "only < <= > >= == !="),
        ("round(quantity, ndigits=2)", "not a formula function"),
        ("round()", "round takes"),
        ("abs(1, 2)", "abs takes one"),
        ("min()", "needs at least one"),
        ("(yield 1)", "not"),
        ("x := 1", "not an expression"),
        ("+".join(["1"] * 120), "too complex"),
        ("1" * 501, "longer than 500"),
    ],
)
def test_formulas_refuse_everything_else(source: str, fragment: str) -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula(source, FIELDS)
    assert fragment in str(caught.value)


def test_the_error_names_the_column() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("quantity * price", FIELDS)
    assert "column 12" in str(caught.value)
