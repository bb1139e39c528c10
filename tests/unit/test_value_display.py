"""How stored and typed values read on list, detail and conflict pages."""

from __future__ import annotations

from decimal import Decimal

from app.manifest import FieldSpec
from app.records.values import display


def _field(type_: str, **kw: object) -> FieldSpec:
    return FieldSpec(name="f", type=type_, label="F", **kw)  # type: ignore[arg-type]


def test_decimals_are_grouped_and_scaled() -> None:
    assert display(_field("decimal", scale=2), Decimal("1234.5")) == "1,234.50"


def test_what_a_user_typed_that_does_not_parse_is_shown_as_typed() -> None:
    # The edit-conflict page shows the user's input next to the stored value; it may be garbage.
    assert display(_field("decimal", scale=2), "12abc") == "12abc"
    assert display(_field("boolean"), "maybe") == "maybe"
    assert display(_field("boolean"), True) == "Yes"
