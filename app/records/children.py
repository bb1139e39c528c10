"""Child rows written with their parent (an entity's ``children`` in the manifest): one save of a
purchase order and its lines, in one transaction, row by row through the record service — so each
child row gets the tenant, the `db.<child>.<op>` permission, the data scope, validators, formulas,
rollups, audit and events exactly as when written on its own.

A save sends, per child set, the whole list of rows the parent should have: a row with an ``id`` updates
that child (it carries the ``version`` it was read at), a row without one is added, and a live child the
user can see that the list leaves out is deleted. The list's order is the order: a set with an order
field numbers its rows 1, 2, ... Unchanged rows are not written. The parent is always updated (its
``version`` check covers the whole save, and an edit of only the lines still bumps it).

Every problem is collected before anything is kept — field errors located as ``lines[2].quantity``,
``lines[2]`` for a whole row (a refused permission, a clash) — and then nothing is saved; a child row
changed by someone else since it was read stops the save with :class:`ChildStale`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from litestar.exceptions import PermissionDeniedException

from app.core.errors import Conflict, ConflictingValues, NotFound, ValidationFailed
from app.core.i18n import N_
from app.events import PENDING_KEY
from app.manifest import CHILD_ROWS_MAX, ChildSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.values import FieldError, parse

if TYPE_CHECKING:
    from app.records.service import RecordService

ROW_KEYS = ("id", "version")  # what a nested row may carry besides the child's fields


class ChildrenRefused(ValidationFailed):
    """A save with children refused: ``errors`` located by field (``quantity``) or child row
    (``lines[2].quantity``, ``lines[2]``). 403 when a row was refused for a missing permission."""

    def __init__(self, errors: dict[str, str], *, forbidden: bool = False, state: bool = False) -> None:
        super().__init__(errors)
        if forbidden:
            self.status_code = 403
            self.title = "Forbidden"
        elif state:  # every value well-formed, refused by the data's state (taken, no such record): 409
            self.status_code = ConflictingValues.status_code
            self.title = ConflictingValues.title


class ChildStale(Conflict):
    """A child row was changed by someone else since it was read (``path`` is ``lines[2]``)."""

    def __init__(self, path: str, label: str, current: dict[str, Any], given: int) -> None:
        super().__init__(
            f"{path}: the {label} was changed by someone else (now version {current.get('version')}, "
            f"you edited version {given}); nothing was saved"
        )
        self.path = path
        self.current = current


@dataclass(frozen=True)
class ChildSet:
    """A child set with its entity as loaded in the tenant."""

    spec: ChildSpec
    ref: EntityRef


async def child_sets(svc: RecordService, parent: EntityRef) -> dict[str, ChildSet]:
    """The parent's child sets by name (an entity of the parent's own plugin each)."""
    if not parent.spec.children:
        return {}
    plugins = await runtime.enabled_for(svc.db, svc.tenant_id)
    plugin = next((p for p in plugins if p.id == parent.plugin_id), None)
    out: dict[str, ChildSet] = {}
    for spec in parent.spec.children:
        ref = plugin.entities.get(spec.entity) if plugin is not None else None
        if ref is not None:
            out[spec.name] = ChildSet(spec, ref)
    return out


def split(parent: EntityRef, body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JSON body's parent values and its child sets (the keys naming a set of `parent`)."""
    names = {c.name for c in parent.spec.children}
    return ({k: v for k, v in body.items() if k not in names}, {k: v for k, v in body.items() if k in names})


async def expand(
    svc: RecordService, parent: EntityRef, rows: Sequence[dict[str, Any]], names: Sequence[str]
) -> None:
    """Attach each named child set to `rows` (``row["lines"] = [...]``, in the set's order): the live
    child rows the user may see. Needs ``db.<child>.select``; an unknown name is a ValidationFailed."""
    sets = await child_sets(svc, parent)
    unknown = [n for n in names if n not in sets]
    if unknown:
        known = ", ".join(sets) or "none"
        raise ValidationFailed(
            {
                "expand": N_(
                    "%(label)s has no child set %(unknown)s (known: %(known)s)",
                    label=parent.spec.label,
                    unknown=repr(unknown[0]),
                    known=known,
                )
            }
        )
    ids = [r["id"] for r in rows]
    for name in dict.fromkeys(names):
        cs = sets[name]
        svc.require(cs.ref, "select")
        found: dict[Any, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            for child in await _children(svc, cs, ids):
                found[child[cs.spec.via]].append(child)
        for row in rows:
            row[name] = found[row["id"]]


async def _children(svc: RecordService, cs: ChildSet, parent_ids: Sequence[Any]) -> list[dict[str, Any]]:
    t = cs.ref.table
    order: list[Any] = []
    if cs.spec.order:
        column = t.c[cs.spec.order]
        order = [sa.case((column.is_(None), 1), else_=0), column]  # unnumbered rows last on both databases
    stmt = (
        sa.select(t)
        .where(*await svc._visible(cs.ref), t.c.deleted_at.is_(None), t.c[cs.spec.via].in_(parent_ids))
        .order_by(*order, t.c.created_at, t.c.id)
    )
    return [dict(r) for r in (await svc.db.execute(stmt)).mappings().all()]


async def rows_by_id(svc: RecordService, ref: EntityRef, ids: Sequence[Any]) -> list[dict[str, Any]]:
    """The live rows of `ref` with these ids that the user may see (ids that are not UUIDs are skipped)."""
    wanted = set()
    for rid in ids:
        try:
            wanted.add(rid if isinstance(rid, uuid.UUID) else uuid.UUID(str(rid)))
        except ValueError:
            continue
    if not wanted:
        return []
    svc.require(ref, "select")
    t = ref.table
    stmt = sa.select(t).where(*await svc._visible(ref), t.c.deleted_at.is_(None), t.c.id.in_(wanted))
    return [dict(r) for r in (await svc.db.execute(stmt)).mappings().all()]


async def save(
    svc: RecordService,
    parent: EntityRef,
    record_id: uuid.UUID | str | None,
    data: Mapping[str, Any],
    version: int | None,
    children: Mapping[str, Any],
) -> dict[str, Any]:
    """Create (`record_id` None) or update the parent and write its child sets (see the module
    docstring); returns the parent row with each written set attached, as :func:`expand` reads it."""
    sets = await child_sets(svc, parent)
    errors: dict[str, str] = {}
    for name in children:
        if name not in sets:
            errors[name] = N_(
                "%(entity)s has no child set %(name)s", entity=parent.spec.label, name=repr(name)
            )
    if errors:
        raise ChildrenRefused(errors)
    for name in children:
        svc.require(sets[name].ref, "select")  # the rows the list replaces must be readable
    pending: list[Any] = svc.db.sync_session.info.setdefault(PENDING_KEY, [])
    events_before = len(pending)
    savepoint = await svc.db.begin_nested()
    try:
        row = await _write(svc, parent, record_id, data, version, sets, children)
    except BaseException:
        await savepoint.rollback()
        del pending[events_before:]  # events of writes that were rolled back are never delivered
        raise
    await savepoint.commit()
    return row


class _Writer:
    """One save's collected errors."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.forbidden = False
        self.state: set[str] = set()  # the keys of errors that the data's state caused (409, not 422)

    def located(self, prefix: str, exc: ValidationFailed) -> None:
        for key, message in exc.errors.items():
            self.errors[f"{prefix}.{key}" if key else prefix] = message
            if isinstance(exc, ConflictingValues):
                self.state.add(f"{prefix}.{key}" if key else prefix)

    def only_state(self) -> bool:
        return bool(self.errors) and set(self.errors) <= self.state

    def refused(self, path: str, exc: PermissionDeniedException) -> None:
        self.errors[path] = str(exc.detail)
        self.forbidden = True


async def _write(
    svc: RecordService,
    parent: EntityRef,
    record_id: uuid.UUID | str | None,
    data: Mapping[str, Any],
    version: int | None,
    sets: Mapping[str, ChildSet],
    children: Mapping[str, Any],
) -> dict[str, Any]:
    w = _Writer()
    row: dict[str, Any] | None = None
    try:
        async with svc.db.begin_nested():
            if record_id is None:
                row = await svc.insert(parent, data)
            else:
                row = await svc.update(parent, record_id, data, version)
    except ValidationFailed as exc:
        w.errors.update(exc.errors)
        if isinstance(exc, ConflictingValues):
            w.state.update(exc.errors)
    parent_id = row["id"] if row is not None else None
    if parent_id is None and record_id is not None:
        parent_id = (await svc._load(parent, record_id))["id"]  # refused: still check the rows against it
    for name, rows in children.items():
        await _write_set(svc, w, sets[name], name, rows, parent_id, write=row is not None)
    if w.errors:
        raise ChildrenRefused(w.errors, forbidden=w.forbidden, state=w.only_state())
    assert row is not None
    fresh = await svc._load(parent, row["id"])  # with the rollups the lines just changed
    await expand(svc, parent, [fresh], list(children))
    return fresh


async def _write_set(
    svc: RecordService, w: _Writer, cs: ChildSet, name: str, rows: Any, parent_id: Any, *, write: bool
) -> None:
    """Plan and write one child set; with `write` False (the parent was refused) only check the rows."""
    if not isinstance(rows, list | tuple):
        w.errors[name] = N_("Send a list of rows (each an object; with its id and version to keep a row).")
        return
    if len(rows) > CHILD_ROWS_MAX:
        w.errors[name] = N_("At most %(n)s rows.", n=CHILD_ROWS_MAX)
        return
    existing = {r["id"]: r for r in await _children(svc, cs, [parent_id])} if parent_id is not None else {}
    plan: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []  # (path, values, current row)
    kept: set[Any] = set()
    for i, item in enumerate(rows):
        path = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            w.errors[path] = N_("Each row is an object of field values.")
            continue
        values = {k: v for k, v in item.items() if k not in ROW_KEYS}
        given_via = values.pop(cs.spec.via, None)
        if given_via not in (None, "") and str(given_via) != str(parent_id):
            w.errors[f"{path}.{cs.spec.via}"] = N_(
                "A row belongs to the record it is saved with; leave this out."
            )
            continue
        if cs.spec.order:
            values[cs.spec.order] = i + 1
        current = None
        if item.get("id") not in (None, ""):
            current = _existing_row(w, path, item, existing, kept, cs)
            if current is None:
                continue
        plan.append((path, values, current))
    # Deletes first (a removed row's unique value may be reused by a new one), then the list in order.
    for rid in existing:
        if rid not in kept:
            await _step(svc, w, name, partial(svc.delete, cs.ref, rid), check=None, write=write)
    for path, values, current in plan:
        if current is None:
            action = partial(svc.insert, cs.ref, {**values, cs.spec.via: parent_id})
        elif _changed(cs.ref, values, current):
            action = partial(svc.update, cs.ref, current["id"], values, current["version"])
        else:
            continue  # unchanged: not written (no version bump, audit entry or event)
        await _step(svc, w, path, action, check=(cs, values, current), write=write)


def _existing_row(
    w: _Writer,
    path: str,
    item: Mapping[str, Any],
    existing: Mapping[Any, dict[str, Any]],
    kept: set[Any],
    cs: ChildSet,
) -> dict[str, Any] | None:
    """The child row a nested row names by id, with its version checked (None: an error was noted)."""
    try:
        rid: uuid.UUID | None = uuid.UUID(str(item["id"]))
    except ValueError:
        rid = None
    current = existing.get(rid)
    if current is None:
        w.errors[f"{path}.id"] = N_(
            "No %(entity)s with this id belongs to this record.", entity=cs.ref.spec.label
        )
        return None
    if rid in kept:
        w.errors[f"{path}.id"] = N_("This row is listed twice.")
        return None
    kept.add(rid)  # named: never deleted by this save, even when the row has errors
    given = item.get("version")
    if isinstance(given, str) and given.isdigit():
        given = int(given)
    if isinstance(given, bool) or not isinstance(given, int):
        w.errors[f"{path}.version"] = N_("Send the integer version of the row you read.")
        return None
    if given != current["version"]:
        raise ChildStale(path, cs.ref.spec.label, current, given)
    return current


def _changed(ref: EntityRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether writing `values` would change the row (a value that does not parse is a change: the
    update then reports it)."""
    for key, raw in values.items():
        if not ref.spec.has_field(key):
            return True
        spec = ref.spec.field(key)
        if spec.computed:
            continue  # ignored by the service
        try:
            if parse(spec, raw) != current.get(key):
                return True
        except FieldError:
            return True
    return False


Check = tuple[ChildSet, dict[str, Any], "dict[str, Any] | None"]


async def _step(
    svc: RecordService,
    w: _Writer,
    path: str,
    action: Callable[[], Awaitable[Any]],
    *,
    check: Check | None,
    write: bool,
) -> None:
    """Run one child write in a savepoint (a refused row must not poison the next ones) and note its
    errors; when the parent was refused (`write` False) only check the row's values."""
    try:
        if write:
            async with svc.db.begin_nested():
                await action()
        elif check is not None:
            await _check(svc, *check)
    except ValidationFailed as exc:
        w.located(path, exc)
    except PermissionDeniedException as exc:
        w.refused(path, exc)
    except (Conflict, NotFound) as exc:
        w.errors[path] = exc.detail
        w.state.add(path)


async def _check(
    svc: RecordService, cs: ChildSet, values: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """The checks of a child write that need no parent row: permission and field values."""
    svc.require(cs.ref, "insert" if current is None else "update")
    try:
        await svc._check_values(
            cs.ref, values, creating=current is None, record_id=current["id"] if current else None
        )
    except ValidationFailed as exc:
        errors = {k: v for k, v in exc.errors.items() if k != cs.spec.via}  # the parent's id is missing
        if errors:
            raise (ConflictingValues if isinstance(exc, ConflictingValues) else ValidationFailed)(
                errors
            ) from None
