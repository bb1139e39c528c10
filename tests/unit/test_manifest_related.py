"""`related` on crud pages: the record page's lists of referencing rows, validated with located errors."""

from __future__ import annotations

from typing import Any

import pytest

from app.manifest import ManifestError, parse_manifest
from tests.unit.test_manifest import base

GADGETS = {"name": "Gadgets", "path": "/demo/gadgets", "type": "crud", "entity": "gadget"}
R = "ui.pages[2].related"


def with_related(related: Any, page: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = base()
    doc["ui"]["pages"].append({**(page or GADGETS), "related": related})
    return doc


def only_issue(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    issues = caught.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0].path, issues[0].message


def test_related_defaults_and_the_reference_field_are_filled_in() -> None:
    manifest = parse_manifest(with_related([{"entity": "widget", "sort": "-code", "label": "Widgets here"}]))
    (rel,) = manifest.page("/demo/gadgets").related or ()
    assert rel == {
        "entity": "widget",
        "field": "parent_id",
        "label": "Widgets here",
        "sort": "-code",
        "limit": 10,
        "hidden": False,
    }
    assert manifest.page("/demo/widgets").related is None  # not configured: every list, defaults


@pytest.mark.parametrize(
    ("related", "path", "fragment"),
    [
        ("widget", R, "expected an array of related lists"),
        (["widget"], f"{R}[0]", "expected a table with an entity"),
        ([{"entity": "nothing"}], f"{R}[0].entity", "unknown entity 'nothing'"),
        ([{"entity": "gadget"}], f"{R}[0].entity", "has no reference field to 'gadget'"),
        ([{"entity": "widget", "field": "owner"}], f"{R}[0].field", "not a reference from 'widget'"),
        ([{"entity": "widget", "sort": "notes"}], f"{R}[0].sort", "cannot sort 'widget' by 'notes'"),
        ([{"entity": "widget", "limit": 0}], f"{R}[0].limit", "out of range"),
        ([{"entity": "widget", "limit": 101}], f"{R}[0].limit", "out of range"),
        ([{"entity": "widget", "colour": "red"}], f"{R}[0].colour", "unknown key"),
        ([{"entity": "widget"}, {"entity": "widget"}], f"{R}[1]", "listed twice"),
    ],
)
def test_each_bad_related_list_is_one_located_issue(related: Any, path: str, fragment: str) -> None:
    at, message = only_issue(with_related(related))
    assert at == path and fragment in message


def test_an_entity_with_two_references_needs_the_field_named() -> None:
    doc = with_related([{"entity": "widget"}])
    doc["schema"]["entities"][0]["fields"].append(
        {"name": "spare_id", "type": "reference", "entity": "gadget"}
    )
    at, message = only_issue(doc)
    assert at == f"{R}[0]" and "several fields" in message and "spare_id" in message
    doc["ui"]["pages"][2]["related"] = [{"entity": "widget", "field": "spare_id"}]
    assert parse_manifest(doc).page("/demo/gadgets").related[0]["field"] == "spare_id"  # type: ignore[index]


def test_related_only_applies_to_crud_pages() -> None:
    doc = with_related([{"entity": "widget"}], {"name": "Board 2", "path": "/demo/b2", "type": "dashboard"})
    at, message = only_issue(doc)
    assert at == R and "only applies to crud pages" in message
