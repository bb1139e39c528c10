"""The JSON Schema of plugin.toml (docs/plugin.schema.json): generated from the vocabulary, committed
up to date, and accepting every manifest the project ships."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.manifest import ManifestError, parse_manifest
from app.manifest.jsonschema import plugin_schema, render
from app.sandbox.scaffold import _MANIFEST as SCAFFOLD_MANIFEST
from tests.unit.test_manifest import PLATFORM, apply, base

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "plugin.schema.json"
VALID = sorted((ROOT / "plugins").glob("*/plugin.toml")) + sorted(
    (ROOT / "tests/fixtures/manifests").glob("*.toml")
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator: jsonschema.Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "docs/plugin.schema.json is stale: run python -m app.manifest.jsonschema > docs/plugin.schema.json"
    )
    assert json.loads(render()) == plugin_schema()


def test_the_valid_manifests_exist() -> None:
    assert len(VALID) >= 3


@pytest.mark.parametrize("path", VALID, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_manifests_conform(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    assert problems(validator, tomllib.loads(path.read_text(encoding="utf-8"))) == []


def test_the_test_suites_base_manifest_and_the_scaffold_conform(
    validator: jsonschema.Draft202012Validator,
) -> None:
    parse_manifest(base(), PLATFORM)
    assert problems(validator, base()) == []
    scaffold = SCAFFOLD_MANIFEST.format(id="stock-notes", title="Stock Notes", entity="stock_notes_item")
    parse_manifest(scaffold)
    assert problems(validator, tomllib.loads(scaffold)) == []


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        ("plugn", {}, "$"),  # unknown top-level key
        ("plugin.id", "Demo_Plugin", "plugin.id"),
        ("plugin.version", "1.0", "plugin.version"),
        ("schema.entities[0].fields[1].type", "strng", "schema.entities.0.fields.1.type"),
        ("schema.entities[0].fields[1].tpye", "string", "schema.entities.0.fields.1"),
        ("schema.entities[0].fields[0].name", "select", "schema.entities.0.fields.0.name"),  # reserved word
        ("schema.entities[0].fields[0].name", "created_at", "schema.entities.0.fields.0.name"),  # standard
        ("schema.entities[0].fields[3].max_length", 10, "schema.entities.0.fields.3.type"),  # decimal
        ("ui.pages[0].path", "demo/widgets", "ui.pages.0.path"),
        ("ui.pages[0].type", "grid", "ui.pages.0.type"),
        ("ui.pages[1].columns", ["code"], "ui.pages.1"),  # not a crud page
        ("ui.permissions[0].code", "demo.magic", "ui.permissions.0.code"),
        ("events.published[0]", "demo.widget.*", "events.published.0"),
        ("config.fields[0].type", "strng", "config.fields.0.type"),
        ("config.fields[5].default", "x", "config.fields.5"),  # a secret
        ("extensions", [{"point": "conditon", "name": "x", "description": "d"}], "extensions.0.point"),
        ("extensions", [{"point": "record-validator", "name": "x", "description": "d"}], "extensions.0"),
        ("limits", {"fuel": 0}, "limits.fuel"),
    ],
)
def test_the_schema_rejects_what_the_parser_rejects(
    validator: jsonschema.Draft202012Validator, path: str, value: Any, where: str
) -> None:
    doc = copy.deepcopy(base())
    apply(doc, path, value)
    with pytest.raises(ManifestError):
        parse_manifest(doc, PLATFORM)
    found = problems(validator, doc)
    assert any(p.startswith(f"{where}:") for p in found), found
