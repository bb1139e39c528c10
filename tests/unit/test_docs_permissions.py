"""The permission strings the docs show have the shape the code grants and checks: `db.<entity>.<op>`
(no plugin id in it; entity names are global), with the operations the code knows."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.manifest.vocabulary import DB_OPERATIONS
from app.plugins.runtime import EntityRef

ROOT = Path(__file__).resolve().parents[2]
# `db.` followed by at least two more dot-separated parts: a permission string, not an SDK call
# (`db.query`) or a module (`db.py`).
DB_PERMISSION = re.compile(r"\bdb\.[A-Za-z0-9_<>*|-]+(?:\.[A-Za-z0-9_<>*|-]+)+")
PLACEHOLDER_OPS = {"*", "<op>", "<operation>"}


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "plugin.schema.json"]


def _code_permission(entity: str, op: str) -> str:
    ref: Any = SimpleNamespace(spec=SimpleNamespace(name=entity))
    return EntityRef.permission(ref, op)


def test_the_code_grants_db_entity_op() -> None:
    assert _code_permission("crm_customer", "select") == "db.crm_customer.select"


def test_db_permission_strings_in_the_docs_match_the_code() -> None:
    found: list[tuple[str, str]] = []
    wrong: list[str] = []
    for path in _docs():
        for match in DB_PERMISSION.finditer(path.read_text(encoding="utf-8")):
            text = match.group(0).rstrip(".")
            found.append((path.name, text))
            parts = text.split(".")
            ops = parts[-1].split("|")
            if len(parts) != 3 or not all(op in DB_OPERATIONS or op in PLACEHOLDER_OPS for op in ops):
                wrong.append(f"{path.relative_to(ROOT)}: {text}")
                continue
            for op in ops:
                assert _code_permission(parts[1], op) == f"db.{parts[1]}.{op}"
    assert wrong == [], "permission strings are db.<entity>.<op>: " + ", ".join(wrong)
    assert any(text == "db.<entity>.<op>" for _name, text in found)  # the docs do state the format
    assert any(name == "plugins.md" for name, _text in found)


def test_a_misshaped_string_would_be_caught() -> None:
    bad = "permission `db.<plugin>.<entity>.<operation>`"
    match = DB_PERMISSION.search(bad)
    assert match is not None and len(match.group(0).split(".")) == 4
