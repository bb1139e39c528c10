"""Event type patterns and the in-process bus (subscribe, filter, unsubscribe)."""

from __future__ import annotations

import asyncio

import pytest

from app.events import Event, EventBus, matches, pattern_problem

MATCHES = [
    # pattern, event type, matches?
    ("tenant.created", "tenant.created", True),
    ("tenant.created", "tenant.creat", False),
    ("tenant.created", "tenant.created.x", False),
    ("user.*", "user.added", True),
    ("user.*", "user.role_changed", True),
    ("user.*", "user", False),
    ("user.*", "user.role.changed", False),  # * is one segment: it never crosses a dot
    ("inventory.item.*", "inventory.item.created", True),
    ("inventory.item.*", "inventory.item.updated", True),
    ("inventory.item.*", "inventory.item", False),
    ("inventory.item.*", "inventory.items.created", False),
    ("inventory.item.*", "inventory.item.created.late", False),
    ("inventory.*.created", "inventory.item.created", True),
    ("inventory.*.created", "inventory.created", False),
    ("inventory.*.created", "inventory.item.sub.created", False),
    ("inventory.*.created", "crm.item.created", False),
    ("*.*.created", "crm.customer.created", True),
    ("*.*.created", "tenant.created", False),
    ("*.created", "tenant.created", True),
    ("inventory.*", "inventory.item.created", False),
    ("inventory.*", "inventory.low", True),
    ("a_b.c-d.*", "a_b.c-d.e", True),
    ("a_b.c-d.*", "a_bx.c-d.e", False),  # '_' and '-' are literal, not wildcards
    ("a.b.c", "a.b.C", False),
]


@pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCHES)
def test_pattern_table(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("tenant", "at least two"),
        ("user.ad*", "a wildcard must be a whole segment"),
        ("user.**", "a wildcard must be a whole segment"),
        ("User.added", "not a valid part"),
        ("user..added", "not a valid part"),
    ],
)
def test_invalid_patterns_are_refused_with_the_reason(pattern: str, problem: str) -> None:
    found = pattern_problem(pattern)
    assert found is not None and problem in found
    with pytest.raises(ValueError, match=problem.split()[0]):
        EventBus().subscribe(pattern, lambda e: None)


def test_the_guest_sdk_matches_like_the_host() -> None:
    import importlib

    sdk = importlib.import_module("portal_guest.plugin")

    for pattern, event_type, expected in MATCHES:
        assert sdk._event_matches(pattern, event_type) is expected, (pattern, event_type)


def test_bus_filters_by_type_and_unsubscribes() -> None:
    bus = EventBus()
    seen: dict[str, list[str]] = {"exact": [], "items": [], "async": [], "broken": []}

    async def on_async(e: Event) -> None:
        seen["async"].append(e.type)

    def broken(e: Event) -> None:
        seen["broken"].append(e.type)
        raise RuntimeError("subscriber bug")

    exact = bus.subscribe("tenant.created", lambda e: seen["exact"].append(e.type))
    items = bus.subscribe("inventory.item.*", lambda e: seen["items"].append(e.type))
    bus.subscribe("inventory.*.deleted", on_async)
    bus.subscribe("tenant.created", broken)

    async def run() -> None:
        for t in (
            "tenant.created",
            "inventory.item.created",
            "inventory.item.deleted",
            "inventory.stock.deleted",
            "crm.item.created",
        ):
            await bus.publish(Event(t, None))
        assert bus.unsubscribe(items) is True
        assert bus.unsubscribe(items) is False  # already gone
        await bus.publish(Event("inventory.item.updated", None))
        bus.unsubscribe(exact)
        await bus.publish(Event("tenant.created", None))

    asyncio.run(run())
    assert seen["exact"] == ["tenant.created"]
    assert seen["items"] == ["inventory.item.created", "inventory.item.deleted"]
    assert seen["async"] == ["inventory.item.deleted", "inventory.stock.deleted"]
    # A failing subscriber neither stops the others nor reaches the publisher.
    assert seen["broken"] == ["tenant.created", "tenant.created"]
    assert [s.pattern for s in bus.subscribers("tenant.created")] == ["tenant.created"]


def test_event_settings(tmp_path: object) -> None:
    from app.core.settings import SettingsError, load_settings

    base = {"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_SECRET_KEY": "k"}
    defaults = load_settings(base)
    assert (defaults.event_sweep_seconds, defaults.event_claim_timeout_seconds) == (1.5, 300)
    tuned = load_settings({**base, "PORTAL_EVENT_SWEEP_SECONDS": "0.25", "PORTAL_EVENT_CLAIM_TIMEOUT": "60"})
    assert (tuned.event_sweep_seconds, tuned.event_claim_timeout_seconds) == (0.25, 60)
    for name, value, message in (
        ("PORTAL_EVENT_SWEEP_SECONDS", "soon", "number of seconds"),
        ("PORTAL_EVENT_SWEEP_SECONDS", "0", "more than 0"),
        ("PORTAL_EVENT_CLAIM_TIMEOUT", "1.5", "whole number"),
    ):
        with pytest.raises(SettingsError, match=message):
            load_settings({**base, name: value})
