"""Reference value sets, loaded from the CSV files in ``data/``.

Value sets are data, not code, so that an analyst can read and review them and
exports to CTDC / HTCDS are mappings from these codes.  Parsing accepts a code,
an English or Khmer label or a known alias, case-insensitively, and always
returns the canonical code: storage never holds a free-text variant.
"""

from __future__ import annotations

import csv
import gettext
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pycountry

CAMBODIA = "KHM"


@dataclass(frozen=True)
class Value:
    code: str
    label_en: str
    label_km: str
    ctdc: str = ""

    def label(self, lang: str = "en") -> str:
        return self.label_km if lang == "km" else self.label_en


def _fold(text: str) -> str:
    """Key used to match user input against codes and labels."""
    return unicodedata.normalize("NFC", text).strip().casefold().replace("-", "_").replace(" ", "_")


def _read(name: str) -> list[dict[str, str]]:
    with resources.files("ctis.domain").joinpath("data", name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class ValueSet:
    """A closed list of codes with bilingual labels."""

    def __init__(self, name: str, values: list[Value], aliases: dict[str, str] | None = None):
        self.name = name
        self.values = values
        self._by_code = {v.code: v for v in values}
        self._lookup: dict[str, str] = {}
        for v in values:
            for key in (v.code, v.label_en, v.label_km):
                self._lookup.setdefault(_fold(key), v.code)
        for alias, code in (aliases or {}).items():
            self._lookup.setdefault(_fold(alias), code)

    @property
    def codes(self) -> list[str]:
        return [v.code for v in self.values]

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __getitem__(self, code: str) -> Value:
        return self._by_code[code]

    def parse(self, raw: str) -> str:
        """Return the canonical code for ``raw`` or raise ``ValueError``."""
        code = self._lookup.get(_fold(raw))
        if code is None:
            shown = ", ".join(self.codes[:12]) + (" …" if len(self.codes) > 12 else "")
            raise ValueError(f"unknown {self.name.replace('_', ' ')} {raw!r} (expected one of: {shown})")
        return code

    def label(self, code: str | None, lang: str = "en") -> str:
        if code is None:
            return "—"
        value = self._by_code.get(code)
        return value.label(lang) if value else code


@cache
def value_sets() -> dict[str, ValueSet]:
    grouped: dict[str, list[Value]] = {}
    for row in _read("value_sets.csv"):
        grouped.setdefault(row["value_set"], []).append(
            Value(row["code"], row["label_en"], row["label_km"], row["ctdc"])
        )
    sets = {name: ValueSet(name, values) for name, values in grouped.items()}
    sets["province"] = provinces()
    return sets


def value_set(name: str) -> ValueSet:
    return value_sets()[name]


@cache
def provinces() -> ValueSet:
    """Cambodia's 25 provinces (ISO 3166-2:KH), with common alternative spellings."""
    values, aliases = [], {}
    for row in _read("provinces.csv"):
        values.append(Value(row["code"], row["name_en"], row["name_km"]))
        for alias in filter(None, row["aliases"].split(";")):
            aliases[alias] = row["code"]
    return ValueSet("province", values, aliases)


def parse_country(raw: str) -> str:
    """Return the ISO 3166-1 alpha-3 code for a code or an English country name."""
    text = raw.strip()
    if not text:
        raise ValueError("empty country")
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        raise ValueError(f"unknown country {raw!r} (use ISO 3166-1 alpha-3, e.g. KHM, THA, CHN)") from None
    return str(country.alpha_3)


def country_label(code: str | None, lang: str = "en") -> str:
    """A country's name in English, or in Khmer from the ISO 3166 translations pycountry ships.

    The iso-codes project keeps those translations with the standard itself, so they follow renamed
    countries without anyone here maintaining a list; a name with no Khmer entry stays English.
    """
    if code is None:
        return "—"
    country = pycountry.countries.get(alpha_3=code)
    if country is None:
        return code
    name = str(country.name)
    return _iso3166_catalogue(lang).gettext(name) if lang != "en" else name


@cache
def _iso3166_catalogue(lang: str) -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
