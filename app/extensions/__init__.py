"""Extension points: typed hooks the base calls, with built-in and plugin (WASM) implementations
and several named configurations per implementation and tenant.

Points (contracts in wit/plugin.wit, interface `extensions`):
- `condition`        record + context -> true/false (workflow step conditions)
- `user-selector`    context -> user ids of the tenant (workflow approvers)
- `record-validator` a record about to be written -> field errors (the record service, every path)
- `auth-verifier`    an auto-login link's query/headers -> a verified identity, or a refusal

An implementation is built in (`plugin_id == ""`: the field condition and role/user/manager selectors of
app.extensions.builtins) or declared by a plugin's `[[extensions]]` and run in its component — only while
the plugin is enabled in the tenant. Admins keep named configurations (table tenant_extension_configs;
app.extensions.store); the host resolves one by configuration id or all enabled ones of a point
(app.extensions.registry), and calls it with the plugin's WASM limits (app.extensions.calls). A plugin call
that traps, breaches a limit or answers the wrong shape raises ExtensionFailed with a clear message; the
fault counts toward the plugin's crash policy once the caller's transaction has ended (app.sandbox.runner,
defer_faults; app.sandbox.faults).
"""

from app.extensions.builtins import standard_registry
from app.extensions.calls import (
    Identity,
    Refused,
    Selected,
    check_condition,
    config_values,
    select_users,
    validate_record,
    verify_auth,
)
from app.extensions.registry import (
    ADMIN_PERMISSION,
    AUTH_VERIFIER,
    CONDITION,
    POINT_HELP,
    POINT_LABELS,
    RECORD_VALIDATOR,
    USER_SELECTOR,
    Context,
    ExtensionFailed,
    ExtensionRegistry,
    Implementation,
    Resolved,
    implementation,
    implementations,
    registry_of,
    resolve,
    resolve_all,
)

__all__ = [
    "ADMIN_PERMISSION",
    "AUTH_VERIFIER",
    "CONDITION",
    "POINT_HELP",
    "POINT_LABELS",
    "RECORD_VALIDATOR",
    "USER_SELECTOR",
    "Context",
    "ExtensionFailed",
    "ExtensionRegistry",
    "Identity",
    "Implementation",
    "Refused",
    "Resolved",
    "Selected",
    "check_condition",
    "config_values",
    "implementation",
    "implementations",
    "registry_of",
    "resolve",
    "resolve_all",
    "select_users",
    "standard_registry",
    "validate_record",
    "verify_auth",
]
