"""The dispatch table of generated pages (app.web.records.routing): each sub-path shape reaches its
handler, ids must be UUIDs, and a page kind offers only its own sub-paths."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from app.web.records import actions, csv_import, csv_io, dashboard, detail, forms, listing, lookup
from app.web.records.routing import TABLE, find
from app.web.records.target import Target

RID = str(uuid.uuid4())


def target(page_type: str, rest: str, code: bool = False) -> Target:
    spec: Any = SimpleNamespace(type=page_type)
    plugin: Any = SimpleNamespace(wasm_sha256="abc" if code else None)
    return Target([plugin], plugin, spec, [s for s in rest.split("/") if s], "/t/acme/p/x/page")


@pytest.mark.parametrize(
    ("method", "page_type", "rest", "code", "handler", "params"),
    [
        ("GET", "crud", "", False, listing.list_page, []),
        ("GET", "crud", "new", False, forms.new, []),
        ("GET", "crud", "export.csv", False, csv_io.export, []),
        ("GET", "crud", "import", False, csv_import.import_form, []),
        ("GET", "crud", "lookup", False, lookup.lookup, []),
        ("GET", "crud", RID, False, detail.detail, [RID]),
        ("GET", "crud", f"{RID}/edit", False, forms.edit, [RID]),
        ("POST", "crud", "", False, forms.create, []),
        ("POST", "crud", "new", False, forms.create, []),
        ("POST", "crud", "import", False, csv_import.import_post, []),
        ("POST", "crud", "bulk-delete", False, actions.bulk_delete, []),
        ("POST", "crud", RID, False, forms.update, [RID]),
        ("POST", "crud", f"{RID}/edit", False, forms.update, [RID]),
        ("POST", "crud", f"{RID}/delete", False, actions.delete, [RID]),
        ("POST", "crud", f"{RID}/restore", False, actions.restore, [RID]),
        ("POST", "crud", f"{RID}/submit", False, actions.submit, [RID]),
        ("GET", "dashboard", "", False, dashboard.dashboard, []),
        ("GET", "dashboard", "", True, dashboard.custom, []),
        ("GET", "custom", "", False, dashboard.custom, []),
        ("GET", "custom", "", True, dashboard.custom, []),
        ("POST", "custom", "actions/save", True, dashboard.action, ["save"]),
        ("POST", "dashboard", "actions/refresh", True, dashboard.action, ["refresh"]),
    ],
)
def test_each_shape_reaches_its_handler(method, page_type, rest, code, handler, params):
    assert find(method, target(page_type, rest, code)) == (handler, params)


@pytest.mark.parametrize(
    ("method", "page_type", "rest", "code"),
    [
        ("GET", "crud", "not-an-id", False),  # ids are UUIDs
        ("GET", "crud", "not-an-id/edit", False),
        ("GET", "crud", f"{RID}/delete", False),  # deleting is a POST
        ("POST", "crud", "export.csv", False),
        ("GET", "crud", f"{RID}/edit/more", False),
        ("GET", "crud", "actions/save", False),
        ("GET", "dashboard", "new", False),
        ("POST", "custom", "actions/save", False),  # no page code, no actions
        ("POST", "crud", "actions/save", True),
        ("POST", "custom", "actions", True),
    ],
)
def test_anything_else_is_not_found(method, page_type, rest, code):
    assert find(method, target(page_type, rest, code)) is None


def test_the_table_has_one_handler_per_shape():
    keys = [(m, k, s) for m, k, s, _ in TABLE]
    assert len(keys) == len(set(keys))
