"""The ops console: a sub-app central's app factory mounts at ``/ops``.

It runs in central's process on central's pool and feed listener (`web.central_state`),
answers in HTML (its own error pages), and sends a Content-Security-Policy with every
answer that lets a page run only the scripts it ships (no inline script, no other origin).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.console import auth, csrf, web
from central.console.pages import audit, conflicts, devices, home, lookup, now, sales, sessions
from central.errors import ApiError, AuthError, NotFound

ROUTERS = (
    auth.router, home.router, now.router, sessions.router, conflicts.router, devices.router,
    lookup.router, sales.router, audit.router,
)  # fmt: skip
# Scripts, styles, images, fonts and connections from the console's own origin only; no
# inline script or style; no framing; forms post back to the console only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """ASGI middleware: the CSP and its companions on every answer; pages are not cached
    (they show one person's live view), the packaged files are (their URLs carry a hash)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the answer's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{web.PREFIX}/static/")
        cache = b"public, max-age=86400" if static else b"no-store"

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *HEADERS,
                    (b"cache-control", cache),
                ]
            await send(message)

        await self.app(scope, receive, stamped)


def _error(request: Request, status: int, code: str) -> Response:
    return web.render(request, None, "error.html", status, code=code)


def install_errors(app: FastAPI) -> None:
    """Answer every failure with an HTML page (and send a person to log in)."""

    @app.exception_handler(web.NotLoggedIn)
    async def _login(request: Request, _: web.NotLoggedIn) -> Response:
        if request.method == "GET" and "hx-request" not in request.headers:
            target = auth.LOGIN + "?next=" + quote(request.url.path, safe="/")
            return RedirectResponse(target, status_code=303)
        answer = _error(request, 401, "not_logged_in")
        answer.headers["HX-Redirect"] = auth.LOGIN
        return answer

    @app.exception_handler(csrf.CsrfRefused)
    async def _csrf(request: Request, _: csrf.CsrfRefused) -> Response:
        return _error(request, 403, "csrf")

    @app.exception_handler(csrf.FormTooLarge)
    async def _large(request: Request, _: csrf.FormTooLarge) -> Response:
        return _error(request, 413, "too_large")

    @app.exception_handler(AuthError)
    async def _forbidden(request: Request, exc: AuthError) -> Response:
        return _error(request, exc.status, "forbidden" if exc.status == 403 else exc.code)

    @app.exception_handler(NotFound)
    async def _missing(request: Request, _: NotFound) -> Response:
        return _error(request, 404, "not_found")

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        return _error(request, exc.status, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _: RequestValidationError) -> Response:
        return _error(request, 422, "invalid")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, "not_found" if exc.status_code == 404 else "error")


def console_app(parent: FastAPI) -> FastAPI:
    """The console, served by `parent`'s process on `parent`'s state (its pool)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.parent = parent
    install_errors(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders)
    return app
