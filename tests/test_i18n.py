"""Khmer and English: catalogues load, text, dates and numbers come out in the
request's language, and a Jinja template follows the language of its request."""

from __future__ import annotations

import contextvars
import hashlib
import re
from datetime import date, datetime
from decimal import Decimal
from gettext import NullTranslations
from pathlib import Path

import jinja2
import pytest
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import PoFileError, read_po
from babel.support import Translations

from ctis.web import i18n

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "ctis" / "web" / "static"
KM_PO = i18n.TRANSLATIONS_DIR / "km" / "LC_MESSAGES" / "messages.po"
KHMER_MONTHS = (
    "មករា",
    "កុម្ភៈ",
    "មីនា",
    "មេសា",
    "ឧសភា",
    "មិថុនា",
    "កក្កដា",
    "សីហា",
    "កញ្ញា",
    "តុលា",
    "វិច្ឆិកា",
    "ធ្នូ",
)


@pytest.fixture
def env() -> jinja2.Environment:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    i18n.install_jinja(environment)
    return environment


# --- catalogues ---------------------------------------------------------------


def test_khmer_catalogue_loads_from_the_po_file() -> None:
    catalogue = i18n.translations("km")
    assert isinstance(catalogue, Translations)
    assert catalogue is i18n.translations("km")  # compiled once, then cached


def test_english_is_the_source_language() -> None:
    assert isinstance(i18n.translations("en"), NullTranslations)
    assert i18n.gettext("en", "Dashboard") == "Dashboard"


def test_translated_messages_are_khmer() -> None:
    assert i18n.gettext("km", "Dashboard") == "ផ្ទាំងគ្រប់គ្រង"
    assert i18n.gettext("km", "Sign in") == "ចូលប្រើ"
    assert i18n.gettext("km", "Period") == "រយៈពេល"


def test_an_untranslated_message_stays_english() -> None:
    assert i18n.gettext("km", "No such message") == "No such message"


def test_khmer_has_a_single_plural_form(tmp_path: Path) -> None:
    po = tmp_path / "messages.po"
    entry = '\nmsgid "%(n)s case"\nmsgid_plural "%(n)s cases"\nmsgstr[0] "%(n)s ករណី"\n'
    po.write_text(KM_PO.read_text(encoding="utf-8") + entry, encoding="utf-8")
    compiled = i18n._compile_po(po, "km")
    assert compiled.ngettext("%(n)s case", "%(n)s cases", 1) == "%(n)s ករណី"
    assert compiled.ngettext("%(n)s case", "%(n)s cases", 5) == "%(n)s ករណី"


def test_untranslated_plurals_follow_english() -> None:
    assert i18n.ngettext("km", "%(n)s case", "%(n)s cases", 1) == "%(n)s case"
    assert i18n.ngettext("km", "%(n)s case", "%(n)s cases", 5) == "%(n)s cases"


def test_an_unsupported_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        i18n.gettext("fr", "Dashboard")
    with pytest.raises(ValueError, match="unsupported language"):
        i18n.set_language("fr")


def test_the_khmer_po_file_is_well_formed() -> None:
    with KM_PO.open("rb") as po_file:
        catalog = read_po(po_file)
    assert str(catalog.locale) == "km"
    assert catalog.num_plurals == 1
    assert catalog.plural_expr == "0"
    assert not [(message.id, errors) for message, errors in catalog.check()]
    assert all(message.string for message in catalog if message.id)


def test_fuzzy_entries_are_not_shown(tmp_path: Path) -> None:
    po = tmp_path / "messages.po"
    po.write_text(
        KM_PO.read_text(encoding="utf-8") + '\n#, fuzzy\nmsgid "Guess"\nmsgstr "ទាយ"\n',
        encoding="utf-8",
    )
    compiled = i18n._compile_po(po, "km")
    assert compiled.gettext("Guess") == "Guess"
    assert compiled.gettext("Cases") == "ករណី"


def test_a_malformed_po_file_fails_loudly(tmp_path: Path) -> None:
    """A broken catalogue stops start-up rather than silently dropping entries."""
    po = tmp_path / "messages.po"
    po.write_text(KM_PO.read_text(encoding="utf-8") + '\nmsgid "A"\nmsgstr "B"\nbroken\n', "utf-8")
    with pytest.raises(PoFileError):
        i18n._compile_po(po, "km")


def test_babel_cfg_maps_python_and_templates() -> None:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    assert ("ctis/**.py", "python") in method_map
    assert ("ctis/web/templates/**.html", "jinja2") in method_map
    assert options_map["ctis/web/templates/**.html"]["extensions"] == "jinja2.ext.i18n"


# --- dates and numbers ----------------------------------------------------------


def test_dates_in_english() -> None:
    assert i18n.format_date(date(2024, 6, 30), "en") == "30 Jun 2024"
    assert i18n.format_date(datetime(2024, 1, 5, 13, 45), "en") == "5 Jan 2024"


def test_dates_in_khmer_use_khmer_month_names() -> None:
    text = i18n.format_date(date(2024, 6, 30), "km")
    assert text == "30 មិថុនា 2024"
    for month, name in enumerate(KHMER_MONTHS, start=1):
        assert name in i18n.format_date(date(2024, month, 1), "km")


def test_dates_in_khmer_with_khmer_digits() -> None:
    assert i18n.format_date(date(2024, 6, 30), "km", khmer_digits=True) == "៣០ មិថុនា ២០២៤"


def test_numbers_are_grouped() -> None:
    assert i18n.format_number(1234567, "en") == "1,234,567"
    assert i18n.format_number(1234567, "km") == "1,234,567"
    assert i18n.format_number(0, "km") == "0"
    assert i18n.format_number(Decimal("12.5"), "en") == "12.5"


def test_numbers_with_khmer_digits() -> None:
    assert i18n.format_number(1234567, "km", khmer_digits=True) == "១,២៣៤,៥៦៧"


def test_khmer_digits_replace_only_ascii_digits() -> None:
    assert i18n.to_khmer_digits("0123456789") == "០១២៣៤៥៦៧៨៩"
    assert [ord(c) for c in i18n.to_khmer_digits("0123456789")] == list(range(0x17E0, 0x17EA))
    assert i18n.to_khmer_digits("Case 12/2024, ករណី") == "Case ១២/២០២៤, ករណី"


# --- negotiation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cookie", "expected"),
    [
        (None, None, "en"),
        ("", "", "en"),
        ("km", None, "km"),
        ("km-KH,km;q=0.9,en;q=0.8", None, "km"),
        ("en-US,en;q=0.9,km;q=0.8", None, "en"),
        ("fr-FR,fr;q=0.9,km;q=0.5", None, "km"),
        ("en;q=0.3, km;q=0.7", None, "km"),
        ("km;q=0, en;q=0.1", None, "en"),
        ("fr, de", None, "en"),
        ("*", None, "en"),
        ("km;q=banana, en;q=0.5", None, "en"),
        (",,;;,km;q=0.4", None, "km"),
        ("en-US,en;q=0.9", "km", "km"),
        ("km", "en", "en"),
        ("km", "fr", "km"),
        ("en", " KM ", "km"),
        (None, "xx", "en"),
    ],
)
def test_negotiate(header: str | None, cookie: str | None, expected: str) -> None:
    assert i18n.negotiate(header, cookie) == expected


# --- templates ----------------------------------------------------------------


TEMPLATE = (
    "{{ _('Dashboard') }}|{% trans %}Sign in{% endtrans %}|{{ _('Untranslated') }}"
    "|{{ day|date }}|{{ count|number }}|{{ current_language() }}"
)


def test_template_in_khmer_uses_the_catalogue(env: jinja2.Environment) -> None:
    template = env.from_string(TEMPLATE)
    with i18n.use_language("km"):
        rendered = template.render(day=date(2024, 6, 30), count=1234)
    assert rendered == "ផ្ទាំងគ្រប់គ្រង|ចូលប្រើ|Untranslated|30 មិថុនា 2024|1,234|km"


def test_template_in_khmer_with_khmer_numerals(env: jinja2.Environment) -> None:
    template = env.from_string("{{ day|date }} {{ count|number }}")
    with i18n.use_language("km", khmer_numerals=True):
        rendered = template.render(day=date(2024, 6, 30), count=1234)
    assert rendered == "៣០ មិថុនា ២០២៤ ១,២៣៤"


def test_khmer_numerals_never_reach_english_pages(env: jinja2.Environment) -> None:
    template = env.from_string("{{ day|date }} {{ count|number }}")
    with i18n.use_language("en", khmer_numerals=True):
        assert template.render(day=date(2024, 6, 30), count=1234) == "30 Jun 2024 1,234"


def test_template_defaults_to_english(env: jinja2.Environment) -> None:
    template = env.from_string(TEMPLATE)
    rendered = contextvars.Context().run(template.render, day=date(2024, 6, 30), count=1234)
    assert rendered == "Dashboard|Sign in|Untranslated|30 Jun 2024|1,234|en"


def test_missing_values_render_empty(env: jinja2.Environment) -> None:
    assert env.from_string("[{{ d|date }}][{{ n|number }}]").render(d=None, n=None) == "[][]"


def test_language_is_per_context_not_global(env: jinja2.Environment) -> None:
    """Two requests rendering at once each see their own language."""
    template = env.from_string("{{ _('Cases') }}")

    def render_in(lang: str) -> str:
        i18n.set_language(lang)
        return template.render()

    assert contextvars.copy_context().run(render_in, "km") == "ករណី"
    assert contextvars.copy_context().run(render_in, "en") == "Cases"
    assert i18n.current_lang.get() == "en"


def test_use_language_restores_the_previous_language() -> None:
    with i18n.use_language("km", khmer_numerals=True):
        assert (i18n.current_lang.get(), i18n.khmer_digits.get()) == ("km", True)
    assert (i18n.current_lang.get(), i18n.khmer_digits.get()) == ("en", False)


def test_translations_are_autoescaped_and_take_placeholders(env: jinja2.Environment) -> None:
    template = env.from_string(
        "{% trans n=count %}{{ n }} victims{% endtrans %}|{{ _('%(who)s', who=name) }}"
    )
    with i18n.use_language("km"):
        assert template.render(count=3, name="<b>") == "3 victims|&lt;b&gt;"


# --- the Khmer web font -----------------------------------------------------------


def test_every_font_in_fonts_css_is_vendored() -> None:
    css = (STATIC / "css" / "fonts.css").read_text(encoding="utf-8")
    urls = re.findall(r'url\("/static/([^"]+)"\)', css)
    assert len(urls) == 4  # khmer and latin, weights 400 and 700
    for url in urls:
        assert (STATIC / url).is_file(), url


def test_vendored_files_match_their_recorded_checksums() -> None:
    vendor = STATIC / "vendor"
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    recorded = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, flags=re.MULTILINE)
    assert len(recorded) == 6
    for digest, name in recorded:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
