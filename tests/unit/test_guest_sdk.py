"""The guest SDK (sdk/python/portal_guest) on the host: UI builders produce the documented
shapes (and pass the host's validator), the host-call wrappers send the documented JSON, and the
Plugin dispatcher routes calls and turns failures into error results.

The SDK is guest-side code: outside a component its bindings are absent, so `_bindings.host` is
None and `_bindings.Err` is a stand-in; the tests plug a recording stub in as the host.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "sdk" / "python"
PACKAGE_DIR = SDK_DIR / "portal_guest"


def _sdk() -> ModuleType:
    # The SDK is a top-level package inside the component (componentize-py -p <SDK_DIR>).
    if str(SDK_DIR) not in sys.path:
        sys.path.insert(0, str(SDK_DIR))
    return importlib.import_module("portal_guest")


pg = _sdk()
ui = importlib.import_module("portal_guest.ui")
bindings = importlib.import_module("portal_guest._bindings")
Err = bindings.Err


class StubHost:
    """Stands in for wit_world.imports.host: records calls, answers from `replies`, refuses on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.replies: dict[str, Any] = {}
        self.refuse: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            if name in self.refuse:
                raise Err(self.refuse[name])
            return self.replies.get(name)

        return call


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> StubHost:
    stub = StubHost()
    monkeypatch.setattr(bindings, "host", stub)
    return stub


# -- guest-side code stays guest-side ----------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


def test_ui_and_json_modules_import_no_bindings() -> None:
    for name in ("ui.py", "_jsonutil.py", "clock.py"):
        assert not {m for m in _imports(PACKAGE_DIR / name) if m.startswith(("wit_world", "componentize_py"))}


def test_host_code_never_imports_the_sdk() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if SDK_DIR not in path.parents and any(m.split(".")[0] == "portal_guest" for m in _imports(path))
    ]
    assert offenders == []


def test_every_sdk_module_is_marked_guest_side() -> None:
    for path in PACKAGE_DIR.glob("*.py"):
        assert "guest-side code" in path.read_text().lower(), path.name


# -- UI builders ---------------------------------------------------------------------------------------


def test_page_document_shape() -> None:
    doc = pg.page("Stock", pg.heading("Items"), None, "plain words", [pg.text("a", muted=True)])
    assert doc == {
        "version": 1,
        "title": "Stock",
        "blocks": [
            {"type": "heading", "text": "Items", "level": 2},
            {"type": "text", "text": "plain words", "muted": False},
            {"type": "text", "text": "a", "muted": True},
        ],
    }


def test_simple_blocks() -> None:
    assert pg.alert("Careful", level="warning", title="Note") == {
        "type": "alert",
        "level": "warning",
        "text": "Careful",
        "title": "Note",
    }
    assert pg.alert("Hi") == {"type": "alert", "level": "info", "text": "Hi"}
    assert pg.stat("Items", 42, hint="in stock", tone="good") == {
        "type": "stat",
        "label": "Items",
        "value": 42,
        "hint": "in stock",
        "tone": "good",
    }
    assert pg.stat("Items", "n/a") == {"type": "stat", "label": "Items", "value": "n/a", "tone": "neutral"}
    assert pg.link("Docs", "/help") == {"type": "link", "text": "Docs", "href": "/help"}
    assert pg.item_list(["a", 2, {"text": "c", "href": "#c"}], ordered=True) == {
        "type": "list",
        "items": ["a", "2", {"text": "c", "href": "#c"}],
        "ordered": True,
    }
    assert pg.button("Go", "go") == {"type": "button", "label": "Go", "action": "go", "style": "secondary"}
    assert pg.button("Delete", "delete", {"id": "7"}, style="danger", confirm="Sure?") == {
        "type": "button",
        "label": "Delete",
        "action": "delete",
        "data": {"id": "7"},
        "style": "danger",
        "confirm": "Sure?",
    }


def test_permission_and_id_on_every_block_builder() -> None:
    blocks = [
        pg.heading("h", permission="ui.x.y", id="h1"),
        pg.text("t", permission="ui.x.y", id="h1"),
        pg.alert("a", permission="ui.x.y", id="h1"),
        pg.stat("s", 1, permission="ui.x.y", id="h1"),
        pg.card(permission="ui.x.y", id="h1"),
        pg.table(["a"], [], permission="ui.x.y", id="h1"),
        pg.form("save", [], permission="ui.x.y", id="h1"),
        pg.button("b", "go", permission="ui.x.y", id="h1"),
        pg.link("l", "/", permission="ui.x.y", id="h1"),
        pg.item_list([], permission="ui.x.y", id="h1"),
        pg.columns(permission="ui.x.y", id="h1"),
        pg.chart("bar", [], {}, permission="ui.x.y", id="h1"),
    ]
    for block in blocks:
        assert block["permission"] == "ui.x.y" and block["id"] == "h1", block["type"]
    assert "permission" not in pg.text("t") and "id" not in pg.text("t")


def test_card_and_columns_nest_blocks() -> None:
    assert pg.card(pg.text("a"), title="Box") == {
        "type": "card",
        "title": "Box",
        "blocks": [{"type": "text", "text": "a", "muted": False}],
    }
    assert pg.columns(pg.stat("a", 1), [pg.stat("b", 2), pg.stat("c", 3)]) == {
        "type": "columns",
        "columns": [
            [{"type": "stat", "label": "a", "value": 1, "tone": "neutral"}],
            [
                {"type": "stat", "label": "b", "value": 2, "tone": "neutral"},
                {"type": "stat", "label": "c", "value": 3, "tone": "neutral"},
            ],
        ],
    }


def test_table_columns_and_rows() -> None:
    block = pg.table(
        ["sku", ("name", "Name"), ("qty", "Quantity", "right"), {"key": "unit_price", "align": "right"}],
        [
            {"sku": "A1", "name": "Bolt", "qty": 3, "unit_price": "0.10", "tenant_id": "t", "version": 2},
            {"sku": "A2", "name": pg.cell_link("Nut", "/x")},
        ],
        empty="Nothing",
    )
    assert block == {
        "type": "table",
        "columns": [
            {"key": "sku", "label": "Sku"},
            {"key": "name", "label": "Name"},
            {"key": "qty", "label": "Quantity", "align": "right"},
            {"key": "unit_price", "label": "Unit price", "align": "right"},
        ],
        # Only the columns' keys survive: db rows carry every field.
        "rows": [
            {"sku": "A1", "name": "Bolt", "qty": 3, "unit_price": "0.10"},
            {"sku": "A2", "name": {"text": "Nut", "href": "/x"}, "qty": None, "unit_price": None},
        ],
        "empty": "Nothing",
    }
    with pytest.raises(ValueError, match="table column"):
        pg.table([("a",)], [])
    with pytest.raises(ValueError, match="row 0"):
        pg.table(["a"], ["not a mapping"])  # type: ignore[list-item]


def test_form_and_fields() -> None:
    assert pg.field("qty", "Quantity") == {
        "name": "qty",
        "label": "Quantity",
        "type": "string",
        "required": False,
    }
    full = pg.field(
        "cat",
        "Category",
        type="select",
        value="b",
        required=True,
        options=["a", ("b", "Bee"), {"value": 3, "label": "Three"}],
        help="h",
        error="e",
        placeholder="p",
        min=0,
        max="9",
    )
    assert full == {
        "name": "cat",
        "label": "Category",
        "type": "select",
        "value": "b",
        "required": True,
        "options": [
            {"value": "a", "label": "a"},
            {"value": "b", "label": "Bee"},
            {"value": "3", "label": "Three"},
        ],
        "help": "h",
        "error": "e",
        "placeholder": "p",
        "min": 0,
        "max": "9",
    }
    f = pg.form("add", [pg.field("name", "Name")])
    assert f == {
        "type": "form",
        "action": "add",
        "fields": [{"name": "name", "label": "Name", "type": "string", "required": False}],
        "submit": "Save",
    }
    assert pg.form("add", [], errors="Broken")["errors"] == ["Broken"]
    assert pg.form("add", [], errors=["a", "b"])["errors"] == ["a", "b"]
    mapped = pg.form("add", [pg.field("name", "Name")], submit="Add", errors={"name": "Required", "": "Oops"})
    assert mapped["fields"][0]["error"] == "Required"
    assert mapped["errors"] == ["Oops"] and mapped["submit"] == "Add"
    assert "errors" not in pg.form("add", [pg.field("name", "Name")], errors={"name": "Required"})


def test_chart() -> None:
    block = pg.chart("bar", ["Jan", 2], {"Orders": [3, None], "Revenue": ["1.50", 2]}, title="T", unit="€")
    assert block == {
        "type": "chart",
        "kind": "bar",
        "title": "T",
        "labels": ["Jan", "2"],
        "series": [{"name": "Orders", "values": [3, None]}, {"name": "Revenue", "values": [1.5, 2]}],
        "unit": "€",
    }
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        pg.chart("line", ["a", "b", "c"], {"s": [1, 2]})
    with pytest.raises(ValueError, match="not a number"):
        pg.chart("line", ["a"], {"s": ["many"]})


def test_action_results() -> None:
    assert pg.result() == {"version": 1, "blocks": []}
    assert pg.result(pg.text("x"), title="Done", redirect="?tab=2", toast="Saved") == {
        "version": 1,
        "title": "Done",
        "blocks": [{"type": "text", "text": "x", "muted": False}],
        "redirect": "?tab=2",
        "toast": {"level": "success", "text": "Saved"},
    }
    assert pg.result(toast=pg.toast("Careful", level="warning"))["toast"] == {
        "level": "warning",
        "text": "Careful",
    }
    assert pg.redirect("/t/acme/x") == {"version": 1, "blocks": [], "redirect": "/t/acme/x"}
    assert pg.redirect("/x", toast="Bye")["toast"] == {"level": "success", "text": "Bye"}


def test_non_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="not a block"):
        pg.page("T", {"text": "no type"})
    with pytest.raises(ValueError, match="expected a block"):
        pg.card(42)  # type: ignore[arg-type]


def test_documents_pass_the_hosts_validator() -> None:
    from app.ui import parse_ui

    doc = pg.page(
        "Everything",
        pg.heading("H", level=3, id="top"),
        pg.text("t", muted=True),
        pg.alert("a", level="error", title="T"),
        pg.columns(pg.stat("s", 1, hint="h", tone="bad"), [pg.stat("s2", "x")]),
        pg.card(pg.link("l", "/x"), title="C", permission="ui.demo.view"),
        pg.table([("a", "A", "right"), "b"], [{"a": 1, "b": pg.cell_link("x", "?q=1")}], empty="none"),
        pg.form(
            "save",
            [
                pg.field("n", "N", type="integer", min=0, max=5, required=True),
                pg.field("c", "C", type="select", options=["x", ("y", "Y")], value="y"),
            ],
            submit="Go",
            errors={"other": "bad"},
        ),
        pg.button("B", "go", {"id": "1"}, style="danger", confirm="Sure?"),
        pg.item_list(["a", {"text": "b", "href": "#b"}], ordered=True),
        pg.chart("line", ["a", "b"], {"s": [1, None]}, title="C", unit="u"),
    )
    view = parse_ui(json.dumps(doc), can=lambda _permission: True)
    assert view.problems == [] and not view.fatal
    action = pg.result(pg.text("x"), redirect="?tab=2", toast=pg.toast("ok", "info"))
    view = parse_ui(json.dumps(action), can=lambda _permission: True)
    assert view.problems == [] and view.redirect == "?tab=2"


# -- host-call wrappers ----------------------------------------------------------------------------------


def test_child_sets_are_expanded_and_saved_nested(host: StubHost) -> None:
    host.replies = {
        "db_query": '{"rows": [{"id": "1", "lines": [{"id": "9", "position": 1}]}], "total": 1}',
        "db_insert": '{"id": "1", "version": 1, "lines": [{"id": "9"}]}',
        "db_update": '{"id": "1", "version": 2, "lines": []}',
    }
    assert pg.db.get("order", "1", expand=["lines"]) == {"id": "1", "lines": [{"id": "9", "position": 1}]}
    pg.db.query("order", expand="lines")
    created = pg.db.save_with_children("order", {"no": "PO-7"}, {"lines": [{"item_id": "x", "quantity": 5}]})
    assert created["lines"] == [{"id": "9"}]
    pg.db.save_with_children("order", {}, {"lines": []}, id="1", version=1)
    with pytest.raises(pg.HostError, match="needs the version"):
        pg.db.save_with_children("order", {}, {"lines": []}, id="1")
    sent = [
        (name, tuple(json.loads(a) if isinstance(a, str) and a[:1] in "{[" else a for a in args))
        for name, args in host.calls
    ]
    assert sent == [
        ("db_query", ("order", {"id": "1"}, {"limit": 1, "offset": 0, "expand": ["lines"]})),
        ("db_query", ("order", {}, {"limit": 50, "offset": 0, "expand": ["lines"]})),
        ("db_insert", ("order", {"no": "PO-7", "lines": [{"item_id": "x", "quantity": 5}]})),
        ("db_update", ("order", "1", {"lines": []}, 1)),
    ]


def test_db_calls_send_documented_json(host: StubHost) -> None:
    host.replies = {
        "db_insert": '{"id": "1", "version": 1, "name": "a"}',
        "db_query": '{"rows": [{"id": "1"}], "total": 1}',
        "db_update": '{"id": "1", "version": 2}',
        "db_aggregate": '[{"category": "x", "sum_quantity": 3, "count": 1}]',
    }
    assert pg.db.insert("item", {"name": "a"}) == {"id": "1", "version": 1, "name": "a"}
    assert pg.db.query("item", {"qty": {"lt": 3}}, limit=10, offset=5, sort="-name", q="bolt") == {
        "rows": [{"id": "1"}],
        "total": 1,
    }
    pg.db.query("item")
    assert pg.db.update("item", "1", {"name": "b"}, 1) == {"id": "1", "version": 2}
    assert pg.db.delete("item", "1") is None
    rows = pg.db.aggregate(
        "item", ["category"], [("sum", "quantity"), ("count", None)], {"status": "active"}, limit=5
    )
    assert rows == [{"category": "x", "sum_quantity": 3, "count": 1}]
    sent = [
        (name, tuple(json.loads(a) if isinstance(a, str) and a[:1] in "{[" else a for a in args))
        for name, args in host.calls
    ]
    assert sent == [
        ("db_insert", ("item", {"name": "a"})),
        ("db_query", ("item", {"qty": {"lt": 3}}, {"limit": 10, "offset": 5, "sort": "-name", "q": "bolt"})),
        ("db_query", ("item", {}, {"limit": 50, "offset": 0})),
        ("db_update", ("item", "1", {"name": "b"}, 1)),
        ("db_delete", ("item", "1")),
        (
            "db_aggregate",
            (
                "item",
                {
                    "group_by": ["category"],
                    "metrics": [{"fn": "sum", "field": "quantity"}, {"fn": "count"}],
                    "filter": {"status": "active"},
                    "limit": 5,
                },
            ),
        ),
    ]


def test_other_host_calls(host: StubHost) -> None:
    host.replies = {
        "config_get": '"eur"',
        "current_user": '{"id": "u1", "email": "a@b.c"}',
        "check_permission": True,
    }
    pg.events.publish("demo.item.created", {"id": "1"})
    assert pg.config.get("currency") == "eur"
    for text, typed in (("42", 42), ("12.50", Decimal("12.50")), ("true", True), ('"x y"', "x y")):
        host.replies["config_get"] = text
        value = pg.config.get("k")
        assert value == typed and type(value) is type(typed)
    assert str(pg.config.get("k")) == "x y"
    host.replies["config_get"] = "12.50"
    assert str(pg.config.get("k")) == "12.50"  # exact, not a float
    host.replies["config_get"] = None
    assert pg.config.get("missing") is None and pg.config.get("missing", "x") == "x"
    assert pg.current_user() == {"id": "u1", "email": "a@b.c"}
    assert pg.can("ui.demo.view") is True
    pg.log.debug("d")
    pg.log.info(42)
    pg.log.warning("w")
    pg.log.error("e")
    assert ("event_publish", ("demo.item.created", '{"id":"1"}')) in host.calls
    assert [args for name, args in host.calls if name == "log_write"] == [
        ("debug", "d"),
        ("info", "42"),
        ("warning", "w"),
        ("error", "e"),
    ]


def test_refusals_raise_host_error(host: StubHost) -> None:
    host.refuse["db_insert"] = "db-insert: missing permission db.item.insert"
    with pytest.raises(pg.HostError) as caught:
        pg.db.insert("item", {})
    assert caught.value.message == "db-insert: missing permission db.item.insert"


def test_without_a_component_host_calls_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bindings, "host", None)
    with pytest.raises(pg.HostError, match="only available inside a plugin component"):
        pg.db.query("item")
    pg.log.info("dropped")  # logging outside a component is a no-op, not an error


def test_values_outside_json_are_converted(host: StubHost) -> None:
    import datetime as dt
    from decimal import Decimal

    host.replies["db_insert"] = "{}"
    pg.db.insert("item", {"when": dt.date(2024, 5, 1), "price": Decimal("1.20"), "tags": {"b", "a"}})
    assert json.loads(host.calls[-1][1][1]) == {"when": "2024-05-01", "price": "1.20", "tags": ["a", "b"]}
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        pg.db.insert("item", {"x": object()})


# -- the Plugin dispatcher -------------------------------------------------------------------------------


def _err_of(call: Any, *args: Any) -> str:
    with pytest.raises(Err) as caught:
        call(*args)
    return str(caught.value.value)


@pytest.fixture
def plugin(host: StubHost) -> Any:
    p = pg.Plugin()

    @p.page("stocktaking")
    def stocktaking(params: dict[str, Any]) -> dict[str, Any]:
        return pg.page("Stocktaking", pg.text(f"show={params.get('show')}"))

    @p.page("/inventory/reports/monthly")
    def monthly() -> list[Any]:  # no parameters wanted; a list of blocks is a page without a title
        return [pg.text("m")]

    @p.page("broken")
    def broken(params: dict[str, Any]) -> dict[str, Any]:
        return {"a": 1}["b"]

    @p.page("refused")
    def refused(params: dict[str, Any]) -> dict[str, Any]:
        pg.db.insert("item", {})
        return pg.page("never")

    @p.page("wrong")
    def wrong(params: dict[str, Any]) -> int:
        return 3

    @p.action("stocktaking", "adjust")
    def adjust(data: dict[str, Any]) -> dict[str, Any]:
        if not data.get("qty"):
            raise ValueError("Enter a quantity")
        return pg.result(toast=f"counted {data['qty']}")

    @p.action("stocktaking", "noop")
    def noop(data: dict[str, Any]) -> None:
        return None

    @p.action("monthly", "refresh")  # the page was registered by its full path: spellings may mix
    def refresh() -> dict[str, Any]:
        return pg.redirect("?fresh=1")

    return p


def test_pages_dispatch_by_path_or_suffix(plugin: Any) -> None:
    out = json.loads(plugin.render_page("/inventory/stocktaking", '{"show": "all"}'))
    assert out == {
        "version": 1,
        "title": "Stocktaking",
        "blocks": [{"type": "text", "text": "show=all", "muted": False}],
    }
    assert json.loads(plugin.render_page("stocktaking", ""))["blocks"][0]["text"] == "show=None"
    assert json.loads(plugin.render_page("/inventory/reports/monthly", "{}")) == {
        "version": 1,
        "blocks": [{"type": "text", "text": "m", "muted": False}],
    }
    assert _err_of(plugin.render_page, "/inventory/nothing", "{}") == "no page '/inventory/nothing'"


def test_page_failures_become_error_results(plugin: Any, host: StubHost) -> None:
    assert (
        _err_of(plugin.render_page, "/x/broken", "{}")
        == "KeyError: 'b' (test_guest_sdk.py line " + str(_line_of('return {"a": 1}["b"]')) + ", in broken)"
    )
    host.refuse["db_insert"] = "db-insert: no"
    assert _err_of(plugin.render_page, "/x/refused", "{}") == "db-insert: no"
    assert "returned int" in _err_of(plugin.render_page, "/x/wrong", "{}")
    assert "page parameters is not valid JSON" in _err_of(plugin.render_page, "/x/stocktaking", "{nope")
    assert "must be a JSON object" in _err_of(plugin.render_page, "/x/stocktaking", "[1]")


def _line_of(snippet: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if snippet in line)


def test_actions(plugin: Any) -> None:
    out = json.loads(plugin.handle_action("/inventory/stocktaking", "adjust", '{"qty": 3}'))
    assert out == {"version": 1, "blocks": [], "toast": {"level": "success", "text": "counted 3"}}
    assert _err_of(plugin.handle_action, "/inventory/stocktaking", "adjust", "{}") == "Enter a quantity"
    assert json.loads(plugin.handle_action("stocktaking", "noop", "{}")) == {"version": 1, "blocks": []}
    assert (
        _err_of(plugin.handle_action, "/inventory/stocktaking", "zap", "{}")
        == "no action 'zap' on page '/inventory/stocktaking'"
    )
    assert _err_of(plugin.handle_action, "/inventory/ghost", "adjust", "{}") == "no page '/inventory/ghost'"
    assert (
        json.loads(plugin.handle_action("/inventory/reports/monthly", "refresh", "{}"))["redirect"]
        == "?fresh=1"
    )
    assert (
        _err_of(plugin.handle_action, "/inventory/reports/monthly", "adjust", "{}")
        == "no action 'adjust' on page '/inventory/reports/monthly'"
    )


def test_events_init_and_tenants(host: StubHost) -> None:
    p = pg.Plugin()
    seen: list[Any] = []
    p.on_event("workflow.task.completed")(lambda payload: seen.append(("exact", payload)))
    p.on_event("crm.customer.*")(lambda event_type, payload: seen.append((event_type, payload)))
    p.on_init(lambda: seen.append("init"))
    p.on_tenant_created(lambda tenant_id: seen.append(("tenant", tenant_id)))

    p.init()
    p.tenant_created("t-1")
    p.handle_event("workflow.task.completed", '{"task": 1}')
    p.handle_event("crm.customer.updated", '{"id": "c"}')
    p.handle_event("crm.customer.note.added", "{}")  # '*' is one segment: no match
    assert seen == ["init", ("tenant", "t-1"), ("exact", {"task": 1}), ("crm.customer.updated", {"id": "c"})]
    assert (
        "log_write",
        (
            "warning",
            "no handler for event 'crm.customer.note.added' "
            '(add @plugin.on_event("crm.customer.note.added"))',
        ),
    ) in host.calls

    @p.on_event("crm.customer.deleted")
    def fails(payload: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    assert _err_of(p.handle_event, "crm.customer.deleted", "{}").startswith("RuntimeError: boom (")

    @p.on_init
    def init_fails() -> None:
        raise ValueError("no config")

    assert _err_of(p.init) == "no config"


def test_duplicate_registrations_fail_at_import_time() -> None:
    p = pg.Plugin()
    p.page("a")(lambda params: pg.page("a"))
    with pytest.raises(ValueError, match="registered twice"):
        p.page("/a/")(lambda params: pg.page("a"))
    p.action("a", "go")(lambda data: None)
    with pytest.raises(ValueError, match="registered twice"):
        p.action("a", "go")(lambda data: None)


def test_guest_class_dispatches_every_export(plugin: Any) -> None:
    guest = plugin.guest_class()()
    assert json.loads(guest.render_page("/inventory/stocktaking", "{}"))["title"] == "Stocktaking"
    assert json.loads(guest.handle_action("/inventory/stocktaking", "adjust", '{"qty": 1}'))["toast"]
    assert guest.init() is None
    assert guest.on_tenant_created("t") is None
    assert guest.handle_event("any.thing.here", "{}") is None
    with pytest.raises(Err):
        guest.render_page("nope", "{}")


# -- extension points ----------------------------------------------------------------------------------


def test_extension_decorators_dispatch_and_check_the_answer_shape() -> None:
    p = pg.Plugin()

    @p.condition("big")
    def big(config: dict[str, Any], context: dict[str, Any]) -> Any:
        return context["record"]["amount"] > config["limit"] if config.get("limit") else "yes"

    @p.user_selector("people")
    def people(config: dict[str, Any], context: dict[str, Any]) -> Any:
        return config.get("ids", 7)

    @p.record_validator("codes")
    def codes(config: dict[str, Any], context: dict[str, Any]) -> Any:
        return None if context["record"].get("code") else {"code": "is required"}

    @p.auth_verifier("token")
    def token(config: dict[str, Any], request: dict[str, Any]) -> Any:
        if request["query"].get("t") != "ok":
            raise ValueError("bad token")
        return {"email": "a@b.test"}

    ext = p.extensions_class()()
    assert ext.check_condition("big", '{"limit": 3}', '{"record": {"amount": 5}}') is True
    assert ext.select_users("people", '{"ids": ["u1"]}', "{}") == ["u1"]
    assert json.loads(ext.validate_record("codes", "{}", '{"record": {}}')) == {"code": "is required"}
    assert json.loads(ext.validate_record("codes", "{}", '{"record": {"code": "x"}}')) == {}
    assert json.loads(ext.verify_auth("token", "{}", '{"query": {"t": "ok"}}')) == {"email": "a@b.test"}
    for call, message in (
        (lambda: ext.check_condition("big", "{}", "{}"), "returned str, not True or False"),
        (lambda: ext.select_users("people", "{}", "{}"), "not a list of user id strings"),
        (lambda: ext.verify_auth("token", "{}", '{"query": {}}'), "bad token"),
        (lambda: ext.check_condition("nope", "{}", "{}"), "implements no condition 'nope'"),
        (lambda: ext.check_condition("big", "[1]", "{}"), "config must be a JSON object"),
    ):
        with pytest.raises(Err) as caught:
            call()
        assert message in str(caught.value.value)
    with pytest.raises(ValueError, match="registered twice"):
        p.condition("big")(big)


def test_guest_class_leaves_no_extensions_outside_a_component() -> None:
    namespace: dict[str, Any] = {"plugin": pg.Plugin()}
    exec("Guest = plugin.guest_class()", namespace)
    assert "Guest" in namespace and "Extensions" not in namespace  # no bindings here: nothing to export


def test_pages_and_actions_read_the_hosts_clock() -> None:
    import datetime as dt

    p = pg.Plugin()
    seen: list[Any] = []

    @p.page("clock")
    def clock_page(params: dict[str, Any]) -> dict[str, Any]:
        seen.append((dict(params), pg.now(), pg.today(), pg.time_zone()))
        return pg.page("Clock")

    @p.action("clock", "stamp")
    def stamp(data: dict[str, Any]) -> None:
        seen.append((dict(data), pg.now(), pg.today(), pg.time_zone()))

    context = {"now": "2026-03-01T23:30:00+01:00", "today": "2026-03-01", "time_zone": "Europe/Berlin"}
    p.render_page("clock", json.dumps({"q": "1", "_portal": context}))
    params, now, today, zone = seen[-1]
    assert params == {"q": "1"}  # the handler never sees the host's key
    assert now == dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.UTC)
    assert now.utcoffset() == dt.timedelta(hours=1)
    assert today == dt.date(2026, 3, 1) and zone == "Europe/Berlin"
    p.handle_action("clock", "stamp", json.dumps({"n": 2, "_portal": {**context, "today": "2026-03-02"}}))
    assert seen[-1][0] == {"n": 2} and seen[-1][2] == dt.date(2026, 3, 2)
    # Outside a page or action: the wall clock, in UTC.
    assert pg.time_zone() == "UTC" and pg.now().utcoffset() == dt.timedelta(0)
    assert abs(pg.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert pg.today() == pg.now().date()


def test_init_reseeds_random() -> None:
    import random

    p = pg.Plugin()
    random.seed(7)
    first = random.random()
    random.seed(7)
    p.init()  # as every new instance does: its snapshot's state is replaced from the host's randomness
    assert random.random() != first
