"""Base modules this platform really provides; manifests may depend on these names only.

A name is listed here only when the module behind it exists (a `config` module, which some manifests
name, arrives with its own issue and registers itself then).
"""

from __future__ import annotations

BASE_MODULES: dict[str, str] = {
    "auth": "Identity and access: tenants, users, roles, Casbin permissions, API tokens (app.identity, app.access)",
    "message": "In-app notifications per user and tenant, optionally emailed (app.messages; host function notify)",
    "workflow": "Approval processes for plugin entities: steps, approver rules, task inbox, events "
    "workflow.task.created|completed and workflow.instance.completed (app.workflow)",
}


def available_modules() -> frozenset[str]:
    return frozenset(BASE_MODULES)
