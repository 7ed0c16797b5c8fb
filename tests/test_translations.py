"""The Khmer catalogue is complete: every string marked in the sources has a checked
Khmer translation that keeps the English placeholders.

The strings are extracted here the way ``pybabel extract -F babel.cfg`` does
(same rules, same ``src`` root), so a string added to a template or to ``N_()``
without a translation fails this test instead of silently showing English.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from ctis.web import i18n

ROOT = Path(__file__).resolve().parents[1]
KM_PO = i18n.TRANSLATIONS_DIR / "km" / "LC_MESSAGES" / "messages.po"

#: Messages that are only an acronym or product name and so stay in Latin script.
LATIN_ALLOWED = frozenset({"CTIS", "API", "CSV", "Excel", "TIP"})
#: Acronyms and product names that a translation keeps as they are.
KEPT_NAMES = ("CTIS", "API", "CSV", "Excel", "TIP")

KHMER = re.compile("[\u1780-\u17ff]")
# A Python %-format conversion: optional mapping key, flags, width, precision, type; or "%%".
PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


def _extracted() -> dict[str, list[str]]:
    """Message ids (singular and plural forms) marked in the sources, with where each comes from."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT / "src", method_map, options_map
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


EXTRACTED = _extracted()


def _catalogue() -> Catalog:
    with KM_PO.open("rb") as po_file:
        return read_po(po_file, locale="km")


CATALOGUE = _catalogue()
ENTRIES = [message for message in CATALOGUE if message.id]


def _ids(message_id: str | tuple[str, ...]) -> tuple[str, ...]:
    return message_id if isinstance(message_id, tuple) else (message_id,)


def _strings(string: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if string is None:
        return ("",)
    return string if isinstance(string, tuple) else (string,)


def _placeholders(text: str) -> list[str]:
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def _entry_name(message_id: str | tuple[str, ...]) -> str:
    return _ids(message_id)[0][:40]


def test_the_sources_mark_messages() -> None:
    """Guards the extraction itself: an empty result would make every other check pass."""
    assert len(EXTRACTED) > 100
    assert {"Dashboard", "Victims", "Sign in", "Period"} <= EXTRACTED.keys()


def test_every_extracted_message_has_a_khmer_translation() -> None:
    translated = {}
    for message in ENTRIES:
        for msgid in _ids(message.id):
            translated[msgid] = message
    problems = []
    for msgid, where in sorted(EXTRACTED.items()):
        message = translated.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r} ({where[0]})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif not all(s.strip() for s in _strings(message.string)):
            problems.append(f"empty: {msgid!r}")
    assert not problems, "\n".join(problems)


def test_no_entry_is_fuzzy_or_empty() -> None:
    assert not CATALOGUE.fuzzy
    assert not [m.id for m in ENTRIES if m.fuzzy or not all(s.strip() for s in _strings(m.string))]


@pytest.mark.parametrize("message", ENTRIES, ids=lambda m: _entry_name(m.id))
def test_translation_keeps_the_placeholders(message: Message) -> None:
    expected = _placeholders(_ids(message.id)[0])
    for string in _strings(message.string):
        assert _placeholders(string) == expected
        # Jinja's new-style gettext %-formats every message, so a stray "%" would break the page.
        names = {m.group("name") for m in PLACEHOLDER.finditer(string) if m.group("name")}
        assert isinstance(string % dict.fromkeys(names, 1), str)  # raises on a malformed format
        assert "%" not in PLACEHOLDER.sub("", string), "write a literal percent sign as %%"


@pytest.mark.parametrize("message", ENTRIES, ids=lambda m: _entry_name(m.id))
def test_translation_is_khmer(message: Message) -> None:
    for string in _strings(message.string):
        if _ids(message.id)[0] in LATIN_ALLOWED:
            continue
        assert KHMER.search(string), f"no Khmer script in {string!r}"
        assert string != _ids(message.id)[0]


@pytest.mark.parametrize("message", ENTRIES, ids=lambda m: _entry_name(m.id))
def test_acronyms_and_product_names_are_kept(message: Message) -> None:
    for name in KEPT_NAMES:
        if re.search(rf"\b{name}\b", _ids(message.id)[0]):
            for string in _strings(message.string):
                assert name in string


def test_the_catalogue_translates_at_run_time() -> None:
    for msgid in EXTRACTED:
        assert i18n.gettext("km", msgid) != msgid or msgid in LATIN_ALLOWED, msgid
