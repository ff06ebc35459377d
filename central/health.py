"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, orchestrators and
Prometheus, so outside ``/v1`` and without the protocol header.

- ``/healthz``: 200 while the process serves (it checks nothing else);
- ``/readyz``: 200 when the database answers and its schema is the newest this version
  knows, else 503 with the reason (ErrorBody);
- ``/metrics``: Prometheus text (`central.metrics`). Not for the world: with
  ``metrics_token`` set, only ``Authorization: Bearer <token>`` gets it; without one, only a
  client on loopback (a Prometheus on the same machine, or through a tunnel). Anyone else
  gets 404, as if it were not there.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from central import metrics, pg
from sync.protocol import ErrorBody

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PATHS = frozenset({HEALTH_PATH, READY_PATH, METRICS_PATH})
_READ_REVISION = """
SELECT CASE WHEN to_regclass('public.alembic_version') IS NULL THEN NULL
            ELSE (SELECT version_num FROM alembic_version LIMIT 1) END"""


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:  # a unix socket's peer, or a test client's name
        return False


def _bearer(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"authorization" and value[:7].lower() == b"bearer ":
            return bytes(value[7:].strip())
    return None


class HealthEndpoints:
    """ASGI middleware that answers the three operational paths before the API sees them."""

    def __init__(self, app: ASGIApp, metrics_token: str | None = None) -> None:
        self.app = app
        self._token = metrics_token.encode() if metrics_token else None
        self._head = pg.head_revision()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer /healthz, /readyz and /metrics; pass anything else on."""
        path = scope.get("path")
        if scope["type"] != "http" or path not in PATHS:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, _error("method_not_allowed", "GET only"))
        elif path == HEALTH_PATH:
            await _answer(send, 200, json.dumps({"status": "alive"}).encode())
        elif path == READY_PATH:
            await self._ready(scope, send)
        elif not self._may_scrape(scope):
            await _answer(send, 404, _error("not_found", "Not Found"))
        else:
            state = _central(scope)
            if state is None:
                await _answer(send, 503, _error("not_ready", "central is starting"))
                return
            body = await metrics.scrape(state.pool)
            await _answer(send, 200, body, metrics.CONTENT_TYPE)

    def _may_scrape(self, scope: Scope) -> bool:
        if self._token is None:
            return _loopback(scope)
        given = _bearer(scope)
        return given is not None and hmac.compare_digest(given, self._token)

    async def _ready(self, scope: Scope, send: Send) -> None:
        state = _central(scope)
        if state is None:
            await _answer(send, 503, _error("not_ready", "central is starting"))
            return
        try:
            async with state.pool.connection() as conn:
                row = await (await conn.execute(_READ_REVISION)).fetchone()
        except Exception as exc:  # any failure to reach the database is "not ready"
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            await _answer(send, 503, _error("database_unreachable", detail))
            return
        current = row[0] if row else None
        if current != self._head:
            detail = f"schema at {current}, this central needs {self._head}"
            await _answer(send, 503, _error("schema_not_current", detail))
            return
        await _answer(send, 200, json.dumps({"status": "ready", "revision": current}).encode())


def _central(scope: Scope) -> Any:
    return getattr(getattr(scope.get("app"), "state", None), "central", None)


def _error(code: str, detail: str) -> bytes:
    return ErrorBody(error=code, detail=detail).model_dump_json().encode()


async def _answer(
    send: Send, status: int, body: bytes, content_type: str = "application/json"
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
