"""The board (kanban) of a crud page whose manifest gives `board = { field, card, limit, sort }`: one
column per option of a select field (and one for rows without a value), the rows as cards.

Every read and write goes through the record service, so the board shows only rows in the reader's
data scope, and a move (`POST <page>/<id>/move`, sent by dragging a card or by the card's "Move to"
control) is an ordinary update: permission, scope, validators (an approval decides some statuses),
audit, events and the optimistic lock. A stale card is refused with a conflict message and the board
is drawn again as it is now. Cards get no drag handle or move control without the update permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from litestar.exceptions import PermissionDeniedException
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.i18n import N_
from app.manifest.labels import pick_label
from app.records.reads import Aggregate
from app.records.service import ListQuery, StaleVersion
from app.web.context import RequestContext
from app.web.records.display import STANDARD_LABELS, reference_labels, title
from app.web.records.listing import Cell, Column, columns
from app.web.records.target import Target, allowed, atomic, common, record_link_base
from app.web.render import page, redirect, wants_fragment

EMPTY = ""  # the column of rows without a value
MAX_PAGES = 1000


@dataclass
class Card:
    id: str
    version: int
    value: str
    title: str
    url: str
    fields: list[tuple[str, Cell]]  # (label, cell) below the title


@dataclass
class BoardColumn:
    value: str
    label: str
    color: str | None
    count: int
    limit: int
    cards: list[Card] = field(default_factory=list)
    page: int = 1

    @property
    def more(self) -> int:
        """Cards of this column after this page."""
        return max(0, self.count - self.page * self.limit)


def _config(target: Target) -> dict[str, Any]:
    board = target.spec.board
    if board is None:
        raise NotFound(N_("This page has no board"))
    return board


def _options(target: Target, board: Mapping[str, Any], language: str) -> list[tuple[str, str, str | None]]:
    """(value, label, colour) of each column: the field's options, coloured like the page's column."""
    spec = target.ref.spec.field(board["field"])
    colors: dict[str, str | None] = {}
    for col in columns(target.ref, target.spec):
        if col.name == spec.name:
            colors = {v: c for v, (_, c) in col.options.items()}
    return [(o.value, pick_label(o.label, language), colors.get(o.value)) for o in spec.options]


class Board:
    """One board for one request: the columns with their counts and first cards."""

    def __init__(self, ctx: RequestContext, target: Target, q: str = "") -> None:
        self.ctx, self.target = ctx, target
        self.config = _config(target)
        self.svc = ctx.records()
        self.svc.require(target.ref, "select")
        self.allowed = allowed(ctx, target)
        self.can_move = self.allowed["edit"]
        self.field = self.config["field"]
        self.q = q.strip()[:200].replace("\x00", "")
        self.language = ctx.language
        self.columns: list[BoardColumn] = []

    async def load(self, *, cards: bool = True) -> None:
        """The columns with their counts and (unless `cards` is false) their first cards."""
        ref = self.target.ref
        found = (
            await self._searched_counts()
            if self.q
            else await self.svc.aggregate(ref, Aggregate(group_by=[self.field]))
        )
        counts: dict[str, int] = {}
        for row in found:
            value = str(row[self.field] or EMPTY)
            counts[value] = counts.get(value, 0) + int(row["count"])
        options = _options(self.target, self.config, self.language)
        known = {v for v, _, _ in options}
        limit = self.config["limit"]
        self.columns = [BoardColumn(v, label, color, counts.get(v, 0), limit) for v, label, color in options]
        # Values no option names any more (an option the plugin dropped) still get a column.
        self.columns += [
            BoardColumn(v, v, None, n, limit) for v, n in sorted(counts.items()) if v and v not in known
        ]
        self.columns.append(BoardColumn(EMPTY, "", None, counts.get(EMPTY, 0), limit))
        for column in self.columns:
            if cards and column.count:
                column.cards = await self.cards(column.value)

    async def _searched_counts(self) -> list[dict[str, Any]]:
        """Counts per value of the rows matching the search (aggregate has no search: count a list)."""
        out = []
        for value in [o.value for o in self.target.ref.spec.field(self.field).options] + [EMPTY]:
            result = await self.svc.list(self.target.ref, self._query(value, 1, 1))
            out.append({self.field: value or None, "count": result.total})
        return out

    def _query(self, value: str, page_no: int, size: int) -> ListQuery:
        filters = {self.field: value} if value else {f"{self.field}__empty": "true"}
        return ListQuery(q=self.q, filters=filters, sort=self.config["sort"], page=page_no, size=size)

    async def cards(self, value: str, page_no: int = 1) -> list[Card]:
        """A column's cards, `limit` per page."""
        ref, config = self.target.ref, self.config
        result = await self.svc.list(ref, self._query(value, page_no, config["limit"]))
        specs = [
            (name, ref.spec.field(name) if ref.spec.has_field(name) else None) for name in config["card"]
        ]
        labels = await reference_labels(self.svc, self.target, [s for _, s in specs], result.rows)
        formats = []
        for name, spec in specs:
            label = spec.label if spec is not None else STANDARD_LABELS.get(name, name)
            column = Column(
                name, label, "date" if name in {"created_at", "updated_at"} else None, spec, False
            )
            link = (
                record_link_base(self.ctx, self.target, spec.entity)
                if spec is not None and spec.type == "reference"
                else None
            )
            formats.append(
                (pick_label(label, self.language), column.formatter(labels.get(name), link, self.language))
            )
        cards = []
        for row in result.rows:
            shown = [
                (label, fmt(v) if (v := row.get(name)) not in (None, "") else None)
                for (name, _), (label, fmt) in zip(specs, formats, strict=True)
            ]
            head = shown[0][1]
            cards.append(
                Card(
                    id=str(row["id"]),
                    version=int(row["version"]),
                    value=str(row.get(self.field) or EMPTY),
                    title=pick_label(head.text, self.language) if head else title(ref, row),
                    url=f"{self.target.url}/{row['id']}",
                    fields=[(label, c) for label, c in shown[1:] if c is not None],
                )
            )
        return cards

    def context(self) -> dict[str, Any]:
        return {
            **common(self.ctx, self.target, self.allowed),
            "board": self,
            "board_columns": self.columns,
            "can_move": self.can_move,
            "q": self.q,
            "board_url": self.url,
        }

    @property
    def url(self) -> str:
        return f"{self.target.url}/board" + (f"?{urlencode({'q': self.q})}" if self.q else "")


async def board_page(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    """The board; an HTMX request for one column's next page (`column`, `page`) gets only those cards."""
    params = request.query_params
    board = Board(ctx, target, str(params.get("q") or ""))
    column = params.get("column")
    if column is not None and wants_fragment(request):
        try:
            page_no = max(2, min(int(params.get("page") or 2), MAX_PAGES))
        except ValueError:
            page_no = 2
        await board.load(cards=False)
        found = next((c for c in board.columns if c.value == column), None)
        if found is None:
            raise NotFound(N_("This board has no such column"))
        found.page = page_no
        found.cards = await board.cards(found.value, page_no)
        return await page(request, ctx, "records/_board_cards.html", col=found, **board.context())
    await board.load()
    return await page(request, ctx, "records/board.html", fragment="records/_board.html", **board.context())


async def move(
    request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str
) -> Template | Redirect:
    """Set the board's field of one row (a dragged card, or its "Move to" control) through the record
    service; the answer is the board as it is now, with what happened."""
    config = _config(target)
    form = await request.form()
    value = str(form.get("value") or "")[:200]
    version_text = str(form.get("version") or "")
    q = str(form.get("q") or "")
    level, status = "success", 200
    try:
        version = int(version_text)
    except ValueError:
        version = None
    try:
        async with atomic(ctx):
            row = await ctx.records().update(target.ref, record_id, {config["field"]: value or None}, version)
        message = N_("Moved %(card)s", card=title(target.ref, row))
    except StaleVersion as exc:
        level, status = "error", 409
        message = N_(
            "%(card)s was changed by someone else meanwhile, so it was not moved. The board shows it as "
            "it is now: move it again if you still want to.",
            card=title(target.ref, exc.current),
        )
    except ValidationFailed as exc:
        level, status = "error", 422
        message = N_("Not moved: %(reason)s", reason="; ".join(str(m) for m in exc.errors.values()))
    except (Conflict, NotFound) as exc:
        level, status = "error", exc.status_code
        message = N_("Not moved: %(reason)s", reason=exc.detail)
    except PermissionDeniedException as exc:
        level, status = "error", 403
        message = N_("Not moved: %(reason)s", reason=str(exc.detail))
    if not wants_fragment(request):
        back = f"{target.url}/board" + (f"?{urlencode({'q': q})}" if q else "")
        return redirect(back, message, level)
    board = Board(ctx, target, q)
    await board.load()
    return await page(
        request,
        ctx,
        "records/_board.html",
        status_code=status,
        board_message=(level, message),
        **board.context(),
    )
