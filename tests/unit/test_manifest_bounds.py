"""Manifest rules against hostile input: names the base owns, `api` page paths, and nesting/size bounds
of TOML and JSON text (app.installs.reserved, app.nesting)."""

from __future__ import annotations

import json
import time

import pytest

from app.access.permissions import BASE_PERMISSIONS
from app.core.models import Tenant
from app.core.nesting import TextRejected, loads_json, loads_toml, scan_depth
from app.installs import reserved
from app.manifest import (
    MANIFEST_MAX_BYTES,
    MANIFEST_MAX_DEPTH,
    ManifestError,
    ManifestIssue,
    ValidationContext,
    parse_manifest,
)
from app.ui import parse_ui

# Upload, install and `plugin pack` check against the base's names (the leaf manifest package gets them here).
BASE_CTX = ValidationContext(
    entity_name_clash=reserved.entity_name_clash, plugin_id_clash=reserved.plugin_id_clash
)
HEAD = '[plugin]\nid = "{id}"\nname = "X"\nversion = "1.0.0"\n'
ENTITY = '[[schema.entities]]\nname = "{name}"\nfields = [{{ name = "title", type = "string" }}]\n'

# The hostile inputs of the security report, and dotted keys, which nest tables without a bracket.
DEEP_ARRAYS = "x = " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_TABLES = "x = " + "{ a = " * 2000 + "1" + " }" * 2000 + "\n"
DEEP_DOTTED = "x." + ".".join(["a"] * 5000) + " = 1\n"
DEEP_HEADER = "[" + ".".join(["a"] * 5000) + "]\n"


def issues_of(text: str) -> list[ManifestIssue]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, BASE_CTX)
    return caught.value.issues


def base_db_names() -> set[str]:
    """Every X of a base `db.X.*` permission and every base table, read from the real definitions."""
    return set(Tenant.metadata.tables) | {
        p.code.split(".")[1] for p in reserved.base_permissions() if p.code.startswith("db.")
    }


def test_the_reserved_names_come_from_the_base_definitions() -> None:
    names = base_db_names()
    assert {
        "tenants",
        "users",
        "roles",
        "tenant_users",
        "audit_log",
        "casbin_rule",
        "web_sessions",
        "role_permissions",
        "permissions",
        "event_log",
    } <= names
    assert {p.code for p in BASE_PERMISSIONS} <= {p.code for p in reserved.base_permissions()}


@pytest.mark.parametrize("name", sorted(base_db_names()))
def test_an_entity_may_not_take_a_base_name(name: str) -> None:
    issues = issues_of(HEAD.format(id="takeover") + ENTITY.format(name=name))
    assert [i.path for i in issues] == ["schema.entities[0].name"]
    if name in Tenant.metadata.tables:
        assert issues[0].message == f"'{name}' is a base table of the portal; choose another name"
    else:
        assert (
            issues[0].message
            == f"'{name}' names base permissions of the portal (db.{name}.*); choose another name"
        )


def test_exact_message_for_tenants() -> None:
    assert [str(i) for i in issues_of(HEAD.format(id="takeover") + ENTITY.format(name="tenants"))] == [
        "schema.entities[0].name: 'tenants' is a base table of the portal; choose another name"
    ]


@pytest.mark.parametrize(
    "family", sorted({p.code.split(".")[1] for p in reserved.base_permissions() if p.code.startswith("ui.")})
)
def test_a_plugin_id_may_not_share_a_base_ui_namespace(family: str) -> None:
    issues = issues_of(HEAD.format(id=family) + ENTITY.format(name="thing"))
    assert [(i.path, i.message) for i in issues] == [
        (
            "plugin.id",
            f"plugin id '{family}' names base permissions of the portal (ui.{family}.*); choose another id",
        )
    ]


def test_a_plugin_id_may_not_be_a_base_module_name() -> None:
    issues = issues_of(HEAD.format(id="base") + ENTITY.format(name="thing"))
    assert [str(i) for i in issues] == [
        "plugin.id: plugin id 'base' is a module name of the portal's base; choose another id"
    ]


def test_ordinary_names_pass() -> None:
    manifest = parse_manifest(HEAD.format(id="notes") + ENTITY.format(name="tenant_note"))
    assert [e.name for e in manifest.entities] == ["tenant_note"]


def test_page_paths_keep_clear_of_the_api() -> None:
    page = '[[ui.pages]]\nname = "P"\npath = "{path}"\ntype = "dashboard"\n'
    for path in ("/api", "/api/notes", "/notes/api", "/x/api-foo", "/x/apiary", "/x/API"):
        issues = issues_of(HEAD.format(id="notes") + page.format(path=path))
        assert [str(i) for i in issues] == [
            f"ui.pages[0].path: path '{path}' has a segment starting with 'api', "
            "which the portal keeps for its JSON API; choose another path"
        ]
    parse_manifest(HEAD.format(id="notes") + page.format(path="/notes/rapid"))


# --- nesting and size --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            DEEP_ARRAYS,
            f"nested more than {MANIFEST_MAX_DEPTH} levels deep (line 5, column {5 + MANIFEST_MAX_DEPTH})",
        ),
        (
            DEEP_TABLES,
            f"nested more than {MANIFEST_MAX_DEPTH} levels deep (line 5, column {5 + 6 * MANIFEST_MAX_DEPTH})",
        ),
        (DEEP_DOTTED, f"nested more than {MANIFEST_MAX_DEPTH} levels deep (dotted keys or table headers)"),
        (DEEP_HEADER, f"nested more than {MANIFEST_MAX_DEPTH} levels deep (dotted keys or table headers)"),
    ],
    ids=["arrays", "inline-tables", "dotted-keys", "table-header"],
)
def test_deep_manifests_are_a_located_error(text: str, message: str) -> None:
    assert issues_of(HEAD.format(id="deep") + text) == [ManifestIssue("plugin.toml", message)]


def test_large_manifests_are_a_located_error() -> None:
    text = HEAD.format(id="big") + "# " + "x" * MANIFEST_MAX_BYTES + "\n"
    size = len(text.encode())
    assert issues_of(text) == [
        ManifestIssue("plugin.toml", f"is {size:,} bytes; at most {MANIFEST_MAX_BYTES:,} are allowed")
    ]


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ('x = "[[[[[[[[[["', "toml"),
        ("x = '{{{{{{{{{{'", "toml"),
        ('x = """\n[[[[[[[[[[\n"""', "toml"),
        ("x = '''[[[[[[[[[['''", "toml"),
        ("# [[[[[[[[[[\nx = 1", "toml"),
        ('x = "\\"[[[[[[[[[["', "toml"),
        ('["[[[[[[[[[[", "\\"{{{{{{{{{{"]', "json"),
    ],
)
def test_brackets_in_strings_and_comments_do_not_count(text: str, syntax: str) -> None:
    assert scan_depth(text, syntax, 3) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        'x = """a""""" \ny = [[[[',
        "x = '''a''''' \ny = [[[[",  # two quotes of content, then the closing three
        'x = "a\ny = [[[[',
        'x = "a\\\ny = [[[[',  # a basic string never crosses a newline
    ],
)
def test_strings_never_hide_brackets_the_parser_sees(text: str) -> None:
    assert scan_depth(text, "toml", 3) == "nested more than 3 levels deep (line 2, column 8)"


def test_the_scan_is_linear_on_hostile_strings() -> None:
    for text, syntax in (
        ('"\\"' * 200_000 + "[" * 100, "json"),
        ('"""\\"' * 100_000 + "[" * 100, "toml"),
        ("'''" + "'" * 300_000, "toml"),
    ):
        started = time.perf_counter()
        scan_depth(text, syntax, 3)  # type: ignore[arg-type]
        assert time.perf_counter() - started < 2


def test_loaders_refuse_before_the_parser_recurses() -> None:
    with pytest.raises(TextRejected, match="nested more than 64 levels deep"):
        loads_json("[" * 100_000 + "]" * 100_000, max_bytes=10**6)
    with pytest.raises(TextRejected, match="at most 10 are allowed"):
        loads_json(b"[1, 2, 3, 4, 5]", max_bytes=10)
    with pytest.raises(TextRejected, match="dotted keys"):
        loads_toml(DEEP_DOTTED, max_bytes=10**6)
    assert loads_json('{"a": [[["[[[["]]]}', max_depth=4, max_bytes=100) == {"a": [[["[[[["]]]}


@pytest.mark.parametrize(
    "doc",
    [
        '{"blocks": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"blocks": [{"type": "text", "text": "x", "data": ' + '{"a": ' * 2000 + "1" + "}" * 2000 + "}]}",
    ],
    ids=["arrays", "objects"],
)
def test_deep_ui_instructions_are_a_located_error(doc: str) -> None:
    view = parse_ui(doc, can=lambda _p: True)
    assert view.fatal and len(view.problems) == 1 and view.problems[0].path == "$"
    assert view.problems[0].message.startswith(
        "the document is nested more than 64 levels deep (line 1, column "
    )


def test_ui_instructions_with_bracket_text_still_render() -> None:
    view = parse_ui(
        json.dumps({"blocks": [{"type": "text", "text": "[" * 500 + "{" * 500}]}), can=lambda _p: True
    )
    assert not view.problems and view.blocks[0]["text"] == "[" * 500 + "{" * 500


def test_a_json_field_typed_into_a_form_is_depth_bounded() -> None:
    from app.manifest import FieldSpec
    from app.records.values import FieldError, parse

    spec = FieldSpec(name="extra", type="json", label="Extra")
    with pytest.raises(FieldError) as caught:
        parse(spec, "[" * 5000 + "]" * 5000)
    assert str(caught.value) == "The JSON is nested more than 64 levels deep (line 1, column 65)."
    assert parse(spec, '{"a": [[1]]}') == {"a": [[1]]}
