"""Labels in several languages in plugin.toml: `label = { en = "...", zh = "..." }` wherever a manifest
gives a label (entity, field, option, page name, menu group, permission description, list and form
labels); the parser and the generated JSON Schema agree."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.manifest import ManifestError, parse_manifest
from app.manifest.labels import Label, pick_label
from tests.unit.test_manifest import PLATFORM, ROOT, apply, base

SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs" / "plugin.schema.json").read_text("utf-8"))
)
F = "schema.entities[0].fields"
P = "ui.pages[0]"

TRANSLATED: list[tuple[str, Any]] = [
    ("schema.entities[0].label", {"en": "Widget", "zh": "部件"}),
    (f"{F}[0].label", {"en": "Code", "zh": "编码"}),
    (f"{F}[4].options[1].label", {"en": "Bee", "zh": "蜜蜂"}),
    (f"{P}.name", {"en": "Widgets", "zh": "部件"}),
    (f"{P}.menu_group", {"zh": "演示"}),
    (f"{P}.columns[1].label", {"en": "Title!", "zh": "标题！"}),
    (f"{P}.form.groups[0].title", {"en": "Main", "zh": "主要"}),
    ("ui.permissions[0].description", {"en": "Do magic", "zh": "施展魔法"}),
]


def _doc(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = base()
    for path, value in changes:
        apply(doc, path, value)
    return doc


def test_labels_in_several_languages_parse_and_conform():
    doc = _doc(TRANSLATED)
    assert [e.message for e in SCHEMA.iter_errors(doc)] == []
    manifest = parse_manifest(doc)
    widget = manifest.entities[0]
    assert isinstance(widget.label, Label) and widget.label == "Widget"
    assert pick_label(widget.label, "zh") == "部件"
    assert pick_label(widget.fields[0].label, "zh") == "编码"
    assert pick_label(widget.fields[4].options[1].label, "zh") == "蜜蜂"
    page = manifest.pages[0]
    assert pick_label(page.name, "zh") == "部件" and pick_label(page.name, "en") == "Widgets"
    # Only Chinese given: that text everywhere.
    assert page.menu_group == "演示" and pick_label(page.menu_group, "en") == "演示"
    assert pick_label(manifest.ui_permissions[0].description, "zh") == "施展魔法"


def test_a_one_language_manifest_shows_labels_as_given():
    widget = parse_manifest(base()).entities[0]
    assert type(widget.fields[4].options[1].label) is str
    assert pick_label(widget.fields[4].options[1].label, "zh") == "Bee"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({}, "needs at least one language"),
        ({"english": "Widget"}, "is not a language code"),
        ({"en": 3}, "expected a string"),
        ({"en": "Widget", "zh": "  "}, "must not be empty"),
    ],
)
def test_bad_translation_tables_are_one_located_issue(value: Any, fragment: str):
    doc = _doc([("schema.entities[0].label", value)])
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    issues = caught.value.issues
    assert len(issues) == 1 and fragment in issues[0].message, issues
    assert issues[0].path.startswith("schema.entities[0].label")
    assert list(SCHEMA.iter_errors(doc))  # the schema refuses it too


@pytest.mark.parametrize("name", ["inventory", "crm"])
def test_bundled_plugins_label_in_chinese(name: str):
    path = Path(ROOT / "plugins" / name / "plugin.toml")
    manifest = parse_manifest(path.read_text("utf-8"), PLATFORM)
    assert [e.message for e in SCHEMA.iter_errors(tomllib.loads(path.read_text("utf-8")))] == []
    labels = [e.label for e in manifest.entities] + [f.label for e in manifest.entities for f in e.fields]
    labels += [p.name for p in manifest.pages] + [p.menu_group for p in manifest.pages if p.menu_group]
    untranslated = [str(lb) for lb in labels if pick_label(lb, "zh") == str(lb) and str(lb) != "SKU"]
    assert untranslated == []
