"""What every console route shares: the caller's session (with its CSRF check), the festival
a page names, and rendering a template in the caller's language.

A route takes `ViewerDep` (logged in, its write carrying the CSRF token) and, for a page of
a festival, calls `festival_page`, which checks the role may see that page on that festival
before it says anything about the festival.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from psycopg import AsyncConnection

from central import catalog, readable
from central.api.deps import AppState
from central.auth import Action, OpsPrincipal, allowed, require
from central.console import csrf, i18n, nav, sessions
from central.errors import ApiError, AuthError

PREFIX = "/ops"
SESSION_COOKIE = "fg_session"
PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


class NotLoggedIn(Exception):
    """No live session: the login page, or 401 for a script."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A logged-in person looking at the console, in their language."""

    session: sessions.Session
    lang: str
    token: str  # their cookie's token, for a live stream to re-check the session

    @property
    def user(self) -> OpsPrincipal:
        """Who they are, with their role and festival scope."""
        return self.session.user

    def may(self, action: Action) -> bool:
        """Whether their role lets them do `action`."""
        return allowed(self.user, action)

    def sees(self, page: nav.Page) -> bool:
        """Whether their role lets them open `page`."""
        return any(self.may(a) for a in page.actions)


@dataclass(frozen=True, slots=True)
class Festival:
    """The festival a page is about, and how its values read to this viewer."""

    id: uuid.UUID
    slug: str
    name: str
    timezone: str
    formats: i18n.Formats


def central_state(request: Request) -> AppState:
    """Central's running state (pool, feed waiters), kept by the app the console is in."""
    st: AppState | None = getattr(request.app.state.parent.state, "central", None)
    if st is None:
        raise ApiError(503, "not_ready", "central is starting")
    return st


def language(request: Request) -> str:
    """The language this request is answered in."""
    return i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


async def viewer(request: Request) -> Viewer:
    """The logged-in caller (NotLoggedIn otherwise); a write must carry its CSRF token."""
    token = request.cookies.get(SESSION_COOKIE, "")
    async with central_state(request).pool.connection() as conn:
        session = await sessions.session_of(conn, token)
    if session is None:
        raise NotLoggedIn
    await csrf.check(request, session.csrf_token)
    return Viewer(session, language(request), token)


ViewerDep = Annotated[Viewer, Depends(viewer)]


async def festival_page(
    conn: AsyncConnection[Any], who: Viewer, festival: str, page: str
) -> Festival:
    """The festival `festival` (slug or id) for page `page`: AuthError 403 unless the role
    may open the page (checked first: a refused caller learns nothing of festivals), or
    on this festival; NotFound when there is none."""
    shown = nav.page(page)
    if not who.sees(shown):
        raise AuthError(403, "forbidden", f"not allowed to open {page}")
    rec = await catalog.get_festival(conn, festival)
    action = next(a for a in shown.actions if who.may(a))
    require(who.user, action, rec["id"])
    name, zone = readable.time_zone(rec["timezone"])
    formats = i18n.Formats(who.lang, zone, rec["currency"])
    return Festival(rec["id"], rec["slug"], rec["name"], name, formats)


@cache
def environment(lang: str) -> Environment:
    """The templates in `lang`: every value escaped, an unknown name an error."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["static"] = static_url
    env.globals["prefix"] = PREFIX
    env.globals["languages"] = i18n.LANGUAGES
    return env


@cache
def static_url(name: str) -> str:
    """A packaged file's address, with a hash of its content (so a new release's file is
    fetched, and the old one may be cached for long)."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{PREFIX}/static/{name}?v={digest}"


def render_text(language_code: str, template: str, **context: Any) -> str:
    """A template rendered in a language (a fragment, or a whole page)."""
    return environment(language_code).get_template(template).render(**context)


def render(
    request: Request, who: Viewer | None, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page for `who` (None: not logged in), with the navigation their role sees."""
    lang = who.lang if who is not None else language(request)
    common = {
        "lang": lang,
        "user": who.user if who is not None else None,
        "csrf": who.session.csrf_token if who is not None else "",
        "pages": [p for p in nav.PAGES if who is not None and who.sees(p)],
        "may_list_sessions": who is not None and who.may(Action.VIEW_USERS),
        "path": request.url.path,
        "festival": None,
        "current": None,
    }
    html = render_text(lang, template, **(common | context))
    return HTMLResponse(html, status_code=status)
