"""An entity's `children` (child rows edited with it), validated with located errors: the child exists in
the plugin, references the parent, and the fields, order field and reference it names are right."""

from __future__ import annotations

from typing import Any

import pytest

from app.manifest import ChildSpec, ManifestError, parse_manifest
from tests.unit.test_manifest import base

C = "schema.entities[1].children"  # on gadget, which widget references with parent_id


def with_children(children: Any) -> dict[str, Any]:
    doc = base()
    doc["schema"]["entities"][1]["children"] = children
    return doc


def only_issue(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    issues = caught.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0].path, issues[0].message


def test_defaults_fill_in_the_reference_the_label_and_the_fields() -> None:
    gadget = parse_manifest(with_children([{"name": "widgets", "entity": "widget"}])).entity("gadget")
    (child,) = gadget.children
    assert child == ChildSpec(
        name="widgets",
        entity="widget",
        via="parent_id",
        label="Widget",
        fields=(
            "code", "title", "count", "price", "kind", "owner", "starts", "happened", "active", "extra", "notes",
        ),
        order=None,
    )  # fmt: skip
    assert gadget.child("widgets") is child and gadget.child("nothing") is None
    assert parse_manifest(base()).entity("gadget").children == ()


def test_an_order_field_leaves_the_row_fields_and_labels_translate() -> None:
    doc = with_children(
        [
            {
                "name": "widgets",
                "entity": "widget",
                "order": "count",
                "fields": ["code", "price"],
                "label": {"en": "Parts", "zh": "零件"},
            }
        ]
    )
    (child,) = parse_manifest(doc).entity("gadget").children
    assert (child.order, child.fields, str(child.label)) == ("count", ("code", "price"), "Parts")
    # Without `fields`, the order field is not a row field either.
    doc = with_children([{"name": "widgets", "entity": "widget", "order": "count"}])
    assert "count" not in parse_manifest(doc).entity("gadget").children[0].fields


@pytest.mark.parametrize(
    ("children", "path", "fragment"),
    [
        ("widget", C, "expected an array of child sets"),
        (["widget"], f"{C}[0]", "expected a table"),
        ([{"entity": "widget"}], f"{C}[0].name", "is required"),
        ([{"name": "widgets"}], f"{C}[0].entity", "is required"),
        ([{"name": "widgets", "entity": "widget", "colour": 1}], f"{C}[0].colour", "unknown key"),
        ([{"name": "Widgets", "entity": "widget"}], f"{C}[0].name", "is not valid"),
        ([{"name": "label", "entity": "widget"}], f"{C}[0].name", "is a field of 'gadget'"),
        ([{"name": "version", "entity": "widget"}], f"{C}[0].name", "is a field of 'gadget'"),
        ([{"name": "widgets", "entity": "nothing"}], f"{C}[0].entity", "unknown entity 'nothing'"),
        ([{"name": "widgets", "entity": "gadget"}], f"{C}[0].entity", "cannot be a child of itself"),
        ([{"name": "widgets", "entity": "widget", "via": "owner"}], f"{C}[0].via", "not a reference"),
        (
            [{"name": "widgets", "entity": "widget", "order": "title"}],
            f"{C}[0].order",
            "string field 'title'",
        ),
        ([{"name": "widgets", "entity": "widget", "order": "nope"}], f"{C}[0].order", "unknown field 'nope'"),
        ([{"name": "widgets", "entity": "widget", "order": "code"}], f"{C}[0].order", "string field 'code'"),
        (
            [{"name": "widgets", "entity": "widget", "fields": ["code", "nope"]}],
            f"{C}[0].fields[1]",
            "unknown field 'nope'",
        ),
        (
            [{"name": "widgets", "entity": "widget", "fields": ["code", "parent_id"]}],
            f"{C}[0].fields[1]",
            "the reference to the parent",
        ),
        (
            [{"name": "widgets", "entity": "widget", "order": "count", "fields": ["code", "count"]}],
            f"{C}[0].fields[1]",
            "is the order field",
        ),
        (
            [{"name": "widgets", "entity": "widget", "fields": ["code", "code"]}],
            f"{C}[0].fields[1]",
            "listed twice",
        ),
        ([{"name": "widgets", "entity": "widget", "fields": ["title"]}], f"{C}[0].fields", "'code'"),
        ([{"name": "widgets", "entity": "widget", "fields": []}], f"{C}[0].fields", "at least one field"),
        (
            [{"name": "widgets", "entity": "widget"}, {"name": "widgets", "entity": "widget"}],
            f"{C}[1].name",
            "declared twice",
        ),
    ],
)
def test_each_bad_child_set_is_one_located_issue(children: Any, path: str, fragment: str) -> None:
    at, message = only_issue(with_children(children))
    assert at == path and fragment in message, (at, message)


def test_a_child_with_no_reference_to_the_parent_or_several_is_named() -> None:
    doc = base()
    doc["schema"]["entities"][0]["children"] = [{"name": "gadgets", "entity": "gadget"}]
    at, message = only_issue(doc)
    assert at == "schema.entities[0].children[0].entity" and "no reference field to 'widget'" in message

    doc = with_children([{"name": "widgets", "entity": "widget"}])
    doc["schema"]["entities"][0]["fields"].append(
        {"name": "spare_id", "type": "reference", "entity": "gadget"}
    )
    at, message = only_issue(doc)
    assert at == f"{C}[0].via" and "several fields" in message and "spare_id" in message
    doc["schema"]["entities"][1]["children"][0]["via"] = "spare_id"
    assert parse_manifest(doc).entity("gadget").children[0].via == "spare_id"


def test_a_computed_order_field_is_refused() -> None:
    doc = with_children([{"name": "widgets", "entity": "widget", "order": "total"}])
    doc["schema"]["entities"][0]["fields"].append(
        {"name": "total", "type": "integer", "formula": "count * 2"}
    )
    at, message = only_issue(doc)
    assert at == f"{C}[0].order" and "computed field 'total'" in message
