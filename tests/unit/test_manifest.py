"""plugin.toml parsing and validation (app.manifest)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.manifest import (
    STANDARD_FIELDS,
    EntitySpec,
    FieldSpec,
    Manifest,
    ManifestError,
    ManifestIssue,
    PluginDependency,
    SelectOption,
    ValidationContext,
    load_manifest,
    parse_manifest,
    parse_version,
)
from app.plugins.modules import available_modules

ROOT = Path(__file__).resolve().parents[2]
SEED_FIXTURE = ROOT / "tests" / "fixtures" / "manifests" / "seed004_inventory.toml"
BUNDLED = sorted((ROOT / "plugins").glob("*/plugin.toml"))
PLATFORM = ValidationContext(available_modules=available_modules())  # the base modules this platform has
WITH_WORKFLOW = ValidationContext(available_modules=frozenset({"auth", "workflow"}))

DELETE = object()

BASE: dict[str, Any] = {
    "plugin": {
        "id": "demo",
        "name": "Demo",
        "version": "1.2.3",
        "description": "A plugin for tests",
        "author": "Tests",
        "min_platform_version": "1.0.0",
    },
    "dependencies": {"modules": ["auth"]},
    "permissions": {"database": True, "events": True, "config": False, "files": False},
    "schema": {
        "entities": [
            {
                "name": "widget",
                "fields": [
                    {"name": "code", "type": "string", "required": True, "unique": True},  # 0
                    {"name": "title", "type": "string", "max_length": 20},  # 1
                    {"name": "count", "type": "integer", "default": 0},  # 2
                    {"name": "price", "type": "decimal", "precision": 10, "scale": 2},  # 3
                    {"name": "kind", "type": "select", "options": ["a", {"value": "b", "label": "Bee"}]},  # 4
                    {"name": "parent_id", "type": "reference", "entity": "gadget"},  # 5
                    {"name": "owner", "type": "uuid"},  # 6
                    {"name": "starts", "type": "date"},  # 7
                    {"name": "happened", "type": "datetime"},  # 8
                    {"name": "active", "type": "boolean", "default": True},  # 9
                    {"name": "extra", "type": "json"},  # 10
                    {"name": "notes", "type": "text"},  # 11
                ],
                "indexes": [["code"], ["kind", "starts"]],
            },
            {"name": "gadget", "label": "Gadget", "fields": [{"name": "label", "type": "string"}]},
        ]
    },
    "events": {"published": ["demo.widget.made"], "subscribed": ["auth.login", "demo.gadget.*"]},
    "config": {
        "fields": [
            {
                "key": "greeting",
                "type": "string",
                "default": "hello",
                "label": "Greeting",
                "help": "Shown on top",
            },  # 0
            {"key": "retries", "type": "integer", "default": 3},  # 1
            {"key": "rate", "type": "decimal", "default": "0.25"},  # 2
            {"key": "enabled", "type": "boolean", "default": True},  # 3
            {
                "key": "currency",
                "type": "select",
                "options": ["eur", {"value": "usd", "label": "US dollar"}],
            },  # 4
            {"key": "api_key", "type": "string", "secret": True, "required": True},  # 5
            {"key": "endpoint", "type": "url", "default": "https://example.com/api"},  # 6
            {"key": "notify", "type": "email"},  # 7
        ]
    },
    "ui": {
        "permissions": [{"code": "ui.demo.magic", "description": "Do magic"}],
        "pages": [
            {
                "name": "Widgets",
                "path": "/demo/widgets",
                "type": "crud",
                "entity": "widget",
                "menu_group": "Demo",
                "columns": ["code", {"field": "title", "label": "Title!"}, "created_at"],
                "filters": ["code", {"field": "kind"}],
                "actions": ["create", {"name": "magic", "label": "Magic", "permission": "ui.demo.magic"}],
                "form": {"groups": [{"title": "Main", "fields": ["code", "title"]}], "fields": ["count"]},
            },
            {"name": "Board", "path": "/demo/board", "type": "dashboard"},
        ],
    },
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def apply(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with DELETE remove) ``value`` at a dotted path such as ``schema.entities[0].name``."""
    steps: list[str | int] = [key if key else int(index) for key, index in _STEP.findall(path)]
    node: Any = doc
    for step in steps[:-1]:
        node = node[step]
    last = steps[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value


EXT: dict[str, Any] = {"point": "condition", "name": "big", "description": "Large amounts"}
F = "schema.entities[0].fields"
C = "config.fields"
E0 = "schema.entities[0]"
P0 = "ui.pages[0]"

# (changes, expected issue path, expected message fragment, context)
INVALID: list[Any] = [
    # -- [plugin] ------------------------------------------------------------------------------------
    pytest.param([("plugin.id", "Demo_Plugin")], "plugin.id", "must be kebab-case", None, id="id-not-kebab"),
    pytest.param([("plugin.id", "demo--x")], "plugin.id", "must be kebab-case", None, id="id-double-hyphen"),
    pytest.param([("plugin.id", "a" * 65)], "plugin.id", "at most 64", None, id="id-too-long"),
    pytest.param([("plugin.id", "auth")], "plugin.id", "base module", None, id="id-is-base-module"),
    pytest.param([("plugin.name", DELETE)], "plugin.name", "is required", None, id="name-missing"),
    pytest.param([("plugin.name", "  ")], "plugin.name", "must not be empty", None, id="name-empty"),
    pytest.param(
        [("plugin.version", "1.0")], "plugin.version", "not a semantic version", None, id="version-not-semver"
    ),
    pytest.param(
        [("plugin.version", 1)], "plugin.version", "expected a string", None, id="version-not-string"
    ),
    pytest.param(
        [("plugin.min_platform_version", "v1")],
        "plugin.min_platform_version",
        "not a semantic version",
        None,
        id="min-platform-not-semver",
    ),
    pytest.param(
        [("plugin.min_platform_version", "2.0.0")],
        "plugin.min_platform_version",
        "requires platform >= 2.0.0, this is 1.0.0",
        None,
        id="min-platform-too-high",
    ),
    pytest.param([("plugin", DELETE)], "plugin", "[plugin] table is required", None, id="plugin-missing"),
    pytest.param(
        [("plugin", "demo")], "plugin", "expected a table, got a string", None, id="plugin-not-table"
    ),
    # -- unknown keys at every level -------------------------------------------------------------
    pytest.param([("plugn", {})], "plugn", "did you mean 'plugin'?", None, id="unknown-top-level"),
    pytest.param(
        [("plugin.homepage", "x")], "plugin.homepage", "unknown key 'homepage'", None, id="unknown-plugin-key"
    ),
    pytest.param(
        [("permissions.network", True)], "permissions.network", "unknown key", None, id="unknown-capability"
    ),
    pytest.param(
        [(f"{F}[1].tpye", "string")], f"{F}[1].tpye", "did you mean 'type'?", None, id="unknown-field-key"
    ),
    pytest.param(
        [(f"{E0}.lable", "W")], f"{E0}.lable", "did you mean 'label'?", None, id="unknown-entity-key"
    ),
    pytest.param(
        [(f"{P0}.colums", [])], f"{P0}.colums", "did you mean 'columns'?", None, id="unknown-page-key"
    ),
    pytest.param([("events.emitted", [])], "events.emitted", "unknown key", None, id="unknown-events-key"),
    pytest.param([("ui.menus", [])], "ui.menus", "unknown key", None, id="unknown-ui-key"),
    pytest.param(
        [("ui.permissions", 3), (f"{P0}.actions", ["create"])],
        "ui.permissions",
        "expected an array, got an integer",
        None,
        id="ui-permissions-not-array",
    ),
    pytest.param(
        [("config", {"secrets": 1})], "config.secrets", "unknown key", None, id="unknown-config-key"
    ),
    # -- [permissions] ---------------------------------------------------------------------------------
    pytest.param(
        [("permissions.files", "no")],
        "permissions.files",
        "expected true or false",
        None,
        id="capability-not-bool",
    ),
    # -- [limits] ----------------------------------------------------------------------------------------
    pytest.param([("limits", {"fuel": 0})], "limits.fuel", "out of range", None, id="limit-zero"),
    pytest.param(
        [("limits", {"memory_mb": "64"})], "limits.memory_mb", "expected an integer", None, id="limit-not-int"
    ),
    pytest.param(
        [("limits", {"deadline_ms": True})],
        "limits.deadline_ms",
        "expected an integer",
        None,
        id="limit-bool",
    ),
    pytest.param([("limits", {"cpu": 1})], "limits.cpu", "unknown key 'cpu'", None, id="limit-unknown"),
    pytest.param(
        [("config", {"fields": ["x"]})],
        "config.fields[0]",
        "expected a table",
        None,
        id="config-field-not-table",
    ),
    pytest.param([("extensions", [1])], "extensions[0]", "expected a table", None, id="extension-not-table"),
    # -- [[extensions]] --------------------------------------------------------------------------------
    pytest.param(
        [("extensions", [{**EXT, "point": "condtion"}])],
        "extensions[0].point",
        "unknown extension point 'condtion' (expected one of: condition, user-selector, record-validator, "
        "auth-verifier); did you mean 'condition'?",
        None,
        id="extension-unknown-point",
    ),
    pytest.param(
        [("extensions", [{k: v for k, v in EXT.items() if k != "point"}])],
        "extensions[0].point",
        "is required",
        None,
        id="extension-point-missing",
    ),
    pytest.param(
        [("extensions", [{k: v for k, v in EXT.items() if k != "description"}])],
        "extensions[0].description",
        "is required",
        None,
        id="extension-description-missing",
    ),
    pytest.param(
        [("extensions", [{**EXT, "name": "Big One"}])],
        "extensions[0].name",
        "is not valid",
        None,
        id="extension-name-invalid",
    ),
    pytest.param(
        [("extensions", [EXT, {**EXT, "point": "user-selector"}])],
        "extensions[1].name",
        "extension 'big' is declared twice (first at extensions[0])",
        None,
        id="extension-duplicate-name",
    ),
    pytest.param(
        [("extensions", [{**EXT, "kind": "x"}])],
        "extensions[0].kind",
        "unknown key 'kind'",
        None,
        id="extension-unknown-key",
    ),
    pytest.param(
        [("extensions", [{**EXT, "config": {"fields": [{"key": "limit", "type": "intger"}]}}])],
        "extensions[0].config.fields[0].type",
        "unknown type 'intger'",
        None,
        id="extension-config-type",
    ),
    pytest.param(
        [
            (
                "extensions",
                [
                    {
                        **EXT,
                        "config": {
                            "fields": [{"key": "s", "type": "string", "secret": True, "default": "x"}]
                        },
                    }
                ],
            )
        ],
        "extensions[0].config.fields[0].default",
        "a secret cannot have a default",
        None,
        id="extension-config-secret-default",
    ),
    pytest.param(
        [("extensions", [{**EXT, "point": "record-validator"}])],
        "extensions[0].entities",
        "must list the entities it validates",
        None,
        id="validator-without-entities",
    ),
    pytest.param(
        [("extensions", [{**EXT, "point": "record-validator", "entities": ["widget", "customer"]}])],
        "extensions[0].entities[1]",
        "entity 'customer' is neither this plugin's nor one of its dependencies'",
        None,
        id="validator-foreign-entity",
    ),
    pytest.param(
        [("extensions", [{**EXT, "entities": ["widget"]}])],
        "extensions[0].entities",
        "applies to record-validator extensions only",
        None,
        id="entities-on-condition",
    ),
    # -- [[config.fields]] ---------------------------------------------------------------------------
    pytest.param(
        [(f"{C}[1].type", "strng")],
        f"{C}[1].type",
        "unknown type 'strng' (expected one of: string, text, integer, decimal, boolean, select, url, email); "
        "did you mean 'string'?",
        None,
        id="config-unknown-type",
    ),
    pytest.param([(f"{C}[1].type", DELETE)], f"{C}[1].type", "is required", None, id="config-type-missing"),
    pytest.param([(f"{C}[0].key", DELETE)], f"{C}[0].key", "is required", None, id="config-key-missing"),
    pytest.param(
        [(f"{C}[0].key", "Greeting!")], f"{C}[0].key", "is not valid", None, id="config-key-invalid"
    ),
    pytest.param(
        [(f"{C}[3].key", "greeting")],
        f"{C}[3].key",
        "key 'greeting' is declared twice (first at config.fields[0])",
        None,
        id="config-duplicate-key",
    ),
    pytest.param(
        [(f"{C}[1].default", "three")],
        f"{C}[1].default",
        "default is not a valid integer: 'three' is not a whole number",
        None,
        id="config-default-wrong-type",
    ),
    pytest.param(
        [(f"{C}[3].default", "maybe")],
        f"{C}[3].default",
        "is not true or false",
        None,
        id="config-bool-default",
    ),
    pytest.param(
        [(f"{C}[2].default", "1,5")],
        f"{C}[2].default",
        "not a decimal number",
        None,
        id="config-decimal-default",
    ),
    pytest.param(
        [(f"{C}[0].default", 5)],
        f"{C}[0].default",
        "expected text, got an integer",
        None,
        id="config-string-default",
    ),
    pytest.param(
        [(f"{C}[4].default", "gbp")],
        f"{C}[4].default",
        "not one of the options (eur, usd)",
        None,
        id="config-select-default",
    ),
    pytest.param(
        [(f"{C}[4].options", DELETE)],
        f"{C}[4].options",
        "select fields need options",
        None,
        id="config-select-no-options",
    ),
    pytest.param(
        [(f"{C}[1].options", ["a"])],
        f"{C}[1].options",
        "does not apply to integer",
        None,
        id="config-options-not-select",
    ),
    pytest.param(
        [(f"{C}[5].default", "s3cr3t")],
        f"{C}[5].default",
        "a secret cannot have a default",
        None,
        id="config-secret-default",
    ),
    pytest.param(
        [(f"{C}[4].secret", True)],
        f"{C}[4].secret",
        "only string, text fields can be secret, not select",
        None,
        id="config-secret-select",
    ),
    pytest.param(
        [(f"{C}[6].default", "ftp://x")],
        f"{C}[6].default",
        "is not an http(s) URL",
        None,
        id="config-url-default",
    ),
    pytest.param(
        [(f"{C}[7].default", "nobody")],
        f"{C}[7].default",
        "is not an e-mail address",
        None,
        id="config-email-default",
    ),
    pytest.param(
        [(f"{C}[0].required", "yes")],
        f"{C}[0].required",
        "expected true or false",
        None,
        id="config-required-bool",
    ),
    pytest.param(
        [(f"{C}[0].secrt", True)],
        f"{C}[0].secrt",
        "did you mean 'secret'?",
        None,
        id="config-unknown-field-key",
    ),
    # -- [dependencies] ------------------------------------------------------------------------------
    pytest.param(
        [("dependencies.modules", ["auth", "workflow"])],
        "dependencies.modules[1]",
        "base module 'workflow' is not available on this platform (available: auth)",
        None,
        id="module-unavailable",
    ),
    pytest.param(
        [("dependencies.modules", ["auth", "auth"])],
        "dependencies.modules[1]",
        "listed twice",
        None,
        id="module-twice",
    ),
    pytest.param(
        [("dependencies.modules", "auth")],
        "dependencies.modules",
        "expected an array",
        None,
        id="modules-not-list",
    ),
    pytest.param(
        [("dependencies.plugins", ["crm"])],
        "dependencies.plugins[0]",
        "plugin 'crm' is not installed",
        None,
        id="plugin-dep-missing",
    ),
    pytest.param(
        [("dependencies.plugins", {"crm": ">=2.0.0"})],
        "dependencies.plugins.crm",
        "requires plugin 'crm' >= 2.0.0, installed is 1.5.0",
        {"installed_plugins": {"crm": "1.5.0"}},
        id="plugin-dep-too-old",
    ),
    pytest.param(
        [("dependencies.plugins", [{"id": "crm", "version": "~1"}])],
        "dependencies.plugins[0]",
        "version constraint '~1' is not valid",
        {"installed_plugins": {"crm": "1.5.0"}},
        id="plugin-dep-bad-constraint",
    ),
    pytest.param(
        [("dependencies.plugins", ["demo"])],
        "dependencies.plugins[0]",
        "cannot depend on itself",
        None,
        id="plugin-dep-self",
    ),
    pytest.param(
        [("dependencies.plugins", [3])],
        "dependencies.plugins[0]",
        "expected a plugin id",
        None,
        id="plugin-dep-not-id",
    ),
    # -- field types and attributes --------------------------------------------------------------
    pytest.param(
        [(f"{F}[2].type", "strng")],
        f"{F}[2].type",
        "unknown type 'strng' (expected one of: boolean, date, datetime, decimal, file, image, integer, json, reference, "
        "select, string, text, uuid)",
        None,
        id="unknown-type",
    ),
    pytest.param([(f"{F}[1].type", DELETE)], f"{F}[1].type", "is required", None, id="type-missing"),
    pytest.param(
        [(f"{F}[1].max_length", 0)], f"{F}[1].max_length", "out of range", None, id="max-length-zero"
    ),
    pytest.param(
        [(f"{F}[1].max_length", 10_001)],
        f"{F}[1].max_length",
        "between 1 and 10000",
        None,
        id="max-length-huge",
    ),
    pytest.param(
        [(f"{F}[2].max_length", 10)],
        f"{F}[2].max_length",
        "does not apply to integer",
        None,
        id="attr-not-applicable",
    ),
    pytest.param(
        [(f"{F}[3].precision", 39)], f"{F}[3].precision", "between 1 and 38", None, id="precision-too-big"
    ),
    pytest.param(
        [(f"{F}[3].scale", 11)], f"{F}[3].scale", "larger than precision 10", None, id="scale-above-precision"
    ),
    pytest.param(
        [(f"{F}[4].options", DELETE)],
        f"{F}[4].options",
        "select fields need options",
        None,
        id="select-no-options",
    ),
    pytest.param(
        [(f"{F}[4].options", [])], f"{F}[4].options", "at least one option", None, id="select-empty-options"
    ),
    pytest.param(
        [(f"{F}[4].options", ["a", "a"])],
        f"{F}[4].options[1]",
        "listed twice",
        None,
        id="select-duplicate-option",
    ),
    pytest.param(
        [(f"{F}[4].options", [{"label": "x"}])],
        f"{F}[4].options[0].value",
        "is required",
        None,
        id="option-no-value",
    ),
    pytest.param(
        [(f"{F}[4].options", [3])],
        f"{F}[4].options[0]",
        "expected a string or a table",
        None,
        id="option-not-string",
    ),
    pytest.param(
        [(f"{F}[5].entity", "gizmo")],
        f"{F}[5].entity",
        "unknown entity 'gizmo'",
        None,
        id="reference-unknown",
    ),
    pytest.param(
        [(f"{F}[5].entity", DELETE)],
        f"{F}[5].entity",
        "need the name of the entity",
        None,
        id="reference-no-entity",
    ),
    pytest.param(
        [(f"{F}[1].searchable", "yes")],
        f"{F}[1].searchable",
        "expected true or false",
        None,
        id="searchable-not-bool",
    ),
    pytest.param(
        [(f"{F}[2].searchable", True)],
        f"{F}[2].searchable",
        "can be searchable",
        None,
        id="searchable-integer",
    ),
    pytest.param(
        [(f"{F}[10].unique", True)], f"{F}[10].unique", "json fields cannot be unique", None, id="unique-json"
    ),
    pytest.param([(f"{F}[1].label", 5)], f"{F}[1].label", "expected a string", None, id="label-not-string"),
    # -- defaults ------------------------------------------------------------------------------------
    pytest.param(
        [(f"{F}[2].default", "abc")],
        f"{F}[2].default",
        "default 'abc' is not a valid integer",
        None,
        id="default-int",
    ),
    pytest.param(
        [(f"{F}[2].default", 1.5)],
        f"{F}[2].default",
        "default 1.5 is not a valid integer",
        None,
        id="default-int-float",
    ),
    pytest.param(
        [(f"{F}[2].default", True)], f"{F}[2].default", "not a valid integer", None, id="default-int-bool"
    ),
    pytest.param([(f"{F}[2].default", 2**63)], f"{F}[2].default", "64-bit", None, id="default-int-overflow"),
    pytest.param(
        [(f"{F}[3].default", "abc")], f"{F}[3].default", "not a valid decimal", None, id="default-decimal"
    ),
    pytest.param(
        [(f"{F}[3].default", "1.234")],
        f"{F}[3].default",
        "does not fit decimal(10, 2)",
        None,
        id="default-decimal-scale",
    ),
    pytest.param(
        [(f"{F}[3].default", 123456789)],
        f"{F}[3].default",
        "does not fit decimal(10, 2)",
        None,
        id="default-decimal-digits",
    ),
    pytest.param(
        [(f"{F}[4].default", "c")],
        f"{F}[4].default",
        "not one of the options (a, b)",
        None,
        id="default-select",
    ),
    pytest.param(
        [(f"{F}[6].default", "nope")], f"{F}[6].default", "not a valid uuid", None, id="default-uuid"
    ),
    pytest.param(
        [(f"{F}[7].default", "2024-13-01")], f"{F}[7].default", "not a valid date", None, id="default-date"
    ),
    pytest.param(
        [(f"{F}[7].default", "now")], f"{F}[7].default", "not a valid date", None, id="default-date-now"
    ),
    pytest.param(
        [(f"{F}[8].default", "yesterday")],
        f"{F}[8].default",
        "not a valid datetime",
        None,
        id="default-datetime",
    ),
    pytest.param(
        [(f"{F}[9].default", "yes")], f"{F}[9].default", "not a valid boolean", None, id="default-boolean"
    ),
    pytest.param(
        [(f"{F}[1].default", 7)], f"{F}[1].default", "not a valid string", None, id="default-string-type"
    ),
    pytest.param(
        [(f"{F}[1].default", "x" * 21)],
        f"{F}[1].default",
        "max_length is 20",
        None,
        id="default-string-too-long",
    ),
    pytest.param(
        [(f"{F}[10].default", {"d": dt.date(2024, 1, 1)})],
        f"{F}[10].default",
        "dates",
        None,
        id="default-json-date",
    ),
    # -- required / nullable ---------------------------------------------------------------------------
    pytest.param(
        [(f"{F}[0].nullable", True)],
        f"{F}[0].nullable",
        "required field cannot be nullable",
        None,
        id="required-nullable",
    ),
    pytest.param(
        [(f"{F}[1].nullable", False)],
        f"{F}[1].nullable",
        "needs required = true or a default",
        None,
        id="not-null-no-default",
    ),
    # -- names ---------------------------------------------------------------------------------------
    pytest.param(
        [(f"{F}[11].name", "Notes")],
        f"{F}[11].name",
        "field name 'Notes' is not valid",
        None,
        id="field-name-case",
    ),
    pytest.param([(f"{F}[11].name", "1st")], f"{F}[11].name", "is not valid", None, id="field-name-digit"),
    pytest.param(
        [(f"{F}[11].name", "order")], f"{F}[11].name", "reserved SQL word", None, id="field-name-reserved"
    ),
    pytest.param([(f"{F}[11].name", "count")], f"{F}[11].name", "declared twice", None, id="field-duplicate"),
    pytest.param(
        [(f"{F}[11].name", "created_at")], f"{F}[11].name", "standard field", None, id="field-standard"
    ),
    pytest.param(
        [(f"{F}[11].name", "tenant_id")], f"{F}[11].name", "standard field", None, id="field-tenant-id"
    ),
    pytest.param(
        [("schema.entities[1].fields", [])],
        "schema.entities[1].fields",
        "at least one field",
        None,
        id="entity-no-fields",
    ),
    pytest.param(
        [("schema.entities[1].name", "Gadget"), (f"{F}[5].entity", "Gadget")],
        "schema.entities[1].name",
        "entity name 'Gadget' is not valid",
        None,
        id="entity-name-case",
    ),
    pytest.param(
        [("schema.entities[1].name", "select"), (f"{F}[5].entity", "select")],
        "schema.entities[1].name",
        "reserved SQL word",
        None,
        id="entity-name-reserved",
    ),
    pytest.param(
        [("schema.entities[1].name", "widget"), (f"{F}[5].entity", "widget")],
        "schema.entities[1].name",
        "declared twice",
        None,
        id="entity-duplicate",
    ),
    pytest.param(
        [("schema.entities[1].name", "g" * 57), (f"{F}[5].entity", "g" * 57)],
        "schema.entities[1].name",
        "at most 56",
        None,
        id="entity-name-too-long-for-table",
    ),
    pytest.param(
        [("schema.entities[1].name", "customer"), (f"{F}[5].entity", "customer")],
        "schema.entities[1].name",
        "entity 'customer' is already provided by plugin 'crm'",
        {"foreign_entities": {"customer": "crm"}},
        id="entity-foreign-clash",
    ),
    pytest.param(
        [("schema.entities[1].name", "schema_versions"), (f"{F}[5].entity", "schema_versions")],
        "schema.entities[1].name",
        "the host uses table 'plugin_schema_versions'",
        None,
        id="entity-name-host-table",
    ),
    pytest.param(
        [("schema.entities", {"name": "x"}), ("ui.pages", DELETE)],
        "schema.entities",
        "expected an array",
        None,
        id="entities-not-list",
    ),
    # -- indexes, owner, display -----------------------------------------------------------------
    pytest.param(
        [(f"{E0}.indexes", [["nope"]])],
        f"{E0}.indexes[0][0]",
        "unknown field 'nope'",
        None,
        id="index-unknown-field",
    ),
    pytest.param(
        [(f"{E0}.indexes", [["extra"]])], f"{E0}.indexes[0][0]", "json field", None, id="index-json"
    ),
    pytest.param([(f"{E0}.indexes", [[]])], f"{E0}.indexes[0]", "at least one field", None, id="index-empty"),
    pytest.param(
        [(f"{E0}.indexes", ["code"])], f"{E0}.indexes[0]", "expected an array", None, id="index-not-list"
    ),
    pytest.param(
        [(f"{E0}.indexes", [["code", "code"]])],
        f"{E0}.indexes[0][1]",
        "appears twice",
        None,
        id="index-repeat-column",
    ),
    pytest.param(
        [(f"{E0}.indexes", [["code"], ["code"]])],
        f"{E0}.indexes[1]",
        "duplicate index",
        None,
        id="index-duplicate",
    ),
    pytest.param(
        [(f"{E0}.owner_field", "title")],
        f"{E0}.owner_field",
        "must be a uuid or reference",
        None,
        id="owner-not-uuid",
    ),
    pytest.param(
        [(f"{E0}.owner_field", "boss")], f"{E0}.owner_field", "unknown field 'boss'", None, id="owner-unknown"
    ),
    pytest.param(
        [(f"{E0}.unit_field", "shop")], f"{E0}.unit_field", "unknown field 'shop'", None, id="unit-unknown"
    ),
    pytest.param(
        [(f"{E0}.unit_field", "count")],
        f"{E0}.unit_field",
        "unit field 'count' must be a string or select or uuid or reference field, not integer",
        None,
        id="unit-not-text",
    ),
    pytest.param(
        [(f"{E0}.display_field", "nope")],
        f"{E0}.display_field",
        "unknown field 'nope'",
        None,
        id="display-unknown",
    ),
    # -- events ----------------------------------------------------------------------------------------
    pytest.param(
        [("events.published", ["Demo.Made"])], "events.published[0]", "not valid", None, id="event-uppercase"
    ),
    pytest.param(
        [("events.published", ["demo"])], "events.published[0]", "not valid", None, id="event-one-part"
    ),
    pytest.param(
        [("events.published", ["a.b.c.d"])], "events.published[0]", "not valid", None, id="event-four-parts"
    ),
    pytest.param(
        [("events.published", ["demo.*"])],
        "events.published[0]",
        "wildcard",
        None,
        id="event-published-wildcard",
    ),
    pytest.param(
        [("events.subscribed", ["demo.wid*.made"])],
        "events.subscribed[0]",
        "a wildcard must be a whole part",
        None,
        id="event-subscribed-partial-wildcard",
    ),
    pytest.param(
        [("events.subscribed", ["auth.login", "auth.login"])],
        "events.subscribed[1]",
        "listed twice",
        None,
        id="event-twice",
    ),
    pytest.param(
        [("events.published", "demo.x")], "events.published", "expected an array", None, id="events-not-list"
    ),
    pytest.param(
        [("permissions.events", False)],
        "permissions.events",
        "events = true",
        None,
        id="events-without-capability",
    ),
    # -- pages -----------------------------------------------------------------------------------------
    pytest.param(
        [(f"{P0}.type", "wizard")], f"{P0}.type", "unknown page type 'wizard'", None, id="page-type"
    ),
    pytest.param(
        [(f"{P0}.path", "demo/widgets")], f"{P0}.path", "must start with '/'", None, id="page-path-no-slash"
    ),
    pytest.param([(f"{P0}.path", "/demo/my widgets")], f"{P0}.path", "URL-safe", None, id="page-path-space"),
    pytest.param([(f"{P0}.path", "/demo/../admin")], f"{P0}.path", "URL-safe", None, id="page-path-dotdot"),
    pytest.param([(f"{P0}.path", "/demo//x")], f"{P0}.path", "URL-safe", None, id="page-path-empty-segment"),
    pytest.param(
        [(f"{P0}.path", "/api/notes")], f"{P0}.path", "segment starting with 'api'", None, id="page-path-api"
    ),
    pytest.param(
        [(f"{P0}.path", "/x/api-foo")],
        f"{P0}.path",
        "segment starting with 'api'",
        None,
        id="page-path-api-x",
    ),
    pytest.param(
        [(f"{P0}.path", "/demo/API")], f"{P0}.path", "segment starting with 'api'", None, id="page-path-API"
    ),
    pytest.param(
        [(f"{P0}.entity", DELETE)], f"{P0}.entity", "crud pages need an entity", None, id="crud-no-entity"
    ),
    pytest.param(
        [(f"{P0}.entity", "gizmo")], f"{P0}.entity", "unknown entity 'gizmo'", None, id="crud-unknown-entity"
    ),
    pytest.param(
        [("ui.pages[1].entity", "gizmo")],
        "ui.pages[1].entity",
        "unknown entity 'gizmo'",
        None,
        id="dashboard-unknown-entity",
    ),
    pytest.param(
        [("ui.pages[1].path", "/demo/widgets")],
        "ui.pages[1].path",
        "already used by ui.pages[0]",
        None,
        id="page-duplicate-path",
    ),
    pytest.param([(f"{P0}.name", DELETE)], f"{P0}.name", "is required", None, id="page-no-name"),
    pytest.param(
        [(f"{P0}.columns[0]", "nope")], f"{P0}.columns[0]", "unknown field 'nope'", None, id="column-unknown"
    ),
    pytest.param(
        [(f"{P0}.columns[1].field", "nope")],
        f"{P0}.columns[1].field",
        "unknown field 'nope'",
        None,
        id="column-table-unknown",
    ),
    pytest.param(
        [(f"{P0}.columns[1].type", "pie")],
        f"{P0}.columns[1].type",
        "unknown column type 'pie'",
        None,
        id="column-type",
    ),
    pytest.param(
        [(f"{P0}.columns[1].width", -5)], f"{P0}.columns[1].width", "out of range", None, id="column-width"
    ),
    pytest.param(
        [(f"{P0}.columns", ["code", "code"])], f"{P0}.columns[1]", "listed twice", None, id="column-twice"
    ),
    pytest.param(
        [(f"{P0}.filters[0]", "nope")], f"{P0}.filters[0]", "unknown field 'nope'", None, id="filter-unknown"
    ),
    pytest.param(
        [(f"{P0}.filters[1].field", "extra")], f"{P0}.filters[1]", "json field", None, id="filter-json"
    ),
    pytest.param(
        [(f"{P0}.filters[0]", {"field": "code", "match": "prefix"})],
        f"{P0}.filters[0].match",
        "expected one of contains, exact",
        None,
        id="filter-match-unknown",
    ),
    pytest.param(
        [(f"{P0}.filters[1].match", "exact")],
        f"{P0}.filters[1].match",
        "only filters on string fields",
        None,
        id="filter-match-not-text",
    ),
    pytest.param(
        [(f"{P0}.actions[0]", "frobnicate")],
        f"{P0}.actions[0]",
        "unknown action 'frobnicate'",
        None,
        id="action-unknown",
    ),
    pytest.param(
        [(f"{P0}.actions[1].permission", "ui.demo.nothing")],
        f"{P0}.actions[1].permission",
        "not declared in [[ui.permissions]]",
        None,
        id="action-undeclared-ui-permission",
    ),
    pytest.param(
        [(f"{P0}.actions[1].permission", "db.gizmo.update")],
        f"{P0}.actions[1].permission",
        "unknown entity 'gizmo'",
        None,
        id="action-db-permission-entity",
    ),
    pytest.param(
        [(f"{P0}.actions[1].permission", "db.widget.truncate")],
        f"{P0}.actions[1].permission",
        "unknown operation 'truncate'",
        None,
        id="action-db-permission-operation",
    ),
    pytest.param(
        [(f"{P0}.actions[1].name", "Magic!")], f"{P0}.actions[1].name", "not valid", None, id="action-name"
    ),
    pytest.param(
        [(f"{P0}.actions", ["create", "create"])], f"{P0}.actions[1]", "listed twice", None, id="action-twice"
    ),
    pytest.param(
        [(f"{P0}.form.groups[0].fields[1]", "nope")],
        f"{P0}.form.groups[0].fields[1]",
        "unknown field 'nope'",
        None,
        id="form-unknown",
    ),
    pytest.param(
        [(f"{P0}.form.fields", ["count", "created_at"])],
        f"{P0}.form.fields[1]",
        "standard fields are not editable",
        None,
        id="form-standard-field",
    ),
    pytest.param(
        [(f"{P0}.form.fields", ["title"])],
        f"{P0}.form.fields[0]",
        "already in the form",
        None,
        id="form-field-twice",
    ),
    pytest.param(
        [(f"{P0}.form.groups[0].fields", ["title"])],
        f"{P0}.form",
        "leaves out required field 'code'",
        None,
        id="form-misses-required",
    ),
    pytest.param([(f"{P0}.form", {})], f"{P0}.form", "needs 'fields' or 'groups'", None, id="form-empty"),
    pytest.param(
        [(f"{P0}.form.groups[0].colour", "red")],
        f"{P0}.form.groups[0].colour",
        "unknown key",
        None,
        id="form-group-key",
    ),
    pytest.param(
        [("ui.pages[2]", {"name": "X", "path": "/demo/x", "type": "custom", "columns": ["code"]})],
        "ui.pages[2].columns",
        "only applies to crud pages",
        None,
        id="custom-page-columns",
    ),
    # -- ui.permissions ------------------------------------------------------------------------------
    pytest.param(
        [("ui.permissions[0].code", "demo.magic"), (f"{P0}.actions[1].permission", DELETE)],
        "ui.permissions[0].code",
        "not valid",
        None,
        id="ui-permission-prefix",
    ),
    pytest.param(
        [("ui.permissions[0].code", "ui.demo"), (f"{P0}.actions[1].permission", DELETE)],
        "ui.permissions[0].code",
        "not valid",
        None,
        id="ui-permission-two-parts",
    ),
    pytest.param(
        [("ui.permissions[0].code", "ui.other.magic"), (f"{P0}.actions[1].permission", DELETE)],
        "ui.permissions[0].code",
        "must start with 'ui.demo.'",
        None,
        id="ui-permission-namespace",
    ),
    pytest.param(
        [("ui.permissions[0].description", DELETE)],
        "ui.permissions[0].description",
        "is required",
        None,
        id="ui-permission-no-desc",
    ),
    pytest.param(
        [("ui.permissions[1]", {"code": "ui.demo.magic", "description": "again"})],
        "ui.permissions[1].code",
        "declared twice",
        None,
        id="ui-permission-duplicate",
    ),
]


@pytest.mark.parametrize(("changes", "path", "fragment", "ctx"), INVALID)
def test_each_rule_reports_one_located_issue(
    changes: list[tuple[str, Any]], path: str, fragment: str, ctx: dict[str, Any] | None
) -> None:
    doc = base()
    for change_path, value in changes:
        apply(doc, change_path, value)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc, ValidationContext(**ctx) if ctx else None)
    issues = caught.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    assert issues[0].path == path
    assert fragment in issues[0].message


VALID: list[Any] = [
    pytest.param([], None, id="base"),
    pytest.param([(f"{P0}.filters[0]", {"field": "code", "match": "exact"})], None, id="filter-match-exact"),
    pytest.param([("plugin.version", "1.0.0-beta.1")], None, id="prerelease-version"),
    pytest.param([("plugin.min_platform_version", "1.0.0-rc.1")], None, id="prerelease-platform"),
    pytest.param(
        [("plugin.description", DELETE), ("plugin.author", DELETE)], None, id="optional-plugin-keys"
    ),
    pytest.param(
        [("plugin.min_platform_version", "2.1.0")], {"platform_version": "2.1.0"}, id="newer-platform"
    ),
    pytest.param(
        [("dependencies.modules", ["auth", "workflow"])],
        {"available_modules": frozenset({"auth", "workflow"})},
        id="module",
    ),
    pytest.param(
        [("dependencies.plugins", [{"id": "crm", "version": ">=1.0.0"}, "billing"])],
        {"installed_plugins": {"crm": "1.5.0", "billing": "0.1.0"}},
        id="plugin-dependencies",
    ),
    pytest.param(
        [("dependencies.plugins", {"crm": "1.2.0"})],
        {"installed_plugins": {"crm": "1.10.0"}},
        id="plugin-dep-table",
    ),
    pytest.param(
        [
            (
                "limits",
                {
                    k: 5
                    for k in ("deadline_ms", "fuel", "memory_mb", "output_bytes", "host_calls", "log_bytes")
                },
            ),
            ("config", {"fields": [{"key": "anything", "type": "text"}]}),
            ("extensions", [{"point": "condition", "name": "big", "description": "Large amounts"}]),
        ],
        None,
        id="limits-config-extensions",
    ),
    pytest.param(
        [(f"{F}[5].entity", "customer")], {"foreign_entity_specs": {"customer": None}}, id="foreign-reference"
    ),
    pytest.param(
        [(f"{E0}.indexes", [["created_at"], ["tenant_id", "code"]])], None, id="standard-field-index"
    ),
    pytest.param([(f"{E0}.owner_field", "owner")], None, id="owner-uuid"),
    pytest.param([(f"{E0}.owner_field", "parent_id")], None, id="owner-reference"),
    pytest.param([(f"{E0}.owner_field", "created_by")], None, id="owner-created-by"),
    pytest.param([(f"{E0}.unit_field", "title")], None, id="unit-string"),
    pytest.param([(f"{E0}.unit_field", "owner")], None, id="unit-uuid"),
    pytest.param([(f"{E0}.display_field", "created_at")], None, id="display-standard"),
    pytest.param(
        [("events.published", ["purchase_order.created", "demo.stock.low"])],
        None,
        id="two-and-three-part-events",
    ),
    pytest.param([("events", DELETE), ("permissions.events", False)], None, id="no-events-no-capability"),
    pytest.param([(f"{F}[7].default", "today"), (f"{F}[8].default", "now")], None, id="today-now"),
    pytest.param(
        [(f"{F}[7].default", dt.date(2024, 2, 29)), (f"{F}[8].default", "2024-02-29T10:00:00")],
        None,
        id="iso-dates",
    ),
    pytest.param([(f"{F}[3].default", "12.5"), (f"{F}[2].default", -3)], None, id="numeric-defaults"),
    pytest.param([(f"{F}[6].default", str(uuid.UUID(int=1)))], None, id="uuid-default"),
    pytest.param([(f"{F}[10].default", {"a": [1, 2, {"b": None}]})], None, id="json-default"),
    pytest.param([(f"{F}[1].nullable", False), (f"{F}[1].default", "x")], None, id="not-null-with-default"),
    pytest.param([(f"{F}[11].searchable", False), (f"{F}[4].searchable", True)], None, id="searchable-flags"),
    pytest.param([("ui.pages[1].entity", "widget")], None, id="dashboard-entity"),
    pytest.param(
        [("ui.pages[1].entity", "customer")],
        {"foreign_entity_specs": {"customer": None}},
        id="dashboard-foreign",
    ),
    pytest.param([(f"{P0}.actions[1].permission", "db.widget.update")], None, id="db-permission-action"),
    pytest.param(
        [(f"{P0}.columns", DELETE), (f"{P0}.filters", DELETE), (f"{P0}.form", DELETE)],
        None,
        id="derived-page",
    ),
    pytest.param(
        [("schema.entities[1].name", "customer"), (f"{F}[5].entity", "customer")],
        None,
        id="foreign-entities-unrelated",
    ),
    pytest.param(
        [("schema.entities[1].name", "customer"), (f"{F}[5].entity", "customer")],
        {"foreign_entities": {"customer": "demo"}},
        id="own-entity-on-upgrade",
    ),
]


@pytest.mark.parametrize(("changes", "ctx"), VALID)
def test_valid_variants_parse(changes: list[tuple[str, Any]], ctx: dict[str, Any] | None) -> None:
    doc = base()
    for change_path, value in changes:
        apply(doc, change_path, value)
    if ctx and "foreign_entity_specs" in ctx:
        ctx["foreign_entity_specs"] = {
            "customer": EntitySpec("customer", "Customer", (FieldSpec("name", "string", "Name"),))
        }
    manifest = parse_manifest(doc, ValidationContext(**ctx) if ctx else None)
    assert isinstance(manifest, Manifest)


def test_parsed_model() -> None:
    manifest = parse_manifest(base())
    assert manifest.id == "demo"
    assert manifest.plugin.min_platform_version == "1.0.0"
    assert manifest.dependencies.modules == ("auth",)
    assert manifest.capabilities.database and manifest.capabilities.events
    assert not manifest.capabilities.files
    widget = manifest.entity("widget")
    assert widget.table_name == "plugin_widget"
    assert widget.label == "Widget"
    assert widget.display_field == "code"  # first string field
    assert manifest.entity("gadget").display_field == "label"
    assert widget.indexes == (("code",), ("kind", "starts"))
    assert widget.column_names[: len(STANDARD_FIELDS)] == STANDARD_FIELDS

    code = widget.field("code")
    assert (code.required, code.unique, code.nullable, code.searchable) == (True, True, False, True)
    assert code.max_length == 255 and code.label == "Code"
    title = widget.field("title")
    assert title.max_length == 20 and title.nullable
    assert widget.field("count").default == 0 and not widget.field("count").searchable
    price = widget.field("price")
    assert (price.precision, price.scale) == (10, 2)
    assert widget.field("kind").options == (SelectOption("a", "a"), SelectOption("b", "Bee"))
    assert widget.field("parent_id").entity == "gadget"
    assert widget.field("notes").searchable
    assert widget.field("active").default is True
    assert widget.field("parent_id").label == "Parent Id"
    with pytest.raises(KeyError):
        widget.field("nope")
    with pytest.raises(KeyError):
        manifest.entity("nope")

    assert manifest.events.published == ("demo.widget.made",)
    assert manifest.events.subscribed == ("auth.login", "demo.gadget.*")
    assert [p.code for p in manifest.ui_permissions] == ["ui.demo.magic"]
    assert "db.widget.select" in manifest.db_permissions
    assert manifest.permission_codes[-1] == "ui.demo.magic"
    assert len(manifest.db_permissions) == 8

    page = manifest.page("/demo/widgets")
    assert page.type == "crud" and page.entity == "widget" and page.menu_group == "Demo"
    assert page.columns is not None and [c["field"] for c in page.columns] == ["code", "title", "created_at"]
    assert page.columns[1]["label"] == "Title!"
    assert page.columns[2]["label"] == "Created"  # a standard field: the host's label (translated)
    assert page.columns[0] == {
        "field": "code",
        "label": "Code",
        "type": None,
        "width": None,
        "sortable": True,
        "hidden": False,
        "options": (),
    }
    assert page.filters == ({"field": "code", "label": "Code"}, {"field": "kind", "label": "Kind"})
    assert page.actions == (
        {"name": "create", "label": "Create", "permission": None},
        {"name": "magic", "label": "Magic", "permission": "ui.demo.magic"},
    )
    assert page.form is not None
    assert [f["field"] for f in page.form["groups"][0]["fields"]] == ["code", "title"]
    assert page.form["groups"][0]["title"] == "Main"
    assert [f["field"] for f in page.form["fields"]] == ["count"]
    board = manifest.page("/demo/board")
    assert board.type == "dashboard" and board.entity is None and board.columns is None
    assert manifest.raw == base()


def test_extensions_are_exposed() -> None:
    doc = base()
    doc["extensions"] = [
        {
            **EXT,
            "config": {
                "fields": [
                    {"key": "threshold", "type": "decimal", "required": True},
                    {"key": "secret", "type": "string", "secret": True},
                ]
            },
        },
        {"point": "record-validator", "name": "codes", "description": "Code pattern", "entities": ["widget"]},
    ]
    extensions = parse_manifest(doc).extensions
    assert [(e.point, e.name) for e in extensions] == [("condition", "big"), ("record-validator", "codes")]
    assert [f.key for f in extensions[0].config_fields] == ["threshold", "secret"]
    assert extensions[0].config_fields[1].secret and extensions[1].entities == ("widget",)
    assert parse_manifest(base()).extensions == ()


def test_config_fields_are_exposed() -> None:
    fields = {f.key: f for f in parse_manifest(base()).config_fields}
    assert list(fields) == [
        "greeting",
        "retries",
        "rate",
        "enabled",
        "currency",
        "api_key",
        "endpoint",
        "notify",
    ]
    assert fields["greeting"].label == "Greeting" and fields["greeting"].help == "Shown on top"
    assert fields["retries"].default == 3 and fields["retries"].label == "Retries"
    assert fields["rate"].default == Decimal("0.25")
    assert fields["enabled"].default is True
    assert fields["currency"].option_values == ("eur", "usd") and fields["currency"].default is None
    assert fields["api_key"].secret and fields["api_key"].required and fields["api_key"].default is None
    assert fields["endpoint"].default == "https://example.com/api"
    doc = base()
    del doc["config"]
    assert parse_manifest(doc).config_fields == ()


def test_defaults_are_normalised() -> None:
    doc = base()
    apply(doc, f"{F}[3].default", "12.5")
    apply(doc, f"{F}[7].default", "2024-02-29")
    apply(doc, f"{F}[8].default", "2024-02-29T10:00:00")
    apply(doc, f"{F}[6].default", "00000000-0000-0000-0000-000000000001")
    widget = parse_manifest(doc).entity("widget")
    assert widget.field("price").default == Decimal("12.5")
    assert widget.field("starts").default == dt.date(2024, 2, 29)
    assert widget.field("happened").default == dt.datetime(2024, 2, 29, 10, tzinfo=dt.UTC)
    assert widget.field("owner").default == uuid.UUID(int=1)


def test_all_issues_are_collected() -> None:
    doc = base()
    apply(doc, "plugin.id", "Bad Id")
    apply(doc, f"{F}[2].type", "strng")
    apply(doc, f"{F}[1].default", 5)
    apply(doc, "dependencies.modules", ["auth", "workflow"])
    apply(doc, f"{P0}.path", "nope")
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == ["plugin.id", "dependencies.modules[1]", f"{F}[1].default", f"{F}[2].type", f"{P0}.path"]
    lines = str(caught.value).splitlines()
    assert len(lines) == 5
    assert (
        lines[1]
        == "dependencies.modules[1]: base module 'workflow' is not available on this platform (available: auth)"
    )
    assert all(
        line.startswith(f"{issue.path}: ") for line, issue in zip(lines, caught.value.issues, strict=True)
    )


def test_toml_syntax_error_is_one_issue_with_position() -> None:
    source = '[plugin]\nid = "x"\nname = \n'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(source)
    [issue] = caught.value.issues
    assert issue.path == "plugin.toml"
    assert "line 3" in issue.message and "column" in issue.message


def test_bytes_text_and_mapping_sources_agree() -> None:
    raw = SEED_FIXTURE.read_bytes()
    from_bytes = parse_manifest(raw, WITH_WORKFLOW)
    from_text = parse_manifest(raw.decode("utf-8"), WITH_WORKFLOW)
    from_mapping = parse_manifest(from_bytes.raw, WITH_WORKFLOW)
    assert from_bytes == from_text == from_mapping


def test_invalid_utf8() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(b'[plugin]\nname = "\xff"\n')
    assert caught.value.issues[0].path == "plugin.toml"
    assert "UTF-8" in caught.value.issues[0].message


def test_manifest_error_formatting() -> None:
    error = ManifestError([ManifestIssue("a.b", "first"), ManifestIssue("c[0]", "second")])
    assert str(error) == "a.b: first\nc[0]: second"
    assert error.issues[1] == ManifestIssue("c[0]", "second")


def test_semver_ordering() -> None:
    assert parse_version("1.0.0-alpha") < parse_version("1.0.0-alpha.1") < parse_version("1.0.0-beta")
    assert parse_version("1.0.0-beta.2") < parse_version("1.0.0-beta.11") < parse_version("1.0.0-rc.1")
    assert (
        parse_version("1.0.0-rc.1")
        < parse_version("1.0.0")
        < parse_version("1.0.1")
        < parse_version("1.10.0")
    )
    assert str(parse_version("2.3.4-rc.1")) == "2.3.4-rc.1"
    for bad in ("1", "1.0", "01.0.0", "1.0.0+build", "v1.0.0", "1.0.0-"):
        with pytest.raises(ValueError):
            parse_version(bad)


# -- the example ERP manifest and the bundled plugins ---------------------------------------------


def test_seed_manifest_parses_with_workflow_module() -> None:
    manifest = load_manifest(SEED_FIXTURE, WITH_WORKFLOW)
    assert manifest.plugin.id == "erp-inventory"
    assert manifest.plugin.name == "进销存管理"
    assert manifest.dependencies.modules == ("auth", "workflow")
    assert [e.name for e in manifest.entities] == ["inventory_item", "purchase_order"]
    item = manifest.entity("inventory_item")
    assert item.field("unit").default == "个"
    assert item.field("category_id").nullable
    assert item.field("sku").unique and not item.field("sku").nullable
    assert item.field("unit_price").precision == 10
    assert manifest.events.published == (
        "inventory.stock.low",
        "purchase_order.created",
        "purchase_order.approved",
    )
    assert [p.path for p in manifest.pages] == [
        "/inventory/items",
        "/inventory/purchase",
        "/inventory/stocktaking",
    ]
    assert manifest.page("/inventory/stocktaking").type == "custom"
    assert manifest.page("/inventory/items").menu_group == "进销存"


def test_seed_manifest_without_workflow_module_fails_once() -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(SEED_FIXTURE)
    assert caught.value.issues == [
        ManifestIssue(
            "dependencies.modules[1]",
            "base module 'workflow' is not available on this platform (available: auth)",
        )
    ]


def test_bundled_plugins_are_found() -> None:
    assert {p.parent.name for p in BUNDLED} >= {"inventory", "crm"}


@pytest.mark.parametrize("path", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_bundled_manifest_validates(path: Path) -> None:
    manifest = load_manifest(path, PLATFORM)
    assert manifest.plugin.id == path.parent.name
    # Inventory reacts to purchase-order approvals (1.1.0); the others need identity only.
    assert manifest.dependencies.modules == (
        ("auth", "workflow") if path.parent.name == "inventory" else ("auth",)
    )
    assert manifest.entities and manifest.pages
    for page in manifest.pages:
        if page.type == "crud":
            assert page.entity is not None
            manifest.entity(page.entity)


def test_bundled_inventory_shape() -> None:
    manifest = load_manifest(ROOT / "plugins" / "inventory" / "plugin.toml", PLATFORM)
    assert [e.name for e in manifest.entities] == [
        "inventory_category",
        "supplier",
        "inventory_item",
        "purchase_order",
        "purchase_order_line",
    ]
    item = manifest.entity("inventory_item")
    assert item.field("category_id").entity == "inventory_category"
    assert item.field("threshold").default == 10
    assert item.field("status").option_values == ("active", "discontinued")
    order = manifest.entity("purchase_order")
    assert order.field("supplier_id").entity == "supplier"
    assert order.field("status").option_values == ("draft", "submitted", "approved", "rejected", "received")
    assert order.owner_field is None
    line = manifest.entity("purchase_order_line")
    assert line.field("order_id").required and line.field("order_id").entity == "purchase_order"
    assert line.field("item_id").required and line.field("item_id").entity == "inventory_item"
    assert manifest.entity("supplier").field("address").type == "text"
    assert manifest.entity("inventory_category").field("code").unique
    assert "db.inventory_item.select" in manifest.permission_codes
    assert "ui.inventory.stocktaking-adjust" in manifest.permission_codes
    assert manifest.page("/inventory/dashboard").type == "dashboard"
    assert manifest.page("/inventory/stocktaking").type == "custom"
    assert {p.menu_group for p in manifest.pages} == {"Inventory"}
    assert all(e.startswith("inventory.") for e in manifest.events.published)
    assert {"inventory.purchase_order.approved", "inventory.purchase_order.rejected"} <= set(
        manifest.events.published
    )
    assert manifest.events.subscribed == (
        "workflow.task.created",
        "workflow.task.completed",
        "workflow.instance.completed",
    )
    assert manifest.capabilities.database and manifest.capabilities.events and manifest.capabilities.config


def test_bundled_crm_shape() -> None:
    manifest = load_manifest(ROOT / "plugins" / "crm" / "plugin.toml")
    assert [e.name for e in manifest.entities] == ["customer", "contact", "tag", "customer_tag"]
    customer = manifest.entity("customer")
    assert customer.field("name").required and customer.field("code").unique
    assert customer.field("status").option_values == ("lead", "active", "inactive")
    assert customer.field("notes").type == "text"
    assert manifest.entity("contact").field("customer_id").entity == "customer"
    assert manifest.entity("tag").field("name").unique
    assert ("customer_id", "tag_id") in manifest.entity("customer_tag").indexes
    page = manifest.page("/crm/customers")
    assert page.columns and page.filters and page.form and page.actions
    assert {p.menu_group for p in manifest.pages} == {"CRM"}


def test_bundled_plugins_coexist() -> None:
    """Installing one bundled plugin after the other: no entity clashes."""
    inventory = load_manifest(ROOT / "plugins" / "inventory" / "plugin.toml", PLATFORM)
    owned = {e.name: inventory.id for e in inventory.entities}
    crm = load_manifest(ROOT / "plugins" / "crm" / "plugin.toml", ValidationContext(foreign_entities=owned))
    assert not owned.keys() & {e.name for e in crm.entities}


def test_dependency_model() -> None:
    doc = base()
    apply(doc, "dependencies.plugins", [{"id": "crm", "version": ">= 1.2.0"}, "billing"])
    manifest = parse_manifest(doc, ValidationContext(installed_plugins={"crm": "1.2.0", "billing": "3.0.0"}))
    assert manifest.dependencies.plugins == (
        PluginDependency("crm", "1.2.0"),
        PluginDependency("billing", None),
    )
