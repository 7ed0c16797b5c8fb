"""Numbers as they are written in English prose.

A bounded grammar, parsed by hand rather than by a dependency:

* digits, with thousands separators (``1,234``) and decimals for percentages
  and scaled figures (``1.2 million``); Khmer digits (``២៩០``) count as digits
  (:func:`normalise_digits` maps them to ASCII one character for one, so spans
  in the normalised text are spans in the original);
* number words: ``four``, ``twenty-four``, ``one hundred and four``,
  ``two hundred ninety``, ``a dozen``, ``two dozen``, ``a thousand``,
  ``3 thousand``;
* vague quantities that still state a floor: ``dozens of`` (at least 24),
  ``hundreds of`` (at least 200), ``thousands of`` (at least 2,000);
* percentages (``83%``, ``83 percent``, ``83 per cent``, ``eighty-three
  percent``) and fractions of a whole (``half``, ``a third``, ``two-thirds``,
  ``three quarters``, ``one in five``, ``nine out of ten``), which are read as
  approximate percentages.

Ordinals (``12th``, ``first``) are not numbers, and digits glued to letters
(``G20``, ``COVID-19``, ``15-year-old``) are not counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Khmer digits ០–៩ → ASCII; one character for one, so offsets are kept.
_KHMER_DIGITS = str.maketrans("០១២៣៤៥៦៧៨៩", "0123456789")

UNITS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS: dict[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES: dict[str, int] = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
NUMBER_WORDS = {*UNITS, *TENS, *SCALES, "hundred", "dozen"}

#: Vague plurals that state a floor: "hundreds of victims" means at least 200.
VAGUE: dict[str, int] = {"dozens": 24, "hundreds": 200, "thousands": 2_000}

#: Fractions of a whole, in percent.
FRACTIONS: dict[str, float] = {
    "half": 50.0,
    "third": 100 / 3,
    "thirds": 100 / 3,
    "quarter": 25.0,
    "quarters": 25.0,
    "fourth": 25.0,
    "fourths": 25.0,
    "fifth": 20.0,
    "fifths": 20.0,
    "tenth": 10.0,
    "tenths": 10.0,
}


def normalise_digits(text: str) -> str:
    """Khmer digits to ASCII digits, keeping every offset."""
    return text.translate(_KHMER_DIGITS)


def _clean(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 4)


def parse_digits(text: str) -> int | float:
    """``1,234`` → 1234, ``83.5`` → 83.5, ``២៩០`` → 290 (``ValueError`` for anything else)."""
    raw = normalise_digits(text.strip()).replace(",", "")
    if not re.fullmatch(r"\d+(?:\.\d+)?", raw):
        raise ValueError(f"not a number: {text!r}")
    return _clean(float(raw)) if "." in raw else int(raw)


class _WordNumber:
    """Incremental parser of English number words; refuses words that cannot follow."""

    def __init__(self) -> None:
        self.total = 0
        self.current = 0
        self.last: str | None = None  # unit, teen, tens, hundred, scale, and, a, dozen
        self.scale_seen = 10**12
        self.words = 0

    def feed(self, word: str) -> bool:
        last = self.last
        if word == "a":
            if last is not None:
                return False
            self.last = "a"
            return True
        if word == "and":
            if last not in {"hundred", "scale"}:
                return False
            self.last = "and"
            return True
        if word in UNITS:
            value = UNITS[word]
            kind = "unit" if value < 10 else "teen"
            if last in {"unit", "teen", "a", "dozen"}:
                return False
            if last == "tens" and (kind == "teen" or value == 0):
                return False
            self.current += value
            self.last = kind
            self.words += 1
            return True
        if word in TENS:
            if last in {"unit", "teen", "tens", "a", "dozen"}:
                return False
            self.current += TENS[word]
            self.last = "tens"
            self.words += 1
            return True
        if word == "hundred":
            if last not in {None, "unit", "teen", "a"} or self.current % 100 >= 100:
                return False
            self.current = max(self.current, 1) * 100
            self.last = "hundred"
            self.words += 1
            return True
        if word == "dozen":
            if last not in {"a", "unit", "teen"}:
                return False
            self.current = max(self.current, 1) * 12
            self.last = "dozen"
            self.words += 1
            return True
        if word in SCALES:
            scale = SCALES[word]
            if last in {None, "and"} or scale >= self.scale_seen:
                return False
            self.total += max(self.current, 1) * scale
            self.current = 0
            self.scale_seen = scale
            self.last = "scale"
            self.words += 1
            return True
        return False

    @property
    def complete(self) -> bool:
        return self.words > 0 and self.last not in {"a", "and"}

    @property
    def value(self) -> int:
        return self.total + self.current


_WORD = re.compile(r"[A-Za-z]+")


def parse_number_words(text: str) -> int:
    """``one hundred and four`` → 104; ``ValueError`` unless the whole text is one number."""
    words = [w.lower() for w in re.split(r"[\s\-]+", text.strip()) if w]
    parser = _WordNumber()
    for word in words:
        if not parser.feed(word):
            raise ValueError(f"not a number: {text!r}")
    if not parser.complete:
        raise ValueError(f"not a number: {text!r}")
    return parser.value


def parse_number(text: str) -> int | float:
    """Parse one written number: digits (ASCII or Khmer), words, or digits with a scale word.

    >>> parse_number("one hundred and four"), parse_number("1,234"), parse_number("1.2 million")
    (104, 1234, 1200000)
    """
    raw = normalise_digits(text.strip())
    m = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?)\s+(thousand|million|billion)", raw, re.IGNORECASE)
    if m:
        return _clean(float(m[1].replace(",", "")) * SCALES[m[2].lower()])
    if raw and raw[0].isdigit():
        return parse_digits(raw)
    return parse_number_words(raw)


@dataclass(frozen=True)
class NumberMention:
    """A number found in text: where it is, what it says, and how to read it."""

    start: int
    end: int
    text: str
    value: int | float
    #: count, percent, vague (a floor: "hundreds of"), fraction (a percent: "half")
    kind: str = "count"
    #: for a fraction "X in Y" / "X out of Y" with a large Y: the whole (Y)
    whole: int | None = None


# digits not glued to letters: "12th", "G20", "COVID-19" and "15-year-old" are not counts
_DIGITS = re.compile(
    r"(?<![\w.,\-/$#£€៛])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\.?\d)(?![\w])(?!-[A-Za-z])(?!,\d)"
    r"(?:\s+(thousand|million|billion)\b)?",
)
_PERCENT_AFTER = re.compile(r"\s*(%|per\s*cent\b|percent\b|pct\b)", re.IGNORECASE)
_NUMWORD = r"(?:" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b"
_NUMWORD_RUN = re.compile(
    r"\b(?:an?\s+)?" + _NUMWORD + r"(?:[\s\-]+(?:" + _NUMWORD + r"|and\b))*",
    re.IGNORECASE,
)
_VAGUE = re.compile(
    r"\b(tens\s+of\s+thousands|hundreds\s+of\s+thousands|dozens|hundreds|thousands)\s+of\b", re.I
)
_FRACTION = re.compile(
    r"\b(?:(a|an|one|two|three|four|nine|\d)[\s\-]+)?(half|thirds?|quarters?|fourths?|fifths?|tenths?)\b"
    r"(?=\s+(?:of|were|was|are|is|the)\b)",
    re.IGNORECASE,
)
_IN_EVERY = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|\d{1,3}(?:,\d{3})*)\s+(in|out\s+of)\s+(?:every\s+)?"
    r"(two|three|four|five|six|seven|eight|nine|ten|\d{1,3}(?:,\d{3})*)\b(?![,.]\d)",
    re.IGNORECASE,
)


def _word_value(word: str) -> int:
    word = word.lower()
    if word[0].isdigit():
        return int(word.replace(",", ""))
    return UNITS.get(word) or TENS[word]


def find_numbers(text: str, blocked: list[tuple[int, int]] | None = None) -> list[NumberMention]:
    """Every number in ``text`` outside the ``blocked`` spans, in order of position.

    ``text`` should already have Khmer digits normalised (same offsets).
    """
    blocked = list(blocked or [])
    found: list[NumberMention] = []

    def free(start: int, end: int) -> bool:
        return all(end <= b0 or start >= b1 for b0, b1 in blocked)

    def add(mention: NumberMention) -> None:
        found.append(mention)
        blocked.append((mention.start, mention.end))

    for m in _IN_EVERY.finditer(text):
        if not free(m.start(), m.end()):
            continue
        part, whole = _word_value(m[1]), _word_value(m[3])
        if (whole <= 10 or whole == 100) and 0 < part <= whole:
            add(NumberMention(m.start(), m.end(), m[0], _clean(round(100 * part / whole, 1)), "fraction"))
        elif whole > 10 and 0 < part <= whole and m[2].lower() != "in":
            # "241 out of 290 victims": the part is a count, the whole is counted on its own
            add(NumberMention(m.start(1), m.end(1), m[1], part, "count", whole=whole))
    for m in _FRACTION.finditer(text):
        if not free(m.start(), m.end()):
            continue
        lead = (m[1] or "a").lower()
        if m[2].lower() == "half" and lead not in {"a", "an", "one"} and m[1]:
            continue
        count = 1 if lead in {"a", "an", "one"} else _word_value(lead)
        add(
            NumberMention(
                m.start(), m.end(), m[0], _clean(round(count * FRACTIONS[m[2].lower()], 1)), "fraction"
            )
        )
    for m in _VAGUE.finditer(text):
        if free(m.start(), m.end()):
            key = m[1].lower().split()[-1] if "of" in m[1].lower() else m[1].lower()
            floor = VAGUE[key] * (10 if m[1].lower().startswith("tens") else 1)
            if m[1].lower().startswith("hundreds of thousands"):
                floor = 200_000
            add(NumberMention(m.start(1), m.end(1), m[1], floor, "vague"))
    for m in _DIGITS.finditer(text):
        if not free(m.start(), m.end()):
            continue
        value: int | float = parse_digits(m[1] + (m[2] or ""))
        end = m.end()
        if m[3]:
            value = _clean(float(value) * SCALES[m[3].lower()])
        elif m[2]:  # a decimal is a count only with a scale word; else keep it (percent check below)
            pass
        pct = _PERCENT_AFTER.match(text, end)
        if pct:
            add(NumberMention(m.start(), pct.end(), text[m.start() : pct.end()], value, "percent"))
        elif not m[2]:
            add(NumberMention(m.start(), end, text[m.start() : end], value, "count"))
    for m in _NUMWORD_RUN.finditer(text):
        mention = _word_run(text, m.start(), m.end())
        if mention and free(mention.start, mention.end):
            pct = _PERCENT_AFTER.match(text, mention.end)
            if pct:
                mention = NumberMention(
                    mention.start, pct.end(), text[mention.start : pct.end()], mention.value, "percent"
                )
            add(mention)
    return sorted(found, key=lambda n: n.start)


def _word_run(text: str, start: int, end: int) -> NumberMention | None:
    """The longest number that starts a run of number words (the run may hold trailing noise)."""
    parser = _WordNumber()
    last_end = None
    for w in re.finditer(r"[A-Za-z]+", text[start:end]):
        if not parser.feed(w[0].lower()):
            break
        if parser.complete:
            last_end = start + w.end()
    if last_end is None:
        return None
    # "a"/"an" alone is not a number; skip a leading article before a unit ("a four-day raid")
    span = text[start:last_end]
    first = span.split()[0].lower()
    if first in {"a", "an"} and not re.search(r"\b(hundred|thousand|million|dozen)\b", span, re.I):
        return None
    # digits-glued or hyphen compounds: "four-day", "twelve-year-old"
    after = text[last_end : last_end + 2]
    if after.startswith("-") and after[1:2].isalpha():
        return None
    return NumberMention(start, last_end, span, parser.value, "count")
