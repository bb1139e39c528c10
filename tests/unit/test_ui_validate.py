"""UI-instruction validation (app.ui): every block's good and bad shapes, limits, URLs, permissions,
and the JSON Schema kept for plugin authors (which must not drift from the validator)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ui import UI_VERSION, UIProblem, UIView, parse_ui, safe_relative_url
from app.ui.checks import MAX_STRING
from app.ui.validate import ALIASES, BLOCK_PROPERTIES, MAX_BLOCKS, MAX_DEPTH, PART_PROPERTIES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "app" / "ui" / "ui-instructions.v1.schema.json").read_text())
DOCS = (ROOT / "docs" / "ui-instructions.md").read_text()


def allow_all(permission: str) -> bool:
    return True


def parse(doc: Any, can: Any = allow_all, **kw: Any) -> UIView:
    return parse_ui(doc if isinstance(doc, str) else json.dumps(doc), can=can, **kw)


def one(block: Any) -> tuple[dict[str, Any], list[UIProblem]]:
    view = parse({"blocks": [block]})
    assert not view.fatal and len(view.blocks) == 1
    return view.blocks[0], view.problems


# --- safe_relative_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "href",
    [
        "/",
        "/t/acme/inventory",
        "/x?a=1&b=2#frag",
        "?page=2",
        "#ui-totals",
        "/javascript:alert(1)",
        "/a/../b",
        "/ünïcode",
        '/x?a="><script>',
    ],
)
def test_relative_urls_accepted(href: str) -> None:
    assert safe_relative_url(href) == href


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "javascript :alert(1)",
        "\x01javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "data:text/html,<script>",
        "DATA:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox",
        "http://evil.com",
        "https://evil.com/x",
        "HTTPS://evil.com",
        "//evil.com",
        "//evil.com/path",
        "/\\evil.com",
        "\\\\evil.com",
        "\\/evil.com",
        "/ /evil",
        " /x",
        "/x ",
        "/x\u00a0y",
        "/x\u2028",
        "/x\x7f",
        "/x\x00",
        "/x\\y",
        "",
        "evil.com",
        "x/y",
        "mailto:a@b.c",
        "/" + "a" * 2048,
        "/\ud800",
    ],
)
def test_relative_urls_refused(href: str) -> None:
    assert safe_relative_url(href) is None


def test_non_strings_are_refused() -> None:
    assert safe_relative_url(None) is None  # type: ignore[arg-type]
    assert safe_relative_url(["/x"]) is None  # type: ignore[arg-type]


# --- good shapes ---------------------------------------------------------------------------------

GOOD: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "heading", "text": "Hi"}, {"type": "heading", "text": "Hi", "level": 2, "id": None}),
    ({"type": "heading", "text": "Hi", "level": 4, "id": "top"}, {"level": 4, "id": "top"}),
    ({"type": "text", "text": "a\nb"}, {"text": "a\nb", "muted": False}),
    ({"type": "text", "text": "", "muted": True}, {"muted": True}),
    ({"type": "alert", "text": "x"}, {"level": "info", "title": None}),
    ({"type": "alert", "text": "x", "level": "error", "title": "T"}, {"level": "error", "title": "T"}),
    (
        {"type": "stat", "label": "L", "value": 1234567},
        {"value": "1,234,567", "tone": "neutral", "hint": None},
    ),
    (
        {"type": "stat", "label": "L", "value": 12.5, "tone": "good", "hint": "h"},
        {"value": "12.5", "tone": "good"},
    ),
    ({"type": "stat", "label": "L", "value": "n/a"}, {"value": "n/a"}),
    ({"type": "card", "blocks": []}, {"title": None, "blocks": []}),
    ({"type": "card", "title": "C", "blocks": [{"type": "text", "text": "in"}]}, {"title": "C"}),
    (
        {"type": "table", "columns": [{"key": "a"}], "rows": []},
        {"columns": [{"key": "a", "label": "a", "align": "left"}], "rows": [], "empty": None},
    ),
    (
        {
            "type": "table",
            "columns": [{"key": "a", "label": "A", "align": "right"}, {"key": "b"}],
            "rows": [
                {"a": 1.0, "b": "x", "extra": [1]},
                {"a": True, "b": None},
                {"a": {"text": "t", "href": "/x"}},
            ],
            "empty": "none",
        },
        {
            "rows": [
                [{"text": "1", "href": None}, {"text": "x", "href": None}],
                [{"text": "Yes", "href": None}, {"text": "", "href": None}],
                [{"text": "t", "href": "/x"}, {"text": "", "href": None}],
            ],
            "empty": "none",
        },
    ),
    ({"type": "form", "action": "save"}, {"action": "save", "fields": [], "submit": "Save", "errors": []}),
    (
        {
            "type": "form",
            "action": "save-it_2",
            "submit": "Go",
            "errors": ["bad"],
            "fields": [
                {"name": "qty", "type": "integer", "min": 0, "max": 10.0, "value": 3, "required": True}
            ],
        },
        {"submit": "Go", "errors": ["bad"]},
    ),
    ({"type": "button", "label": "B", "action": "go"}, {"style": "secondary", "confirm": None, "data": []}),
    (
        {
            "type": "button",
            "label": "B",
            "action": "go",
            "style": "danger",
            "confirm": "Sure?",
            "data": {"id": 5, "flag": True, "none": None, "s": "x", "f": 1.5},
        },
        {"data": [["id", "5"], ["flag", "true"], ["none", ""], ["s", "x"], ["f", "1.5"]]},
    ),
    ({"type": "link", "text": "L", "href": "/a?b=c"}, {"href": "/a?b=c"}),
    ({"type": "list", "items": []}, {"items": [], "ordered": False}),
    (
        {"type": "list", "items": ["a", {"text": "b"}, {"text": "c", "href": "#x"}], "ordered": True},
        {"items": [{"text": "a", "href": None}, {"text": "b", "href": None}, {"text": "c", "href": "#x"}]},
    ),
    ({"type": "columns", "columns": [[]]}, {"type": "columns", "columns": [[]]}),
    ({"type": "grid", "columns": [[], [{"type": "text", "text": "x"}], [], []]}, {"type": "columns"}),
    ({"type": "chart", "labels": [], "series": [{"name": "s", "values": []}]}, {"kind": "bar", "rows": []}),
    (
        {
            "type": "chart",
            "kind": "line",
            "title": "T",
            "unit": "EUR",
            "labels": ["a", "b"],
            "series": [{"name": "s", "values": [1, None]}, {"name": "t", "values": [-2.5, 1e15]}],
        },
        {"kind": "line", "unit": "EUR", "rows": [["a", "1", "-2.5"], ["b", "", "1,000,000,000,000,000"]]},
    ),
    ({"type": "text", "text": "x" * MAX_STRING}, {}),
    ({"type": "text", "text": "x", "permission": "ui.inventory.export-button"}, {}),
    ({"type": "text", "text": "x", "permission": "db.inventory.item.select"}, {}),
]


@pytest.mark.parametrize(
    ("block", "expected"), GOOD, ids=[f"{b['type']}-{i}" for i, (b, _) in enumerate(GOOD)]
)
def test_good_blocks(block: dict[str, Any], expected: dict[str, Any]) -> None:
    out, problems = one(block)
    assert problems == []
    assert out["type"] == ALIASES.get(block["type"], block["type"])
    normalized = json.loads(json.dumps(out))  # tuples as lists, and proof the view is JSON-serializable
    for key, value in expected.items():
        assert normalized[key] == value, key


def test_form_fields_are_normalized() -> None:
    out, problems = one(
        {
            "type": "form",
            "action": "save",
            "fields": [
                {"name": "a"},
                {
                    "name": "b",
                    "type": "text",
                    "label": "B",
                    "value": "x\ny",
                    "help": "h",
                    "error": "e",
                    "placeholder": "p",
                },
                {"name": "c", "type": "integer", "min": 0, "max": 9.0, "value": 3},
                {"name": "d", "type": "decimal", "value": 1.25},
                {"name": "e", "type": "boolean", "value": True},
                {"name": "f", "type": "boolean", "value": "on"},
                {"name": "g", "type": "date", "min": "2024-01-01", "value": "2024-02-03"},
                {"name": "h", "type": "datetime"},
                {
                    "name": "i",
                    "type": "select",
                    "options": ["x", {"value": "y", "label": "Y"}, {"value": "z"}],
                    "value": "y",
                },
                {"name": "j.k-l", "type": "hidden", "value": None},
            ],
        }
    )
    assert problems == []
    f = {x["name"]: x for x in out["fields"]}
    assert (
        f["a"]["input"] == "text"
        and f["a"]["label"] == "a"
        and f["a"]["value"] == ""
        and not f["a"]["required"]
    )
    assert (f["b"]["input"], f["b"]["help"], f["b"]["error"], f["b"]["placeholder"]) == (
        "textarea",
        "h",
        "e",
        "p",
    )
    assert (f["c"]["input"], f["c"]["step"], f["c"]["min"], f["c"]["max"], f["c"]["value"]) == (
        "number",
        "1",
        "0",
        "9",
        "3",
    )
    assert (f["d"]["step"], f["d"]["value"]) == ("any", "1.25")
    assert f["e"]["checked"] and f["f"]["checked"] and f["e"]["input"] == "checkbox"
    assert (f["g"]["input"], f["g"]["min"], f["h"]["input"]) == ("date", "2024-01-01", "datetime-local")
    assert f["i"]["options"] == [("x", "x"), ("y", "Y"), ("z", "z")] and f["i"]["value"] == "y"
    assert f["j.k-l"]["input"] == "hidden"
    assert len({x["id"] for x in out["fields"]}) == len(out["fields"])


# --- bad shapes: (block, path under blocks[0], message fragment) -----------------------------------

NOT_SCALAR = "expected a string, number, boolean or null"
BAD: list[tuple[Any, str, str]] = [
    (5, "", "expected a block"),
    ([], "", "expected a block"),
    ({}, ".type", "required"),
    ({"type": "nope"}, ".type", 'unknown block type "nope"'),
    ({"type": 3}, ".type", "unknown block type a int"),
    ({"type": "_error", "path": "x", "message": "y"}, ".type", "unknown block type"),
    ({"type": "text", "text": "x", "id": "Bad Id"}, ".id", "expected an id"),
    ({"type": "text", "text": "x", "permission": "admin"}, ".permission", "expected a permission"),
    ({"type": "text", "text": "x", "permission": "ui.X"}, ".permission", "expected a permission"),
    ({"type": "text", "text": "x", "permission": True}, ".permission", "expected a permission"),
    ({"type": "text", "text": "x", "onclick": "alert(1)"}, ".onclick", "unknown property"),
    ({"type": "text", "text": "x", "html": "<b>"}, ".html", "unknown property"),
    ({"type": "text", "text": "x", "a b": 1}, '["a b"]', "unknown property"),
    ({"type": "heading"}, ".text", "required"),
    ({"type": "heading", "text": 5}, ".text", "expected a string"),
    ({"type": "heading", "text": "x", "level": 5}, ".level", "expected an integer from 1 to 4"),
    ({"type": "heading", "text": "x", "level": True}, ".level", "expected an integer from 1 to 4"),
    ({"type": "heading", "text": "x", "level": 2.0}, ".level", "expected an integer"),
    ({"type": "text", "text": "x" * (MAX_STRING + 1)}, ".text", "longer than 10,000 characters"),
    ({"type": "text", "text": "x", "muted": "yes"}, ".muted", "expected a boolean"),
    ({"type": "text", "text": None}, ".text", "expected a string"),
    (
        {"type": "alert", "text": "x", "level": "danger"},
        ".level",
        "expected one of: info, success, warning, error",
    ),
    ({"type": "alert", "text": "x", "title": []}, ".title", "expected a string"),
    ({"type": "stat", "value": 1}, ".label", "required"),
    ({"type": "stat", "label": "L"}, ".value", "required"),
    ({"type": "stat", "label": "L", "value": True}, ".value", "expected a string or a number"),
    ({"type": "stat", "label": "L", "value": None}, ".value", "expected a string or a number"),
    ({"type": "stat", "label": "L", "value": 1, "tone": "great"}, ".tone", "expected one of"),
    ({"type": "card", "blocks": {}}, ".blocks", "expected a list"),
    ({"type": "card", "title": 1, "blocks": []}, ".title", "expected a string"),
    ({"type": "table"}, ".columns", "required"),
    ({"type": "table", "columns": []}, ".columns", "expected 1 to 30 items, got 0"),
    (
        {"type": "table", "columns": [{"key": str(i)} for i in range(31)]},
        ".columns",
        "expected 1 to 30 items",
    ),
    ({"type": "table", "columns": ["a"]}, ".columns[0]", "expected an object"),
    ({"type": "table", "columns": [{"label": "A"}]}, ".columns[0].key", "required"),
    ({"type": "table", "columns": [{"key": "a", "width": 3}]}, ".columns[0].width", "unknown property"),
    (
        {"type": "table", "columns": [{"key": "a", "align": "justify"}]},
        ".columns[0].align",
        "expected one of",
    ),
    (
        {"type": "table", "columns": [{"key": "a"}], "rows": [{"a": 1}] * 1001},
        ".rows",
        "expected 0 to 1,000 items",
    ),
    ({"type": "table", "columns": [{"key": "a"}], "rows": [[1]]}, ".rows[0]", "expected an object mapping"),
    ({"type": "table", "columns": [{"key": "qty"}], "rows": [{"qty": [1]}]}, ".rows[0].qty", NOT_SCALAR),
    (
        {"type": "table", "columns": [{"key": "a b"}], "rows": [{"a b": {}}]},
        '.rows[0]["a b"].text',
        "required",
    ),
    (
        {
            "type": "table",
            "columns": [{"key": "a"}],
            "rows": [{"a": {"text": "t", "href": "javascript:alert(1)"}}],
        },
        ".rows[0].a.href",
        "expected a relative URL",
    ),
    (
        {"type": "table", "columns": [{"key": "a"}], "rows": [{"a": {"text": "t", "href": "/x", "x": 1}}]},
        ".rows[0].a.x",
        "unknown property",
    ),
    ({"type": "table", "columns": [{"key": "a"}], "rows": [], "empty": 0}, ".empty", "expected a string"),
    ({"type": "form"}, ".action", "required"),
    ({"type": "form", "action": "Save!"}, ".action", "expected an action name"),
    ({"type": "form", "action": "s", "fields": {}}, ".fields", "expected a list"),
    ({"type": "form", "action": "s", "fields": [{"name": "a"}] * 201}, ".fields", "expected 0 to 200 items"),
    ({"type": "form", "action": "s", "fields": ["a"]}, ".fields[0]", "expected an object"),
    ({"type": "form", "action": "s", "fields": [{}]}, ".fields[0].name", "required"),
    (
        {"type": "form", "action": "s", "fields": [{"name": "_csrf_token"}]},
        ".fields[0].name",
        "expected a name",
    ),
    ({"type": "form", "action": "s", "fields": [{"name": 'a"b'}]}, ".fields[0].name", "expected a name"),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a"}, {"name": "a"}]},
        ".fields[1].name",
        "duplicate",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "file"}]},
        ".fields[0].type",
        "expected one of",
    ),
    ({"type": "form", "action": "s", "fields": [{"name": "a", "value": {}}]}, ".fields[0].value", NOT_SCALAR),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "required": 1}]},
        ".fields[0].required",
        "boolean",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "options": ["x"]}]},
        ".fields[0].options",
        "only select fields have options",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "select"}]},
        ".fields[0].options",
        "required",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "select", "options": [1]}]},
        ".fields[0].options[0]",
        "expected an object",
    ),
    (
        {
            "type": "form",
            "action": "s",
            "fields": [{"name": "a", "type": "select", "options": [{"label": "x"}]}],
        },
        ".fields[0].options[0].value",
        "required",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "integer", "min": "0"}]},
        ".fields[0].min",
        "expected a number",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "integer", "max": True}]},
        ".fields[0].max",
        "expected a number",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "type": "date", "min": 3}]},
        ".fields[0].min",
        "expected a string",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "min": 1}]},
        ".fields[0].min",
        "only integer, decimal, date and datetime fields",
    ),
    (
        {"type": "form", "action": "s", "fields": [{"name": "a", "style": "x"}]},
        ".fields[0].style",
        "unknown property",
    ),
    ({"type": "form", "action": "s", "errors": "bad"}, ".errors", "expected a list"),
    ({"type": "form", "action": "s", "errors": [1]}, ".errors[0]", "expected a string"),
    ({"type": "form", "action": "s", "submit": False}, ".submit", "expected a string"),
    ({"type": "button", "action": "go"}, ".label", "required"),
    ({"type": "button", "label": "B"}, ".action", "required"),
    ({"type": "button", "label": "B", "action": "go/../x"}, ".action", "expected an action name"),
    ({"type": "button", "label": "B", "action": "go", "data": []}, ".data", "expected an object"),
    (
        {"type": "button", "label": "B", "action": "go", "data": {"_csrf_token": "x"}},
        ".data._csrf_token",
        "expected a name",
    ),
    ({"type": "button", "label": "B", "action": "go", "data": {"a": [1]}}, ".data.a", NOT_SCALAR),
    (
        {"type": "button", "label": "B", "action": "go", "data": {f"k{i}": i for i in range(51)}},
        ".data",
        "more than 50 entries",
    ),
    ({"type": "button", "label": "B", "action": "go", "style": "link"}, ".style", "expected one of"),
    ({"type": "button", "label": "B", "action": "go", "confirm": True}, ".confirm", "expected a string"),
    ({"type": "link", "text": "x"}, ".href", "required"),
    ({"type": "link", "href": "/x"}, ".text", "required"),
    ({"type": "link", "text": "x", "href": "JaVaScRiPt:alert(1)"}, ".href", "expected a relative URL"),
    ({"type": "link", "text": "x", "href": "//evil.com"}, ".href", "expected a relative URL"),
    ({"type": "link", "text": "x", "href": 5}, ".href", "expected a string"),
    ({"type": "list"}, ".items", "required"),
    ({"type": "list", "items": "a"}, ".items", "expected a list"),
    ({"type": "list", "items": [1]}, ".items[0]", "expected an object"),
    ({"type": "list", "items": [{"href": "/x"}]}, ".items[0].text", "required"),
    (
        {"type": "list", "items": [{"text": "a", "href": "data:text/html,x"}]},
        ".items[0].href",
        "relative URL",
    ),
    ({"type": "list", "items": ["a"] * 1001}, ".items", "expected 0 to 1,000 items"),
    ({"type": "list", "items": [], "ordered": "yes"}, ".ordered", "expected a boolean"),
    ({"type": "columns"}, ".columns", "required"),
    ({"type": "columns", "columns": []}, ".columns", "expected 1 to 4 items, got 0"),
    ({"type": "grid", "columns": [[], [], [], [], []]}, ".columns", "expected 1 to 4 items, got 5"),
    ({"type": "columns", "columns": [{"type": "text"}]}, ".columns[0]", "expected a list of blocks"),
    ({"type": "chart", "series": [{"name": "s", "values": []}]}, ".labels", "required"),
    ({"type": "chart", "labels": []}, ".series", "required"),
    ({"type": "chart", "labels": [], "series": []}, ".series", "expected 1 to 10 items, got 0"),
    (
        {"type": "chart", "labels": [], "series": [{"name": "s", "values": []}] * 11},
        ".series",
        "expected 1 to 10",
    ),
    (
        {"type": "chart", "labels": ["a"] * 201, "series": [{"name": "s", "values": [1] * 201}]},
        ".labels",
        "expected 0 to 200 items",
    ),
    (
        {"type": "chart", "labels": [1], "series": [{"name": "s", "values": [1]}]},
        ".labels[0]",
        "expected a string",
    ),
    (
        {"type": "chart", "labels": ["a"], "series": [{"name": "s", "values": [1, 2]}]},
        ".series[0].values",
        "expected 1 values (one per label), got 2",
    ),
    (
        {"type": "chart", "labels": ["a"], "series": [{"name": "s", "values": [True]}]},
        ".series[0].values[0]",
        "expected a number",
    ),
    (
        {"type": "chart", "labels": ["a"], "series": [{"name": "s", "values": ["1"]}]},
        ".series[0].values[0]",
        "expected a number",
    ),
    (
        {"type": "chart", "labels": ["a"], "series": [{"name": "s", "values": [1e16]}]},
        ".series[0].values[0]",
        "expected a number between",
    ),
    ({"type": "chart", "labels": ["a"], "series": [{"values": [1]}]}, ".series[0].name", "required"),
    (
        {"type": "chart", "labels": ["a"], "series": [{"name": "s", "values": [1], "color": "red"}]},
        ".series[0].color",
        "unknown property",
    ),
    (
        {"type": "chart", "kind": "pie", "labels": [], "series": [{"name": "s", "values": []}]},
        ".kind",
        "expected one of",
    ),
]


@pytest.mark.parametrize(
    ("block", "path", "message"),
    BAD,
    ids=[
        f"{i}-{b.get('type') if isinstance(b, dict) else type(b).__name__}{p}"
        for i, (b, p, _) in enumerate(BAD)
    ],
)
def test_bad_blocks_become_error_blocks_with_the_path(block: Any, path: str, message: str) -> None:
    out, problems = one(block)
    assert out["type"] == "_error"
    assert out["path"] == "blocks[0]" + path
    assert message in out["message"]
    assert problems[0] == UIProblem(out["path"], out["message"])
    assert out["more"] == len(problems) - 1


def test_the_error_block_counts_the_other_problems_of_its_block() -> None:
    out, problems = one({"type": "heading", "text": 1, "level": 9, "x": 0})
    assert out["more"] == 2 and len(problems) == 3
    assert {p.path for p in problems} == {"blocks[0].text", "blocks[0].level", "blocks[0].x"}


def test_invalid_children_are_replaced_in_place_and_the_parent_stays() -> None:
    view = parse(
        {
            "blocks": [
                {"type": "text", "text": "ok"},
                {
                    "type": "card",
                    "title": "C",
                    "blocks": [{"type": "text", "text": "fine"}, {"type": "text"}],
                },
                {
                    "type": "columns",
                    "columns": [
                        [{"type": "link", "text": "x", "href": "javascript:x"}],
                        [{"type": "text", "text": "y"}],
                    ],
                },
            ]
        }
    )
    assert [b["type"] for b in view.blocks] == ["text", "card", "columns"]
    card = view.blocks[1]["blocks"]
    assert card[0]["type"] == "text" and card[1] == {
        "type": "_error",
        "path": "blocks[1].blocks[1].text",
        "message": "required",
        "more": 0,
    }
    assert view.blocks[2]["columns"][0][0]["path"] == "blocks[2].columns[0][0].href"
    assert view.blocks[2]["columns"][1][0]["type"] == "text"
    assert [p.path for p in view.problems] == ["blocks[1].blocks[1].text", "blocks[2].columns[0][0].href"]
    assert view.document_problems == []


def test_an_invalid_parent_does_not_report_its_children() -> None:
    out, problems = one({"type": "card", "title": 5, "blocks": [{"type": "nope"}]})
    assert out["path"] == "blocks[0].title" and len(problems) == 1


def test_duplicate_ids_are_problems() -> None:
    view = parse(
        {"blocks": [{"type": "text", "text": "a", "id": "x"}, {"type": "text", "text": "b", "id": "x"}]}
    )
    assert view.blocks[0]["type"] == "text"
    assert view.blocks[1]["path"] == "blocks[1].id" and view.blocks[1]["message"] == "duplicate id"


def test_unpaired_surrogates_are_refused_and_paths_stay_printable() -> None:
    view = parse(
        '{"blocks": [{"type": "text", "text": "\\ud800"}, {"type": "text", "text": "x", "\\udc00": 1}]}'
    )
    assert view.blocks[0]["message"].startswith("contains an unpaired surrogate")
    assert view.blocks[1]["path"] == 'blocks[1]["\\udc00"]'
    "".join(p.path + p.message for p in view.problems).encode("utf-8")  # must not raise


# --- permissions -------------------------------------------------------------------------------


def test_blocks_the_user_may_not_see_are_dropped_with_their_children() -> None:
    asked: list[str] = []

    def can(permission: str) -> bool:
        asked.append(permission)
        return permission == "ui.inv.visible"

    view = parse(
        {
            "blocks": [
                {"type": "text", "text": "public"},
                {
                    "type": "card",
                    "permission": "ui.inv.secret",
                    "blocks": [{"type": "text", "text": "hidden", "permission": "ui.inv.visible"}],
                },
                {
                    "type": "card",
                    "permission": "ui.inv.visible",
                    "blocks": [
                        {"type": "text", "text": "shown"},
                        {"type": "stat", "label": "x", "value": 1, "permission": "db.inv.item.delete"},
                    ],
                },
                {"type": "columns", "columns": [[{"type": "text", "text": "c", "permission": "db.inv.*"}]]},
                {"type": "nonsense", "permission": "ui.inv.secret"},  # hidden blocks are not even checked
            ]
        },
        can=can,
    )
    assert view.problems == []
    assert [b["type"] for b in view.blocks] == ["text", "card", "columns"]
    assert [b["text"] for b in view.blocks[1]["blocks"]] == ["shown"]
    assert view.blocks[2]["columns"] == [[]]
    assert asked == ["ui.inv.secret", "ui.inv.visible", "db.inv.item.delete", "db.inv.*", "ui.inv.secret"]


def test_a_malformed_permission_is_an_error_even_for_users_who_hold_everything() -> None:
    out, _ = one({"type": "text", "text": "x", "permission": "ui.inv.<script>"})
    assert out["path"] == "blocks[0].permission"


# --- the document ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("", "$", "not valid JSON"),
        ("{", "$", "not valid JSON"),
        ("<html>", "$", "not valid JSON"),
        ('{"blocks": [NaN]}', "$", "not valid JSON: NaN"),
        ('{"a": Infinity}', "$", "not valid JSON: Infinity"),
        (
            "[" * 100_000 + "]" * 100_000,
            "$",
            "the document is nested more than 64 levels deep (line 1, column 65)",
        ),
        ("[]", "$", "expected a JSON object"),
        ('"blocks"', "$", "expected a JSON object"),
        ("null", "$", "expected a JSON object"),
        ('{"version": 2, "blocks": []}', "version", "unsupported version"),
        ('{"version": "1"}', "version", "unsupported version"),
        ('{"version": true}', "version", "unsupported version"),
        ('{"version": 1.0}', "version", "unsupported version"),
    ],
)
def test_fatal_documents(text: str, path: str, message: str) -> None:
    view = parse(text)
    assert (
        view.fatal
        and view.blocks == []
        and view.title is None
        and view.toast is None
        and view.redirect is None
    )
    assert len(view.problems) == 1 and view.problems[0].path == path and message in view.problems[0].message
    assert view.document_problems == view.problems


def test_too_big_is_fatal() -> None:
    doc = json.dumps(
        {"blocks": [{"type": "text", "text": "é" * 600}]}, ensure_ascii=False
    )  # 1,200+ UTF-8 bytes
    assert not parse(doc, max_bytes=1300).fatal
    view = parse(doc, max_bytes=1200)
    assert view.fatal and "limit is 1,200" in view.problems[0].message


def test_block_count_limit_is_fatal() -> None:
    ok = {"blocks": [{"type": "text", "text": "x"}] * MAX_BLOCKS}
    assert len(parse(ok).blocks) == MAX_BLOCKS
    nested = {
        "blocks": [
            {"type": "card", "blocks": [{"type": "text", "text": "x"}] * (MAX_BLOCKS - 1)},
            {"type": "text", "text": "one too many"},
        ]
    }
    view = parse(nested)
    assert view.fatal and view.problems == [UIProblem("$", f"more than {MAX_BLOCKS:,} blocks")]


def nest(levels: int) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": "deep"}
    for _ in range(levels - 1):
        block = {"type": "card", "blocks": [block]}
    return block


def test_nesting_depth_limit() -> None:
    out, problems = one(nest(MAX_DEPTH))
    assert problems == []
    out, problems = one(nest(MAX_DEPTH + 1))
    assert problems == [
        UIProblem("blocks[0]" + ".blocks[0]" * MAX_DEPTH, f"blocks nested more than {MAX_DEPTH} deep")
    ]
    inner = out
    for _ in range(MAX_DEPTH):
        inner = inner["blocks"][0]
    assert inner["type"] == "_error"


def test_minimal_and_full_documents() -> None:
    empty = parse("{}")
    assert (empty.fatal, empty.blocks, empty.problems, empty.title, empty.toast, empty.redirect) == (
        False,
        [],
        [],
        None,
        None,
        None,
    )
    view = parse(
        {
            "version": UI_VERSION,
            "title": "Stocktaking",
            "redirect": "/t/a/x?y=1",
            "toast": {"level": "success", "text": "Saved"},
            "blocks": [],
        }
    )
    assert (view.title, view.redirect, view.toast, view.problems) == (
        "Stocktaking",
        "/t/a/x?y=1",
        {"level": "success", "text": "Saved"},
        [],
    )
    assert parse({"toast": {"text": "Hi"}}).toast == {"level": "info", "text": "Hi"}


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"foo": 1}, "foo", "unknown property"),
        ({"foo bar": 1}, '["foo bar"]', "unknown property"),
        ({"title": 5}, "title", "expected a string"),
        ({"blocks": {}}, "blocks", "expected a list"),
        ({"redirect": "javascript:alert(1)"}, "redirect", "expected a relative URL"),
        ({"redirect": "https://evil.com"}, "redirect", "expected a relative URL"),
        ({"toast": "Saved"}, "toast", "expected an object"),
        ({"toast": {"level": "success"}}, "toast.text", "required"),
        ({"toast": {"text": "x", "level": "loud"}}, "toast.level", "expected one of"),
        ({"toast": {"text": "x", "html": "<b>"}}, "toast.html", "unknown property"),
    ],
)
def test_document_level_problems(doc: dict[str, Any], path: str, message: str) -> None:
    view = parse(doc)
    assert not view.fatal
    assert [p.path for p in view.problems] == [path] and message in view.problems[0].message
    assert view.document_problems == view.problems
    assert view.redirect is None and view.toast is None


# --- robustness -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    sorted(
        {k for props in BLOCK_PROPERTIES.values() for k in props}
        | {k for props in PART_PROPERTIES.values() for k in props}
    )
)
blockish = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(sorted(BLOCK_PROPERTIES))},
        optional={"text": st.text(max_size=5), "label": st.text(max_size=5)},
    ),
    lambda children: (
        st.dictionaries(keys, children | st.lists(children, max_size=3) | json_values, max_size=6).map(
            lambda d: {"type": "card", **d}
        )
        | st.lists(children, max_size=3).map(lambda c: {"type": "card", "blocks": c})
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["version", "title", "blocks", "toast", "redirect", "x"]),
        json_values | st.lists(blockish, max_size=5),
        max_size=5,
    )
)
def test_arbitrary_documents_never_raise(doc: dict[str, Any]) -> None:
    view = parse(doc)
    assert all(p.message != "the portal could not check this document" for p in view.problems)
    json.dumps(view.blocks)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_safe_relative_url_never_returns_a_scheme(href: str) -> None:
    out = safe_relative_url(href)
    assert out is None or (out == href and out[0] in "/?#" and not out.startswith(("//", "/\\")))


# --- the JSON Schema stays in step with the validator ------------------------------------------


def _ref(ref: str) -> dict[str, Any]:
    assert ref.startswith("#/$defs/")
    return SCHEMA["$defs"][ref.removeprefix("#/$defs/")]  # type: ignore[no-any-return]


def schema_blocks() -> dict[str, dict[str, Any]]:
    out = {}
    for option in SCHEMA["$defs"]["block"]["oneOf"]:
        block = _ref(option["$ref"])
        out[block["properties"]["type"]["const"]] = block
    return out


def test_schema_block_types_and_properties_equal_the_validators() -> None:
    blocks = schema_blocks()
    assert set(blocks) == set(BLOCK_PROPERTIES)
    for kind, block in blocks.items():
        assert set(block["properties"]) == BLOCK_PROPERTIES[kind], kind
        assert block["additionalProperties"] is False


def test_schema_parts_equal_the_validators() -> None:
    assert (
        set(SCHEMA["properties"]) == PART_PROPERTIES["document"] and SCHEMA["additionalProperties"] is False
    )
    for name, props in PART_PROPERTIES.items():
        if name != "document":
            assert set(SCHEMA["$defs"][name]["properties"]) == props, name


def conforms(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema 2020-12 our schema uses; enough to check examples against it."""
    if "$ref" in schema:
        return conforms(value, _ref(schema["$ref"]), path)
    errs: list[str] = []
    kinds = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(kinds[t](value) for t in types):
            return [f"{path}: not {types}"]
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", 10**9):
            errs.append(f"{path}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: does not match {schema['pattern']}")
    if kinds["number"](value) and not schema.get("minimum", -1e300) <= value <= schema.get("maximum", 1e300):
        errs.append(f"{path}: out of range")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9):
            errs.append(f"{path}: wrong length")
        for i, item in enumerate(value):
            errs += conforms(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        errs += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        if len(value) > schema.get("maxProperties", 10**9):
            errs.append(f"{path}: too many properties")
        for k, v in value.items():
            if "propertyNames" in schema:
                errs += conforms(k, schema["propertyNames"], f"{path}.{k}(name)")
            if k in schema.get("properties", {}):
                errs += conforms(v, schema["properties"][k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}.{k}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += conforms(v, schema["additionalProperties"], f"{path}.{k}")
    if "oneOf" in schema:
        matches = [conforms(value, s, path) for s in schema["oneOf"]]
        if sum(not m for m in matches) != 1:
            errs.append(f"{path}: matches {sum(not m for m in matches)} of oneOf")
    if "anyOf" in schema and all(conforms(value, s, path) for s in schema["anyOf"]):
        errs.append(f"{path}: matches none of anyOf")
    return errs


@pytest.mark.parametrize(
    "block", [b for b, _ in GOOD], ids=[f"{b['type']}-{i}" for i, (b, _) in enumerate(GOOD)]
)
def test_good_blocks_conform_to_the_schema(block: dict[str, Any]) -> None:
    assert conforms({"version": 1, "blocks": [block]}, SCHEMA) == []


@pytest.mark.parametrize(
    "block",
    [
        {"type": "text"},
        {"type": "text", "text": "x", "onclick": "x"},
        {"type": "link", "text": "x", "href": "javascript:x"},
        {"type": "link", "text": "x", "href": "//evil.com"},
        {"type": "heading", "text": "x", "level": True},
        {"type": "nope"},
        {"type": "button", "label": "B", "action": "go", "data": {"_csrf_token": "x"}},
    ],
)
def test_bad_blocks_do_not_conform_to_the_schema(block: dict[str, Any]) -> None:
    assert conforms({"blocks": [block]}, SCHEMA) != []


def doc_examples() -> list[dict[str, Any]]:
    examples = [json.loads(m) for m in re.findall(r"```json\n(.*?)```", DOCS, re.S)]
    return [e if "type" not in e else {"blocks": [e]} for e in examples]


def test_docs_cover_every_block_type() -> None:
    documented = {b["type"] for e in doc_examples() for b in e.get("blocks", [])}
    assert documented | {"grid"} == set(BLOCK_PROPERTIES)
    for kind in BLOCK_PROPERTIES:
        assert f"### {kind}" in DOCS or kind in ALIASES


@pytest.mark.parametrize(
    "doc", doc_examples(), ids=lambda d: ",".join(b["type"] for b in d.get("blocks", [])) or "doc"
)
def test_docs_examples_are_valid(doc: dict[str, Any]) -> None:
    view = parse(doc)
    assert view.problems == [] and not view.fatal
    assert conforms(doc, SCHEMA) == []
