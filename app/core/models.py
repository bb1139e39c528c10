"""Base tables. Plugin tables are created at run time by app.schema and never live here."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from advanced_alchemy.base import UUIDAuditBase, UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TenantScoped:
    """A base table whose every row belongs to one tenant and goes with it (the foreign key cascades).

    Where a base table row gets its tenant: this column, declared once here. Queries of such tables are
    limited to one tenant with app.core.tenancy (`in_tenant`, `get_in_tenant`). Tables whose rows may
    also be platform-wide (audit log, event log, guest faults) keep a nullable `tenant_id` of their own.
    """

    # sort_order: right after `id`, where each table declared it before the mixin (same DDL).
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("tenants.id", ondelete="CASCADE"), sort_order=-50
    )


class Tenant(UUIDAuditBase):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on every change of its roles, grants or memberships (per-user caches: app.access.cache).
    policy_version: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped on every change of this tenant's reporting lines, member units or role data scopes;
    # per-user data-scope caches compare it per request (see app.access.scopes).
    hierarchy_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Used on the system tenant's row only: bumped on every change of a tenant, a membership or a role
    # name anywhere; per-worker caches of each user's tenant switcher compare it per request
    # (see app.web.context).
    directory_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Bumped by every write of its saved views, shares and default views (app.records.views.ViewCache).
    views_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The IANA time zone (e.g. "Asia/Shanghai") its pages show dates and times in; "" is UTC.
    time_zone: Mapped[str] = mapped_column(String(64), default="", server_default="")


class User(UUIDAuditBase):
    __tablename__ = "users"

    # Stored lower-cased: uniqueness is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class Role(TenantScoped, UUIDAuditBase):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_roles_tenant_name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    # 'admin' and 'member' mark the default roles every tenant gets; None for roles admins create.
    builtin: Mapped[str | None] = mapped_column(String(20), nullable=True)


class Membership(TenantScoped, UUIDAuditBase):
    """A user in a tenant, with exactly one role there, optionally a manager and a unit there."""

    __tablename__ = "tenant_users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", name="uq_tenant_users_tenant_user"),
        # The recursive subordinate query walks manager -> reports by this index; user_id in it makes
        # each step an index-only scan.
        Index("ix_tenant_users_manager", "tenant_id", "manager_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("roles.id"))
    # The user id of this member's manager in the same tenant (checked by app.identity.hierarchy).
    manager_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # A department/shop the member belongs to; `unit` data scopes admit rows of this unit only.
    unit: Mapped[str | None] = mapped_column(String(100), nullable=True)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True, foreign_keys=[user_id])
    role: Mapped[Role] = relationship(lazy="joined", innerjoin=True)
    tenant: Mapped[Tenant] = relationship(lazy="joined", innerjoin=True)


class Permission(UUIDAuditBase):
    """The permission registry: every permission string with who declared it and why."""

    __tablename__ = "permissions"

    code: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    module: Mapped[str] = mapped_column(String(100))
    # 'platform' permissions count only when granted in the system tenant.
    scope: Mapped[str] = mapped_column(String(20), default="tenant")


class CasbinRule(UUIDBase):
    """Casbin policy lines, read and written through the pycasbin SQLAlchemy adapter."""

    __tablename__ = "casbin_rule"
    __table_args__ = (Index("ix_casbin_rule_lookup", "ptype", "v0", "v1"),)

    # The adapter addresses lines by the columns below; its integer id is not used here.
    ptype: Mapped[str] = mapped_column(String(16))
    v0: Mapped[str | None] = mapped_column(String(255), nullable=True)
    v1: Mapped[str | None] = mapped_column(String(255), nullable=True)
    v2: Mapped[str | None] = mapped_column(String(255), nullable=True)
    v3: Mapped[str | None] = mapped_column(String(255), nullable=True)
    v4: Mapped[str | None] = mapped_column(String(255), nullable=True)
    v5: Mapped[str | None] = mapped_column(String(255), nullable=True)

    def __str__(self) -> str:
        values = [v for v in (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5) if v is not None]
        return ", ".join([self.ptype, *values])


class WebSession(UUIDBase):
    """A browser session; the cookie carries a random token, the table only its sha256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class ApiToken(UUIDAuditBase):
    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # None: never expires (opt-in; the token page offers 90 days by default).
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # "full" acts as the user; "read" may only GET and HEAD (app.identity.tokens.SCOPES).
    scope: Mapped[str] = mapped_column(String(20), default="full", server_default="full")


class LoginAttempt(UUIDBase):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email", "email", "created_at"),
        Index("ix_login_attempts_ip", "ip", "created_at"),
    )

    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class AuditEntry(UUIDBase):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_time", "tenant_id", "created_at"),)

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    actor_email: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(100))
    target_id: Mapped[str] = mapped_column(String(100), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonB, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonB, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class PluginPackage(UUIDAuditBase):
    """A plugin known to the platform (uploaded once, shared by all tenants)."""

    __tablename__ = "plugins"

    plugin_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    manifest_toml: Mapped[str] = mapped_column(Text)
    package_sha256: Mapped[str] = mapped_column(String(64))
    has_wasm: Mapped[bool] = mapped_column(Boolean, default=False)
    # The compiled-component cache is keyed by this (and the wasmtime version).
    wasm_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # uploaded | installed | error (platform-wide); per-tenant state lives in PluginTenant.
    status: Mapped[str] = mapped_column(String(20), default="uploaded")
    error_message: Mapped[str] = mapped_column(Text, default="")
    bundled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Platform-wide: a tenant created later gets this plugin enabled (and its on-tenant-created called).
    enable_for_new_tenants: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Soft uninstall keeps the row (and the tables); re-installing clears it.
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # The package's files: path inside the package -> sha256 of a StoredBlob (every host reads them there).
    package_files: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict, server_default=text("'{}'"))


class StoredBlob(UUIDBase):
    """A file by its sha256, shared by every host (app.core.blobs): bytes in `content`, or in a bucket."""

    __tablename__ = "stored_blobs"

    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    location: Mapped[str] = mapped_column(String(16), default="database", server_default="database")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class PluginBackup(UUIDBase):
    """A backup of a plugin's data taken before it was lost (purge, destructive upgrade): a zip blob."""

    __tablename__ = "data_backups"

    plugin_id: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(20))  # purge | upgrade
    file_name: Mapped[str] = mapped_column(String(200))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class PluginTenant(TenantScoped, UUIDAuditBase):
    __tablename__ = "tenant_plugins"
    __table_args__ = (UniqueConstraint("tenant_id", "plugin_id", name="uq_tenant_plugins"),)

    plugin_id: Mapped[str] = mapped_column(String(64), index=True)
    # enabled | disabled | error
    status: Mapped[str] = mapped_column(String(20), default="enabled")
    error_message: Mapped[str] = mapped_column(Text, default="")


class PluginSchemaVersion(UUIDAuditBase):
    __tablename__ = "entity_schema_versions"
    __table_args__ = (UniqueConstraint("plugin_id", "entity_name", name="uq_entity_schema_versions"),)

    plugin_id: Mapped[str] = mapped_column(String(64))
    entity_name: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    plugin_version: Mapped[str] = mapped_column(String(40))


class PluginFault(UUIDBase):
    """A failed guest call: traps and limit breaches count toward the crash policy; error results don't."""

    __tablename__ = "guest_faults"
    __table_args__ = (Index("ix_guest_faults_plugin_tenant_time", "plugin_id", "tenant_id", "created_at"),)

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    plugin_id: Mapped[str] = mapped_column(String(64))
    call: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    counts_as_trap: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class PluginConfig(TenantScoped, UUIDAuditBase):
    """A named configuration of a plugin in a tenant: several per plugin, at most one active
    (the database enforces it with a partial unique index). Secrets live apart from the plain values,
    encrypted (app.plugins.config_values)."""

    __tablename__ = "tenant_plugin_configs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "plugin_id", "name", name="uq_tenant_plugin_configs_name"),
        Index(
            "uq_tenant_plugin_configs_active",
            "tenant_id",
            "plugin_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    plugin_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    # key -> JSON value (decimals as strings); keys left out fall back to the manifest's defaults
    plain_values: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    # key -> encrypted token (never the plaintext)
    secret_values: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for edits


class ExtensionConfig(TenantScoped, UUIDAuditBase):
    """A named configuration of an extension point implementation in a tenant (app.extensions): built-in
    (plugin_id "") or a plugin's WASM extension. Several per implementation; resolved by id or by point."""

    __tablename__ = "tenant_extension_configs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_tenant_extension_configs_name"),
        Index("ix_tenant_extension_configs_point", "tenant_id", "point"),
    )

    point: Mapped[str] = mapped_column(
        String(32)
    )  # condition | user-selector | record-validator | auth-verifier
    plugin_id: Mapped[str] = mapped_column(String(64), default="")  # "" for a built-in implementation
    implementation: Mapped[str] = mapped_column(
        String(64)
    )  # the extension's name (built-in or [[extensions]])
    name: Mapped[str] = mapped_column(String(100))
    plain_values: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    secret_values: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)  # key -> encrypted token
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for edits


class RoleScope(TenantScoped, UUIDAuditBase):
    """A role's data scope for one entity (or, with entity '*', its default for every entity)."""

    __tablename__ = "role_scopes"
    __table_args__ = (UniqueConstraint("role_id", "entity", name="uq_role_scopes_role_entity"),)

    # TenantScoped's column, indexed on its own here (scope lookups by tenant).
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True, sort_order=-50
    )
    role_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("roles.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(64))
    # all | subtree | own (app.access.scopes.SCOPE_KINDS)
    scope: Mapped[str] = mapped_column(String(20))
    # Narrow further to rows whose unit field equals the member's unit.
    by_unit: Mapped[bool] = mapped_column(Boolean, default=False)


class EventRecord(UUIDBase):
    """The event log and outbox: written in the transaction that raised the event, delivered after it
    commits by whichever worker claims it. Status: pending → running → delivered | failed; `none` when
    no plugin subscribed (nothing to deliver); `dropped` when raised by a handler chain too deep."""

    __tablename__ = "event_log"
    __table_args__ = (
        Index("ix_event_log_status_time", "status", "created_at"),
        Index("ix_event_log_tenant_time", "tenant_id", "created_at"),
    )

    type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))  # 'base' or the publishing plugin's id
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    actor: Mapped[str] = mapped_column(String(254), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB)
    depth: Mapped[int] = mapped_column(
        Integer, default=0
    )  # 0, or 1 + that of the event whose handler raised it
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class EventDelivery(UUIDBase):
    """One subscriber's handling of one event. Unique per (event, plugin, handler): a delivery is
    recorded in the transaction of the guest's own writes, so it happens once or not at all."""

    __tablename__ = "event_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "plugin_id", "handler", name="uq_event_deliveries"),)

    event_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("event_log.id", ondelete="CASCADE"), index=True
    )
    plugin_id: Mapped[str] = mapped_column(String(64))
    handler: Mapped[str] = mapped_column(String(40))  # handle-event | on-tenant-created
    status: Mapped[str] = mapped_column(String(20))  # ok | failed
    message: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class Message(TenantScoped, UUIDBase):
    """An in-app notification for one user in one tenant (the `message` base module, app.messages)."""

    __tablename__ = "messages"
    __table_args__ = (
        # The header bell counts unread rows per page view: this index answers it alone.
        # (created_at last: the unread part of the inbox is read in order from it too)
        Index("ix_messages_inbox_unread", "tenant_id", "user_id", "read_at", "created_at"),
        Index("ix_messages_inbox_time", "tenant_id", "user_id", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500), nullable=True)  # relative URL only
    source: Mapped[str] = mapped_column(String(64))  # a base module ("workflow") or a plugin id
    sender_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)  # the acting user, if any
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class MessagePreference(UUIDBase):
    """Per-user message settings; no row means the defaults (email on when SMTP is configured)."""

    __tablename__ = "message_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    email: Mapped[bool] = mapped_column(Boolean, default=True)


class WorkflowProcess(TenantScoped, UUIDAuditBase):
    """An approval process a tenant admin defined for one plugin entity (the `workflow` base module).

    `steps` is a list of {"name", "selector": {"kind", "config"}, "condition": {"kind", "config"} | null};
    `on_approve` / `on_reject` are {"field", "value"} or null (app.workflow.processes checks them)."""

    __tablename__ = "workflow_processes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "plugin_id", "entity", name="uq_workflow_processes_entity"),
    )

    plugin_id: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonB)
    on_approve: Mapped[dict[str, Any] | None] = mapped_column(JsonB, nullable=True)
    on_reject: Mapped[dict[str, Any] | None] = mapped_column(JsonB, nullable=True)
    auto_start: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class WorkflowInstance(TenantScoped, UUIDBase):
    """One run of a process for one record. State: running → approved | rejected, or stuck (with
    `error`) when a step finds no approver or the end action fails."""

    __tablename__ = "workflow_instances"
    __table_args__ = (
        Index("ix_workflow_instances_record", "tenant_id", "plugin_id", "entity", "record_id"),
        Index("ix_workflow_instances_state", "tenant_id", "state"),
    )

    process_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("workflow_processes.id", ondelete="CASCADE")
    )
    plugin_id: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(36))
    requester_id: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    requester_email: Mapped[str] = mapped_column(String(254), default="")
    state: Mapped[str] = mapped_column(String(20), default="running")
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    # The record as submitted: approvers see it even when it lies outside their data scope.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonB)
    title: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class WorkflowTask(TenantScoped, UUIDBase):
    """One approval step waiting on (or decided by) one of its assignees. State: open → approved |
    rejected | cancelled."""

    __tablename__ = "workflow_tasks"
    __table_args__ = (Index("ix_workflow_tasks_instance", "instance_id", "created_at"),)

    instance_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("workflow_instances.id", ondelete="CASCADE")
    )
    step_index: Mapped[int] = mapped_column(Integer)
    step_name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="open")
    decided_by: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    decided_by_email: Mapped[str] = mapped_column(String(254), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class WorkflowAssignee(TenantScoped, UUIDBase):
    """Who may decide a task (any one of them). `is_open` mirrors the task's state so the header
    badge is one COUNT on ix_workflow_assignees_inbox."""

    __tablename__ = "workflow_assignees"
    __table_args__ = (
        UniqueConstraint("task_id", "user_id", name="uq_workflow_assignees_task_user"),
        Index("ix_workflow_assignees_inbox", "tenant_id", "user_id", "is_open"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("workflow_tasks.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)


class Invitation(TenantScoped, UUIDBase):
    """An offer to join a tenant with a role, made by a tenant admin to an email address; the holder of
    that account accepts or declines it (app.identity.invitations). State: pending → accepted |
    declined | revoked | expired (a pending one past `expires_at` counts as expired when read)."""

    __tablename__ = "invitations"
    __table_args__ = (
        # At most one open invitation per tenant and email (expired ones are closed before a new one).
        Index(
            "uq_invitations_pending",
            "tenant_id",
            "email",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_invitations_email", "email", "state"),
    )

    email: Mapped[str] = mapped_column(String(254))  # lower-cased, like users.email
    # The role, manager and unit the admin chose, applied on acceptance.
    role_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("roles.id", ondelete="CASCADE"))
    manager_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    unit: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    invited_by: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    invited_by_email: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class SavedView(TenantScoped, UUIDAuditBase):
    """A named state of one generated list page (its search, filters, sort, columns and page size, as
    the page's query parameters), kept by its owner and optionally shared with roles of the tenant
    (app.records.views)."""

    __tablename__ = "saved_views"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "owner_id", "plugin_id", "page_path", "name", name="uq_saved_views_name"
        ),
        Index("ix_saved_views_page", "tenant_id", "plugin_id", "page_path"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    # The list page: its plugin and its path in the manifest (`/inventory/items`).
    plugin_id: Mapped[str] = mapped_column(String(64))
    page_path: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    # Query parameter -> value or values (only the page's own: q, sort, size, cols, its filters).
    params: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)


class SavedViewShare(TenantScoped, UUIDBase):
    """A saved view shown to the members of one role (a deleted role takes its shares with it)."""

    __tablename__ = "saved_view_shares"
    __table_args__ = (UniqueConstraint("view_id", "role_id", name="uq_saved_view_shares"),)

    view_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("saved_views.id", ondelete="CASCADE"))
    role_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("roles.id", ondelete="CASCADE"), index=True)


class SavedViewDefault(TenantScoped, UUIDBase):
    """The view a user's list page opens with when its URL has no query parameters."""

    __tablename__ = "saved_view_defaults"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "plugin_id", "page_path", name="uq_saved_view_defaults"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"))
    plugin_id: Mapped[str] = mapped_column(String(64))
    page_path: Mapped[str] = mapped_column(String(200))
    view_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("saved_views.id", ondelete="CASCADE"), index=True
    )
