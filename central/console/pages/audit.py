"""**Audit**: who changed what, with each changed field's old and new value, newest first;
filtered by actor, action, entity and time range (in the festival's time zone).

The audit log grows without end, so pages are keyset-paginated on ``(at, id)`` (the
festival's ``audit_log_festival_idx`` on ``(festival_id, at)`` serves both the filter and
the order): the next page starts below the last row shown, never at an OFFSET.
No role has an audit action in the matrix yet, so the page is for admins (`central.console.nav`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central.console.web import Festival, ViewerDep, central_state, festival_page, render
from central.readable import AuditEntry
from central.rows import fetch_all

router = APIRouter()
PAGE = "audit"
PAGE_SIZE = 50
FILTERS = ("actor", "action", "entity", "since", "until")
# Only the filters given become conditions (fixed fragments, values as parameters), so each
# query's plan is the one for its filters: a range on the index, read newest first, stopped
# after one page. ``at <=`` lets the cursor bound the index range; the row comparison
# breaks ties between entries of the same instant.
_ENTRIES = (
    "SELECT id, at, actor, action, entity_type, entity_id, old_value, new_value"
    " FROM audit_log WHERE festival_id = %(fid)s"
)
_CONDITIONS = {
    "actor": " AND actor ILIKE '%%' || %(actor)s || '%%'",
    "action": " AND action LIKE %(action)s || '%%'",
    "entity": " AND (entity_type = %(entity)s OR entity_id = %(entity)s)",
    "since": " AND at >= %(since)s",
    "until": " AND at < %(until)s",
    "before_at": " AND at <= %(before_at)s AND (at, id) < (%(before_at)s, %(before_id)s)",
}
_ORDER = " ORDER BY at DESC, id DESC LIMIT %(limit)s"


def entries_query(params: dict[str, Any]) -> str:
    """The query for the filters given (a None parameter adds no condition)."""
    given = "".join(sql for name, sql in _CONDITIONS.items() if params.get(name) is not None)
    return _ENTRIES + given + _ORDER


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An audit entry as the page shows it: the fields it changed, and both values whole."""

    at: datetime
    actor: str
    action: str
    entity: str
    changes: list[tuple[str, str, str]]
    old_json: str
    new_json: str


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def changes(old: Any, new: Any) -> list[tuple[str, str, str]]:
    """Each field whose value differs (name, old, new); for values that are not objects,
    the whole value once."""
    if isinstance(old, Mapping) or isinstance(new, Mapping):
        before = old if isinstance(old, Mapping) else {}
        after = new if isinstance(new, Mapping) else {}
        keys = [*before, *(k for k in after if k not in before)]
        return [
            (str(k), _short(before.get(k, "")), _short(after.get(k, "")))
            for k in keys
            if before.get(k) != after.get(k)
        ]
    return [] if old == new else [("", _short(old), _short(new))]


def row(entry: AuditEntry, entity: str = "") -> AuditRow:
    """An audit entry (`central.readable`) as a row."""
    return AuditRow(
        at=entry.at, actor=entry.actor, action=entry.action, entity=entity,
        changes=changes(entry.old_value, entry.new_value),
        old_json=json.dumps(entry.old_value, indent=1, ensure_ascii=False, sort_keys=True),
        new_json=json.dumps(entry.new_value, indent=1, ensure_ascii=False, sort_keys=True),
    )  # fmt: skip


def _local_time(typed: str, fest: Festival) -> datetime | None:
    """A ``datetime-local`` field's value read in the festival's time zone (None: blank or
    not a time)."""
    try:
        return datetime.fromisoformat(typed).replace(tzinfo=fest.formats.zone) if typed else None
    except ValueError:
        return None


def _cursor(typed: str) -> tuple[datetime | None, int]:
    """The ``before`` keyset cursor (``<iso time>_<id>``) of a next-page link."""
    at, _, rid = typed.rpartition("_")
    try:
        return datetime.fromisoformat(at), int(rid)
    except ValueError:
        return None, 0


@router.get("/f/{festival}/audit")
async def audit_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """A page of the festival's audit log, newest first, under the filters."""
    q = request.query_params
    f = {k: q.get(k, "").strip()[:200] for k in FILTERS}
    before_at, before_id = _cursor(q.get("before", ""))
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        params = {
            "fid": fest.id, "actor": f["actor"] or None, "action": f["action"] or None,
            "entity": f["entity"] or None, "since": _local_time(f["since"], fest),
            "until": _local_time(f["until"], fest), "before_at": before_at,
            "before_id": before_id, "limit": PAGE_SIZE + 1,
        }  # fmt: skip
        found = await fetch_all(conn, entries_query(params), params)
    shown = found[:PAGE_SIZE]
    rows = [
        row(
            AuditEntry(at=r["at"].astimezone(fest.formats.zone), actor=r["actor"],
                       action=r["action"], old_value=r["old_value"], new_value=r["new_value"]),
            f"{r['entity_type']} {r['entity_id']}",
        )
        for r in shown
    ]  # fmt: skip
    more = ""
    if len(found) > PAGE_SIZE:
        last = shown[-1]
        cursor = f"{last['at'].isoformat()}_{last['id']}"
        more = "?" + urlencode({**{k: v for k, v in f.items() if v}, "before": cursor})
    return render(
        request, who, "pages/audit.html", festival=fest, current=PAGE, fmt=fest.formats,
        entries=rows, filters=f, more=more, paged=before_at is not None,
    )  # fmt: skip
