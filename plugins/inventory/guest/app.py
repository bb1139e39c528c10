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
# The pages' texts in Chinese: the host passes the reader's language (current_user()["language"]).
ZH = {
    "Active items": "在用物品",
    "Below threshold": "低于阈值",
    "Open purchase orders": "未完成采购订单",
    "SKU": "SKU",
    "Name": "名称",
    "Quantity": "数量",
    "Threshold": "阈值",
    "Unit": "单位",
    "Every active item is at or above its threshold.": "所有在用物品的库存均不低于阈值。",
    "No active items.": "没有在用物品。",
    "Show all active items": "显示全部在用物品",
    "Show only items below threshold": "只显示低于阈值的物品",
    "Item": "物品",
    "Counted quantity": "盘点数量",
    "Note": "备注",
    "Why the count differs (kept in the log)": "数量不符的原因（记入日志）",
    "Apply count": "应用盘点数",
    "Adjust quantity": "调整数量",
    "A draft purchase order with one line per item below its threshold ({n}).": (
        "为每个低于阈值的物品（{n} 个）各建一行的采购订单草稿。"
    ),
    "Draft a purchase order": "起草采购订单",
    "Reorder": "补货",
    "Stocktaking": "盘点",
    "You may not apply stocktaking counts.": "你无权应用盘点数。",
    "Enter a whole number of 0 or more.": "请输入 0 或更大的整数。",
    "Choose an item.": "请选择物品。",
    "Someone changed this item since the page was loaded; the list below is fresh. "
    "Check the count and apply it again.": "页面加载后有人修改了此物品；下面的列表已刷新。请核对数量后再次应用。",
    "Nothing was saved": "未保存任何内容",
    "{sku} counted: {quantity} {unit}": "{sku} 已盘点：{quantity} {unit}",
    "No active item is below its threshold.": "没有低于阈值的在用物品。",
    "No purchase order was drafted: {error}": "未起草采购订单：{error}",
    "Purchase order {order} drafted with {lines} lines.": "已起草采购订单 {order}，共 {lines} 行。",
    "Open {order}": "打开 {order}",
    "{order} drafted": "已起草 {order}",
    "Uncategorised": "未分类",
    "Inventory dashboard": "库存仪表板",
    "Units in stock": "库存数量",
    "Stock by category": "各类别库存",
    "units": "件",
    "No active items yet.": "还没有在用物品。",
    "Go to stocktaking": "前往盘点",
}


_reader = {"zh": False}  # set at the start of every page and action (an instance serves many users)


def _read_language() -> None:
    _reader["zh"] = str(current_user().get("language") or "").startswith("zh")


def _t(message: str, **values: Any) -> str:
    """`message` in the reader's language (read by _read_language), with `values` filled in."""
    return (ZH.get(message, message) if _reader["zh"] else message).format(**values)


def _items() -> list[dict[str, Any]]:
    return db.query(ITEM, {"status": "active"}, limit=MAX_ITEMS, sort="sku")["rows"]


def _low(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if (i.get("quantity") or 0) < (i.get("threshold") or 0)]


def _stocktaking(
    show_all: bool,
    *,
    error: str | None = None,
    error_field: str = "quantity",
    values: dict[str, Any] | None = None,
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
            stat(_t("Active items"), len(items)),
            stat(_t("Below threshold"), len(low), tone="bad" if low else "good"),
        ),
        table(
            [
                ("sku", _t("SKU")),
                ("name", _t("Name")),
                ("quantity", _t("Quantity"), "right"),
                ("threshold", _t("Threshold"), "right"),
                ("unit", _t("Unit")),
            ],
            rows,
            empty=_t(
                "Every active item is at or above its threshold." if not show_all else "No active items."
            ),
        ),
        link(
            _t("Show all active items" if not show_all else "Show only items below threshold"),
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
                            _t("Item"),
                            type="select",
                            options=options,
                            required=True,
                            value=values.get("item"),
                            error=error if error_field == "item" else None,
                        ),
                        field(
                            "quantity",
                            _t("Counted quantity"),
                            type="integer",
                            required=True,
                            min=0,
                            value=values.get("quantity"),
                            error=error if error_field == "quantity" else None,
                        ),
                        field(
                            "note",
                            _t("Note"),
                            help=_t("Why the count differs (kept in the log)"),
                            value=values.get("note"),
                        ),
                    ],
                    submit=_t("Apply count"),
                ),
                title=_t("Adjust quantity"),
                permission=ADJUST,
            )
        )
    if low and all(can(p) for p in DRAFT):
        blocks.append(
            card(
                text(
                    _t("A draft purchase order with one line per item below its threshold ({n}).", n=len(low))
                ),
                form("reorder", [], submit=_t("Draft a purchase order")),
                title=_t("Reorder"),
            )
        )
    return blocks


@plugin.page("stocktaking")
def stocktaking(params: dict[str, Any]) -> dict[str, Any]:
    _read_language()
    return page(_t("Stocktaking"), *_stocktaking(params.get("show") == "all"))


@plugin.action("stocktaking", "adjust")
def adjust(data: dict[str, Any]) -> dict[str, Any]:
    _read_language()
    if not can(ADJUST):
        return result(alert(_t("You may not apply stocktaking counts."), level="error"))
    item_ref, _, version = str(data.get("item") or "").partition("@")
    try:
        quantity = int(str(data.get("quantity", "")).strip())
        if quantity < 0:
            raise ValueError
    except ValueError:
        return result(*_stocktaking(False, error=_t("Enter a whole number of 0 or more."), values=data))
    if not item_ref or not version.isdigit():
        return result(*_stocktaking(False, error=_t("Choose an item."), error_field="item", values=data))
    try:
        item = db.update(ITEM, item_ref, {"quantity": quantity}, int(version))
    except HostError as exc:
        if "changed by someone else" in exc.message:
            return result(
                alert(
                    _t(
                        "Someone changed this item since the page was loaded; the list below is fresh. "
                        "Check the count and apply it again."
                    ),
                    level="warning",
                ),
                *_stocktaking(False),
                toast={"level": "warning", "text": _t("Nothing was saved")},
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
        toast=_t(
            "{sku} counted: {quantity} {unit}",
            sku=item["sku"],
            quantity=item["quantity"],
            unit=item.get("unit") or "",
        ).strip(),
    )


@plugin.action("stocktaking", "reorder")
def reorder(data: dict[str, Any]) -> dict[str, Any]:
    """A draft purchase order and its lines (each low item up to twice its threshold), written in one
    call that keeps the order and all its lines or nothing (db.save_with_children)."""
    _read_language()
    low = _low(_items())
    if not low:
        return result(alert(_t("No active item is below its threshold."), level="info"), *_stocktaking(False))
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
            alert(_t("No purchase order was drafted: {error}", error=exc.message), level="error"),
            *_stocktaking(False),
        )
    href = f"/t/{current_user().get('tenant_slug')}/p/inventory/inventory/purchase/{order['id']}"
    return result(
        alert(
            _t(
                "Purchase order {order} drafted with {lines} lines.",
                order=order["order_no"],
                lines=order["line_count"],
            ),
            level="success",
        ),
        link(_t("Open {order}", order=order["order_no"]), href),
        *_stocktaking(False),
        toast=_t("{order} drafted", order=order["order_no"]),
    )


@plugin.page("dashboard")
def dashboard(params: dict[str, Any]) -> dict[str, Any]:
    _read_language()
    items = _items()
    by_category = db.aggregate(
        ITEM, ["category_id"], [("sum", "quantity"), ("count", None)], {"status": "active"}
    )
    names = {c["id"]: c["name"] for c in db.query("inventory_category", limit=200, sort="name")["rows"]}
    orders = db.aggregate("purchase_order", ["status"], [("count", None)])
    open_orders = sum(o["count"] for o in orders if o["status"] in ("draft", "submitted", "approved"))
    labels = [names.get(g["category_id"], _t("Uncategorised")) for g in by_category]
    return page(
        _t("Inventory dashboard"),
        columns(
            stat(_t("Active items"), len(items)),
            stat(_t("Below threshold"), len(_low(items)), tone="bad" if _low(items) else "good"),
            stat(_t("Open purchase orders"), open_orders),
        ),
        chart(
            "bar",
            labels,
            {_t("Units in stock"): [g["sum_quantity"] or 0 for g in by_category]},
            title=_t("Stock by category"),
            unit=_t("units"),
        )
        if by_category
        else text(_t("No active items yet."), muted=True),
        link(
            _t("Go to stocktaking"),
            f"/t/{current_user().get('tenant_slug')}/p/inventory/inventory/stocktaking",
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
