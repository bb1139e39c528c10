"""Base modules this platform really provides; manifests may depend on these names only.

A name is listed here only when the module behind it exists (seed 004's `workflow`, `config`
and `message` arrive with their own issues and register themselves then).
"""

from __future__ import annotations

BASE_MODULES: dict[str, str] = {
    "auth": "Identity and access: tenants, users, roles, Casbin permissions, API tokens (app.identity, app.access)",
}


def available_modules() -> frozenset[str]:
    return frozenset(BASE_MODULES)
