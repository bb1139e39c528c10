"""Plugin UI instructions: validate a guest's JSON page description and render it with host templates.

`parse_ui` turns the JSON into a `UIView` of checked, normalized blocks; `templates/ui/_region.html`
renders one. The vocabulary is documented in docs/ui-instructions.md and, as a JSON Schema for plugin
authors, in app/ui/ui-instructions.v1.schema.json.
"""

from app.ui.checks import safe_relative_url
from app.ui.validate import UI_VERSION, UIProblem, UIView, parse_ui

__all__ = ["UI_VERSION", "UIProblem", "UIView", "parse_ui", "safe_relative_url"]
