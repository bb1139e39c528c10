"""`board` on crud pages: a kanban of the rows by a select field, validated with located errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.manifest import ManifestError, ValidationContext, load_manifest, parse_manifest
from tests.unit.test_manifest import base

B = "ui.pages[0].board"


def with_board(board: Any, page: int = 0) -> dict[str, Any]:
    doc = base()
    doc["ui"]["pages"][page]["board"] = board
    return doc


def only_issue(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    issues = caught.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0].path, issues[0].message


def test_a_board_is_normalised_with_its_defaults() -> None:
    manifest = parse_manifest(with_board({"field": "kind"}))
    assert manifest.page("/demo/widgets").board == {
        "field": "kind",
        "card": ("code",),  # the display field (the first string field)
        "limit": 20,
        "sort": "-updated_at",
    }
    full = parse_manifest(
        with_board({"field": "kind", "card": ["title", "count", "created_at"], "limit": 5, "sort": "code"})
    )
    assert full.page("/demo/widgets").board == {
        "field": "kind",
        "card": ("title", "count", "created_at"),
        "limit": 5,
        "sort": "code",
    }
    assert parse_manifest(base()).page("/demo/widgets").board is None


@pytest.mark.parametrize(
    ("board", "path", "fragment"),
    [
        ("kind", B, "expected a table {field, card, limit, sort}"),
        ({}, f"{B}.field", "is required"),
        (
            {"field": "nothing"},
            f"{B}.field",
            "unknown field 'nothing' in entity 'widget' (select fields: kind)",
        ),
        ({"field": "count"}, f"{B}.field", "field 'count' is integer; a board's columns are the options"),
        ({"field": "kind", "card": []}, f"{B}.card", "expected a non-empty array"),
        ({"field": "kind", "card": ["title", "nope"]}, f"{B}.card[1]", "unknown field 'nope'"),
        ({"field": "kind", "card": ["extra"]}, f"{B}.card[0]", "json fields cannot be shown"),
        ({"field": "kind", "card": ["id"]}, f"{B}.card[0]", "only created_at and updated_at"),
        ({"field": "kind", "card": ["code", "code"]}, f"{B}.card[1]", "listed twice"),
        ({"field": "kind", "card": ["code"] * 7}, f"{B}.card", "at most 6 fields"),
        ({"field": "kind", "limit": 0}, f"{B}.limit", "out of range"),
        ({"field": "kind", "limit": 101}, f"{B}.limit", "out of range"),
        ({"field": "kind", "sort": "-notes"}, f"{B}.sort", "cannot sort by 'notes'"),
        ({"field": "kind", "colour": "red"}, f"{B}.colour", "unknown key 'colour'"),
    ],
)
def test_each_bad_board_is_one_located_issue(board: Any, path: str, fragment: str) -> None:
    at, message = only_issue(with_board(board))
    assert at == path and fragment in message, (at, message)


def test_a_board_is_for_crud_pages_only() -> None:
    at, message = only_issue(with_board({"field": "kind"}, page=1))
    assert at == "ui.pages[1].board" and "only applies to crud pages" in message


def test_the_bundled_boards_parse() -> None:
    root = Path(__file__).resolve().parents[2] / "plugins"
    ctx = ValidationContext(available_modules=frozenset({"auth", "workflow"}))
    inventory = load_manifest(root / "inventory" / "plugin.toml", ctx)
    board = inventory.page("/inventory/purchase").board
    assert board is not None and board["field"] == "status" and board["card"][0] == "order_no"
    crm = load_manifest(root / "crm" / "plugin.toml", ctx)
    board = crm.page("/crm/customers").board
    assert board is not None and board["field"] == "status"
