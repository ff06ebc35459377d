"""/healthz, /readyz and /metrics of a real `serve`, and its JSON logs with request ids."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg

from sync.protocol import REQUEST_ID_HEADER
from tests.central.serve_proc import serve


def test_health_and_readiness_answer_without_the_protocol_header(
    pg_dsn: str, tmp_path: Path
) -> None:
    with serve(tmp_path, dsn=pg_dsn) as central:
        alive = httpx.get(f"{central.url}/healthz")
        ready = httpx.get(f"{central.url}/readyz")
        assert alive.status_code == 200
        assert alive.json() == {"status": "alive"}
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        # The schema falls behind (as after a restore of an older dump): not ready.
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'older'")
        behind = httpx.get(f"{central.url}/readyz")
        assert behind.status_code == 503
        assert behind.json()["error"] == "schema_not_current"
        assert httpx.get(f"{central.url}/healthz").status_code == 200


def test_every_log_line_of_a_request_is_json_with_its_request_id(
    pg_dsn: str, tmp_path: Path
) -> None:
    with serve(tmp_path, "--log-format", "json", dsn=pg_dsn) as central:
        given = httpx.get(f"{central.url}/v1/sync/changes", headers={REQUEST_ID_HEADER: "dev-42"})
        made = httpx.get(f"{central.url}/healthz")
        hostile = httpx.get(f"{central.url}/healthz", headers={REQUEST_ID_HEADER: "a b{forged}"})
        assert central.stop() == 0
    assert given.headers[REQUEST_ID_HEADER] == "dev-42"
    assert len(made.headers[REQUEST_ID_HEADER]) == 32  # made by central: a uuid4's hex
    assert hostile.headers[REQUEST_ID_HEADER] not in ("a b{forged}", "dev-42")
    lines = [json.loads(line) for line in central.log_text().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "festgate.access"]
    by_id = {line["request_id"]: line for line in access}
    assert by_id["dev-42"]["path"] == "/v1/sync/changes"
    assert by_id["dev-42"]["status"] == 400  # no protocol header: refused, and still logged
    assert by_id[made.headers[REQUEST_ID_HEADER]]["path"] == "/healthz"
    assert not any("embedded PostgreSQL" in line["msg"] for line in lines)  # --dsn given
