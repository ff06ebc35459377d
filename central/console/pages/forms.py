"""What the festival pages' writes share: the posted form, the role check on the festival,
and the answer (back to the page with what was done, or the page again with why not).

Every write is a POST whose CSRF token `central.console.web.viewer` has checked already; the
role is checked here before anything is read or stored, so a forged form from a role that
may not act is refused (403) and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from babel.dates import format_timedelta
from babel.numbers import get_currency_precision
from fastapi import Request
from fastapi.responses import RedirectResponse

from central.auth import Action, require
from central.console import csrf
from central.console.web import PREFIX, Festival, Viewer
from central.errors import CatalogError

MAX_NOTE = 2000  # a note or reason, as the API bounds it


async def posted(request: Request) -> dict[str, str]:
    """The posted form, one value per field, trimmed."""
    return {k: v.strip() for k, v in (await csrf.form(request)).items()}


def allow(who: Viewer, action: Action, festival: Festival) -> None:
    """AuthError 403 unless `who` may do `action` on `festival` (nothing read or stored)."""
    require(who.user, action, festival.id)


def back(festival: Festival, page: str, done: str, **query: str) -> RedirectResponse:
    """After a write: the page again (a GET: a reload repeats nothing), saying what was done."""
    params = urlencode({**query, "done": done})
    return RedirectResponse(f"{PREFIX}/f/{festival.slug}/{page}?{params}", status_code=303)


def text(fields: dict[str, str], name: str, limit: int = MAX_NOTE) -> str:
    """A required free-text field (a note, a reason): CatalogError when empty or too long."""
    value = fields.get(name, "")
    if not value or len(value) > limit or "\x00" in value:
        raise CatalogError(f"{name} must be 1 to {limit} characters")
    return value


def amount(fields: dict[str, str], currency: str) -> int:
    """An amount typed in the currency's major unit (``12.50`` or ``12,50``) as minor
    units; CatalogError unless positive with no more decimals than the currency has."""
    typed = fields.get("amount", "").replace(",", ".")
    try:
        value = Decimal(typed)
    except InvalidOperation:
        raise CatalogError(f"{typed[:20]!r} is not an amount") from None
    minor = value.scaleb(get_currency_precision(currency))
    if not value.is_finite() or minor != minor.to_integral_value() or minor <= 0:
        raise CatalogError(f"{typed[:20]!r} is not a positive amount in {currency}")
    return int(minor)


Refused = CatalogError  # what a write may refuse with, shown on the page


def duration(lang: str, seconds: int | None) -> str:
    """A length of time in words of `lang` (``3 minutes``, ``2 heures``)."""
    if seconds is None:
        return ""
    return str(format_timedelta(timedelta(seconds=seconds), threshold=1.5, locale=lang))
