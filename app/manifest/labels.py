"""Labels a manifest gives in one language or several: `label = "Items"` or `label = { en = "Items", zh = "物品" }`.

A `Label` is the text itself (a `str`: the English one when given, else the first) and keeps the others,
so code that only needs some text uses it as a string and pages pick the reader's language (`pick_label`).
"""

from __future__ import annotations

import re
from typing import Any

# A language code as manifests may key labels by: `en`, `zh`, `pt-BR`, `zh-Hant`.
LABEL_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class Label(str):
    """A label's text with its translations by language code."""

    by_language: dict[str, str]

    def __new__(cls, translations: dict[str, str]) -> Label:
        text = translations.get("en") or next(iter(translations.values()), "")
        label = super().__new__(cls, text)
        label.by_language = dict(translations)
        return label

    def __reduce__(self) -> tuple[Any, ...]:
        return (Label, (self.by_language,))


def pick_label(label: Any, language: str) -> str:
    """`label` in `language` when the manifest gives it, else as given."""
    if label is None:
        return ""
    if isinstance(label, Label):
        return label.by_language.get(language) or str(label)
    if isinstance(label, dict):
        return str(label.get(language) or label.get("en") or next(iter(label.values()), ""))
    return str(label)


def label_schema(description: str) -> dict[str, Any]:
    """The JSON Schema of a label: a non-blank string, or a table of them by language code."""
    return {
        "description": description + " A string, or a table of translations by language code.",
        "oneOf": [
            {"type": "string", "pattern": r"\S"},
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": LABEL_LANGUAGE.pattern},
                "additionalProperties": {"type": "string", "pattern": r"\S"},
            },
        ],
    }
