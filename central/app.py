"""The FastAPI app: ``/v1`` only, OpenAPI at ``/v1/openapi.json``, ErrorBody for every error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from central import history, kek, keys, metrics, pg, server_gc
from central.api import admin, docs, errors, ops, ops_devices, ops_festivals, ops_reports, sync
from central.api.deps import AppState
from central.api.limits import StreamSlots
from central.api.longpoll import FeedWaiters
from central.console.app import console_app
from central.health import HealthEndpoints
from central.logs import RequestLog
from config.central import CentralConfig
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, PushRequest

# The protocol header every operation but the open paths requires (`errors.ProtocolGate`),
# declared once for all of them so that clients generated from the schema send it.
_PROTOCOL_PARAMETER = {
    "name": PROTOCOL_HEADER,
    "in": "header",
    "required": True,
    "description": "the protocol version the client speaks: any other is 400 protocol_version",
    "schema": {"type": "string", "enum": [str(PROTOCOL_VERSION)], "default": str(PROTOCOL_VERSION)},
}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})


def _dsn(settings: CentralConfig) -> str:
    if settings.dsn is None or not settings.dsn.get_secret_value():
        raise ValueError("create_app needs a DSN (start embedded PostgreSQL first: central.pg)")
    return settings.dsn.get_secret_value()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the push body, which the route parses itself (for speed), and
    the protocol header on every operation that needs it."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        push = PushRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(push.pop("$defs", {}))
        components["PushRequest"] = push
        for path, item in schema.get("paths", {}).items():
            if path in errors.OPEN_PATHS:
                continue
            for method, operation in item.items():
                if method in _METHODS:
                    given = operation.get("parameters", [])
                    operation["parameters"] = [dict(_PROTOCOL_PARAMETER), *given]
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: CentralConfig,
    *,
    pool: AsyncConnectionPool | None = None,
    settle_gc: bool = False,
) -> FastAPI:
    """Build central's HTTP app. With `pool` given it is used (and not closed) instead of one
    opened from `settings.dsn` at startup; either way the database must be migrated.
    `settle_gc` is for a server process: once started, `central.server_gc.settle`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        the_pool = pool or await pg.connect_pool(
            _dsn(settings),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            checkout_timeout_s=settings.pool_timeout_s,
        )
        # Signing needs the KEK (central.kek); one that does not open the stored keys, or
        # none at all, stops central here rather than at the first ticket it signs.
        the_kek = kek.from_config(settings) or kek.active()
        kek.install(the_kek)
        async with the_pool.connection() as conn:
            await keys.check_keys(conn, the_kek)
            served = await history.read(conn)
        # A quarter of the pool: streams to slow readers must leave the rest of it free.
        streams = settings.snapshot_streams or max(1, the_pool.max_size // 4)
        app.state.snapshot_slots = StreamSlots(streams, settings.snapshot_queue_s)
        waiters = FeedWaiters()
        listener = asyncio.create_task(waiters.listen(str(the_pool.conninfo)))
        app.state.central = AppState(the_pool, waiters, settings, history=served)
        if settle_gc:  # everything a server loads is loaded by now
            server_gc.settle()
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            app.state.central = None
            if own:
                await the_pool.close()

    app = FastAPI(
        title="festgate central",
        version=f"{PROTOCOL_VERSION}",
        openapi_url=docs.OPENAPI_PATH,
        docs_url=None,  # served from the package instead (`central.api.docs`)
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(sync.router)
    app.include_router(ops.router)
    app.include_router(ops_devices.router)
    app.include_router(ops_reports.router)
    app.include_router(ops_festivals.router)
    app.include_router(admin.router)
    app.include_router(docs.router)
    app.mount("/ops", console_app(app))  # the ops console (issue 17): HTML, own errors
    app.add_middleware(errors.ProtocolGate)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    # Outside the protocol gate: probes and Prometheus do not speak the sync protocol.
    app.add_middleware(HealthEndpoints, metrics_token=token)
    # Outermost: every request, even a refused one, gets an id, an access line and a count.
    app.add_middleware(RequestLog, on_done=metrics.request_done)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def worker_app() -> FastAPI:
    """The app of one `serve --workers N` process (uvicorn's factory): settings from the
    parent (`central.http_server.WORKER_CONFIG_ENV`), deadlines on the guarded protocol."""
    from central.http_server import worker_settings

    return create_app(worker_settings(), settle_gc=True)
