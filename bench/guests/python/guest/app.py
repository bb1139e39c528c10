"""Three host calls per page (db-query, current-user, check-permission), on the raw bindings."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host


class Guest(exports.Guest):
    def init(self) -> None:
        return None

    def on_tenant_created(self, tenant_id: str) -> None:
        return None

    def handle_event(self, event_type: str, payload: str) -> None:
        return None

    def render_page(self, page_path: str, params: str) -> str:
        rows = json.loads(host.db_query("note", "{}", json.dumps({"limit": 10})))
        user = json.loads(host.current_user())
        allowed = host.check_permission("db.note.update")
        text = f"notes={rows['total']} {user['email']} {allowed}"
        return json.dumps({"version": 1, "blocks": [{"type": "text", "text": text}]})

    def handle_action(self, page_path: str, action: str, data: str) -> str:
        raise Err("no actions")
