"""Row formulas: a small safe expression language over one row's numeric fields.

`quantity * unit_price`, `round(amount * 1.2, 2)`, `quantity if quantity > 0 else 0`. Arithmetic
(+ - * / %), comparisons, `and`/`or`/`not`, `x if c else y`, and the functions round, abs, min and max.
No names but the entity's integer and decimal fields; no attributes, indexing, strings or calls of
anything else. Values are Decimals; an empty operand or a division by zero gives an empty result,
like SQL's NULL.

Parsed with Python's own parser and then checked node by node against a whitelist, so the grammar is
Python's (people know it) and nothing outside the whitelist can ever be evaluated.
"""

from __future__ import annotations

import ast
import decimal
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core.i18n import N_, phrase

MAX_LENGTH = 500
MAX_NODES = 200
FUNCTIONS = ("round", "abs", "min", "max")
_CONTEXT = decimal.Context(prec=38, rounding=decimal.ROUND_HALF_UP)

Value = Decimal | bool | None
Evaluator = Callable[[Mapping[str, Any]], Value]


class FormulaError(ValueError):
    """Why an expression is refused; the message names the place (column) and the cause."""


@dataclass(frozen=True)
class Formula:
    source: str
    names: frozenset[str]  # the fields it reads
    evaluate: Evaluator

    def __call__(self, row: Mapping[str, Any]) -> Decimal | None:
        value = self.evaluate(row)
        if isinstance(value, bool):
            return Decimal(int(value))
        return value


def compile_formula(source: str, fields: Collection[str]) -> Formula:
    """The checked, compiled expression; FormulaError if it is not one (`fields`: the names it may read)."""
    if not source.strip():
        raise FormulaError(N_("the formula is empty"))
    if len(source) > MAX_LENGTH:
        raise FormulaError(N_("the formula is longer than %(max_length)s characters", max_length=MAX_LENGTH))
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(
            N_("not an expression (column %(value)s): %(msg)s", value=exc.offset or 1, msg=exc.msg)
        ) from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise FormulaError(
            N_(
                "the formula is too complex (%(nodes)s parts, at most %(max_nodes)s)",
                nodes=nodes,
                max_nodes=MAX_NODES,
            )
        )
    names: set[str] = set()
    evaluate = _compile(tree.body, frozenset(fields), names)
    return Formula(source, frozenset(names), evaluate)


def _where(node: ast.AST) -> str:
    return N_("column %(column)s", column=getattr(node, "col_offset", 0) + 1)


def _number(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    try:
        return Decimal(str(value))
    except decimal.InvalidOperation:
        return None


def _truth(value: Value) -> bool | None:
    if value is None:
        return None
    return bool(value)


_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: lambda a, b: _CONTEXT.add(a, b),
    ast.Sub: lambda a, b: _CONTEXT.subtract(a, b),
    ast.Mult: lambda a, b: _CONTEXT.multiply(a, b),
    ast.Div: lambda a, b: _CONTEXT.divide(a, b),
    ast.Mod: lambda a, b: _CONTEXT.remainder(a, b),
}
_COMPARE: dict[type[ast.cmpop], Callable[[Decimal, Decimal], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def _compile(node: ast.expr, fields: frozenset[str], names: set[str]) -> Evaluator:
    def sub(child: ast.expr) -> Evaluator:
        return _compile(child, fields, names)

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(N_("only numbers may be written in a formula (%(where)s)", where=_where(node)))
        constant = Decimal(str(node.value))
        return lambda _row: constant
    if isinstance(node, ast.Name):
        if node.id not in fields:
            known = ", ".join(sorted(fields)) or phrase(N_("none"))
            raise FormulaError(
                N_(
                    "unknown field '%(id)s' (%(where)s; numeric fields: %(known)s)",
                    id=node.id,
                    where=_where(node),
                    known=known,
                )
            )
        name = node.id
        names.add(name)
        return lambda row: _number(row.get(name))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], sub(node.left), sub(node.right)

        def binary(row: Mapping[str, Any]) -> Value:
            a, b = _number(left(row)), _number(right(row))
            if a is None or b is None:
                return None
            try:
                return op(a, b)
            except (decimal.DivisionByZero, decimal.InvalidOperation):
                return None

        return binary
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
        operand = sub(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda row: None if (t := _truth(operand(row))) is None else not t
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return lambda row: None if (v := _number(operand(row))) is None else v * sign
    if isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise FormulaError(N_("only < <= > >= == != compare (%(where)s)", where=_where(node)))
        parts = [sub(node.left), *(sub(c) for c in node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(row: Mapping[str, Any]) -> Value:
            values = [_number(p(row)) for p in parts]
            if any(v is None for v in values):
                return None
            return all(op(a, b) for op, a, b in zip(ops, values, values[1:], strict=False))  # type: ignore[arg-type]

        return compare
    if isinstance(node, ast.BoolOp):
        parts = [sub(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def boolean(row: Mapping[str, Any]) -> Value:
            truths = [_truth(p(row)) for p in parts]
            if is_and:
                return False if False in truths else None if None in truths else True
            return True if True in truths else None if None in truths else False

        return boolean
    if isinstance(node, ast.IfExp):
        test, then, other = sub(node.test), sub(node.body), sub(node.orelse)

        def choose(row: Mapping[str, Any]) -> Value:
            t = _truth(test(row))
            return None if t is None else then(row) if t else other(row)

        return choose
    if isinstance(node, ast.Call):
        return _call(node, sub)
    raise FormulaError(
        N_(
            "'%(unparse)s' is not allowed in a formula (%(where)s)",
            unparse=ast.unparse(node),
            where=_where(node),
        )
    )


def _call(node: ast.Call, sub: Callable[[ast.expr], Evaluator]) -> Evaluator:
    func = node.func.id if isinstance(node.func, ast.Name) else None
    if func not in FUNCTIONS or node.keywords:
        raise FormulaError(
            N_(
                "'%(unparse)s' is not a formula function (%(where)s; functions: %(functions)s)",
                unparse=ast.unparse(node.func),
                where=_where(node),
                functions=", ".join(FUNCTIONS),
            )
        )
    args = [sub(a) for a in node.args]
    if func == "round":
        if len(args) not in (1, 2):
            raise FormulaError(
                N_("round takes a number and optionally its places (%(where)s)", where=_where(node))
            )

        def rounded(row: Mapping[str, Any]) -> Value:
            values = [_number(a(row)) for a in args]
            if any(v is None for v in values):
                return None
            places = int(values[1]) if len(values) == 2 else 0  # type: ignore[arg-type]
            return values[0].quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP)  # type: ignore[union-attr]

        return rounded
    if func == "abs":
        if len(args) != 1:
            raise FormulaError(N_("abs takes one number (%(where)s)", where=_where(node)))
        return lambda row: None if (v := _number(args[0](row))) is None else abs(v)
    if not args:
        raise FormulaError(
            N_("%(func)s needs at least one number (%(where)s)", func=func, where=_where(node))
        )
    pick = min if func == "min" else max

    def extreme(row: Mapping[str, Any]) -> Value:
        values = [_number(a(row)) for a in args]
        return None if any(v is None for v in values) else pick(values)  # type: ignore[type-var]

    return extreme
