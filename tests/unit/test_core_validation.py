"""app.core.validation: the issue collector shared by the manifest parser and the UI validator."""

from __future__ import annotations

import datetime as dt

from app.core.validation import (
    INVALID,
    Issue,
    Issues,
    at,
    ix,
    kind,
    member,
    one_of,
    or_default,
    show,
    suggest,
)


def test_issues_collect_in_order_and_fail_returns_the_falsy_sentinel() -> None:
    issues = Issues()
    assert not issues and len(issues) == 0
    issues.add("a.b", "first")
    result = issues.fail("c[0]", "second")
    assert result is INVALID and not result and repr(result) == "INVALID"
    assert (result or "fallback") == "fallback"
    assert list(issues) == [Issue("a.b", "first"), Issue("c[0]", "second")] == issues.items
    assert issues[1].path == "c[0]" and str(issues[0]) == "a.b: first"
    issues.extend([Issue("d", "third")])
    assert len(issues) == 3 and issues


def test_or_default_keeps_legitimate_falsy_values() -> None:
    assert or_default(INVALID, "x") == "x"
    assert or_default(None, "x") is None
    assert or_default(0, 5) == 0


def test_paths() -> None:
    assert at("", "plugin") == "plugin"
    assert at("plugin", "id") == "plugin.id"
    assert ix("schema.entities", 2) == "schema.entities[2]"
    assert member("rows[0]", "qty") == "rows[0].qty"
    assert member("", "qty") == "qty"
    assert member("rows[0]", "odd key") == 'rows[0]["odd key"]'
    assert member("d", "\ud800") == 'd["\\ud800"]'  # ASCII: printable even for a lone surrogate
    assert member("d", "é" * 70) == 'd["' + "\\u00e9" * 60 + '\\u2026"]'


def test_value_names_and_lists() -> None:
    assert [
        kind(v) for v in (None, True, 1, 1.5, "s", {}, [], dt.datetime(2026, 1, 1), dt.date(2026, 1, 1))
    ] == [
        "nothing",
        "a boolean",
        "an integer",
        "a float",
        "a string",
        "a table",
        "an array",
        "a datetime",
        "a date",
    ]
    assert [show(v) for v in ("x", False, 3, dt.date(2026, 1, 2))] == ["'x'", "false", "3", "2026-01-02"]
    assert one_of(["a", "b"]) == "a, b"
    assert suggest("tpye", ("name", "type")) == "type"
    assert suggest("zzz", ("name", "type")) is None
