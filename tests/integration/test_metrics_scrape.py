"""/metrics after a push: the figures the issue names, and the Grafana dashboard naming
only metrics that exist (who may scrape: tests/central/test_metrics_token.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from psycopg import AsyncConnection

from central.sample import create_sample_festival
from edge.cli_sync import enrol_device
from tests.central.serve_proc import serve
from tests.integration.conftest import enrol_code, new_dir, open_node

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "festgate-central.json"
_NAME = re.compile(r"\bfestgate_[a-z_]+")


def _exprs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def _names(scrape: str) -> set[str]:
    return {line.split("{")[0].split()[0] for line in scrape.splitlines() if line[:1].isalpha()}


async def test_a_scrape_after_a_push_has_every_figure_and_the_dashboard_names_only_those(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=2, opaque_tickets=0)
    with serve(tmp_path, dsn=pg_dsn) as central:
        data = new_dir(tmp_path)
        code = await enrol_code(pg_dsn, fest, "gate")
        await enrol_device(central.url, code, name="g", data_dir=data)
        gate = await open_node(data)
        try:
            assert (await gate.device.scan(fest.tickets[0].code)).verdict.code == "ok"
            assert await gate.engine.push_once() == 1
        finally:
            await gate.close()
        async with httpx.AsyncClient() as client:
            scrape = await client.get(f"{central.url}/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    assert 'festgate_pushes_total{status="200"} 1.0' in text
    assert 'festgate_events_total{kind="entry"} 1.0' in text
    assert "festgate_push_seconds_count 1.0" in text
    assert f'festgate_feed_head{{festival="{fest.slug}"}}' in text
    assert f'festgate_devices_online{{festival="{fest.slug}"}} 1.0' in text
    assert 'festgate_conflicts_open{kind="duplicate_entry"} 0.0' in text
    assert 'festgate_db_pool_connections{state="size"}' in text
    assert "festgate_longpoll_waiters 0.0" in text
    exposed = _names(text)
    exprs = _exprs(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    named = {name for expr in exprs for name in _NAME.findall(expr)}
    assert named  # the dashboard has queries, and each names something real
    assert sorted(named - exposed) == []
