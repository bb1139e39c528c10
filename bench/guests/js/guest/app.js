// Three host calls per page (db-query, current-user, check-permission).
import { dbQuery, currentUser, checkPermission } from "portal:plugin/host@0.1.0";

export const guest = {
  init() {},
  onTenantCreated(tenantId) {},
  handleEvent(eventType, payload) {},
  renderPage(pagePath, params) {
    const rows = JSON.parse(dbQuery("note", "{}", JSON.stringify({ limit: 10 })));
    const user = JSON.parse(currentUser());
    const allowed = checkPermission("db.note.update");
    const text = `notes=${rows.total} ${user.email} ${allowed}`;
    return JSON.stringify({ version: 1, blocks: [{ type: "text", text }] });
  },
  handleAction(pagePath, action, data) {
    throw "no actions";
  },
};
