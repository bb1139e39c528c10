// The guest of the JS Notes example: a custom page listing notes with a form to add one.
// It implements the `guest` interface of wit/plugin.wit (world `plugin`); host functions come from
// `portal:plugin/host@0.1.0`. Every structured value crosses the boundary as JSON text. A host call
// that fails throws an error whose `payload` is the host's message; a thrown string becomes the
// call's `err`.
import { dbInsert, dbQuery, logWrite } from "portal:plugin/host@0.1.0";

function hostError(error) {
  return typeof error?.payload === "string" ? error.payload : String(error);
}

function board(pagePath, { title = "", error = "" } = {}) {
  const page = JSON.parse(dbQuery("note", "{}", JSON.stringify({ limit: 50, sort: "-created_at" })));
  return {
    version: 1,
    title: "JS Notes",
    blocks: [
      { type: "stat", label: "Notes", value: page.total },
      {
        type: "table",
        columns: [{ key: "title", label: "Title" }],
        rows: page.rows.map((row) => ({ title: row.title })),
        empty: "No notes yet.",
      },
      {
        type: "form",
        action: "add",
        submit: "Add note",
        ...(error ? { errors: [error] } : {}),
        fields: [{ name: "title", label: "Title", type: "string", required: true, value: title }],
      },
    ],
  };
}

export const guest = {
  init() {},
  onTenantCreated(tenantId) {},
  handleEvent(eventType, payload) {},
  renderPage(pagePath, params) {
    if (pagePath !== "/js-notes/board") throw `no page ${pagePath}`;
    return JSON.stringify(board(pagePath));
  },
  handleAction(pagePath, action, data) {
    if (action !== "add") throw `no action ${action}`;
    const title = String(JSON.parse(data).title ?? "").trim();
    try {
      dbInsert("note", JSON.stringify({ title }));
    } catch (error) {
      return JSON.stringify(board(pagePath, { title, error: hostError(error) }));
    }
    logWrite("info", `note added: ${title}`);
    return JSON.stringify({ ...board(pagePath), toast: { level: "success", text: "Note added" } });
  },
};
