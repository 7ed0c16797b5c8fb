"""Normalisation of the fields that identify a person, before any comparison.

Two agencies rarely spell a Cambodian name the same way: one types it in Khmer
script (with its own keyboard habits), another writes one of several
romanisations ("Sok Dara", "Sokh Darah", "Sok Dara" in a different order of
vowel signs...). Probabilistic linkage only works if these variants land on
the same comparable value, so this module turns every spelling into

* a cleaned Khmer string (NFC, no invisible characters, one canonical order of
  the signs inside a syllable, one spelling of look-alike subscripts),
* a romanisation of Khmer script (anyascii, after the Khmer clean-up),
* two phonetic keys of a romanised token: ``vowel_key`` (vowel runs collapse
  to ``a``, consonants mapped to classes) and ``skeleton`` (consonants only),
  which are what the linkage model compares.

It also parses dates of birth, turns an age on a date into a birth-year
window, and normalises phone numbers to E.164. Everything here is pure and
deterministic; the engine calls it once per record.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import phonenumbers
from anyascii import anyascii

# Characters that change nothing visible but break equality: zero-width space,
# non-joiner, joiner, word joiner, BOM, soft hyphen, and Khmer's own invisible
# inherent-vowel signs (U+17B4, U+17B5, discouraged by Unicode).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u17b4\u17b5"
_ZW_TABLE = {ord(c): None for c in ZERO_WIDTH}

COENG = "\u17d2"
# Subscript DA and subscript TA are drawn the same, so typists use either; the
# spoken value follows the base, so one canonical form is safe for matching.
_SUBSCRIPT_EQUIVALENTS = {"\u178a": "\u178f"}  # COENG DA -> COENG TA
# Deprecated independent vowels and split spellings of composite vowel signs.
_SEQUENCE_FIXES = (
    ("\u17a3", "\u17a2"),  # KHMER INDEPENDENT VOWEL QAQ (deprecated) -> QA
    ("\u17a4", "\u17a2\u17b6"),  # QAA (deprecated) -> QA + AA
    ("\u17c1\u17b8", "\u17be"),  # E + II typed for OE
    ("\u17c1\u17b6", "\u17c4"),  # E + AA typed for OO
)


# Names repeat massively across records (a million records, a few thousand
# distinct tokens), and every function below is pure: caching them per string
# makes preparing a large register a matter of seconds.
_CACHE = 1 << 18


_KHMER_BASE = re.compile("[\u1780-\u17b3]")


def _is_base(ch: str) -> bool:
    """Consonants and independent vowels start a Khmer orthographic syllable."""
    return "\u1780" <= ch <= "\u17b3"


def _sign_rank(token: str) -> int:
    """Canonical order of the marks after a base: subscripts, then register
    shifters and robat, then dependent vowels, then the remaining signs.

    Unicode's recommended order; keyboards let people type them in any order
    that renders the same, so we sort. COENG RO goes after other subscripts.
    """
    ch = token[-1] if token[0] == COENG else token
    if token[0] == COENG:
        return 1 if ch == "\u179a" else 0
    if ch in "\u17c9\u17ca\u17cc":  # MUUSIKATOAN, TRIISAP, ROBAT
        return 2
    if "\u17b6" <= ch <= "\u17c5":  # dependent vowels
        return 3
    return 4  # NIKAHIT, REAHMUK, YUUKALEAPINTU, BANTOC and the rest


@lru_cache(maxsize=_CACHE)
def normalise_khmer(text: str | None) -> str:
    """Canonical Khmer string: NFC, invisible characters removed, subscript
    look-alikes unified, marks inside each syllable in one order, doubled
    identical marks collapsed, whitespace collapsed."""
    if not text:
        return ""
    s = unicodedata.normalize("NFC", str(text)).translate(_ZW_TABLE)
    # marks attach to the base before them, never across a space: each word on
    # its own, cached (noise such as a zero-width space is gone by now, so the
    # words of a million records are a few thousand)
    return " ".join(_normalise_khmer_word(w) for w in s.split())


@lru_cache(maxsize=_CACHE)
def _normalise_khmer_word(s: str) -> str:
    for old, new in _SEQUENCE_FIXES:
        s = s.replace(old, new)
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if not _is_base(ch):
            out.append(ch)
            i += 1
            continue
        # A syllable: the base and every mark that follows it.
        marks: list[str] = []
        j = i + 1
        while j < n:
            c = s[j]
            if c == COENG and j + 1 < n and _is_base(s[j + 1]):
                marks.append(COENG + _SUBSCRIPT_EQUIVALENTS.get(s[j + 1], s[j + 1]))
                j += 2
            elif "\u17b6" <= c <= "\u17d1" or c == "\u17d3" or c == "\u17dd":
                if c == COENG:  # a dangling COENG: drop it
                    j += 1
                    continue
                if not marks or marks[-1] != c:  # a sign typed twice renders once
                    marks.append(c)
                j += 1
            else:
                break
        marks.sort(key=_sign_rank)  # stable: keeps the order of subscripts
        out.append(ch + "".join(marks))
        i = j
    return " ".join("".join(out).split())


@lru_cache(maxsize=_CACHE)
def clean_latin(text: str | None) -> str:
    """Lower-case ASCII letters and single spaces: diacritics folded, punctuation
    and digits dropped, Khmer or other scripts transliterated by anyascii."""
    if not text:
        return ""
    s = unicodedata.normalize("NFC", str(text)).translate(_ZW_TABLE)
    s = anyascii(s).lower()
    s = re.sub(r"[^a-z]+", " ", s)
    return " ".join(s.split())


def has_khmer(text: str | None) -> bool:
    """True when the text holds at least one Khmer letter."""
    return bool(text) and _KHMER_BASE.search(str(text)) is not None


@lru_cache(maxsize=_CACHE)
def romanise_khmer(text: str | None) -> str:
    """Romanise Khmer script so that it can be compared with Latin spellings.

    anyascii does the letter mapping; before it we drop the signs that it reads
    as an extra vowel but that only shorten the vowel or shift the register
    (BANTOC, TRIISAP, MUUSIKATOAN), so ``ចាន់`` reads ``chan``, not ``chana``.
    """
    return " ".join(" ".join(_romanise_word(w) for w in normalise_khmer(text).split()).split())


@lru_cache(maxsize=_CACHE)
def _romanise_word(s: str) -> str:
    s = s.replace("\u17cb", "").replace("\u17c9", "").replace("\u17ca", "")
    # NIKAHIT before NGO is the vowel of "-aing" (តាំង Taing), not an m
    s = s.replace("\u17c6\u1784", "\u1784")
    return clean_latin(s)


# Consonant digraphs first (longest first), then single letters: aspirated and
# unaspirated stops, voiced and unvoiced ones, are spelt interchangeably.
_DIGRAPHS = (
    ("chh", "c"), ("ch", "c"), ("kh", "k"), ("ng", "N"), ("gh", "k"), ("th", "t"), ("ph", "p"),
    ("sh", "s"), ("nh", "n"), ("ck", "k"), ("dh", "t"), ("bh", "p"),
)
_LETTERS = str.maketrans({"j": "c", "g": "k", "q": "k", "c": "c", "b": "p", "d": "t",
                          "z": "s", "x": "s", "w": "v", "f": "p"})
_VOWELS = set("aeiou")


def _consonant_classes(token: str) -> str:
    for old, new in _DIGRAPHS:
        token = token.replace(old, new)
    return token.translate(_LETTERS)


@lru_cache(maxsize=_CACHE)
def vowel_key(token: str) -> str:
    """Phonetic key of one romanised token keeping where vowels are.

    Consonants are mapped to classes (ch/j -> c, k/g -> k, p/b -> p, t/d -> t),
    every vowel run (``ea``, ``ia``, ``ou``, ``ey``...) becomes ``a``, a ``y``
    after a vowel is a vowel, an ``h`` that is not the first letter is silent
    (``Darah`` = ``Dara``), a final ``r`` is silent as in Khmer (``Sokhar`` =
    ``Sokha``), and doubled letters collapse (``Vannak`` = ``Vanak``).
    """
    t = _consonant_classes(token)
    if len(t) > 2 and t[-1] == "r":
        # a final r is silent in Khmer (ពេជ្រ "pechr" = Pich; Sokhar = Sokha)
        t = t[:-1]
    out: list[str] = []
    last = len(t) - 1
    for i, ch in enumerate(t):
        # y after the first letter, and a final v after a vowel (Pov = Pau), are vowels
        final_v = ch == "v" and i == last and i > 0 and t[i - 1] in _VOWELS
        if ch in _VOWELS or (ch == "y" and i > 0) or final_v:
            ch = "a"
        elif ch == "h" and i > 0:
            continue
        if out and out[-1] == ch:
            continue
        out.append(ch)
    return "".join(out).replace("N", "n")


@lru_cache(maxsize=_CACHE)
def skeleton(token: str) -> str:
    """The consonants of :func:`vowel_key` only (a leading vowel kept as ``a``).

    Khmer script does not write the inherent vowel, so a romanisation of script
    may lack vowels that a Latin spelling has (``chnthou`` / ``Chanthou``); the
    consonant skeleton is the same for both.
    """
    k = vowel_key(token)
    if not k:
        return ""
    head, rest = k[0], k[1:].replace("a", "")
    out = [head]
    for ch in rest:
        if out[-1] != ch:
            out.append(ch)
    return "".join(out)


def name_parts(romanised: str) -> tuple[str, str]:
    """(family, given) of a romanised full name: Khmer names are written family
    name first in both scripts; everything after the first token is given."""
    tokens = romanised.split()
    if not tokens:
        return "", ""
    return tokens[0], "".join(tokens[1:])


@dataclass(frozen=True)
class NameKeys:
    """The comparable forms of one spelling of a name."""

    family_raw: str
    given_raw: str
    family_key: str
    given_key: str
    family_skel: str
    given_skel: str

    @property
    def usable(self) -> bool:
        return bool(self.family_skel or self.given_skel)

    @property
    def full_skel(self) -> str:
        return f"{self.family_skel} {self.given_skel}".strip()


@lru_cache(maxsize=_CACHE)
def name_keys(romanised: str) -> NameKeys:
    """Keys of a romanised name (see :func:`vowel_key` and :func:`skeleton`)."""
    fam, giv = name_parts(romanised)
    return NameKeys(fam, giv, vowel_key(fam), vowel_key(giv), skeleton(fam), skeleton(giv))


@lru_cache(maxsize=_CACHE)
def keys_of_latin(text: str | None) -> NameKeys:
    return name_keys(clean_latin(text))


@lru_cache(maxsize=_CACHE)
def keys_of_khmer(text: str | None) -> NameKeys:
    return name_keys(romanise_khmer(text))


def parse_date(value: object) -> date | None:
    """An ISO ``YYYY-MM-DD`` date (or a date) -> date; anything else -> None.

    Impossible dates (30 February) and dates before 1900 are not usable: they
    are data-entry errors, not evidence."""
    if value is None:
        return None
    if isinstance(value, date):
        d = value
    else:
        text = str(value).strip()[:10]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return None
        try:
            d = date.fromisoformat(text)
        except ValueError:
            return None
    return d if d.year >= 1900 else None


def swap_day_month(d: date) -> date | None:
    """The date with day and month exchanged, when that is a different valid date."""
    if d.day > 12 or d.day == d.month:
        return None
    try:
        return date(d.year, d.day, d.month)
    except ValueError:
        return None


def birth_year_window(age: object, age_on: object) -> tuple[int, int] | None:
    """Birth years compatible with ``age`` full years on the date ``age_on``.

    Someone aged A on date D was born between D - A - 1 years (+1 day) and
    D - A years, so the window is the two calendar years (Y - A - 1, Y - A)."""
    on = parse_date(age_on)
    if on is None or age is None:
        return None
    try:
        a = int(float(str(age)))
    except (TypeError, ValueError):
        return None
    if not 0 <= a <= 120:
        return None
    return on.year - a - 1, on.year - a


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a year that has none
        return d.replace(year=d.year - years, day=28)


def birth_date_window(age: object, age_on: object) -> tuple[date, date] | None:
    """The first and last possible date of birth of someone aged ``age`` full
    years on ``age_on``: a one-year interval, where :func:`birth_year_window`
    spans two calendar years. A date of birth inside it *is* that age on that
    date, which is far stronger evidence than a matching year."""
    on = parse_date(age_on)
    window = birth_year_window(age, age_on)
    if on is None or window is None:
        return None
    a = on.year - window[1]
    return _years_before(on, a + 1) + timedelta(days=1), _years_before(on, a)


_PHONE_SEPARATORS = re.compile(r"[\s\-.()]+")
_KH_PHONE = re.compile(r"(?:\+855|0)([1-9]\d{7,8})")


def normalise_phone(raw: object, region: str = "KH") -> str | None:
    """E.164 form of a phone number (default region Cambodia), None if invalid."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or text.lower() == "nan":
        return None
    # the common Cambodian forms (0xx..., +855 xx...) directly: the same result
    # as phonenumbers (checked in the tests), at a fraction of its cost
    fast = _KH_PHONE.fullmatch(_PHONE_SEPARATORS.sub("", text)) if region == "KH" else None
    if fast:
        return "+855" + fast.group(1)
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
