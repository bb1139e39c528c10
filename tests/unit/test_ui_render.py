"""Rendering validated UI instructions with the app's own Jinja setup (templates/ui/): hostile text in
every slot comes out escaped, no URL attribute carries a scheme, and forms/buttons post to the page's
action URL with the CSRF field."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment
from litestar.contrib.jinja import JinjaTemplateEngine

from app.ui import UIView, parse_ui, safe_relative_url
from app.ui.charts import render_chart
from app.web.i18n import install as install_i18n

ROOT = Path(__file__).resolve().parents[2]
ACTION_URL = "/t/acme/inventory/stocktake/actions"
CSRF = '<input type="hidden" name="_csrf_token" value="tok-123" />'  # what Litestar puts in the context
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "'><svg onload=alert(1)>",
    "{{ 7*7 }}",
]
URL_ATTRS = {
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "hx-post",
    "hx-get",
    "hx-put",
    "hx-patch",
    "hx-delete",
}
ALLOWED_HX = {"hx-post", "hx-target", "hx-swap", "hx-confirm", "hx-disabled-elt"}
FORBIDDEN_TAGS = {
    "script",
    "img",
    "iframe",
    "object",
    "embed",
    "style",
    "base",
    "meta",
    "link",
    "frame",
    "svg:script",
}


@pytest.fixture(scope="module")
def env() -> Environment:
    # The app's engine: TemplateConfig(directory=ROOT / "templates", engine=JinjaTemplateEngine), autoescape on.
    engine = JinjaTemplateEngine(directory=ROOT / "templates")
    assert engine.engine.autoescape is True
    install_i18n(engine.engine)  # as create_app does: `_` and the locale filters
    return engine.engine


def render(env: Environment, view: UIView, **extra: Any) -> str:
    return env.get_template("ui/_region.html").render(
        view=view, action_url=ACTION_URL, csrf_input=CSRF, plugin_id="inventory", **extra
    )


def view_of(doc: Any, can: Any = lambda p: True) -> UIView:
    return parse_ui(doc if isinstance(doc, str) else json.dumps(doc), can=can)


class Page(HTMLParser):
    """Tags, attributes and text of rendered HTML, as a browser's tokenizer sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def assert_safe(html: str) -> Page:
    page = Page(html)
    for tag, attrs in page.tags:
        assert tag not in FORBIDDEN_TAGS, tag
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style" and name != "srcdoc", (tag, name)
            if name.startswith("hx-"):
                assert name in ALLOWED_HX, name
            if name in URL_ATTRS:
                assert value is not None and safe_relative_url(value) == value, (tag, name, value)
            if name in {"hx-target"}:
                assert value == "#plugin-region"
    return page


def everything(p: str) -> dict[str, Any]:
    """A document with `p` in every text slot of every block (URL slots get safe URLs carrying `p`'s
    characters where a relative URL may hold them)."""
    href = "/x?q=" + "".join(ch for ch in p if not ch.isspace())
    return {
        "title": p,
        "toast": {"level": "warning", "text": p},
        "blocks": [
            {"type": "heading", "text": p, "level": 1},
            {"type": "text", "text": p, "muted": True},
            {"type": "alert", "title": p, "text": p, "level": "error"},
            {"type": "stat", "label": p, "value": p, "hint": p},
            {"type": "card", "title": p, "blocks": [{"type": "text", "text": p}]},
            {
                "type": "table",
                "columns": [{"key": p, "label": p}, {"key": "b"}],
                "rows": [{p: p, "b": {"text": p, "href": href}}],
            },
            {"type": "table", "columns": [{"key": p}], "rows": [], "empty": p},
            {
                "type": "form",
                "action": "save",
                "submit": p,
                "errors": [p, p],
                "fields": [
                    {
                        "name": "s",
                        "label": p,
                        "value": p,
                        "help": p,
                        "error": p,
                        "placeholder": p,
                        "required": True,
                    },
                    {"name": "t", "type": "text", "label": p, "value": p, "placeholder": p},
                    {"name": "i", "type": "integer", "label": p, "value": 1, "min": 0},
                    {"name": "d", "type": "date", "label": p, "min": p, "max": p},
                    {"name": "b", "type": "boolean", "label": p, "help": p},
                    {
                        "name": "sel",
                        "type": "select",
                        "label": p,
                        "value": p,
                        "options": [p, {"value": p + "2", "label": p}],
                    },
                    {"name": "h", "type": "hidden", "value": p},
                ],
            },
            {"type": "form", "action": "one", "errors": [p]},
            {"type": "button", "label": p, "action": "go", "confirm": p, "data": {"v": p}, "style": "danger"},
            {"type": "link", "text": p, "href": href},
            {"type": "list", "items": [p, {"text": p, "href": href}]},
            {"type": "columns", "columns": [[{"type": "text", "text": p}], [{"type": "heading", "text": p}]]},
            {
                "type": "chart",
                "title": p,
                "unit": p,
                "labels": [p, "b"],
                "series": [{"name": p, "values": [1, 2]}, {"name": "s2", "values": [None, -3]}],
            },
            {
                "type": "chart",
                "kind": "line",
                "title": p,
                "labels": [p, p],
                "series": [{"name": p, "values": [1, 2]}],
            },
            # Refused values and names echo into the error panels: escaped there too.
            {"type": "link", "text": p, "href": p},
            {"type": "list", "items": [{"text": p, "href": p}]},
            {"type": "table", "columns": [{"key": "a"}], "rows": [{"a": {"text": p, "href": p}}]},
            {"type": "text", "text": "x", p: p},
            {"type": p},
            {"type": "button", "label": "x", "action": p},
            {"type": "button", "label": "x", "action": "go", "data": {p: 1}},
            {"type": "text", "text": "x", "permission": p},
            {"type": "form", "action": "s", "fields": [{"name": p}]},
        ],
        p: p,
        "redirect": p,
    }


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_text_in_every_slot_is_escaped(env: Environment, payload: str) -> None:
    view = view_of(everything(payload))
    assert not view.fatal
    html = render(env, view)
    if any(ch in payload for ch in "<>\"'"):
        assert payload not in html  # never verbatim: at least one character is an entity
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg onload" not in lowered
    page = assert_safe(html)
    text = "".join(page.text)
    assert text.count(payload) >= 20  # shown, as text
    attr_values = [v for _, attrs in page.tags for v in attrs.values() if v]
    assert payload in attr_values  # e.g. a hidden input's value or a placeholder: attribute-escaped
    # The refused URLs and names became error panels, not links.
    assert len(page.all("a")) == 3 and all((a["href"] or "").startswith("/x?q=") for a in page.all("a"))
    if payload == "{{ 7*7 }}":
        assert "49" not in text  # plugin text is never evaluated as a template


def test_javascript_hrefs_are_refused_everywhere(env: Environment) -> None:
    bad = [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "\x01javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
    ]
    blocks: list[dict[str, Any]] = []
    for href in bad:
        blocks += [
            {"type": "link", "text": "x", "href": href},
            {"type": "list", "items": [{"text": "x", "href": href}]},
            {"type": "table", "columns": [{"key": "a"}], "rows": [{"a": {"text": "x", "href": href}}]},
        ]
    view = view_of({"blocks": blocks, "redirect": bad[0]})
    assert view.redirect is None
    assert [b["type"] for b in view.blocks] == ["_error"] * len(blocks)
    html = render(env, view)
    page = assert_safe(html)
    assert page.all("a") == []
    assert "javascript:" not in html.lower() and "evil.com" not in html


def test_error_panels_name_the_path_and_message(env: Environment) -> None:
    view = view_of(
        {
            "bogus": 1,
            "blocks": [
                {"type": "text", "text": "before"},
                {"type": "table", "columns": [{"key": "qty"}], "rows": [{"qty": [1]}]},
                {"type": "heading", "text": 1, "level": 9},
            ],
        }
    )
    html = render(env, view)
    page = assert_safe(html)
    panels = [a for t, a in page.tags if t == "div" and "ui-error" in (a.get("class") or "")]
    assert len(panels) == 3 and all(p.get("role") == "alert" for p in panels)
    text = " ".join("".join(page.text).split())
    assert "returned something the portal cannot show" in text and "(inventory)" in text
    assert "bogus: unknown property" in text
    assert "blocks[1].rows[0].qty: expected a string, number, boolean or null" in text
    assert "blocks[2].text: expected a string" in text and "1 more problem in this block" in text
    assert text.index("bogus") < text.index("before") < text.index("blocks[1]")  # document problems on top
    assert "Traceback" not in html


@pytest.mark.parametrize("text", ["not json", "[]", '{"version": 2}', "x" * 2_000_000])
def test_fatal_views_show_one_panel_and_nothing_else(env: Environment, text: str) -> None:
    view = parse_ui(text, can=lambda p: True)
    assert view.fatal
    page = assert_safe(render(env, view))
    assert [t for t, _ in page.tags if t not in {"div", "strong", "ul", "li", "code"}] == []
    assert sum(1 for t, a in page.tags if t == "div" and a.get("role") == "alert") == 1


def test_toast(env: Environment) -> None:
    page = assert_safe(render(env, view_of({"toast": {"level": "success", "text": "Saved <b>"}})))
    (toast,) = [a for t, a in page.tags if t == "div" and "flash" in (a.get("class") or "")]
    assert toast["class"] == "flash success ui-toast" and toast["role"] == "status"
    assert "Saved <b>" in "".join(page.text)


def test_form_markup(env: Environment) -> None:
    view = view_of(
        {
            "blocks": [
                {
                    "type": "form",
                    "action": "save-count",
                    "submit": "Save count",
                    "errors": ["Stale"],
                    "fields": [
                        {
                            "name": "qty",
                            "label": "Quantity",
                            "type": "integer",
                            "required": True,
                            "min": 0,
                            "max": 100,
                            "value": 5,
                            "error": "Too many",
                            "help": "Units",
                        },
                        {"name": "price", "type": "decimal", "value": 2.5},
                        {"name": "note", "type": "text", "value": "\nline"},
                        {"name": "ok", "type": "boolean", "value": True},
                        {"name": "on", "type": "date", "value": "2025-01-02"},
                        {"name": "at", "type": "datetime"},
                        {
                            "name": "loc",
                            "type": "select",
                            "options": ["a", {"value": "b", "label": "Bee"}],
                            "value": "b",
                            "required": True,
                        },
                        {"name": "id", "type": "hidden", "value": 42},
                    ],
                }
            ]
        }
    )
    html = render(env, view)
    page = assert_safe(html)
    (form,) = page.all("form")
    url = ACTION_URL + "/save-count"
    assert (form["method"], form["action"], form["hx-post"], form["hx-target"], form["hx-swap"]) == (
        "post",
        url,
        url,
        "#plugin-region",
        "innerHTML",
    )
    assert CSRF.replace(" />", ">") in html.replace(" />", ">")
    inputs = {a["name"]: a for t, a in page.tags if t in {"input", "textarea", "select"} and a.get("name")}
    assert inputs["_csrf_token"]["value"] == "tok-123"
    qty = inputs["qty"]
    assert (qty["type"], qty["step"], qty["min"], qty["max"], qty["value"]) == (
        "number",
        "1",
        "0",
        "100",
        "5",
    )
    assert "required" in qty and qty["aria-invalid"] == "true"
    described = (qty["aria-describedby"] or "").split()
    ids = {a.get("id") for _, a in page.tags}
    assert len(described) == 2 and set(described) <= ids
    labels = {a["for"] for a in page.all("label") if a.get("for")}
    assert {inputs[n]["id"] for n in ("qty", "price", "note", "on", "at", "loc")} <= labels
    assert (inputs["price"]["type"], inputs["price"]["step"], inputs["price"]["value"]) == (
        "number",
        "any",
        "2.5",
    )
    assert "<textarea" in html and ">\n\nline</textarea>" in html  # the leading newline survives the parser
    assert (
        inputs["ok"]["type"] == "checkbox" and "checked" in inputs["ok"] and inputs["ok"]["value"] == "true"
    )
    assert (inputs["on"]["type"], inputs["at"]["type"]) == ("date", "datetime-local")
    assert (inputs["id"]["type"], inputs["id"]["value"]) == ("hidden", "42")
    options = page.all("option")
    assert [o["value"] for o in options] == ["a", "b"] and "selected" in options[1]
    text = "".join(page.text)
    assert "Stale" in text and "Too many" in text and "Units" in text and "Save count" in text
    assert text.index("Stale") < text.index("Quantity")  # form-level errors on top
    assert len(ids - {None}) == len([a for _, a in page.tags if a.get("id")])  # DOM ids are unique


def test_button_markup(env: Environment) -> None:
    view = view_of(
        {
            "blocks": [
                {
                    "type": "button",
                    "label": "Close",
                    "action": "close",
                    "style": "danger",
                    "confirm": "Sure?",
                    "data": {"count_id": 17, "final": True, "note": None},
                },
                {"type": "button", "label": "Plain", "action": "plain"},
            ]
        }
    )
    html = render(env, view)
    page = assert_safe(html)
    first, second = page.all("form")
    assert first["action"] == first["hx-post"] == ACTION_URL + "/close" and first["hx-confirm"] == "Sure?"
    assert "hx-confirm" not in second
    hidden = [(a["name"], a["value"]) for a in page.all("input") if a["type"] == "hidden"]
    assert hidden == [
        ("_csrf_token", "tok-123"),
        ("count_id", "17"),
        ("final", "true"),
        ("note", ""),
        ("_csrf_token", "tok-123"),
    ]
    buttons = page.all("button")
    assert [b["class"] for b in buttons] == ["danger", "secondary"] and all(
        b["type"] == "submit" for b in buttons
    )


def test_layout_blocks(env: Environment) -> None:
    view = view_of(
        {
            "blocks": [
                {"type": "heading", "text": "H", "level": 3, "id": "top"},
                {"type": "list", "ordered": True, "items": ["one", {"text": "two", "href": "#ui-top"}]},
                {
                    "type": "grid",
                    "columns": [[{"type": "stat", "label": "A", "value": 1, "tone": "bad"}], [], []],
                },
                {
                    "type": "table",
                    "columns": [{"key": "n", "label": "N", "align": "right"}],
                    "rows": [{"n": 1}, {"n": None}, {"n": False}],
                },
                {"type": "table", "columns": [{"key": "n"}], "rows": []},
                {"type": "alert", "level": "info", "text": "fyi"},
            ]
        }
    )
    html = render(env, view)
    page = assert_safe(html)
    assert page.all("h3") == [{"class": "ui-b ui-heading", "id": "ui-top"}]
    assert len(page.all("ol")) == 1 and page.all("a") == [{"href": "#ui-top"}]
    assert any("ui-columns cols-3" in (a.get("class") or "") for _, a in page.tags)
    assert any("tone-bad" in (a.get("class") or "") for _, a in page.tags)
    assert [a["class"] for a in page.all("td")] == ["al-right"] * 3
    text = "".join(page.text)
    assert "No" in text and "Nothing to show." in text
    assert any(a.get("role") == "status" and "flash info" in (a.get("class") or "") for _, a in page.tags)


def test_hidden_blocks_are_not_rendered(env: Environment) -> None:
    view = view_of(
        {
            "blocks": [
                {"type": "text", "text": "secret", "permission": "ui.inv.secret"},
                {"type": "text", "text": "public"},
            ]
        },
        can=lambda p: False,
    )
    html = render(env, view)
    assert "secret" not in html and "public" in html


def test_chart_svg(env: Environment) -> None:
    view = view_of(
        {
            "blocks": [
                {
                    "type": "chart",
                    "title": "Stock <b>",
                    "unit": "EUR",
                    "labels": ["Jan", "Feb", "Mar"],
                    "series": [
                        {"name": "A & B", "values": [1200.5, None, -300]},
                        {"name": "C", "values": [0, 2500000, 10]},
                    ],
                },
                {
                    "type": "chart",
                    "kind": "line",
                    "labels": [f"d{i}" for i in range(200)],
                    "series": [
                        {"name": f"s{j}", "values": [(i * j) % 17 or None for i in range(200)]}
                        for j in range(10)
                    ],
                },
                {"type": "chart", "labels": [], "series": [{"name": "s", "values": []}]},
            ]
        }
    )
    html = render(env, view)
    page = assert_safe(html)
    svgs = page.all("svg")
    assert len(svgs) == 2 and all(s["role"] == "img" for s in svgs)
    text = "".join(page.text)
    assert "Stock <b>" in text and "Jan · A & B: 1,200.5 EUR" in text and "Mar · A & B: -300 EUR" in text
    assert "Feb · A & B" not in text  # a null is a gap, not a zero
    assert "2.5M" in text or "3M" in text  # compact value ticks
    assert "No data to chart." in text
    assert len(page.all("rect")) >= 5 and page.all("polyline")
    assert "A &amp; B" in html and "Stock &lt;b&gt;" in html


def test_region_without_anything(env: Environment) -> None:
    assert render(env, view_of("{}")).strip() == ""


values = st.one_of(
    st.none(),
    st.integers(-(10**15), 10**15),
    st.floats(-1e15, 1e15, allow_nan=False, allow_infinity=False, allow_subnormal=True),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["bar", "line"]),
    st.integers(0, 30).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(max_size=30), min_size=n, max_size=n),
            st.lists(
                st.tuples(st.text(max_size=30), st.lists(values, min_size=n, max_size=n)),
                min_size=1,
                max_size=10,
            ),
        )
    ),
)
def test_charts_never_fail_and_stay_well_formed(kind: str, data: tuple[list[str], list[Any]]) -> None:
    labels, series = data
    svg = render_chart(uid="uib1", kind=kind, title="<t>", labels=labels, series=series, unit="&")
    page = assert_safe(str(svg))
    assert page.all("svg") or "No data" in svg
    for _, attrs in page.tags:
        for name in ("x", "y", "width", "height", "cx", "cy"):
            if name in attrs:
                assert math.isfinite(float(attrs[name] or "nan")), (name, attrs)
