"""The console's languages and formats (pure), and where a login may send a person."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from central.console import i18n
from central.console.auth import safe_next
from central.console.web import TEMPLATES_DIR


@pytest.mark.parametrize(
    ("cookie", "header", "chosen"),
    [
        (None, None, "en"),
        (None, "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de-DE,en;q=0.5,fr;q=0.7", "fr"),  # by q, not by order
        (None, "de, it;q=0.5", "en"),
        (None, "fr;q=bogus, en", "en"),
        ("en", "fr-FR", "en"),  # the chosen language wins
        ("xx", "fr", "fr"),  # an unknown choice is ignored
    ],
)
def test_the_language_is_the_chosen_one_else_the_browser_s(
    cookie: str | None, header: str | None, chosen: str
) -> None:
    assert i18n.negotiate(cookie, header) == chosen


def test_money_and_times_read_in_the_language_and_the_festival_s_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert i18n.Formats("en", paris, "EUR").money(123456) == "€1,234.56"
    assert i18n.Formats("fr", paris, "EUR").money(-305) == "-3,05\u00a0€"
    # Minor units follow the currency: a yen has none.
    assert i18n.Formats("en", paris, "JPY").money(1500) == "¥1,500"
    when = datetime(2026, 7, 14, 20, 5, 9, tzinfo=UTC)
    assert i18n.Formats("fr", paris, "EUR").time(when) == "22:05:09"
    assert i18n.Formats("en", ZoneInfo("America/New_York"), "USD").time(when) == "4:05:09\u202fPM"


def test_every_language_translates_every_message_of_the_templates() -> None:
    # What pybabel extract finds (the README's commands), read straight from the templates:
    # a new text without its translation fails here.
    method = "**/templates/**.html"
    extracted = extract_from_dir(
        TEMPLATES_DIR.parent, [(method, "jinja2")], {method: {"extensions": "jinja2.ext.i18n"}}
    )
    wanted = {message for _, _, message, _, _ in extracted}
    assert "Log in to the ops console" in wanted
    for lang in i18n.LANGUAGES:
        with (i18n.MESSAGES_DIR / lang / "LC_MESSAGES" / "console.po").open("rb") as po:
            catalog = read_po(po)
        assert wanted <= {m.id for m in catalog if m.id}, lang
        if lang != "en":  # English is the msgids themselves
            assert [m.id for m in catalog if m.id and not m.string] == [], lang
            assert [m.id for m in catalog if m.fuzzy and m.id] == [], lang


@pytest.mark.parametrize(
    ("asked", "went"),
    [
        ("/ops/f/summer/now", "/ops/f/summer/now"),
        (None, "/ops/"),
        ("https://evil.example/", "/ops/"),
        ("//evil.example/ops/", "/ops/"),
        ("/ops/\\evil", "/ops/"),
        ("/v1/ops/festivals", "/ops/"),
        ("/ops/x\r\nSet-Cookie: a=b", "/ops/"),
    ],
)
def test_a_login_sends_a_person_to_a_console_page_only(asked: str | None, went: str) -> None:
    assert safe_next(asked) == went
