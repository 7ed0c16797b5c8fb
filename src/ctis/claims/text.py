"""Sentences, masked spans and tokens: the text layer under the claim finder."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ctis.claims.lexicon import AGE_QUALS, Quals
from ctis.claims.numbers import NUMBER_WORDS, NumberMention, find_numbers
from ctis.claims.periods import PeriodMention

# --- sentences -------------------------------------------------------------------------------------

_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "gen",
    "lt",
    "col",
    "sgt",
    "capt",
    "maj",
    "brig",
    "pol",
    "no",
    "nos",
    "art",
    "arts",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "eg",
    "ie",
    "approx",
    "inc",
    "ltd",
    "co",
    "gov",
    "govt",
    "sen",
    "rep",
    "sr",
    "jr",
    "h.e",
    "u.s",
    "u.n",
    "u.k",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "fig",
    "p",
    "pp",
    "para",
    "sec",
    "ch",
    "vol",
    "est",
    "dept",
    "cf",
    "al",
    "ca",
    "c",
    "a.m",
    "p.m",
    "excl",
    "incl",
    "min",
    "max",
    "prof",
    "hon",
    "amb",
    "adm",
    "corp",
    "av",
    "ave",
}
_BOUNDARY = re.compile(r"([.!?។]+)([\"'”’)\]]*)(\s+)(?=[\"“'‘(\[]?[A-Z0-9\u1780-\u17FF•#@])")
_BULLET = re.compile(r"^\s*(?:[-*•▪●►✓✔]|\d{1,2}[.)])\s+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` of ``text``.

    Paragraphs (blank lines), list items and short heading lines end a
    sentence; other single line breaks are soft wraps.  A full stop ends a
    sentence when the next word starts with a capital, a digit or Khmer, unless
    it ends a known abbreviation or an initial.
    """
    spans: list[tuple[int, int]] = []
    # first, hard breaks between lines
    pieces: list[tuple[int, int]] = []
    line_start = 0
    lines = text.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    for k, line in enumerate(lines):
        start = offsets[k]
        if k == 0:
            line_start = start
            continue
        prev = lines[k - 1].rstrip()
        hard = (
            not line.strip()
            or not prev.strip()
            or bool(_BULLET.match(line))
            or prev.endswith((".", "!", "?", ":", ";", "។"))
            or len(prev.strip()) <= 50
        )
        if hard:
            pieces.append((line_start, start - 1))
            line_start = start
    pieces.append((line_start, len(text)))
    for p_start, p_end in pieces:
        chunk = text[p_start:p_end]
        last = 0
        for m in _BOUNDARY.finditer(chunk):
            before = chunk[last : m.start()]
            word = re.findall(r"[\w.]+$", before)
            w = word[0].lower().rstrip(".") if word else ""
            if m.group(1) == "." and (
                w in _ABBREVIATIONS or re.fullmatch(r"[a-z]", w) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", w)
            ):
                continue
            spans.append((p_start + last, p_start + m.end(2)))
            last = m.end()
        spans.append((p_start + last, p_end))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lead = len(seg) - len(seg.lstrip())
        bullet = _BULLET.match(seg[lead:])
        if bullet:
            lead += bullet.end()
        s2, e2 = s + lead, s + len(seg.rstrip())
        if e2 > s2 and re.search(r"\w", text[s2:e2]):
            out.append((s2, e2))
    return out


# --- masks: numbers that are not counts -------------------------------------------------------------

_NW = (
    r"(?:\d{1,3}|(?:"
    + "|".join(
        sorted(NUMBER_WORDS - {"hundred", "thousand", "million", "billion", "dozen"}, key=len, reverse=True)
    )
    + r")(?:-(?:one|two|three|four|five|six|seven|eight|nine))?)"
)
_I = re.IGNORECASE
MASKS: list[re.Pattern[str]] = [
    # ages
    re.compile(
        r"\b(?:aged?|ages)\s+(?:between\s+|from\s+|of\s+|just\s+)?"
        + _NW
        + r"(?:\s*(?:-|–|to|and|or)\s*"
        + _NW
        + r")?(?:\s+years?(?:\s+old)?)?\b",
        _I,
    ),
    re.compile(
        r"\b" + _NW + r"(?:\s*(?:-|–|to|and|or)\s*" + _NW + r")?[\s-]+years?[\s-]+(?:old|of\s+age)\b", _I
    ),
    re.compile(r"\b(?:between|from)\s+" + _NW + r"\s+(?:and|to)\s+" + _NW + r"\s+years?\b", _I),
    re.compile(
        r"\b(?:aged?\s+)?(?:under|below|over|above|younger\s+than|older\s+than|less\s+than)\s+the\s+age\s+of\s+"
        + _NW
        + r"\b",
        _I,
    ),
    re.compile(
        r"\baged?\s+(?:under|below|over|above|younger\s+than|older\s+than|less\s+than|more\s+than|at\s+least)\s+"
        + _NW
        + r"\b",
        _I,
    ),
    # "children under 15", "girls below 16": an age limit after a noun for people
    re.compile(
        r"\b(?:children|minors|victims|persons|girls|women|people|adults|boys|kids|teens|those|youths|men)"
        r"(?P<m>\s+(?:under|below|over|above)\s+" + _NW + r")(?!\d|,\d)\b",
        _I,
    ),
    # labels followed by numbers: articles, tiers, phone lines, roads, ranks...
    re.compile(
        r"\b(?:articles?|art\.?|arts\.?|sections?|sec\.|chapters?|clauses?|paragraphs?|paras?\.?|no\.|nos\.|"
        r"number|numbers|#|tier|level|phase|route|road|highway|street|st\.|room|building|floor|hotlines?|"
        r"line|phone|tel\.?|telephone|call|dial|sms|whatsapp|telegram|code|decree|sub-decree|prakas|law|"
        r"resolution|convention|conventions|protocol|goal|target|sdg|indicator|file|page|pages|p\.|pp\.|"
        r"ref\.?|reference|id|version|grade|km|kilometre|kilometer|ranked|rank|ranking|score|scored|batch|"
        r"box|platoon|division|zone|sector|ward|plot|lot|block|flight|item|annex|appendix|figure|fig\.|"
        r"table|step|stage|category|class|type|model|series|season|episode|volume|vol\.|issue|point|"
        r"session|meeting|day|week|month|year|the\s+top|top|channel|radio|fm|am|extension|ext\.?|pobox|"
        r"p\.o\.\s*box|mou|unit|team|group)\s*(?:#\s*)?\d+(?:[./-]\d+)*(?:\s*(?:and|,|&|to|or|-|–)\s*\d+"
        r"(?:[./-]\d+)*)*\b",
        _I,
    ),
    # years that name laws, plans and foundings, not periods
    re.compile(
        r"\b(?:19|20)\d\d\s+(?:law|laws|act|constitution|convention|protocol|decree|sub-decree|prakas|plan|"
        r"strategy|policy|agreement|memorandum|mou|guidelines?|edition|census|survey|elections?|sea\s+games|"
        r"games|budget|action\s+plan|national\s+action\s+plan)\b",
        _I,
    ),
    re.compile(
        r"\b(?:established|founded|created|set\s+up|adopted|enacted|signed|ratified|promulgated|born|passed|"
        r"amended|formed|established\s+in|since\s+its\s+(?:creation|establishment|founding)\s+in)\s+"
        r"(?:in\s+|on\s+)?(?:[0-3]?\d\s+)?(?:[A-Z][a-z]+\s+)?(?:19|20)\d\d\b",
        _I,
    ),
    # money
    re.compile(
        r"(?:US\s?\$|\$|USD|KHR|€|£|៛|THB|RMB)\s*\d[\d,]*(?:\.\d+)?(?:\s*(?:million|billion|thousand|m|bn|k)"
        r"\b)?",
        _I,
    ),
    re.compile(
        r"\b\d[\d,]*(?:\.\d+)?\s*(?:million\s+|billion\s+|thousand\s+)?(?:dollars|usd|riels?|khr|baht|yuan"
        r"|euros?|ringgit)\b",
        _I,
    ),
    # times of day
    re.compile(r"\b\d{1,2}[:.]\d{2}\s*(?:a\.?m\.?|p\.?m\.?|hrs|h)?(?!\s*%|\d)", _I),
    re.compile(r"\b\d{1,2}\s*(?:a\.m\.|p\.m\.|am|pm)(?!\w)", _I),
    # phone numbers
    re.compile(r"(?:\+\d{1,3}[\s\-]?)?\(?0\d{1,3}\)?[\s\-]\d{2,4}[\s\-]\d{2,4}(?:[\s\-]\d{2,4})?"),
    re.compile(r"\+\d{1,3}[\s\-]?\d{1,4}[\s\-]?\d{2,4}[\s\-]?\d{2,4}(?:[\s\-]?\d{2,4})?"),
    re.compile(r"\b0\d{5,}\b"),
    # hashtags, handles, links, fractions such as 24/7
    re.compile(r"[#@][\w\-]+"),
    re.compile(r"https?://\S+|www\.\S+", _I),
    re.compile(r"\b\d+/\d+\b"),
    # decimals that are not percentages ("SDG 8.7")
    re.compile(r"\b\d+\.\d+(?:\.\d+)*\b(?!\s*(?:%|per\s*cent|percent|million|billion|thousand))", _I),
    # scores and ratios "3-1", "2:1"
    re.compile(r"\b\d{1,2}\s*:\s*\d{1,2}\b(?!\d)"),
]


@dataclass
class Tok:
    start: int
    end: int
    text: str
    low: str
    kind: str  # word, punct, num, period, mask, qual
    num: NumberMention | None = None
    period: int | None = None
    quals: Quals | None = None


@dataclass
class Sentence:
    start: int
    end: int
    text: str
    periods: list[PeriodMention]
    toks: list[Tok]
    string: str  # the token string
    offsets: list[int] = field(default_factory=list)  # token index -> offset in string

    def tok_at(self, offset: int) -> int | None:
        """The index of the token starting at ``offset`` in the token string."""
        return self._starts.get(offset)

    def __post_init__(self) -> None:
        self._starts = {off: i for i, off in enumerate(self.offsets)}
        self._ends = {off + len(self._repr(i)): i for i, off in enumerate(self.offsets)}

    def _repr(self, i: int) -> str:
        return token_repr(self.toks[i])

    def tok_ending(self, offset: int) -> int | None:
        """The index of the token ending at ``offset`` in the token string."""
        return self._ends.get(offset)


def token_repr(t: Tok) -> str:
    if t.kind == "num":
        return "<num>"
    if t.kind == "period":
        return "<period>"
    if t.kind == "mask":
        return "<x>"
    if t.kind == "qual":
        return "<qual>"
    return t.low


_WORD_TOKEN = re.compile(
    r"[A-Za-z\u00C0-\u024F](?:[A-Za-z\u00C0-\u024F'’]|-(?=[A-Za-z0-9]))*|\d+|[^\s\w]|[\u1780-\u17FF]+|_"
)


def tokenise(
    text: str,
    periods: list[PeriodMention],
    blocked: list[tuple[int, int]],
) -> tuple[list[Tok], list[tuple[int, int]]]:
    """Tokens of one sentence (normalised text), with period, age and masked spans as single tokens.

    Returns the tokens and the spans of the masks (for the caller's information).
    """
    specials: list[Tok] = []
    for i, p in enumerate(periods):
        specials.append(
            Tok(p.start, p.end, text[p.start : p.end], text[p.start : p.end].lower(), "period", period=i)
        )
    taken = [(p.start, p.end) for p in periods] + list(blocked)

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for pattern, quals in AGE_QUALS:
        for m in re.finditer(pattern, text, _I):
            if free(m.start(), m.end()):
                specials.append(Tok(m.start(), m.end(), m[0], m[0].lower(), "qual", quals=quals))
                taken.append((m.start(), m.end()))
    masks: list[tuple[int, int]] = []
    for pattern in MASKS:
        for m in pattern.finditer(text):
            s0, e0 = (m.start("m"), m.end("m")) if "m" in pattern.groupindex else (m.start(), m.end())
            while s0 < e0 and text[s0].isspace():
                s0 += 1
            if not (e0 > s0 and free(s0, e0)):
                continue
            taken.append((s0, e0))
            if "m" in pattern.groupindex:  # an age limit CTIS has no figure for: "children under 15"
                limit = text[s0:e0].lower()
                specials.append(Tok(s0, e0, text[s0:e0], limit, "qual", quals={"age": frozenset({limit})}))
            else:
                masks.append((s0, e0))
    for s, e in blocked:
        specials.append(Tok(s, e, text[s:e], text[s:e].lower(), "mask"))
    for s, e in masks:
        specials.append(Tok(s, e, text[s:e], text[s:e].lower(), "mask"))
    for n in find_numbers(text, taken):
        specials.append(Tok(n.start, n.end, n.text, n.text.lower(), "num", num=n))
        taken.append((n.start, n.end))
    specials.sort(key=lambda t: t.start)
    toks: list[Tok] = []
    pos = 0
    for sp in [*specials, None]:
        gap_end = sp.start if sp else len(text)
        for m in _WORD_TOKEN.finditer(text, pos, gap_end):
            word = m[0].replace("’", "'")
            kind = (
                "word"
                if (word[0].isalpha() or word[0] == "_")
                else ("mask" if word[0].isdigit() else "punct")
            )
            toks.append(Tok(m.start(), m.end(), m[0], word.lower(), kind))
        if sp is None:
            break
        toks.append(sp)
        pos = sp.end
    return toks, masks


def token_string(toks: list[Tok]) -> tuple[str, list[int]]:
    parts: list[str] = []
    offsets: list[int] = []
    pos = 0
    for t in toks:
        r = token_repr(t)
        offsets.append(pos)
        parts.append(r)
        pos += len(r) + 1
    return " ".join(parts), offsets
