"""The one editor of a named configuration (templates/configs/_editor.html), shared by plugin configurations
(app.web.plugin_config) and extension configurations (app.web.extensions_pages, app.web.extensions_api): each page describes what
differs around the values (where the form posts, its heading, hidden inputs, the on/off switch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigForm:
    action: str  # where the form posts (and Cancel goes)
    form_id: str
    title: str  # "Edit “name”" or "New configuration"
    is_new: bool  # the button says Create, else Save
    hidden: tuple[tuple[str, str], ...] = ()  # (name, value) inputs identifying the configuration
    subtitle: str = ""  # after the title, with `code` (an extension's implementation)
    code: str = ""
    description: str = ""
    name_keys: tuple[str, ...] = ("name",)  # error keys shown under the name input, first found
    own_keys: tuple[str, ...] = ("name",)  # error keys shown at their input, not in the summary
    free_text: bool = False  # no declared fields: `key = value` lines
    toggle_name: str = ""  # the on/off checkbox (active, enabled)
    toggle_label: str = ""
    toggle_on: bool = False
    note: str = ""  # shown instead of the checkbox
    footnote: str = ""
