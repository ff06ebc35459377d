"""What the ops tests share: requests by role under the festival's slug, and the checks
around every write (nothing stored by a refusal; feed and audit in one transaction)."""

from __future__ import annotations

from typing import Any

import httpx
from psycopg import AsyncConnection

from tests.central.sync_helpers import Rig


async def ops_call(rig: Rig, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request by an ops user with `role` to a path under the festival, by its slug."""
    url = f"/v1/ops/festivals/{rig.fest.slug}/{path}"
    return await rig.client.request(method, url, headers=await rig.ops(role), **kw)


async def ops_ok(rig: Rig, role: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """`ops_call` that must succeed; its JSON object."""
    resp = await ops_call(rig, role, method, path, **kw)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# Everything an ops write may change, summed up: the feed heads, the audit log, the tickets,
# the block list, the accounts and their ledger, the conflicts. (The ops users a test makes
# on first use are audited too, and are no ops write.)
_STATE = """
SELECT (SELECT coalesce(sum(head), 0) FROM feed_head),
       (SELECT count(*) FROM audit_log WHERE entity_type <> 'ops_user'),
       (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM ticket t),
       (SELECT md5(coalesce(string_agg(b::text, ',' ORDER BY b.kind, b.ref), ''))
          FROM block_list b),
       (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), ''))
          FROM cashless_account a),
       (SELECT count(*) FROM cashless_transaction),
       (SELECT md5(coalesce(string_agg(c::text, ',' ORDER BY c.id), '')) FROM conflict c)
"""


async def stored(conn: AsyncConnection[Any]) -> tuple[Any, ...]:
    """A fingerprint of everything ops may write: equal before and after means nothing
    was stored."""
    cur = await conn.execute(_STATE)
    rec = await cur.fetchone()
    assert rec is not None
    await conn.commit()  # a fresh snapshot next time
    return tuple(rec)


async def written_together(
    conn: AsyncConnection[Any], entity_type: str, entity_id: object, seq: int
) -> str:
    """Assert that feed change `seq` and the newest audit entry about the entity were written
    by one transaction (the same ``now()``: it is the transaction's start); its action."""
    cur = await conn.execute(
        "SELECT a.action FROM audit_log a, change_feed f WHERE a.entity_type = %s"
        " AND a.entity_id = %s AND f.seq = %s AND f.festival_id = a.festival_id"
        " AND a.at = f.committed_at ORDER BY a.id DESC LIMIT 1",
        (entity_type, str(entity_id), seq),
    )
    rec = await cur.fetchone()
    await conn.commit()
    assert rec is not None, f"no audit entry about {entity_type} {entity_id} with change {seq}"
    return str(rec[0])
