"""The console's languages: gettext catalogs (Babel) loaded from their ``.po`` files, and
how numbers, money and times read in each.

The catalogs are ``messages/<lang>/LC_MESSAGES/console.po``, read and compiled in memory on
first use, so there is no build step: another language is one more ``.po`` file (and its
code in LANGUAGES). The messages live in the templates; to refresh the catalogs after
changing them (the README's "Ops console" says the same)::

    cd central/console
    pybabel extract -F babel.cfg --no-location -o messages/console.pot .
    pybabel update -D console -i messages/console.pot -d messages
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, get_currency_precision
from babel.support import Translations

LANGUAGES = ("en", "fr")  # the first is the default
DOMAIN = "console"
MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
COOKIE = "fg_lang"


@cache
def translations(lang: str) -> Translations:
    """The catalog of `lang`, compiled from its .po file once per process."""
    with (MESSAGES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language to answer in: the one chosen (cookie), else the browser's first
    preference we have (Accept-Language, by q), else the default."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((q, tag.strip().lower().split("-")[0]))
    for _, lang in sorted(ranked, key=lambda r: -r[0]):
        if lang in LANGUAGES:
            return lang
    return LANGUAGES[0]


class Formats:
    """How one festival's values read in one language: its time zone, its currency."""

    def __init__(self, lang: str, zone: tzinfo, currency: str) -> None:
        self.lang = lang
        self.zone = zone
        self.currency = currency

    def money(self, minor: int) -> str:
        """An amount in minor units (cents) of the festival's currency, in words of `lang`:
        ``€12.50``, ``12,50 €``. Exact: minor units become a Decimal, never a float."""
        amount = Decimal(minor).scaleb(-get_currency_precision(self.currency))
        return str(format_currency(amount, self.currency, locale=self.lang))

    def number(self, n: int) -> str:
        """A count with the language's digit grouping."""
        return str(format_decimal(n, locale=self.lang))

    def time(self, when: datetime | None) -> str:
        """A time of day in the festival's zone (seconds shown: the page is live)."""
        return "" if when is None else str(format_time(when, "medium", self.zone, self.lang))

    def when(self, when: datetime | None) -> str:
        """A date and time in the festival's zone."""
        if when is None:
            return ""
        return str(format_datetime(when, "short", self.zone, self.lang))
