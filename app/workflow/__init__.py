"""The `workflow` base module: approval processes for plugin entities.

A tenant admin defines one process per entity: ordered steps, each with an approver selector and an
optional entry condition (app.extensions.builtins; a step whose condition is false is skipped), and what
to set on the record when the request is approved or rejected. Submitting a record (or creating one,
when the process starts automatically) makes an instance with a snapshot of the record; each step
that applies becomes a task assigned to the users its selector names, any one of whom decides.

Decisions and rules, briefly:
- Approvers see the instance's snapshot, not the live row: a manager decides on a record outside
  their own data scope without being given that scope.
- The end action (`on_approve` / `on_reject`: set one field) is written through the RecordService as
  the deciding approver, with exactly the grant the process gives (select + update of that entity) and
  no data scope: the admin who defined the process authorised that one write. It is audited and
  versioned like any edit and raises `{plugin}.{entity}.updated`.
- A selector that finds nobody, or an end action that fails, stops the instance as `stuck` with the
  reason in `error` (shown to admins, who can retry after fixing the cause); nothing hangs silently.
- Events (outbox, delivered after commit): workflow.task.created, workflow.task.completed (payload
  business_id = record id, entity, plugin, title, outcome, comment, decided_by(_email), task_id,
  instance_id), workflow.instance.completed (outcome, decisions). Notifications go
  to the assignees of a new task and to the requester on the outcome. Every change writes an audit row.

Where: processes.py (definitions), engine.py (running instances and deciding tasks), inbox.py (reading:
inboxes, counts, JSON shapes), guard.py (decided fields locked while pending). This module re-exports.
"""

from app.workflow.engine import ACTIVE_STATES, StartApprovalOnCreate, decide, reassign, retry, start
from app.workflow.guard import ADMIN_PERMISSION
from app.workflow.inbox import (
    TaskView,
    get_task,
    instance_json,
    instances_for_record,
    open_task_count,
    open_task_count_query,
    process_for_any,
    stuck_instances,
    task_json,
    tasks_for,
)
from app.workflow.processes import describe_step, list_processes, process_for, process_json, save_process

__all__ = [
    "ACTIVE_STATES",
    "ADMIN_PERMISSION",
    "StartApprovalOnCreate",
    "TaskView",
    "decide",
    "describe_step",
    "get_task",
    "instance_json",
    "instances_for_record",
    "list_processes",
    "open_task_count",
    "open_task_count_query",
    "process_for",
    "process_for_any",
    "process_json",
    "reassign",
    "retry",
    "save_process",
    "start",
    "stuck_instances",
    "task_json",
    "tasks_for",
]
