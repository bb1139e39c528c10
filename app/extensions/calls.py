"""Calling extension implementations: a configuration's values as its implementation receives them, the
WASM call with the plugin's limits, and one entry per point (check a condition, select users, validate a
record, verify an auto-login link) that checks the answer's shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.i18n import N_
from app.core.models import Membership
from app.core.nesting import loads_json
from app.extensions.registry import (
    AUTH_VERIFIER,
    CONDITION,
    GUEST_JSON_MAX_BYTES,
    MAX_MESSAGE,
    RECORD_VALIDATOR,
    USER_SELECTOR,
    WASM_FUNCTION,
    Context,
    ExtensionFailed,
    NobodySelected,
    Resolved,
    registry_of,
    resolve,
)
from app.identity import directory
from app.plugins.config_values import SecretUnreadable, stored_form


def config_values(session: AsyncSession, resolved: Resolved) -> dict[str, Any]:
    """The configuration as its implementation receives it: declared defaults, stored values, secrets
    decrypted (plugin implementations get decimals as exact text)."""
    from app.extensions.store import box_key, secret_box_for

    row, impl = resolved.config, resolved.impl
    out: dict[str, Any] = {}
    for spec in impl.fields:
        if spec.default is not None:
            out[spec.key] = stored_form(spec, spec.default)
    out.update(row.plain_values or {})
    box = secret_box_for(session)
    for key, token in (row.secret_values or {}).items():
        try:
            out[key] = box.open(row.tenant_id, box_key(row), key, token)
        except SecretUnreadable as exc:
            raise ExtensionFailed(N_("%(name)s: %(exc)s", name=row.name, exc=exc)) from None
    return out


def _default(value: Any) -> Any:
    return str(value)  # decimals (exact text), dates, ids


async def _call_wasm(
    ctx_session: AsyncSession,
    tenant_id: uuid.UUID,
    resolved: Resolved,
    payload: Mapping[str, Any],
    *,
    error_is_answer: bool = False,
) -> Any:
    from app.sandbox.outcomes import GuestFailure
    from app.sandbox.runner import plugin_principal

    sandbox = registry_of(ctx_session).sandbox
    if sandbox is None:
        raise ExtensionFailed(N_("plugin code cannot run in this process (no sandbox)"))
    plugin = resolved.plugin
    assert plugin is not None
    reachable = await sandbox._reachable(ctx_session, plugin, tenant_id)
    try:
        return await sandbox.call(
            ctx_session,
            plugin,
            tenant_id,
            plugin_principal(plugin, tenant_id, reachable),
            WASM_FUNCTION[resolved.impl.point],
            resolved.impl.name,
            json.dumps(config_values(ctx_session, resolved), default=_default),
            json.dumps(payload, default=_default),
            defer_faults=True,
            error_is_answer=error_is_answer,
        )
    except GuestFailure as exc:
        raise ExtensionFailed(
            f"{resolved.config.name} ({resolved.impl.key}): {exc.message}"[:MAX_MESSAGE],
            kind=exc.kind,
            guest_message=exc.detail,
        ) from None


def _shape(resolved: Resolved, what: str, got: Any) -> ExtensionFailed:
    return ExtensionFailed(
        N_(
            "%(name)s (%(key)s) answered %(type)s %(got)s, not %(what)s",
            name=resolved.config.name,
            key=resolved.impl.key,
            type=type(got).__name__,
            got=repr(str(got)[:80]),
            what=what,
        )
    )


async def check_condition(ctx: Context, config_id: uuid.UUID | str) -> bool:
    resolved = await resolve(ctx.session, ctx.tenant_id, config_id, CONDITION)
    if resolved.plugin is None:
        builtin = registry_of(ctx.session).builtins[(CONDITION, resolved.impl.name)]
        return bool(await builtin.run(ctx, config_values(ctx.session, resolved)))
    answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
    if not isinstance(answer, bool):
        raise _shape(resolved, "true or false", answer)
    return answer


@dataclass(frozen=True)
class Selected:
    user_ids: list[uuid.UUID]
    reason: str = ""  # why nobody is left


async def active_members(
    session: AsyncSession, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """`ids` that are active members of the tenant, in the given order."""
    if not ids:
        return []
    rows = set(await directory.active_member_ids(session, tenant_id, Membership.user_id.in_(ids)))
    return [u for u in dict.fromkeys(ids) if u in rows]


async def select_users(ctx: Context, config_id: uuid.UUID | str) -> Selected:
    """Users chosen by a configured selector: only active members of the tenant are kept."""
    resolved = await resolve(ctx.session, ctx.tenant_id, config_id, USER_SELECTOR)
    if resolved.plugin is None:
        try:
            builtin = registry_of(ctx.session).builtins[(USER_SELECTOR, resolved.impl.name)]
            ids = await builtin.run(ctx, config_values(ctx.session, resolved))
        except NobodySelected as exc:
            return Selected([], str(exc))
        returned = len(ids)
    else:
        answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
        if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
            raise _shape(resolved, "a list of user ids", answer)
        returned = len(answer)
        ids = []
        for text in answer[:1000]:
            try:
                ids.append(uuid.UUID(text))
            except ValueError:
                continue  # not a user id: dropped like a non-member
    kept = await active_members(ctx.session, ctx.tenant_id, ids)
    if not kept:
        return Selected(
            [],
            f"{resolved.config.name} named no active member of this tenant"
            + (f" ({returned} id(s) returned were dropped)" if returned else ""),
        )
    return Selected(kept)


async def validate_record(ctx: Context, resolved: Resolved) -> dict[str, str]:
    """One validator's field errors for the record in `ctx` ({} when fine)."""
    if resolved.plugin is None:
        builtin = registry_of(ctx.session).builtins[(RECORD_VALIDATOR, resolved.impl.name)]
        return dict(await builtin.run(ctx, config_values(ctx.session, resolved)))
    answer = await _call_wasm(ctx.session, ctx.tenant_id, resolved, ctx.as_json())
    try:
        errors = loads_json(answer, max_bytes=GUEST_JSON_MAX_BYTES) if isinstance(answer, str) else None
    except ValueError:
        errors = None
    if not isinstance(errors, dict) or not all(isinstance(v, str) for v in errors.values()):
        raise _shape(resolved, "a JSON object of field -> message", answer)
    return {str(k)[:100]: v[:MAX_MESSAGE] for k, v in errors.items() if v}


@dataclass(frozen=True)
class Identity:
    email: str | None = None
    user_id: uuid.UUID | None = None


class Refused(Exception):
    """A verifier refused an auto-login link (the message is for the audit log, not the visitor)."""


async def verify_auth(
    session: AsyncSession, tenant_id: uuid.UUID, config_id: uuid.UUID | str, request: Mapping[str, Any]
) -> Identity:
    """Run an auth verifier on a link's request; Refused when it says no; ExtensionFailed when it breaks."""
    resolved = await resolve(session, tenant_id, config_id, AUTH_VERIFIER)
    if resolved.plugin is None:  # no built-in verifiers (yet): a verifier is always the tenant's own code
        raise ExtensionFailed(N_("no built-in auth verifier exists"))
    try:
        answer = await _call_wasm(session, tenant_id, resolved, request, error_is_answer=True)
    except ExtensionFailed as exc:
        if exc.kind == "error":  # the guest's own `err` answer: a refusal
            raise Refused(exc.guest_message[:MAX_MESSAGE] or exc.detail) from None
        raise
    try:
        data = loads_json(answer, max_bytes=GUEST_JSON_MAX_BYTES) if isinstance(answer, str) else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("email"), str) and data["email"].strip():
        return Identity(email=data["email"].strip().lower()[:254])
    if isinstance(data, dict) and isinstance(data.get("user_id"), str):
        try:
            return Identity(user_id=uuid.UUID(data["user_id"]))
        except ValueError:
            pass
    raise _shape(resolved, 'a JSON object with "email" or "user_id"', answer)
