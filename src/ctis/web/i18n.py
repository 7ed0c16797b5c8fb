"""Languages of the web interface: English (the source language) and Khmer.

Every page is rendered in the language of the request that asked for it, so the
language is never global state: it lives in the context variable
:data:`current_lang`, which a request sets (:func:`set_language`) before it
renders and which each asyncio task and thread sees separately. Templates call
``_()`` / ``{% trans %}`` and the ``date`` / ``number`` filters, and those read
the context variable; one :class:`jinja2.Environment` therefore serves every
language at once.

Catalogues are gettext ``.po`` files under ``translations/<lang>/LC_MESSAGES``.
They are compiled in memory when this module is imported, so no ``.mo`` file is
built or committed and a translator's edit needs nothing but a restart. English
needs no catalogue: a message id *is* the English text.

Khmer numerals (០១២៣៤៥៦៧៨៩) are a display choice, not a different number: the
formatting functions produce ASCII digits and replace them only when asked,
because CLDR (and so Babel) gives Khmer Latin digits by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import date
from decimal import Decimal
from functools import lru_cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path

import jinja2
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

SUPPORTED: tuple[str, ...] = ("en", "km")
"""Languages the interface is offered in; the first is the fallback."""

DEFAULT_LANG = "en"
"""The source language: message ids are English, so it needs no catalogue."""

DOMAIN = "messages"
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"

current_lang: ContextVar[str] = ContextVar("current_lang", default=DEFAULT_LANG)
"""Language of the page being rendered; set per request with :func:`set_language`."""

khmer_digits: ContextVar[bool] = ContextVar("khmer_digits", default=False)
"""Whether Khmer pages show Khmer numerals; a user preference, so per request too."""

_KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")

# CLDR's "medium" English date is US style ("Jun 30, 2024"); day-first reads the
# same way as the Khmer date and as dates are written in Cambodia, so English
# uses the explicit pattern. Khmer uses CLDR's own medium format ("30 មិថុនា 2024").
_DATE_FORMATS = {"en": "d MMM y", "km": "medium"}


def _check(lang: str) -> str:
    """Reject an unsupported language loudly: callers should have negotiated one."""
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}; expected one of {SUPPORTED}")
    return lang


def N_(msgid: str) -> str:
    """Mark a string for extraction without translating it yet.

    Python code runs outside any request (labels defined at import time), so it
    marks the English text with ``N_`` and translates it where the language is
    known: ``gettext(lang, LABEL)`` or ``{{ _(label) }}`` in a template.
    """
    return msgid


def _compile_po(path: Path, lang: str) -> Translations:
    """Compile a ``.po`` file to an in-memory ``.mo`` and load it.

    Fuzzy entries (guesses left by ``pybabel update``) are skipped, as msgfmt
    would, so an unchecked guess never reaches a page.
    """
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale=lang, domain=DOMAIN, abort_invalid=True)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=len(SUPPORTED))
def translations(lang: str) -> Translations | NullTranslations:
    """The message catalogue of a language, compiled once and then shared.

    English returns :class:`gettext.NullTranslations` (message ids are the
    English text). Any other supported language must have a ``.po`` file: a
    missing catalogue is a packaging error and raises rather than silently
    showing English.
    """
    _check(lang)
    path = TRANSLATIONS_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT_LANG and not path.exists():
        return NullTranslations()
    return _compile_po(path, lang)


def gettext(lang: str, msgid: str) -> str:
    """Translate ``msgid`` into ``lang``; untranslated messages stay English."""
    return translations(lang).gettext(msgid)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    """Translate a message with a count (Khmer has one plural form)."""
    return translations(lang).ngettext(singular, plural, n)


def pgettext(lang: str, context: str, msgid: str) -> str:
    """Translate a message that needs a context to tell it apart from a homonym."""
    return translations(lang).pgettext(context, msgid)


def npgettext(lang: str, context: str, singular: str, plural: str, n: int) -> str:
    """Translate a counted message with a context."""
    return translations(lang).npgettext(context, singular, plural, n)


def to_khmer_digits(text: str) -> str:
    """Replace ASCII digits 0-9 with Khmer digits ០-៩ (U+17E0-U+17E9); nothing else."""
    return text.translate(_KHMER_DIGITS)


def format_date(value: date, lang: str, khmer_digits: bool = False) -> str:
    """A date for display: "30 Jun 2024" in English, "30 មិថុនា 2024" in Khmer.

    A :class:`~datetime.datetime` is shown as its date. ``khmer_digits`` gives
    "៣០ មិថុនា ២០២៤".
    """
    text = babel_format_date(value, format=_DATE_FORMATS[_check(lang)], locale=lang)
    return to_khmer_digits(text) if khmer_digits else text


def format_number(n: int | float | Decimal, lang: str, khmer_digits: bool = False) -> str:
    """A number with the language's digit grouping ("1,234,567" in both languages)."""
    text = format_decimal(n, locale=_check(lang))
    return to_khmer_digits(text) if khmer_digits else text


def _primary(tag: str) -> str | None:
    """The supported language a tag such as ``km-KH`` or ``en_GB`` names, if any."""
    primary = tag.strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in SUPPORTED else None


def _accept_language_tags(header: str) -> list[str]:
    """Tags of an Accept-Language header, most preferred first.

    Ties keep the header's order; ``q=0`` (explicitly unacceptable) and
    unparseable weights drop the tag, since a malformed header is not a reason to
    fail a request.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if not quality > 0:  # also drops NaN
            continue
        ranked.append((-min(quality, 1.0), position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language_header: str | None, cookie_value: str | None) -> str:
    """The language to render a request in.

    The cookie (the user's explicit choice) wins when it names a supported
    language; otherwise the browser's Accept-Language preference; otherwise
    English.
    """
    if cookie_value:
        chosen = _primary(cookie_value)
        if chosen:
            return chosen
    if accept_language_header:
        for tag in _accept_language_tags(accept_language_header):
            chosen = _primary(tag)
            if chosen:
                return chosen
    return DEFAULT_LANG


def set_language(lang: str) -> Token[str]:
    """Make ``lang`` the language of the current request; returns the reset token.

    Call it in the same task that renders (an ``async`` dependency, the route or
    middleware before ``call_next``): a value set inside a threadpool-run sync
    dependency does not flow back to the route.
    """
    return current_lang.set(_check(lang))


@contextmanager
def use_language(lang: str, *, khmer_numerals: bool = False) -> Iterator[None]:
    """Render in ``lang`` (and numerals) for a block, restoring the previous values.

    For work outside a request, such as tests or a report built by a command.
    """
    lang_token = set_language(lang)
    digits_token = khmer_digits.set(khmer_numerals)
    try:
        yield
    finally:
        khmer_digits.reset(digits_token)
        current_lang.reset(lang_token)


def _khmer_digits_wanted(lang: str) -> bool:
    """Khmer numerals are a Khmer-page preference: English pages keep ASCII digits."""
    return lang == "km" and khmer_digits.get()


def _date_filter(value: date | None) -> str:
    """Jinja ``date`` filter: a missing date shows as nothing, not "None"."""
    if value is None:
        return ""
    lang = current_lang.get()
    return format_date(value, lang, khmer_digits=_khmer_digits_wanted(lang))


def _number_filter(value: int | float | Decimal | None) -> str:
    """Jinja ``number`` filter: a missing number shows as nothing, not "None"."""
    if value is None:
        return ""
    lang = current_lang.get()
    return format_number(value, lang, khmer_digits=_khmer_digits_wanted(lang))


def _current_gettext(message: str) -> str:
    return gettext(current_lang.get(), message)


def _current_ngettext(singular: str, plural: str, n: int) -> str:
    return ngettext(current_lang.get(), singular, plural, n)


def _current_pgettext(context: str, message: str) -> str:
    return pgettext(current_lang.get(), context, message)


def _current_npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return npgettext(current_lang.get(), context, singular, plural, n)


def install_jinja(env: jinja2.Environment) -> None:
    """Give ``env`` per-request translation, dates and numbers.

    Enables ``jinja2.ext.i18n`` with *new-style* gettext, which autoescapes
    translations and formats ``%(name)s`` placeholders from keyword arguments
    (``{{ _("%(n)s cases", n=count) }}``); a literal percent sign must therefore
    be written ``%%``. Also adds the ``date`` and ``number`` filters and a
    ``current_language()`` global (for ``<html lang>``).
    """
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_current_gettext,
        ngettext=_current_ngettext,
        newstyle=True,
        pgettext=_current_pgettext,
        npgettext=_current_npgettext,
    )
    env.filters["date"] = _date_filter
    env.filters["number"] = _number_filter
    env.globals["current_language"] = current_lang.get


# Compile every catalogue at import, so a broken .po stops the application at
# start-up instead of failing the first Khmer request.
for _lang in SUPPORTED:
    translations(_lang)
