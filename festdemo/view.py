"""What the demo shows: a live view while it runs and the report at the end.

Device figures come from each device's SQLite, opened read-only (the daemon stays its only
writer); central's from PostgreSQL. The report's last check compares, device by device, the
journal's (device_seq, event_id) pairs with central's `device_event` rows.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from rich.console import Group
from rich.table import Table
from rich.text import Text

from central.ops import ConflictFilter, list_conflicts
from sync.facts import GATE_KINDS, admits
from sync.vocab import EventKind


@dataclass
class DeviceView:
    """One device as the view needs it (the runner's daemons and exit lane both fit)."""

    name: str
    role: str
    place: str
    data_dir: Path
    device_id: str
    cut: bool = False


def device_figures(data_dir: Path) -> dict[str, Any]:
    """Counts by kind and verdict, pending events and sync status, from the device's SQLite."""
    conn = sqlite3.connect(f"file:{data_dir / 'replica.sqlite3'}?mode=ro", uri=True, timeout=2)
    try:
        rows = conn.execute(
            "SELECT kind, verdict, count(*), sum(acked = 0), sum(delta) FROM journal "
            "GROUP BY kind, verdict"
        ).fetchall()
        state = conn.execute("SELECT value FROM sync_state WHERE key = 'sync_status'").fetchall()
        last = conn.execute(
            "SELECT verdict FROM journal WHERE kind != 'log' ORDER BY device_seq DESC LIMIT 1"
        ).fetchall()
    finally:
        conn.close()
    verdicts: Counter[str] = Counter()
    pending = events = money = 0
    for kind, verdict, count, unacked, delta in rows:
        events += count
        pending += unacked or 0
        if kind != "log":
            verdicts[f"{kind}:{verdict}"] += count
        if kind == "sale":
            money -= delta or 0
    status = json.loads(state[0][0]) if state else {}
    ok_ms, err_ms = status.get("last_success_ms"), status.get("last_error_ms")
    online = ok_ms is not None and (err_ms is None or ok_ms >= err_ms)
    return {
        "events": events,
        "pending": pending,
        "verdicts": dict(verdicts),
        "revenue": money,
        "online": online,
        "last": last[0][0] if last else "",
    }


def _admitted(key: str, kinds: Collection[str]) -> bool:
    """Whether a `device_figures` verdict key (``kind:verdict``) is of one of `kinds` and
    took effect."""
    kind, verdict = key.split(":")
    return kind in kinds and admits(kind, verdict)


def safe_figures(data_dir: Path) -> dict[str, Any]:
    """device_figures, or empty figures while the device's files are not there yet."""
    try:
        return device_figures(data_dir)
    except sqlite3.Error:
        return {"events": 0, "pending": 0, "verdicts": {}, "revenue": 0, "online": False}


async def central_figures(conn: AsyncConnection[Any], festival_id: uuid.UUID) -> dict[str, Any]:
    """Events central holds and conflicts found so far, by kind."""
    cur = await conn.execute(
        "SELECT count(*) FROM device_event WHERE festival_id = %s", (festival_id,)
    )
    row = await cur.fetchone()
    cur = await conn.execute(
        "SELECT kind, count(*) FROM conflict WHERE festival_id = %s GROUP BY kind ORDER BY kind",
        (festival_id,),
    )
    kinds = {str(k): int(n) for k, n in await cur.fetchall()}
    return {"events": int(row[0]) if row else 0, "conflicts": kinds}


def live_table(
    phase: str, elapsed: float, devices: Sequence[DeviceView], central: dict[str, Any]
) -> Group:
    """The live view: one row per device, then central's totals."""
    table = Table(title=f"festgate demo · {phase} · {elapsed:5.1f} s", expand=False)
    for col in ("device", "place", "link", "sync", "admitted", "refused", "sales", "pending"):
        table.add_column(col, justify="right" if col in {"admitted", "refused"} else "left")
    for dev in devices:
        fig = safe_figures(dev.data_dir)
        verdicts: dict[str, int] = fig["verdicts"]
        admitted = sum(n for k, n in verdicts.items() if _admitted(k, GATE_KINDS))
        refused = (
            sum(n for k, n in verdicts.items() if k.startswith(("entry:", "exit:"))) - admitted
        )
        sales = sum(n for k, n in verdicts.items() if _admitted(k, {EventKind.SALE}))
        link = Text("CUT", style="bold red") if dev.cut else Text("up", style="green")
        sync = Text("online", "green") if fig["online"] else Text("offline", "yellow")
        table.add_row(
            dev.name,
            dev.place,
            link,
            sync,
            str(admitted) if dev.role == "gate" else "",
            str(refused) if dev.role == "gate" else "",
            f"{sales} · {fig['revenue'] / 100:.2f}" if dev.role == "bar" else "",
            str(fig["pending"]),
        )
    conflicts = ", ".join(f"{k} {n}" for k, n in central["conflicts"].items()) or "none yet"
    footer = Text(f"central holds {central['events']} events · conflicts: {conflicts}")
    return Group(table, footer)


async def reconcile(conn: AsyncConnection[Any], devices: Sequence[DeviceView]) -> dict[str, Any]:
    """Compare every device's journal with central's device_event, pair by pair."""
    out: dict[str, Any] = {"devices": {}, "journaled": 0, "at_central": 0, "ok": True}
    for dev in devices:
        conn_lite = sqlite3.connect(f"file:{dev.data_dir / 'replica.sqlite3'}?mode=ro", uri=True)
        try:
            mine = {
                int(s): e for s, e in conn_lite.execute("SELECT device_seq, event_id FROM journal")
            }
        finally:
            conn_lite.close()
        cur = await conn.execute(
            "SELECT device_seq, event_id::text FROM device_event WHERE device_id = %s",
            (uuid.UUID(dev.device_id),),
        )
        theirs = {int(s): str(e) for s, e in await cur.fetchall()}
        missing = sorted(set(mine) - set(theirs))
        extra = sorted(set(theirs) - set(mine))
        differ = sorted(s for s in set(mine) & set(theirs) if mine[s] != theirs[s])
        gaps = sorted(set(range(1, max(mine, default=0) + 1)) - set(mine))
        ok = not (missing or extra or differ or gaps)
        out["devices"][dev.name] = {
            "journaled": len(mine), "at_central": len(theirs), "missing": missing[:20],
            "extra": extra[:20], "different_event_id": differ[:20], "journal_gaps": gaps[:20],
            "ok": ok,
        }  # fmt: skip
        out["journaled"] += len(mine)
        out["at_central"] += len(theirs)
        out["ok"] = out["ok"] and ok
    return out


async def build_report(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    devices: Sequence[DeviceView],
    stories: dict[str, list[uuid.UUID]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Totals, story outcomes, every conflict with both facts, and the reconciliation."""
    per_device = {}
    totals: Counter[str] = Counter()
    for dev in devices:
        fig = device_figures(dev.data_dir)
        per_device[dev.name] = {"role": dev.role, "place": dev.place, **fig}
        for key, n in fig["verdicts"].items():
            kind, verdict = key.split(":")
            if kind in GATE_KINDS:
                totals[f"{kind}_{'admitted' if admits(kind, verdict) else 'refused'}"] += n
            elif kind == "sale":
                totals["sales_approved" if admits(kind, verdict) else "sales_declined"] += n
        totals["revenue_cents"] += fig["revenue"]
        del per_device[dev.name]["online"], per_device[dev.name]["pending"]
    seen: dict[str, list[str]] = {}
    for story, ids in stories.items():
        cur = await conn.execute(
            "SELECT d.name, e.kind, e.verdict FROM device_event e JOIN device d ON d.id = "
            "e.device_id WHERE e.ticket_id = ANY(%s) OR e.account_id = ANY(%s) "
            "OR e.payload->>'ticket_id' = ANY(%s) ORDER BY e.hlc",
            (ids, ids, [str(i) for i in ids]),
        )
        seen[story] = [f"{name} {kind} {verdict}" for name, kind, verdict in await cur.fetchall()]
    every = ConflictFilter(state="all")
    conflicts = [c.model_dump(mode="json") for c in await list_conflicts(conn, festival_id, every)]
    cur = await conn.execute(
        "SELECT count(*) FROM audit_log WHERE festival_id = %s AND action = 'account.topup'",
        (festival_id,),
    )
    row = await cur.fetchone()
    reconciliation = await reconcile(conn, devices)
    kinds = Counter(str(c["kind"]) for c in conflicts)
    names = {dev.device_id: dev.name for dev in devices}
    return {
        **extra,
        "totals": dict(totals) | {"desk_topups": int(row[0]) if row else 0},
        "devices": per_device,
        "stories": seen,
        "conflict_counts": dict(kinds),
        "conflicts": [
            {k: c[k] for k in ("id", "kind", "subject_type", "subject_id", "event_ids")}
            | {"facts": _name_devices(c["facts"], names)}
            for c in reversed(conflicts)  # oldest first: the list comes newest first
        ],
        "reconciliation": reconciliation,
        "ok": bool(reconciliation["ok"]),
    }


def _name_devices(facts: Any, names: dict[str, str]) -> Any:
    """Facts with each device id's name beside it, so people can read them."""
    if isinstance(facts, list):
        return [_name_devices(f, names) for f in facts]
    if isinstance(facts, dict):
        out = {k: _name_devices(v, names) for k, v in facts.items()}
        if "device_id" in facts:
            out["device"] = names.get(str(facts["device_id"]), "?")
        return out
    return facts


def _fact_lines(facts: Any) -> list[str]:
    """One line per fact: its role in the conflict, device, seq, kind, verdict, amount."""
    lines = []
    for role, value in facts.items() if isinstance(facts, dict) else [("fact", facts)]:
        for fact in value if isinstance(value, list) else [value]:
            if isinstance(fact, dict) and "device_seq" in fact:
                amount = f" {fact['amount'] / 100:.2f}" if "amount" in fact else ""
                lines.append(
                    f"{role}: {fact.get('device')} #{fact['device_seq']} {fact['kind']} "
                    f"{fact['verdict']}{amount} (hlc {fact['hlc']})"
                )
            else:
                lines.append(f"{role}: {json.dumps(fact, default=str)}")
    return lines


def report_renderables(report: dict[str, Any]) -> list[Any]:
    """The report for people: totals, stories, conflicts with both facts, the event check."""
    out: list[Any] = [Text("")]
    t = report["totals"]
    hw = report["hardware"]
    seen = ""
    if "codes_shown" in hw:
        seen = f" ({hw['codes_shown']} codes shown to cameras, {hw['taps']} NFC taps)"
    out.append(
        Text(
            f"festival {report['festival']} · {report['seconds']:.0f} s · gates: "
            f"{hw['gates']} · bars: {hw['bars']}{seen}\n"
            f"entries admitted {t.get('entry_admitted', 0)}, refused "
            f"{t.get('entry_refused', 0)}; exits {t.get('exit_admitted', 0)}; sales approved "
            f"{t.get('sales_approved', 0)} ({t.get('revenue_cents', 0) / 100:.2f} EUR), "
            f"declined {t.get('sales_declined', 0)}; desk top-ups {t.get('desk_topups', 0)}"
        )
    )
    stories = Table("story", "what the devices decided (central's copy, in HLC order)")
    for story, seen in report["stories"].items():
        stories.add_row(story, "; ".join(seen) or "-")
    out.append(stories)
    conflicts = Table("id", "kind", "subject", "facts (both sides)")
    for c in report["conflicts"]:
        facts = c["facts"]
        conflicts.add_row(
            str(c["id"])[:8], c["kind"], f"{c['subject_type']} {str(c['subject_id'])[:8]}",
            "\n".join(_fact_lines(facts)),
        )  # fmt: skip
    out.append(conflicts)
    rec = report["reconciliation"]
    if rec["ok"]:
        out.append(
            Text(
                f"✔ central holds exactly the {rec['journaled']} events the devices journaled "
                "(no event lost, none duplicated)",
                style="bold green",
            )
        )
    else:
        bad = {k: v for k, v in rec["devices"].items() if not v["ok"]}
        out.append(
            Text(
                f"✘ EVENTS DO NOT MATCH: devices journaled {rec['journaled']}, central holds "
                f"{rec['at_central']}: {json.dumps(bad)}",
                style="bold red",
            )
        )
    return out
