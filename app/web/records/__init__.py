"""Generated pages for the `[[ui.pages]]` of enabled plugins: crud lists, forms, detail, import/export,
lookup, dashboards and (placeholder) custom pages, plus the JSON API for plugin records.

Every page lives under `/t/<tenant>/p/<plugin_id><page.path>`; a crud page's sub-pages hang below it:

    GET  <page>                 list (HTMX: only the rows region)      POST <page>            create
    GET  <page>/new             create form
    GET  <page>/<id>            detail + audit history                 POST <page>/<id>       update
    GET  <page>/<id>/edit       edit form                              POST <page>/<id>/delete   soft delete
    GET  <page>/export.csv      CSV of the filtered list               POST <page>/<id>/restore  restore
    GET  <page>/import          CSV upload                             POST <page>/import     preview / confirm
    GET  <page>/lookup          <option>s for a reference picker       POST <page>/bulk-delete
                                                                       POST <page>/<id>/submit   approval

Modules: `routing` (the two catch-all routes and the dispatch table above), `target` (which page a URL
names, its actions and permission gates), `display` (values as people read them), `listing` (`ListPage`,
the list page's one builder), `detail`, `forms` (create/edit/conflict), `actions` (delete, restore, bulk
delete, submit), `csv_io` (export/import), `lookup`, `dashboard` (dashboards and custom pages), `api`
(JSON). The routes only require a signed-in member (`opt={"auth": True}`); the `db.<entity>.<op>`
permission is checked by the record service, which also scopes every query to the request's tenant.
"""
