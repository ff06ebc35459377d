"""Every error as `sync.protocol.ErrorBody` JSON, and the protocol-version gate."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import DataError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from central.api import docs
from central.errors import CentralError
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, RETRY_AFTER_HEADER, ErrorBody

log = logging.getLogger(__name__)
# Paths a browser or a generator fetches without the protocol header: the schema, and the
# interactive docs with their assets.
OPEN_PATHS = docs.OPEN_PATHS
_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
}  # fmt: skip


def error_response(status: int, code: str, detail: str = "") -> JSONResponse:
    """An ErrorBody JSON response."""
    return JSONResponse(ErrorBody(error=code, detail=detail).model_dump(), status_code=status)


def describe_errors(errors: list[Any], limit: int = 10) -> str:
    """A short, stable text of pydantic errors: ``loc: message; ...``."""
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or '(body)'}: {err.get('msg', 'invalid')}")
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into ErrorBody JSON."""

    @app.exception_handler(CentralError)
    async def _refused(_: Request, exc: CentralError) -> JSONResponse:
        # The whole tree (central.errors): each refusal carries its status and code.
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", describe_errors(list(exc.errors())))

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot take (SQLSTATE class 22: out of range, a NUL, bad
        # text for a type) came from the request: the request is at fault, not central. The
        # models refuse such values first; this is the net under them, so it is logged.
        log.warning(
            "database refused a value of %s %s (%s): %s",
            request.method, request.url.path, exc.sqlstate, exc,
        )  # fmt: skip
        return error_response(422, "invalid_request", "a value the database cannot store")

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # No pooled connection, or no ingest turn (`central.turns.TurnTimeout`), came within
        # its wait: central is overloaded, which a retry a moment later may not find
        # (devices back off on 503). The exception says which.
        log.warning("central busy for %s %s: %s", request.method, request.url.path, exc)
        response = error_response(503, "busy", "central is busy; retry in a moment")
        response.headers[RETRY_AFTER_HEADER] = "1"
        return response

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises after answering, so the failure is logged in full.
        return error_response(500, "internal", type(exc).__name__)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail or ""))


def _console(path: str) -> bool:
    # The ops console (`central.console`) is for browsers, which send no protocol header.
    return path == "/ops" or path.startswith("/ops/")


class ProtocolGate:
    """ASGI middleware: every /v1 request must say ``Festgate-Protocol: 1`` (else 400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._header = PROTOCOL_HEADER.lower().encode("latin-1")
        self._version = str(PROTOCOL_VERSION).encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request without the right protocol header before any route runs."""
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or _console(scope["path"]):
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope["headers"] if k == self._header]
        if sent != [self._version]:
            got = sent[0].decode("latin-1") if sent else "none"
            body = ErrorBody(
                error="protocol_version",
                detail=f"send header {PROTOCOL_HEADER}: {PROTOCOL_VERSION} (got {got})",
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {"type": "http.response.body", "body": json.dumps(body.model_dump()).encode()}
            )
            return
        await self.app(scope, receive, send)
