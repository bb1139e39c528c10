"""Host-call errors of db-query speak the SDK's vocabulary (the filter as the guest wrote it), not the
record service's internal `field__lt` keys."""

from __future__ import annotations

from app.core.errors import ValidationFailed
from app.sandbox.host import in_guest_terms


def test_filter_errors_name_the_guest_operator_not_the_internal_suffix() -> None:
    filters = {"qty": {"lt": "ten", "gte": 1}, "status": "bogus", "when": {"ne": "x"}}
    refused = ValidationFailed(
        {
            "qty__lt": "Enter a whole number",
            "status": "Not an option",
            "when__ne": "Enter a date",
            "sort": "Cannot sort by 'nope'",
        }
    )
    translated = in_guest_terms(refused, filters)
    assert translated.errors == {
        'filter {"qty": {"lt": "ten"}}': "Enter a whole number",
        'filter {"status": "bogus"}': "Not an option",
        'filter {"when": {"ne": "x"}}': "Enter a date",
        "page.sort": "Cannot sort by 'nope'",
    }
    assert "__" not in str(translated)


def test_lte_and_gte_map_back_from_to_and_from() -> None:
    refused = ValidationFailed({"day__from": "Enter a date", "day__to": "Enter a date"})
    out = in_guest_terms(refused, {"day": {"gte": "a", "lte": "b"}})
    assert set(out.errors) == {'filter {"day": {"gte": "a"}}', 'filter {"day": {"lte": "b"}}'}
