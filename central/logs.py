"""Central's logs: one JSON object per line (or plain text for a terminal), every line of a
request carrying its request id, and one access line per request.

The request id is the client's ``Festgate-Request-Id`` (or a proxy's ``X-Request-Id``)
when it sends a usable one, else made here; it is echoed in the response and held in a
context variable, so every log line written while the request runs names it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.protocol import REQUEST_ID_HEADER

LogFormat = Literal["json", "text"]
request_id: ContextVar[str | None] = ContextVar("festgate_request_id", default=None)
access_log = logging.getLogger("festgate.access")
_PROXY_HEADER = b"x-request-id"
_OWN_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
# What a client may choose as its id: short and printable, so it cannot forge log lines.
_USABLE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def default_format() -> LogFormat:
    """JSON for a service (stderr is not a terminal), text for a person at a terminal."""
    return "text" if sys.stderr.isatty() else "json"


class RequestIdFilter(logging.Filter):
    """Put the current request's id (or None) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops one."""
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


def log_config(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for central and uvicorn in `fmt` (every worker applies
    it: uvicorn's ``log_config``)."""
    formatter: dict[str, Any] = (
        {"()": "sync.logline.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "main",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "central.logs.RequestIdFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level},
        "loggers": {
            # uvicorn's own handlers would print each line twice; its access log is ours.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # Alembic narrates each plugin and step at INFO; a migration that fails still
            # raises, and what `serve` must say (a wrong KEK, a bad DSN) stays one line.
            "alembic": {"level": "WARNING"},
        },
    }


def _given_id(scope: Scope) -> str | None:
    found = {k: v for k, v in scope["headers"] if k in (_OWN_HEADER, _PROXY_HEADER)}
    for name in (_OWN_HEADER, _PROXY_HEADER):
        value = found.get(name)
        if value is not None and _USABLE_ID.match(value):
            return bytes(value).decode("ascii")
    return None


Done = Callable[[Scope, int, float], None]


class RequestLog:
    """ASGI middleware: a request id for each request (echoed in the response), one access
    line when it ends, and `on_done(scope, status, seconds)` for the metrics."""

    def __init__(self, app: ASGIApp, on_done: Done | None = None) -> None:
        self.app = app
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request under its id; log it when it ends, however it ends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _given_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500  # what the client gets if the app fails before it answers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (_OWN_HEADER, rid.encode("ascii"))]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            client = scope.get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": client[0] if client else None,
                },
            )
            if self.on_done is not None:
                self.on_done(scope, status, seconds)
            request_id.reset(token)
