"""Inventory's page code: the stocktaking page (items below their threshold, adjust a quantity with
the version check, publish inventory.stock.low), the dashboard (stat cards and stock by category) and
a default category for every new tenant. Built into plugin.wasm by `portal plugin build plugins/inventory`."""

from __future__ import annotations

from typing import Any

from portal_guest import (
    HostError,
    Plugin,
    alert,
    can,
    card,
    chart,
    columns,
    current_user,
    db,
    events,
    field,
    form,
    link,
    log,
    page,
    result,
    stat,
    table,
    text,
)

plugin = Plugin()
ITEM = "inventory_item"
ADJUST = "ui.inventory.stocktaking-adjust"
MAX_ITEMS = 200


def _items() -> list[dict[str, Any]]:
    return db.query(ITEM, {"status": "active"}, limit=MAX_ITEMS, sort="sku")["rows"]


def _low(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if (i.get("quantity") or 0) < (i.get("threshold") or 0)]


def _stocktaking(show_all: bool, *, error: str | None = None, values: dict[str, Any] | None = None) -> list[Any]:
    items = _items()
    low = _low(items)
    shown = items if show_all else low
    rows = [{"sku": i["sku"], "name": i["name"], "quantity": i["quantity"], "threshold": i["threshold"],
             "unit": i.get("unit") or ""} for i in shown]
    values = values or {}
    blocks: list[Any] = [
        columns(stat("Active items", len(items)),
                stat("Below threshold", len(low), tone="bad" if low else "good")),
        table([("sku", "SKU"), ("name", "Name"), ("quantity", "Quantity", "right"), ("threshold", "Threshold", "right"),
               ("unit", "Unit")], rows,
              empty="Every active item is at or above its threshold." if not show_all else "No active items."),
        link("Show all active items" if not show_all else "Show only items below threshold",
             "?show=all" if not show_all else "?show=low"),
    ]
    if items:
        options = [{"value": f"{i['id']}@{i['version']}", "label": f"{i['sku']} — {i['name']} ({i['quantity']})"}
                   for i in (low or items)]
        blocks.append(card(form("adjust", [
            field("item", "Item", type="select", options=options, required=True, value=values.get("item"),
                  error=error if error and "item" in error.lower() else None),
            field("quantity", "Counted quantity", type="integer", required=True, min=0, value=values.get("quantity"),
                  error=error if error and "item" not in error.lower() else None),
            field("note", "Note", help="Why the count differs (kept in the log)", value=values.get("note")),
        ], submit="Apply count"), title="Adjust quantity", permission=ADJUST))
    return blocks


@plugin.page("stocktaking")
def stocktaking(params: dict[str, Any]) -> dict[str, Any]:
    return page("Stocktaking", *_stocktaking(params.get("show") == "all"))


@plugin.action("stocktaking", "adjust")
def adjust(data: dict[str, Any]) -> dict[str, Any]:
    if not can(ADJUST):
        return result(alert("You may not apply stocktaking counts.", level="error"))
    item_ref, _, version = str(data.get("item") or "").partition("@")
    try:
        quantity = int(str(data.get("quantity", "")).strip())
        if quantity < 0:
            raise ValueError
    except ValueError:
        return result(*_stocktaking(False, error="Enter a whole number of 0 or more.", values=data))
    if not item_ref or not version.isdigit():
        return result(*_stocktaking(False, error="Choose an item.", values=data))
    try:
        item = db.update(ITEM, item_ref, {"quantity": quantity}, int(version))
    except HostError as exc:
        if "changed by someone else" in exc.message:
            return result(alert("Someone changed this item since the page was loaded; the list below is fresh. "
                                "Check the count and apply it again.", level="warning"),
                          *_stocktaking(False), toast={"level": "warning", "text": "Nothing was saved"})
        return result(*_stocktaking(False, error=exc.message, values=data))
    if data.get("note"):
        log.info(f"stocktaking {item['sku']}: {data['note']}")
    if item["quantity"] < (item.get("threshold") or 0):
        events.publish("inventory.stock.low", {"item_id": item["id"], "sku": item["sku"],
                                               "quantity": item["quantity"], "threshold": item["threshold"]})
    return result(*_stocktaking(False), toast=f"{item['sku']} counted: {item['quantity']} {item.get('unit') or ''}".strip())


@plugin.page("dashboard")
def dashboard(params: dict[str, Any]) -> dict[str, Any]:
    items = _items()
    by_category = db.aggregate(ITEM, ["category_id"], [("sum", "quantity"), ("count", None)],
                               {"status": "active"})
    names = {c["id"]: c["name"] for c in db.query("inventory_category", limit=200, sort="name")["rows"]}
    orders = db.aggregate("purchase_order", ["status"], [("count", None)])
    open_orders = sum(o["count"] for o in orders if o["status"] in ("draft", "submitted", "approved"))
    labels = [names.get(g["category_id"], "Uncategorised") for g in by_category]
    return page(
        "Inventory dashboard",
        columns(stat("Active items", len(items)),
                stat("Below threshold", len(_low(items)), tone="bad" if _low(items) else "good"),
                stat("Open purchase orders", open_orders)),
        chart("bar", labels, {"Units in stock": [g["sum_quantity"] or 0 for g in by_category]},
              title="Stock by category", unit="units") if by_category else text("No active items yet.", muted=True),
        link("Go to stocktaking", f"/t/{current_user().get('tenant_slug')}/p/inventory/inventory/stocktaking"),
    )


@plugin.on_tenant_created
def create_default_category(tenant_id: str) -> None:
    if not db.query("inventory_category", {"code": "GENERAL"}, limit=1)["rows"]:
        db.insert("inventory_category", {"name": "General", "code": "GENERAL",
                                         "description": "Created when the tenant was created"})


Guest = plugin.guest_class()
