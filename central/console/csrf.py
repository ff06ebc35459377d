"""CSRF protection: every write carries its session's token (a synchroniser token).

Each session keeps a random `csrf_token` (`central.console.sessions`); pages put it in a
form field and in ``hx-headers`` on ``<body>``, so htmx sends it as a header with every
request. A write (any method but GET and HEAD) whose token is missing or differs is refused
before its route runs. The login form has no session yet: it uses a double-submit cookie
(a random value in an HttpOnly cookie and in the form, which must match), which a page on
another site can neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import Request

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
LOGIN_COOKIE = "fg_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD"})
MAX_FORM_BYTES = 16 * 1024  # console forms are small; a bigger body is refused unread


class CsrfRefused(Exception):
    """A write without its CSRF token, or with another one."""


class FormTooLarge(Exception):
    """A form body past MAX_FORM_BYTES."""


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a given token with the expected one."""
    return bool(given) and hmac.compare_digest((given or "").encode(), expected.encode())


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body, one value per field (the first); read once per request."""
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    read = {k: v[0] for k, v in fields.items()}
    request.state.form = read
    return read


async def given_token(request: Request) -> str | None:
    """The token a request carries: its header, else its form field."""
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return (await form(request)).get(FIELD)
    return None


async def check(request: Request, expected: str) -> None:
    """Refuse a write (CsrfRefused) unless it carries `expected`; reads pass."""
    if request.method in SAFE_METHODS:
        return
    if not same(await given_token(request), expected):
        raise CsrfRefused
