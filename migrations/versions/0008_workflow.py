"""workflow base module: approval processes, instances, tasks and their assignees

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "workflow_processes",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("steps", JsonB, nullable=False),
        sa.Column("on_approve", JsonB, nullable=True),
        sa.Column("on_reject", JsonB, nullable=True),
        sa.Column("auto_start", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        _tenant_fk("workflow_processes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_processes")),
        sa.UniqueConstraint("tenant_id", "plugin_id", "entity", name="uq_workflow_processes_entity"),
    )
    op.create_table(
        "workflow_instances",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("process_id", GUID(length=16), nullable=False),
        sa.Column("plugin_id", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("requester_id", GUID(length=16), nullable=True),
        sa.Column("requester_email", sa.String(254), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("snapshot", JsonB, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("finished_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        _tenant_fk("workflow_instances"),
        sa.ForeignKeyConstraint(["process_id"], ["workflow_processes.id"],
                                name=op.f("fk_workflow_instances_process_id_workflow_processes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_instances")),
    )
    op.create_index("ix_workflow_instances_record", "workflow_instances", ["tenant_id", "plugin_id", "entity", "record_id"])
    op.create_index("ix_workflow_instances_state", "workflow_instances", ["tenant_id", "state"])
    op.create_table(
        "workflow_tasks",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("instance_id", GUID(length=16), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("decided_by", GUID(length=16), nullable=True),
        sa.Column("decided_by_email", sa.String(254), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("decided_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        _tenant_fk("workflow_tasks"),
        sa.ForeignKeyConstraint(["instance_id"], ["workflow_instances.id"],
                                name=op.f("fk_workflow_tasks_instance_id_workflow_instances"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_tasks")),
    )
    op.create_index("ix_workflow_tasks_instance", "workflow_tasks", ["instance_id", "created_at"])
    op.create_table(
        "workflow_assignees",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("tenant_id", GUID(length=16), nullable=False),
        sa.Column("task_id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        _tenant_fk("workflow_assignees"),
        sa.ForeignKeyConstraint(["task_id"], ["workflow_tasks.id"], name=op.f("fk_workflow_assignees_task_id_workflow_tasks"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_workflow_assignees_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_assignees")),
        sa.UniqueConstraint("task_id", "user_id", name="uq_workflow_assignees_task_user"),
    )
    op.create_index("ix_workflow_assignees_inbox", "workflow_assignees", ["tenant_id", "user_id", "is_open"])


def downgrade() -> None:
    op.drop_index("ix_workflow_assignees_inbox", table_name="workflow_assignees")
    op.drop_table("workflow_assignees")
    op.drop_index("ix_workflow_tasks_instance", table_name="workflow_tasks")
    op.drop_table("workflow_tasks")
    op.drop_index("ix_workflow_instances_state", table_name="workflow_instances")
    op.drop_index("ix_workflow_instances_record", table_name="workflow_instances")
    op.drop_table("workflow_instances")
    op.drop_table("workflow_processes")
