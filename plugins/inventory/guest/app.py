"""Inventory's page code: the stocktaking page (items below their threshold, adjust a quantity with
the version check, publish inventory.stock.low), the dashboard (stat cards and stock by category), a
default category for every new tenant, and the reaction to purchase-order approvals (workflow events:
each decision is noted on the order, the final outcome sets its status). Built into plugin.wasm by
`portal plugin build plugins/inventory`."""

from __future__ import annotations

from collections.abc import Callable
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
    now,
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
ORDER = "purchase_order"
DRAFT = ("db.purchase_order.insert", "db.purchase_order_line.insert")
OUTCOMES = ("approved", "rejected")
MAX_NOTE_COMMENT = 500


def _items() -> list[dict[str, Any]]:
    return db.query(ITEM, {"status": "active"}, limit=MAX_ITEMS, sort="sku")["rows"]


def _low(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if (i.get("quantity") or 0) < (i.get("threshold") or 0)]


def _stocktaking(
    show_all: bool, *, error: str | None = None, values: dict[str, Any] | None = None
) -> list[Any]:
    items = _items()
    low = _low(items)
    shown = items if show_all else low
    rows = [
        {
            "sku": i["sku"],
            "name": i["name"],
            "quantity": i["quantity"],
            "threshold": i["threshold"],
            "unit": i.get("unit") or "",
        }
        for i in shown
    ]
    values = values or {}
    blocks: list[Any] = [
        columns(
            stat("Active items", len(items)), stat("Below threshold", len(low), tone="bad" if low else "good")
        ),
        table(
            [
                ("sku", "SKU"),
                ("name", "Name"),
                ("quantity", "Quantity", "right"),
                ("threshold", "Threshold", "right"),
                ("unit", "Unit"),
            ],
            rows,
            empty="Every active item is at or above its threshold." if not show_all else "No active items.",
        ),
        link(
            "Show all active items" if not show_all else "Show only items below threshold",
            "?show=all" if not show_all else "?show=low",
        ),
    ]
    if items:
        options = [
            {"value": f"{i['id']}@{i['version']}", "label": f"{i['sku']} — {i['name']} ({i['quantity']})"}
            for i in (low or items)
        ]
        blocks.append(
            card(
                form(
                    "adjust",
                    [
                        field(
                            "item",
                            "Item",
                            type="select",
                            options=options,
                            required=True,
                            value=values.get("item"),
                            error=error if error and "item" in error.lower() else None,
                        ),
                        field(
                            "quantity",
                            "Counted quantity",
                            type="integer",
                            required=True,
                            min=0,
                            value=values.get("quantity"),
                            error=error if error and "item" not in error.lower() else None,
                        ),
                        field(
                            "note",
                            "Note",
                            help="Why the count differs (kept in the log)",
                            value=values.get("note"),
                        ),
                    ],
                    submit="Apply count",
                ),
                title="Adjust quantity",
                permission=ADJUST,
            )
        )
    if low and all(can(p) for p in DRAFT):
        blocks.append(
            card(
                text(f"A draft purchase order with one line per item below its threshold ({len(low)})."),
                form("reorder", [], submit="Draft a purchase order"),
                title="Reorder",
            )
        )
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
            return result(
                alert(
                    "Someone changed this item since the page was loaded; the list below is fresh. "
                    "Check the count and apply it again.",
                    level="warning",
                ),
                *_stocktaking(False),
                toast={"level": "warning", "text": "Nothing was saved"},
            )
        return result(*_stocktaking(False, error=exc.message, values=data))
    if data.get("note"):
        log.info(f"stocktaking {item['sku']}: {data['note']}")
    if item["quantity"] < (item.get("threshold") or 0):
        events.publish(
            "inventory.stock.low",
            {
                "item_id": item["id"],
                "sku": item["sku"],
                "quantity": item["quantity"],
                "threshold": item["threshold"],
            },
        )
    return result(
        *_stocktaking(False),
        toast=f"{item['sku']} counted: {item['quantity']} {item.get('unit') or ''}".strip(),
    )


@plugin.action("stocktaking", "reorder")
def reorder(data: dict[str, Any]) -> dict[str, Any]:
    """A draft purchase order and its lines (each low item up to twice its threshold), written in one
    call that keeps the order and all its lines or nothing (db.save_with_children)."""
    low = _low(_items())
    if not low:
        return result(alert("No active item is below its threshold.", level="info"), *_stocktaking(False))
    lines = [
        {
            "item_id": i["id"],
            "quantity": max(2 * (i.get("threshold") or 0) - (i.get("quantity") or 0), 1),
            "unit_price": i.get("unit_price"),
        }
        for i in low
    ]
    try:
        order = db.save_with_children(
            ORDER,
            {"order_no": f"RO-{now():%Y%m%d-%H%M%S}", "notes": "Drafted from stocktaking"},
            {"lines": lines},
        )
    except HostError as exc:
        return result(
            alert(f"No purchase order was drafted: {exc.message}", level="error"), *_stocktaking(False)
        )
    href = f"/t/{current_user().get('tenant_slug')}/p/inventory/inventory/purchase/{order['id']}"
    return result(
        alert(
            f"Purchase order {order['order_no']} drafted with {order['line_count']} lines.", level="success"
        ),
        link(f"Open {order['order_no']}", href),
        *_stocktaking(False),
        toast=f"{order['order_no']} drafted",
    )


@plugin.page("dashboard")
def dashboard(params: dict[str, Any]) -> dict[str, Any]:
    items = _items()
    by_category = db.aggregate(
        ITEM, ["category_id"], [("sum", "quantity"), ("count", None)], {"status": "active"}
    )
    names = {c["id"]: c["name"] for c in db.query("inventory_category", limit=200, sort="name")["rows"]}
    orders = db.aggregate("purchase_order", ["status"], [("count", None)])
    open_orders = sum(o["count"] for o in orders if o["status"] in ("draft", "submitted", "approved"))
    labels = [names.get(g["category_id"], "Uncategorised") for g in by_category]
    return page(
        "Inventory dashboard",
        columns(
            stat("Active items", len(items)),
            stat("Below threshold", len(_low(items)), tone="bad" if _low(items) else "good"),
            stat("Open purchase orders", open_orders),
        ),
        chart(
            "bar",
            labels,
            {"Units in stock": [g["sum_quantity"] or 0 for g in by_category]},
            title="Stock by category",
            unit="units",
        )
        if by_category
        else text("No active items yet.", muted=True),
        link(
            "Go to stocktaking", f"/t/{current_user().get('tenant_slug')}/p/inventory/inventory/stocktaking"
        ),
    )


@plugin.on_tenant_created
def create_default_category(tenant_id: str) -> None:
    if not db.query("inventory_category", {"code": "GENERAL"}, limit=1)["rows"]:
        db.insert(
            "inventory_category",
            {"name": "General", "code": "GENERAL", "description": "Created when the tenant was created"},
        )


# --- purchase-order approvals (workflow events) ------------------------------------------------------
#
# The tenant's approval process for purchase_order (steps, approvers, conditions) lives in the workflow
# module; this plugin only reacts. workflow.task.created: a draft order becomes submitted.
# workflow.task.completed: note the decision (who, which step, the
# comment) on the order; a rejection ends the approval, so it also sets status = rejected.
# workflow.instance.completed: the final outcome sets the status (approved only here: in a multi-step
# process an approved step is not yet an approved order). An instance that finished without any
# decision (every step's condition was false) is approved and noted as such.


def _ours(payload: dict[str, Any]) -> bool:
    """Only approvals of this plugin's purchase orders: the events cover every entity of the tenant."""
    me = str(current_user().get("plugin") or "inventory")
    return payload.get("entity") == ORDER and payload.get("plugin") == me and bool(payload.get("business_id"))


def _find_order(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The live order (not deleted) the approval is about, or None."""
    return db.get(ORDER, str(payload["business_id"]))


def _update_order(
    payload: dict[str, Any], change: Callable[[dict[str, Any]], dict[str, Any]], why: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Apply `change(order)` with the version check; on a conflict re-read and try once more.

    Returns (before, after), or None when there was nothing to do or the order is gone (logged: an
    order deleted while its approval ran is not the plugin's failure)."""
    for attempt in (1, 2):
        order = _find_order(payload)
        if order is None:
            log.warning(
                f"{why}: purchase order {payload['business_id']} ({payload.get('title') or '?'}) "
                "no longer exists; nothing updated"
            )
            return None
        values = change(order)
        if not values:
            return None
        try:
            return order, db.update(ORDER, order["id"], values, order["version"])
        except HostError as exc:
            if "changed by someone else" in exc.message and attempt == 1:
                log.info(f"{why}: {order['order_no']} changed meanwhile; reading it again")
                continue
            if "changed by someone else" in exc.message or exc.message.startswith("No "):
                log.error(f"{why}: could not update {order['order_no']}: {exc.message}")
                return None
            raise
    return None


def _with_line(notes: Any, line: str) -> str:
    return f"{str(notes).rstrip()}\n{line}" if notes and str(notes).strip() else line


def _order_event(kind: str, order: dict[str, Any], payload: dict[str, Any]) -> None:
    events.publish(
        f"inventory.purchase_order.{kind}",
        {
            "order_id": order["id"],
            "order_no": order["order_no"],
            "total_amount": order.get("total_amount"),
            "supplier_id": order.get("supplier_id"),
            "instance_id": payload.get("instance_id"),
            "decided_by": payload.get("decided_by_email"),
        },
    )


@plugin.on_event("workflow.task.created")
def approval_requested(payload: dict[str, Any]) -> None:
    """An approver was asked: a draft order is now submitted (visible in the list while it waits)."""
    if not _ours(payload):
        return

    def change(order: dict[str, Any]) -> dict[str, Any]:
        return {"status": "submitted"} if order.get("status") == "draft" else {}

    done = _update_order(payload, change, f"approval task {payload.get('task_id')}")
    if done is not None:
        _order_event("submitted", done[1], payload)


@plugin.on_event("workflow.task.completed")
def approval_decided(payload: dict[str, Any]) -> None:
    if not _ours(payload):
        return
    outcome = payload.get("outcome")
    if outcome not in OUTCOMES:
        log.warning(f"approval task {payload.get('task_id')}: unknown outcome {outcome!r}; ignored")
        return
    comment = " ".join(str(payload.get("comment") or "").split())[:MAX_NOTE_COMMENT]
    line = (
        f"Approval: {outcome} by {payload.get('decided_by_email') or 'an approver'}"
        f" (step {payload.get('step') or '?'})" + (f": {comment}" if comment else "")
    )

    def change(order: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {"notes": _with_line(order.get("notes"), line)}
        # Any rejection ends the approval; a received order stays received (the goods are in).
        if outcome == "rejected" and order.get("status") not in ("rejected", "received"):
            values["status"] = "rejected"
        return values

    done = _update_order(payload, change, f"approval task {payload.get('task_id')}")
    if done is None:
        return
    before, after = done
    log.info(f"{after['order_no']}: {line}")
    if after.get("status") == "rejected" and before.get("status") != "rejected":
        _order_event("rejected", after, payload)


@plugin.on_event("workflow.instance.completed")
def approval_finished(payload: dict[str, Any]) -> None:
    if not _ours(payload):
        return
    outcome = payload.get("outcome")
    if outcome not in OUTCOMES:
        log.warning(f"approval {payload.get('instance_id')}: unknown outcome {outcome!r}; ignored")
        return
    undecided = outcome == "approved" and not payload.get("decisions")

    def change(order: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        # A received order stays received: the goods are in, whatever an old approval says.
        if order.get("status") not in (outcome, "received"):
            values["status"] = outcome
        if undecided:
            values["notes"] = _with_line(
                order.get("notes"), "Approval: approved without a decision (no approval step applied)"
            )
        return values

    done = _update_order(payload, change, f"approval {payload.get('instance_id')}")
    if done is None:
        return
    before, after = done
    if after.get("status") != before.get("status"):
        log.info(f"{after['order_no']}: approval finished, status {before.get('status')} → {after['status']}")
        _order_event(outcome, after, payload)


Guest = plugin.guest_class()
