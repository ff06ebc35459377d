"""Logging in and out of the console, and choosing its language.

The session cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it), scoped to the console's path, and Secure when the request came over https.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from central.console import csrf, i18n, sessions
from central.console.web import (
    PREFIX,
    SESSION_COOKIE,
    ViewerDep,
    central_state,
    language,
    render,
)
from sync.protocol import RETRY_AFTER_HEADER

router = APIRouter()
HOME = f"{PREFIX}/"
LOGIN = f"{PREFIX}/login"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if not target or not target.startswith(f"{PREFIX}/") or any(c in target for c in "\\\r\n"):
        return HOME
    return target


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def _login_page(request: Request, status: int, error: str = "", retry_s: int = 0) -> Response:
    token = csrf.new_token()
    page = render(
        request, None, "login.html", status,
        login_csrf=token, error=error, retry_minutes=max(1, -(-retry_s // 60)),
        next=safe_next(request.query_params.get("next")),
    )  # fmt: skip
    _cookie(page, request, csrf.LOGIN_COOKIE, token, 3600)
    if retry_s:
        page.headers[RETRY_AFTER_HEADER] = str(retry_s)
    return page


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The login form."""
    return _login_page(request, 200)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check a name and password; on success a session cookie and the page asked for."""
    fields = await csrf.form(request)
    if not csrf.same(fields.get(csrf.FIELD), request.cookies.get(csrf.LOGIN_COOKIE, "")):
        raise csrf.CsrfRefused
    client = request.client.host if request.client is not None else "unknown"
    try:
        async with central_state(request).pool.connection() as conn:
            made = await sessions.login(
                conn, fields.get("name", ""), fields.get("password", ""), ip=client,
                user_agent=request.headers.get("user-agent", ""),
            )  # fmt: skip
    except sessions.LoginRefused as refused:
        status = 429 if refused.code == "too_many_failures" else 401
        return _login_page(request, status, refused.code, refused.retry_after_s)
    done = RedirectResponse(safe_next(fields.get("next")), status_code=303)
    _cookie(done, request, SESSION_COOKIE, made.token, sessions.SESSION_HOURS * 3600)
    done.delete_cookie(csrf.LOGIN_COOKIE, path=PREFIX)
    return done


@router.post("/logout")
async def logout(request: Request, who: ViewerDep) -> Response:
    """End this session (its cookie is refused from now on) and show the login form."""
    async with central_state(request).pool.connection() as conn:
        await sessions.end_session(conn, who.session.id, actor=who.user.actor)
    done = RedirectResponse(LOGIN, status_code=303)
    done.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return done


@router.get("/language/{lang}")
async def choose_language(
    request: Request, lang: str, next: Annotated[str | None, Query()] = None
) -> Response:
    """Remember the chosen language (a cookie only: nothing stored) and go back."""
    chosen = lang if lang in i18n.LANGUAGES else language(request)
    done = RedirectResponse(safe_next(next), status_code=303)
    _cookie(done, request, i18n.COOKIE, chosen, 365 * 24 * 3600)
    return done
