"""PermissionSet.allows must agree with Casbin evaluating policies/model.conf.

The hot path never calls Casbin: app.access.cache compiles a user's policy lines into a
PermissionSet. The property test below builds random policy lines (exact codes, `db.<table>.*`,
`db.*`, `*`, ...), loads them into a real Casbin enforcer with the portal's model file, and checks
that both answer every request the same way, including platform-scoped permissions (which only
count from system-tenant grants; Casbin is then asked in the system tenant's domain, as
app.access.policy.explain does).
"""

from __future__ import annotations

import uuid

import casbin
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.access.permissions import BASE_PERMISSIONS, Grant, PermissionSet, is_valid_grant, pattern_matches
from app.access.policy import MODEL_PATH, role_subject, user_subject
from app.core.settings import SYSTEM_TENANT_ID

SYSTEM = SYSTEM_TENANT_ID
TENANT = "7d6a3f0e-3c57-4d0b-9a0c-5b0d9e4f1a21"
OTHER_TENANT = "a9c0b3f4-1d2e-4e5f-8a6b-7c8d9e0f1a2b"
USER = "5f1b7e4a-0c3d-4e2f-9a8b-1c2d3e4f5a6b"
OTHER_USER = "0e9d8c7b-6a5f-4e3d-8c1b-0a9f8e7d6c5b"

ROLE_T = "11111111-1111-4111-8111-111111111111"  # the user's role in TENANT
ROLE_S = "22222222-2222-4222-8222-222222222222"  # the user's role in the system tenant
ROLE_X = "33333333-3333-4333-8333-333333333333"  # the user's role in another tenant
ROLE_O = "44444444-4444-4444-8444-444444444444"  # another user's role in TENANT

# Table names chosen so that naive prefix matching would go wrong ("a" vs "ab", "users" vs "users_x").
TABLES = ["users", "users_x", "roles", "tenants", "a", "ab", "orders"]
VERBS = ["select", "insert", "update", "delete", "export"]
KINDS = ["db", "ui"]
PLUGINS = ["crm", "crmx", "hr"]

CODES = sorted(
    {f"{k}.{t}.{v}" for k in KINDS for t in TABLES for v in VERBS}
    | {f"plugin:{p}" for p in PLUGINS}
    | {d.code for d in BASE_PERMISSIONS}
)
BASE_PLATFORM = frozenset(d.code for d in BASE_PERMISSIONS if d.scope == "platform")

codes = st.sampled_from(CODES)
grant_patterns = st.one_of(
    codes,
    codes,  # exact codes twice as likely as any one kind of wildcard
    st.builds(lambda k, t: f"{k}.{t}.*", st.sampled_from(KINDS), st.sampled_from(TABLES)),
    st.builds(lambda k: f"{k}.*", st.sampled_from(KINDS)),
    st.just("*"),
    st.just("plugin:*"),
)
grant_lists = st.lists(grant_patterns, max_size=8)
# Requests: registered codes plus strings no grant was written for (still answered by both).
odd_requests = st.sampled_from(
    [
        "db.users",
        "db.",
        "db.users.",
        "ui.a",
        "plugin:",
        "plugin:crmxx",
        "db.zzz.select",
        "DB.users.select",
        "db.users.*",
        "",
        "x",
    ]
)


def casbin_enforcer(
    lines: list[tuple[str, str, str]], groupings: list[tuple[str, str, str]]
) -> casbin.Enforcer:
    enforcer = casbin.Enforcer(str(MODEL_PATH))
    for line in lines:
        enforcer.add_policy(*line)
    for g in groupings:
        enforcer.add_grouping_policy(*g)
    return enforcer


def casbin_allows(enforcer: casbin.Enforcer, tenant: str, permission: str, platform: frozenset[str]) -> bool:
    domain = SYSTEM if permission in platform else tenant
    return bool(enforcer.enforce(user_subject(USER), domain, permission))


def grants(role: str, tenant: str, patterns: list[str]) -> tuple[Grant, ...]:
    return tuple(Grant(p, role, "role", tenant) for p in patterns)


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    in_system = draw(st.booleans())  # the request's tenant is the system tenant itself
    return {
        "tenant": SYSTEM if in_system else TENANT,
        "tenant_member": (not in_system) and draw(st.booleans()),
        "system_member": draw(st.booleans()),
        "tenant_grants": draw(grant_lists),
        "system_grants": draw(grant_lists),
        # Lines that must never count for USER in TENANT: their role elsewhere, someone else's role here.
        "elsewhere_grants": draw(grant_lists),
        "other_user_grants": draw(grant_lists),
        "platform": BASE_PLATFORM | frozenset(draw(st.lists(codes, max_size=6))),
        "extra_requests": draw(st.lists(odd_requests, max_size=4)),
    }


def build(s: dict) -> tuple[PermissionSet, casbin.Enforcer]:
    tenant = s["tenant"]
    lines = [(role_subject(ROLE_T), TENANT, p) for p in s["tenant_grants"]]
    lines += [(role_subject(ROLE_S), SYSTEM, p) for p in s["system_grants"]]
    lines += [(role_subject(ROLE_X), OTHER_TENANT, p) for p in s["elsewhere_grants"]]
    lines += [(role_subject(ROLE_O), TENANT, p) for p in s["other_user_grants"]]
    groupings = [
        (user_subject(USER), role_subject(ROLE_X), OTHER_TENANT),
        (user_subject(OTHER_USER), role_subject(ROLE_O), TENANT),
    ]
    if s["tenant_member"]:
        groupings.append((user_subject(USER), role_subject(ROLE_T), TENANT))
    if s["system_member"]:
        groupings.append((user_subject(USER), role_subject(ROLE_S), SYSTEM))
    # What app.access.cache.compute_access builds: only the user's roles in this tenant and the system tenant.
    pset = PermissionSet(
        tenant_grants=grants(ROLE_T, TENANT, s["tenant_grants"])
        if s["tenant_member"] and tenant != SYSTEM
        else (),
        system_grants=grants(ROLE_S, SYSTEM, s["system_grants"]) if s["system_member"] else (),
        platform_codes=s["platform"],
    )
    return pset, casbin_enforcer(lines, groupings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_allows_agrees_with_casbin(s: dict) -> None:
    pset, enforcer = build(s)
    for permission in [*CODES, *s["extra_requests"]]:
        expected = casbin_allows(enforcer, s["tenant"], permission, s["platform"])
        assert pset.allows(permission) == expected, (permission, s)
        assert pset.allows(permission) == expected, f"memoised answer differs for {permission}"
    assert pset.effective(CODES) == sorted(
        c for c in CODES if casbin_allows(enforcer, s["tenant"], c, s["platform"])
    )


@given(st.lists(grant_patterns, min_size=1, max_size=5), st.sampled_from([*CODES, "db.", "db.users", ""]))
def test_pattern_matches_is_casbin_key_match(patterns: list[str], permission: str) -> None:
    from casbin.util.builtin_operators import key_match

    for p in patterns:
        assert is_valid_grant(p), p
        assert pattern_matches(p, permission) == key_match(permission, p)


# --- examples --------------------------------------------------------------------------------------


def pset(
    tenant: list[str] = (), system: list[str] = (), platform: frozenset[str] = BASE_PLATFORM
) -> PermissionSet:
    return PermissionSet(
        tenant_grants=grants(ROLE_T, TENANT, list(tenant)),
        system_grants=grants(ROLE_S, SYSTEM, list(system)),
        platform_codes=platform,
    )


def test_exact_grant_allows_only_that_code() -> None:
    p = pset(["db.users.select"])
    assert p.allows("db.users.select")
    assert not p.allows("db.users.insert")
    assert not p.allows("db.users_x.select")
    assert not p.allows("ui.users.select")


def test_table_wildcard_stops_at_the_dot() -> None:
    p = pset(["db.a.*"])
    assert p.allows("db.a.select") and p.allows("db.a.delete")
    assert not p.allows("db.ab.select")
    assert not p.allows("ui.a.select")


def test_kind_wildcard_and_star() -> None:
    p = pset(["ui.*"])
    assert p.allows("ui.admin.menu") and not p.allows("db.users.select")
    star = pset(["*"])
    assert star.allows("db.users.select") and star.allows("plugin:crm") and star.allows("ui.admin.explain")


def test_tenant_star_does_not_grant_platform_permissions() -> None:
    p = pset(["*"])
    assert "db.tenants.select" in BASE_PLATFORM
    assert not p.allows("db.tenants.select")
    assert not p.allows("db.tenants.insert")
    assert p.allows("db.users.select")


def test_system_grants_count_everywhere_including_platform() -> None:
    p = pset(system=["db.tenants.*"])
    assert p.allows("db.tenants.select") and p.allows("db.tenants.delete")
    assert not p.allows("db.users.select")
    assert pset(system=["*"]).allows("db.tenants.update")


def test_platform_code_granted_exactly_in_tenant_is_still_refused() -> None:
    p = pset(["db.tenants.select"])
    assert not p.allows("db.tenants.select")


def test_empty_set_refuses_everything() -> None:
    p = PermissionSet()
    assert not any(p.allows(c) for c in CODES)
    assert p.effective(CODES) == []


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("*", True),
        ("db.*", True),
        ("ui.*", True),
        ("db.users.*", True),
        ("db.users.select", True),
        ("plugin:*", True),
        ("plugin:crm", True),
        ("db.*.select", False),
        ("db.us*", False),
        ("db", False),
        ("**", False),
        ("plugin:CRM", False),
        ("", False),
    ],
)
def test_grant_syntax(pattern: str, valid: bool) -> None:
    assert is_valid_grant(pattern) is valid


def test_casbin_agrees_on_a_hand_written_case() -> None:
    """The example from the issue: Member of acme is refused until granted db.roles.select."""
    lines = [(role_subject(ROLE_S), SYSTEM, "*")]
    groupings = [(user_subject(USER), role_subject(ROLE_T), TENANT)]
    e = casbin_enforcer(lines, groupings)
    assert not casbin_allows(e, TENANT, "db.roles.select", BASE_PLATFORM)
    assert not pset([]).allows("db.roles.select")
    e.add_policy(role_subject(ROLE_T), TENANT, "db.roles.select")
    assert casbin_allows(e, TENANT, "db.roles.select", BASE_PLATFORM)
    assert pset(["db.roles.select"]).allows("db.roles.select")
    assert uuid.UUID(TENANT) and uuid.UUID(SYSTEM)
