"""Find statistical claims in English prose, without looking at any data.

For each sentence the finder masks what is not a count (period phrases,
dates, ages, article and phone numbers, money, times), finds the numbers left,
and reads each one through a small grammar:

* ``NUMBER [modifiers] NOUN`` — "290 victims", "104 trafficking and sexual-
  exploitation cases", "four Chinese nationals", "241 women and girls";
* ``NUMBER of whom/them/the M NOUN (were) QUALIFIER`` — "241 of whom were
  women", "134 of the 290 victims were minors";
* ``of whom/including/among them NUMBER (were) QUALIFIER`` — "including four
  foreigners", "of whom 241 female and 134 under 18";
* ``NUMBER were QUALIFIER|VERB`` after a figure — "134 were children";
* ``LABEL: NUMBER``, ``the number of X rose to NUMBER`` — a bare number linked
  to a figure named just before it;
* percentages and fractions — "83% of the victims were women", "women made
  up 83 percent of those rescued", "nearly half were minors".

What is counted comes from the noun and the nearest verb that fits it
(rescued/identified/freed → victims rescued; arrested/detained → suspects
arrested; convicted/sentenced → suspects convicted; …), narrowed by
qualifiers (female, under 18, foreign, a nationality, a province, an offence
type) into a registry metric and, where needed, one breakdown.  The period is
the period phrase next to the figure, else the one in its clause, else the
sentence's, else the one carried over from the previous sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import ClassVar

from ctis.claims import lexicon as lx
from ctis.claims.lexicon import Quals
from ctis.claims.numbers import normalise_digits
from ctis.claims.periods import (
    Context,
    PeriodMention,
    dateline,
    find_periods,
    first_date,
    has_speech_verb,
    period_for,
)
from ctis.claims.text import Sentence, split_sentences, token_string, tokenise
from ctis.domain.periods import Period
from ctis.metrics.registry import METRICS

#: Age bands (CTDC) that make up minors and adults.
MINOR_BANDS = ("0-8", "9-17")
ADULT_BANDS = ("18-20", "21-23", "24-26", "27-29", "30-38", "39-47", "48+")
FOREIGN = "foreign"  # a pseudo-code: every known nationality except KHM


@dataclass(frozen=True)
class Breakdown:
    """One cell (or a sum of cells) of a registry breakdown."""

    dimension: str
    codes: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.dimension}={'+'.join(self.codes)}"


@dataclass
class Claim:
    """A statistical claim found in text, before it is checked."""

    sentence: str
    start: int  # span of the claim phrase in the original text
    end: int
    phrase: str
    claimed: int | float
    comparator: str  # =, >, >=, <, <=, ~, between
    unit: str = "count"  # count, percent, change
    metric: str | None = None
    breakdown: Breakdown | None = None
    #: for percentages: what the percentage is of
    base_metric: str | None = None
    base_breakdown: Breakdown | None = None
    period: Period | None = None
    period_text: str | None = None
    claimed_max: int | float | None = None
    #: why the claim cannot be checked, found before looking at data
    problem: str | None = None


# --- compiled lexicon ------------------------------------------------------------------------------


def _compile(mapping: dict[str, object] | list[tuple[str, object]]) -> list[tuple[re.Pattern[str], object]]:
    items = mapping.items() if isinstance(mapping, dict) else mapping
    return [(re.compile(lx.alternation([pattern])), value) for pattern, value in items]


_VERBS = _compile([(pattern, cls) for cls, pattern in lx.VERBS.items()])
_DOMAIN = _compile(lx.DOMAIN_NOUNS)  # type: ignore[arg-type]
_ACTION = _compile(lx.ACTION_NOUNS)  # type: ignore[arg-type]
_ANCHOR = _compile(lx.ACTION_ANCHORS)  # type: ignore[arg-type]
_PEOPLE = _compile(lx.PEOPLE_NOUNS)  # type: ignore[arg-type]
_QUALW = _compile(lx.QUAL_WORDS)  # type: ignore[arg-type]
_TYPES = _compile(lx.TYPE_WORDS)  # type: ignore[arg-type]
_GENERIC = re.compile(lx.alternation([lx.GENERIC_TYPE]))
_UNIT = re.compile(lx.alternation([lx.UNIT_NOUNS]))
_COMP = _compile(lx.COMPARATORS)  # type: ignore[arg-type]
_SUBSET = re.compile(lx.alternation([lx.SUBSET_MARKERS]))
_COPULA = re.compile(lx.alternation([lx.COPULA]))
_LINKS = re.compile(lx.alternation([lx.LINKS]))
_CHANGE = re.compile(lx.alternation([lx.CHANGE_WORDS]))
_EVENT = re.compile(r"(?<![\w<>-])" + lx.EVENT)
_NATIONAL = re.compile(lx.alternation([lx.NATIONAL]))
_COUNTRY = re.compile(r"(?<![\w<>-])(?:from|in|to|into|at) (?:" + lx.COUNTRIES + r")(?![\w<>-])")
_SPEAKER = re.compile(r"(?:" + lx.PLACE_OF_SPEAKER + r") (?:\S+ )?$")
_BOUNDARY_WORDS = {
    ";",
    ",",
    "(",
    ")",
    "—",
    "–",
    ":",
    "but",
    "while",
    "whereas",
    "although",
    "though",
    "however",
    "compared",
    "meanwhile",
    "|",
    "[",
    "]",
    "/",
    "\u2022",
}
_DETERMINERS = {
    "the",
    "all",
    "its",
    "their",
    "these",
    "those",
    "a",
    "an",
    "total",
    "overall",
    "entire",
    "whole",
}
_PRONOUN_SUBSETS = {"whom", "them", "these", "those", "which", "it"}
_COUNT_NOUN = re.compile(
    r"\s+(?:[a-z\-]+\s+){0,2}?(?:"
    + "|".join([*lx.DOMAIN_NOUNS, *lx.ACTION_NOUNS, *lx.PEOPLE_NOUNS])
    + r")\b",
    re.IGNORECASE,
)


def _is_count(text: str, end: int) -> bool:
    """After a bare year-like number: is it followed by what it counts ("2000 victims")?"""
    m = _COUNT_NOUN.match(text, end)
    return bool(m) and not re.match(r"\s+(?:and|to|-)\b", text[end:])


@dataclass
class _Tags:
    """Lexicon matches over one sentence's tokens: start index -> (end index, value)."""

    verbs: dict[int, tuple[int, str]]
    domain: dict[int, tuple[int, str]]
    action: dict[int, tuple[int, str]]
    anchor: dict[int, tuple[int, str]]
    people: dict[int, tuple[int, Quals]]
    qualw: dict[int, tuple[int, Quals]]
    types: dict[int, tuple[int, str]]
    generic: dict[int, tuple[int, str]]
    unit: dict[int, tuple[int, str]]
    comp_end: dict[int, tuple[int, str]]  # end index -> (start index, comparator)
    subset_end: dict[int, tuple[int, str]]
    copula: dict[int, tuple[int, str]]
    link_end: dict[int, tuple[int, str]]
    change: dict[int, tuple[int, str]]
    provinces: dict[int, tuple[int, str]]
    event: bool
    national: bool
    country: dict[int, tuple[int, str]]


def _match(sent: Sentence, patterns: list[tuple[re.Pattern[str], object]]) -> dict[int, tuple[int, object]]:
    """Longest match at each token: start index -> (end index exclusive, value)."""
    out: dict[int, tuple[int, object]] = {}
    for pattern, value in patterns:
        for m in pattern.finditer(sent.string):
            i = sent.tok_at(m.start())
            j = sent.tok_ending(m.end())
            if i is None or j is None:
                continue
            if i not in out or out[i][0] < j + 1:
                out[i] = (j + 1, value)
    return out


def _by_end(found: dict[int, tuple[int, object]]) -> dict[int, tuple[int, object]]:
    out: dict[int, tuple[int, object]] = {}
    for start, (end, value) in sorted(found.items()):
        if end not in out:  # the longest match ending there ("just over", not "over")
            out[end] = (start, value)
    return out


def _tags(sent: Sentence) -> _Tags:
    one = lambda rx: [(rx, "")]  # noqa: E731
    province_patterns = [
        (re.compile(r"(?<![\w<>-])" + re.escape(name) + r"(?![\w<>-])"), code)
        for name, code in lx.provinces()
    ]
    return _Tags(
        verbs=_match(sent, _VERBS),  # type: ignore[arg-type]
        domain=_match(sent, _DOMAIN),  # type: ignore[arg-type]
        action=_match(sent, _ACTION),  # type: ignore[arg-type]
        anchor=_match(sent, _ANCHOR),  # type: ignore[arg-type]
        people=_match(sent, _PEOPLE),  # type: ignore[arg-type]
        qualw=_match(sent, _QUALW),  # type: ignore[arg-type]
        types=_match(sent, _TYPES),  # type: ignore[arg-type]
        generic=_match(sent, one(_GENERIC)),  # type: ignore[arg-type]
        unit=_match(sent, one(_UNIT)),  # type: ignore[arg-type]
        comp_end=_by_end(_match(sent, _COMP)),  # type: ignore[arg-type]
        subset_end=_by_end(_match(sent, one(_SUBSET))),  # type: ignore[arg-type]
        copula=_match(sent, one(_COPULA)),  # type: ignore[arg-type]
        link_end=_by_end(_match(sent, one(_LINKS))),  # type: ignore[arg-type]
        change=_match(sent, one(_CHANGE)),  # type: ignore[arg-type]
        provinces=_match(sent, province_patterns),  # type: ignore[arg-type]
        event=bool(_EVENT.search(sent.string)),
        national=bool(_NATIONAL.search(sent.string)),
        country=_match(sent, one(_COUNTRY)),  # type: ignore[arg-type]
    )


# --- qualifiers ------------------------------------------------------------------------------------


def _intersect(a: Quals, b: Quals) -> Quals:
    out = dict(a)
    for dim, codes in b.items():
        if dim in out:
            both = out[dim] & codes
            out[dim] = both or codes
        else:
            out[dim] = codes
    return out


_MIXED = "mixed"


def _union(a: Quals, b: Quals) -> Quals | None:
    """Qualifiers of "A and B": None when the two name different kinds of group ("women and children")."""
    if set(a) != set(b):
        return None
    out: Quals = {}
    for dim in a:
        codes = a[dim] | b[dim]
        if lx.COMPLETE.get(dim) == codes or (dim == "nationality" and {"KHM", FOREIGN} <= codes):
            continue
        out[dim] = codes
    return out


@dataclass
class _NP:
    head: str | None  # domain, action, people, unit, ellipsis or None
    value: str | None  # the domain, or the metric of an action noun
    quals: Quals
    start: int
    end: int  # exclusive
    verbs: list[tuple[int, str]]
    mixed: bool = False
    type_code: str | None = None
    generic: bool = False


class _Reader:
    """Reads the claims of one sentence."""

    def __init__(self, sent: Sentence, anchor: tuple[str, Quals] | None):
        self.s = sent
        self.t = sent.toks
        self.n = len(sent.toks)
        self.tags = _tags(sent)
        #: the figure last named: (base metric, qualifiers, token index)
        self.anchor: tuple[str, Quals, int] | None = (anchor[0], anchor[1], -1) if anchor else None
        self.consumed: set[int] = set()

    # -- small helpers --
    def low(self, i: int) -> str:
        return self.t[i].low if 0 <= i < self.n else ""

    def is_boundary(self, i: int) -> bool:
        return self.t[i].low in _BOUNDARY_WORDS

    def clause(self, i: int) -> tuple[int, int]:
        a = i
        while a > 0 and not self.is_boundary(a - 1):
            a -= 1
        b = i
        while b < self.n - 1 and not self.is_boundary(b + 1):
            b += 1
        return a, b + 1

    def distance(self, i: int, j: int) -> int:
        lo, hi = min(i, j), max(i, j)
        penalty = 0
        for k in range(lo, hi):
            if self.is_boundary(k):
                penalty += 2 if self.low(k) in {"—", "–", "(", ")", "[", "]"} else 8
        return hi - lo + penalty

    def nearest_verb(
        self, start: int, end: int, domain: str | None, limit: int = 40, skip: set[int] | None = None
    ) -> tuple[str, int] | None:
        """The nearest verb (class, distance) fitting ``domain`` (any domain when None); 'neg' verbs too."""
        best: tuple[str, int] | None = None
        for i, (_j, cls) in sorted(self.tags.verbs.items()):
            if skip and i in skip:
                continue
            if start <= i < end:
                continue
            fits = (
                cls == "neg"
                or domain is None
                or lx.VERB_DOMAIN.get(cls) == domain
                or (domain == "people" and lx.VERB_DOMAIN.get(cls) in {"victims", "suspects"})
            )
            if not fits:
                continue
            if cls == "neg" and self._neg_is_modifier(i):
                continue
            d = self.distance(i, start if i < start else end - 1)
            if i >= end and cls != "neg":
                # passive or participle after the noun: "victims (were) rescued"
                d = max(d - 1, 0)
                j_after = _j
                if j_after < self.n and (
                    self.t[j_after].kind == "num"
                    or any(s_ == j_after for s_, _v in self.tags.comp_end.values())
                ):
                    d += 2  # "... and convicting 123 traffickers": that verb has its own figure
            if d <= limit and (best is None or d < best[1]):
                best = (str(cls), d)
        return best

    _AUX: ClassVar[set[str]] = {
        "were",
        "was",
        "are",
        "is",
        "been",
        "being",
        "be",
        "had",
        "have",
        "has",
        "got",
        "get",
        "remain",
        "remained",
        "remains",
        "still",
    }

    def _neg_is_modifier(self, i: int) -> bool:
        """'victims working in compounds were rescued': a participle describing the noun, not an event."""
        if self.low(i - 1) in self._AUX:
            return False
        if self.low(i).endswith("ing"):
            return True
        _a, b = self.clause(i)
        for k, (_e, cls) in self.tags.verbs.items():
            if k > i and k < b and cls != "neg" and self.low(k - 1) in self._AUX:
                return True  # "people trafficked to Thailand were rescued"
        return False

    # -- noun phrases --
    def scan_np(self, j: int, allow_skip: int = 4) -> _NP:
        """Read a noun phrase starting at token ``j``."""
        quals: Quals = {}
        verbs: list[tuple[int, str]] = []
        type_code: str | None = None
        generic = False
        k, skipped = j, 0
        while k < self.n and skipped <= allow_skip:
            tok = self.t[k]
            if tok.kind == "qual" and tok.quals is not None:
                quals = _intersect(quals, tok.quals)
                k += 1
                continue
            if tok.kind in {"num", "period"} or (tok.kind == "mask" and tok.low and not tok.low[0].isalpha()):
                break
            if k in self.tags.types:
                end, code = self.tags.types[k]
                type_code = type_code or code
                k = end
                continue
            if k in self.tags.generic:
                generic = True
                k = self.tags.generic[k][0]
                continue
            if k in self.tags.qualw and self._noun_at(self.tags.qualw[k][0]):
                end, value = self.tags.qualw[k]
                quals = _intersect(quals, value)  # type: ignore[arg-type]
                k = end
                continue
            if k in self.tags.people and self._noun_at(self.tags.people[k][0]):
                end, value = self.tags.people[k]  # "Chinese nationals", "Cambodian women"
                quals = _intersect(quals, value)  # type: ignore[arg-type]
                k = end
                continue
            for kind, table in (
                ("action", self.tags.action),
                ("domain", self.tags.domain),
                ("people", self.tags.people),
            ):
                if k in table:
                    end, value = table[k]
                    if kind == "people":
                        quals_here = _intersect(quals, value)  # type: ignore[arg-type]
                        return self._finish_np("people", None, quals_here, j, end, verbs, type_code, generic)
                    return self._finish_np(kind, str(value), quals, j, end, verbs, type_code, generic)
            if k in self.tags.unit:
                return _NP("unit", None, quals, j, self.tags.unit[k][0], verbs)
            if k in self.tags.qualw:
                end, value = self.tags.qualw[k]
                quals = _intersect(quals, value)  # type: ignore[arg-type]
                k = end
                continue
            if k in self.tags.verbs:
                end, cls = self.tags.verbs[k]
                # a participle inside the phrase: "290 rescued victims"; only if a noun follows
                if self._noun_follows(end, 3):
                    verbs.append((k, str(cls)))
                    k = end
                    continue
                break
            if (
                tok.kind == "word"
                and tok.low in {"and", "or", "&"}
                and k > j
                and self._noun_follows(k + 1, 4)
            ):
                k += 1
                continue
            if tok.kind == "punct" and tok.low in {"-", "/"} and k > j:
                k += 1
                continue
            if tok.kind == "word" and tok.low not in lx.STOP_WORDS and k not in self.tags.copula:
                skipped += 1
                k += 1
                continue
            break
        if quals:
            return _NP("ellipsis", None, quals, j, k, verbs, type_code=type_code, generic=generic)
        return _NP(None, None, {}, j, j, verbs, type_code=type_code, generic=generic)

    def _noun_at(self, k: int) -> bool:
        return k in self.tags.domain or k in self.tags.people or k in self.tags.action

    def _noun_follows(self, k: int, within: int) -> bool:
        for x in range(k, min(self.n, k + within + 1)):
            if (
                x in self.tags.domain
                or x in self.tags.people
                or x in self.tags.action
                or x in self.tags.qualw
            ):
                return True
            if self.t[x].kind in {"num", "period"} or self.is_boundary(x) or self.low(x) in lx.STOP_WORDS:
                return False
        return False

    def _finish_np(
        self,
        head: str,
        value: str | None,
        quals: Quals,
        start: int,
        end: int,
        verbs: list[tuple[int, str]],
        type_code: str | None,
        generic: bool,
    ) -> _NP:
        np = _NP(head, value, quals, start, end, verbs, type_code=type_code, generic=generic)
        # "women and children", "men, women and children": a union of groups
        k = end
        while k + 1 < self.n and self.low(k) in {"and", "or", ",", "&"}:
            nxt = k + 1
            if nxt in self.tags.qualw and self.tags.qualw[nxt][0] in self.tags.people:
                nxt_end = self.tags.people[self.tags.qualw[nxt][0]][0]
                other = _intersect(self.tags.qualw[nxt][1], self.tags.people[self.tags.qualw[nxt][0]][1])  # type: ignore[arg-type]
            elif nxt in self.tags.people:
                nxt_end, other = self.tags.people[nxt]  # type: ignore[assignment]
            else:
                break
            if head == "domain" and not other:
                break
            merged = _union(np.quals, other)  # type: ignore[arg-type]
            if merged is None:
                np.mixed = True
            else:
                np.quals = merged
            np.end = nxt_end
            k = nxt_end
        # post-modifiers: "victims under 18", "suspects of foreign nationality", "cases of forced labour"
        k = np.end
        steps = 0
        while k < self.n and steps < 4:
            tok = self.t[k]
            if tok.kind == "qual" and tok.quals is not None:
                np.quals = _intersect(np.quals, tok.quals)
                np.end = k + 1
            elif k in self.tags.qualw and self.low(k) in {"of", "from"}:
                end, value = self.tags.qualw[k]
                np.quals = _intersect(np.quals, value)  # type: ignore[arg-type]
                np.end = end
                k = end
                continue
            elif (
                self.low(k) in {"of", "involving", "concerning", "for"}
                and k + 1 < self.n
                and (k + 1 in self.tags.types or k + 1 in self.tags.generic)
            ):
                if k + 1 in self.tags.types:
                    np.type_code = np.type_code or str(self.tags.types[k + 1][1])
                    np.end = self.tags.types[k + 1][0]
                else:
                    np.generic = True
                    np.end = self.tags.generic[k + 1][0]
                k = np.end
                continue
            elif self.low(k) in {"aged", "who", "were"} or tok.kind == "mask":
                pass
            else:
                break
            k += 1
            steps += 1
        return np

    def skip_paren(self, k: int) -> int:
        """Past a parenthesis right after a figure: '241 (83%) were female'."""
        if self.low(k) == ")":
            return k + 1
        if self.low(k) == "(":
            for x in range(k + 1, min(self.n, k + 7)):
                if self.low(x) == ")":
                    return x + 1
        return k

    def predicate(self, k: int) -> tuple[Quals, str | None, int, bool]:
        """After a subset figure: '(were) women', '(were) under 18', 'were repatriated'.

        Returns (qualifiers, verb class, end index, anything found).
        """
        k = self.skip_paren(k)
        if k < self.n and k in self.tags.copula:
            k = self.tags.copula[k][0]
        quals: Quals = {}
        verb: str | None = None
        found = False
        steps = 0
        while k < self.n and steps < 6 and not self.is_boundary(k):
            tok = self.t[k]
            if tok.kind == "qual" and tok.quals is not None:
                quals = _intersect(quals, tok.quals)
                found = True
                k += 1
            elif k in self.tags.people:
                end, value = self.tags.people[k]
                quals = _intersect(quals, value)  # type: ignore[arg-type]
                found = True
                k = end
                # "women and girls", "women and children"
                if self.low(k) in {"and", "or"} and k + 1 in self.tags.people:
                    end2, value2 = self.tags.people[k + 1]
                    merged = _union(quals, value2)  # type: ignore[arg-type]
                    quals = merged if merged is not None else {"mixed": frozenset({_MIXED})}
                    k = end2
            elif k in self.tags.qualw:
                end, value = self.tags.qualw[k]
                quals = _intersect(quals, value)  # type: ignore[arg-type]
                found = True
                k = end
            elif k in self.tags.verbs and self.tags.verbs[k][1] != "neg":
                end, cls = self.tags.verbs[k]
                verb = verb or str(cls)
                found = True
                k = end
            elif tok.kind == "word" and tok.low in {
                "a",
                "an",
                "the",
                "aged",
                "all",
                "female",
                "and",
                "also",
                "reportedly",
                "identified",
                "as",
                "said",
                "to",
                "be",
            }:
                k += 1
            elif tok.kind == "num":
                break
            elif tok.kind in {"period", "mask"} or (not found and tok.low in {"in", "during", "for", "over"}):
                k += 1
                continue
            else:
                if found:
                    break
                k += 1
            steps += 1
        return quals, verb, k, found

    def resolve_base(self, np: _NP, subset: bool) -> tuple[str | None, str | None]:
        """(base metric, problem) of a noun phrase: what it counts, before qualifiers."""
        if np.head == "action":
            return np.value, None
        inner = [cls for _i, cls in np.verbs if cls != "neg"]
        if np.head == "domain":
            domain = np.value
            if inner and lx.VERB_DOMAIN.get(inner[0]) == domain:
                return lx.VERB_METRIC[inner[0]], None
            if subset and self.anchor and lx.METRIC_DOMAIN.get(self.anchor[0]) == domain:
                return self.anchor[0], None
            verb = self.nearest_verb(np.start, np.end, domain, skip={i for i, _c in np.verbs})
            if verb and verb[0] == "neg" and verb[1] <= 4:
                return None, f"no metric counts {domain} described as {self._verb_text(np, 'neg')!r}"
            if verb and verb[0] != "neg":
                return lx.VERB_METRIC[verb[0]], None
            return lx.DOMAIN_DEFAULT[str(domain)], None
        # people and elliptical phrases: the verb or the context says what they are
        if inner:
            return lx.VERB_METRIC[inner[0]], None
        if subset and self.anchor:
            return self.anchor[0], None
        verb = self.nearest_verb(np.start, np.end, "people", limit=14)
        if verb and verb[0] != "neg":
            return lx.VERB_METRIC[verb[0]], None
        if verb and verb[0] == "neg" and verb[1] <= 4:
            return None, None
        if self.anchor:
            return self.anchor[0], None
        return None, None

    def _verb_text(self, np: _NP, cls: str) -> str:
        best = None
        for i, (j, c) in self.tags.verbs.items():
            if c == cls and (best is None or abs(i - np.end) < abs(best[0] - np.end)):
                best = (i, j)
        if best is None:
            return cls
        return " ".join(t.text for t in self.t[best[0] : best[1]])

    def province_quals(self, a: int, b: int) -> Quals:
        """'in Siem Reap', 'Siem Reap provincial police': a province named in the claim's clause."""
        if self.tags.national:
            return {}
        ca, cb = self.clause(a)
        cb = max(cb, self.clause(b - 1)[1]) if b > a else cb
        codes: set[str] = set()
        for i, (end, code) in self.tags.provinces.items():
            if not (ca <= i < cb):
                continue
            before = self.low(i - 1)
            after = " ".join(self.low(x) for x in range(end, min(end + 4, self.n)))
            lead = " ".join(self.low(x) for x in range(max(0, i - 3), i - 1)) + " "
            if re.match(r"(?:province |city |municipality )?(?:" + lx.SPEECH_AFTER + r")\b", after):
                continue  # "police in Phnom Penh said": where the speaker is
            if (before in {"in", "of", "across", "throughout"} and not _SPEAKER.search(lead)) or re.match(
                r"(?:province |provincial |municipal |city )?(?:police|authorities|officials|court|"
                r"department|anti-trafficking|military police|gendarmerie)",
                after,
            ):
                codes.add(str(code))
        if not codes:
            named = [str(code) for i, (_e, code) in self.tags.provinces.items()]
            window = " ".join(self.low(k) for k in range(ca, cb))
            if len(set(named)) == 1 and re.search(
                r"\bin (?:the|that|this) (?:province|city|capital)\b", window
            ):
                codes.add(named[0])
            lead = [
                (i, str(code))
                for i, (_e, code) in self.tags.provinces.items()
                if i <= 2 and self.low(i - 1) == "in" and self.is_boundary(_e)
                if _e < self.n
            ]
            if lead and not codes:
                codes.add(lead[0][1])
        return {"province": frozenset(codes)} if codes else {}

    def country_problem(self, a: int, b: int) -> str | None:
        ca, cb = self.clause(a)
        for i, (end, _v) in self.tags.country.items():
            if ca <= i < cb or a <= i < b + 3:
                place = " ".join(t.text for t in self.t[i:end])
                return f"a figure for one country of exploitation ({place!r}): CTIS has no such breakdown"
        return None


# --- resolving qualifiers to a metric and a breakdown ----------------------------------------------


def resolve_metric(
    base: str, quals: Quals, type_code: str | None = None
) -> tuple[str | None, Breakdown | None, str | None]:
    """(metric, breakdown, problem) for a base metric narrowed by qualifiers."""
    quals = {d: c for d, c in quals.items() if c}
    if "mixed" in quals:
        return None, None, "a mixed group (such as 'women and children') matches no single metric"
    metric = base
    left = dict(quals)
    if type_code:
        left["type"] = frozenset({type_code})
    if base == "victims_rescued":
        if left.get("age") == frozenset({"minor"}):
            metric = "victims_rescued_minor"
            left.pop("age")
        elif left.get("sex") == frozenset({"female"}):
            metric = "victims_rescued_female"
            left.pop("sex")
    if base == "suspects_arrested" and left.get("nationality") == frozenset({FOREIGN}):
        metric = "suspects_arrested_foreign"
        left.pop("nationality")
    odd_ages = sorted(left.get("age", frozenset()) - {"minor", "adult"})
    if odd_ages:
        return metric, None, f"no metric or age band counts people {odd_ages[0]!r}"
    if not left:
        return metric, None, None
    if len(left) > 1:
        dims = " and ".join(sorted(left))
        return metric, None, f"needs a cross-tabulation by {dims}, which the registry does not provide"
    dim, codes = next(iter(left.items()))
    registry_dim, values = _breakdown(metric, dim, codes)
    if registry_dim not in METRICS[metric].dimensions:
        return metric, None, f"{metric} has no breakdown by {registry_dim.replace('_', ' ')}"
    return metric, Breakdown(registry_dim, values), None


def _breakdown(metric: str, dim: str, codes: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    if dim == "age":
        bands: list[str] = []
        if "minor" in codes:
            bands += MINOR_BANDS
        if "adult" in codes:
            bands += ADULT_BANDS
        return "age_band", tuple(bands)
    if dim == "type":
        return ("offence_type" if metric == "cases_cracked_down" else "exploitation_type"), tuple(
            sorted(codes)
        )
    return dim, tuple(sorted(codes))


# --- the finder ------------------------------------------------------------------------------------


@dataclass
class _State:
    ctx: Context
    carried: PeriodMention | None = None
    anchor: tuple[str, Quals] | None = None


def reference_date(text: str, as_of: date | None) -> tuple[date | None, tuple[int, int] | None]:
    """The date relative phrases are read against, and the dateline's span (masked as a non-figure)."""
    text = _normalise(text)
    found = dateline(text)
    span = (found[1], found[2]) if found else None
    if as_of is not None:
        return as_of, span
    return (found[0] if found else first_date(text)), span


def extract_claims(text: str, as_of: date | None = None) -> list[Claim]:
    """The statistical claims in ``text``, each mapped to a metric, a period and a claimed value."""
    norm = _normalise(text)
    ref, dl_span = reference_date(norm, as_of)
    state = _State(Context(ref))
    claims: list[Claim] = []
    for s_start, s_end in split_sentences(norm):
        claims.extend(_sentence_claims(norm, text, s_start, s_end, state, dl_span))
    return claims


_TRANSLATE = str.maketrans(
    {
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2212": "-",
        "\t": " ",
    }
)


def _normalise(text: str) -> str:
    """Khmer digits, spaces, quotes and hyphens made plain; one character for one."""
    return normalise_digits(text).translate(_TRANSLATE)


def _sentence_claims(
    norm: str, original: str, s_start: int, s_end: int, state: _State, dl_span: tuple[int, int] | None
) -> list[Claim]:
    text = norm[s_start:s_end]
    blocked: list[tuple[int, int]] = []
    if dl_span and s_start <= dl_span[0] < s_end:
        blocked.append((dl_span[0] - s_start, min(dl_span[1], s_end) - s_start))
    periods = [p for p in find_periods(text, state.ctx, _is_count) if not _overlaps(p, blocked)]
    toks, _masks = tokenise(text, periods, blocked)
    string, offsets = token_string(toks)
    sent = Sentence(s_start, s_end, original[s_start:s_end], periods, toks, string, offsets)
    reader = _Reader(sent, state.anchor)
    usable = _usable_periods(sent, reader, state)
    claims: list[Claim] = []
    for i, tok in enumerate(toks):
        if tok.kind == "num" and i not in reader.consumed:
            claim = _read_number(reader, i)
            if claim is None:
                continue
            claim_tokens = claim["tokens"]
            reader.consumed.update(
                k
                for k in range(claim_tokens[0], claim_tokens[1])
                if toks[k].kind != "num"  # type: ignore[index]
            )
            c = _make_claim(sent, original, claim)
            _assign_period(reader, c, claim_tokens, usable, state)  # type: ignore[arg-type]
            claims.append(c)
        elif tok.kind in {"word"}:
            _maybe_anchor(reader, i)
    # the period and the figure carried to the next sentence
    main = [p for idx, p in usable if not p.comparison]
    if main:
        state.carried = main[-1].mention
        if main[-1].mention.period is not None:
            state.ctx = replace(state.ctx, year=main[-1].mention.period.end.year)
    if reader.anchor:
        state.anchor = (reader.anchor[0], reader.anchor[1])
    return claims


def _overlaps(p: PeriodMention, spans: list[tuple[int, int]]) -> bool:
    return any(not (p.end <= a or p.start >= b) for a, b in spans)


@dataclass
class _UsablePeriod:
    mention: PeriodMention
    comparison: bool


def _usable_periods(sent: Sentence, reader: _Reader, state: _State) -> list[tuple[int, _UsablePeriod]]:
    """Period tokens that may date a claim: (token index, period), with comparisons marked."""
    out: list[tuple[int, _UsablePeriod]] = []
    non_day = [p for p in sent.periods if p.kind != "day"]
    speech = has_speech_verb(sent.text)
    resolved_any = any(p.period is not None and p.kind != "day" for p in sent.periods)
    main: PeriodMention | None = state.carried
    for i, tok in enumerate(sent.toks):
        if tok.kind != "period" or tok.period is None:
            continue
        p = sent.periods[tok.period]
        if p.kind == "day" and (non_day or speech):
            continue
        if (
            p.period is None
            and p.kind == "period"
            and resolved_any
            and (p.reason or "").startswith("vague")
            and re.search(r"recently|lately|so far|to date", p.text, re.IGNORECASE)
        ):
            continue
        if (
            p.period is None
            and resolved_any
            and re.search(r"reporting period|review period|period under review", p.text, re.IGNORECASE)
        ):
            continue  # "the reporting period, which ran from April 2023 to March 2024"
        if (
            p.period is None
            and (p.reason or "").startswith("vague")
            and i + 1 < len(sent.toks)
            and sent.toks[i + 1].kind == "period"
            and sent.periods[sent.toks[i + 1].period].period is not None
        ):  # type: ignore[index]
            continue  # "the reporting period April 2022 to March 2023"
        comparison = _is_comparison(reader, i)
        if p.kind == "same_period":
            p = _shift(p, main)
        out.append((i, _UsablePeriod(p, comparison)))
        if not comparison:
            main = p
    return out


def _shift(p: PeriodMention, main: PeriodMention | None) -> PeriodMention:
    if main is None or main.period is None:
        return replace(p, reason=f"{p.text!r} needs the period it refers to", kind="period")
    base = main.period
    # a negative shift is an explicit year ("the same period of 2023")
    years = base.start.year - (-p.shift_years) if p.shift_years < 0 else p.shift_years
    start = _minus_years(base.start, years)
    end = _minus_years(base.end + timedelta(days=1), years) - timedelta(days=1)
    return replace(p, period=period_for(start, end), kind="period")


def _minus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


_CHANGE_VERBS = {
    "up",
    "down",
    "rose",
    "risen",
    "increased",
    "fell",
    "fallen",
    "dropped",
    "grew",
    "grown",
    "declined",
    "jumped",
    "climbed",
    "decreased",
    "increase",
    "decrease",
    "rise",
    "drop",
    "fall",
    "change",
    "changed",
}


def _is_comparison(reader: _Reader, i: int) -> bool:
    """A period something is compared with: 'up from 232 in 2023', 'more than in 2023', 'compared with'."""
    a, _b = reader.clause(i)
    lo = max(a, i - 6)
    for k in range(lo, i):
        w = reader.low(k)
        if w == "compared":
            return True
        if w in {"versus", "vs", "vs.", "against"} and any(
            reader.t[x].kind in {"num", "period"} for x in range(k + 1, min(reader.n, k + 3))
        ):
            return True
        if w == "than" and not (k + 1 < reader.n and reader.t[k + 1].kind == "num"):
            return True  # "more than in 2023", but not "more than 600"
        if w == "from" and (
            reader.low(k - 1) in _CHANGE_VERBS or (k + 1 < reader.n and reader.t[k + 1].kind == "num")
        ):
            return True
    return a > 0 and reader.low(a - 1) == "compared"


def _maybe_anchor(reader: _Reader, i: int) -> None:
    """A noun naming a figure without a number ("the number of victims rescued", "Arrests:")."""
    tags = reader.tags
    if i in reader.consumed:
        return
    if i in tags.anchor and i not in tags.action:
        metric = str(tags.anchor[i][1])
        quals = _quals_before(reader, i)
        end = tags.anchor[i][0]
        if reader.low(end) == "of" and end + 1 in tags.people:
            quals = _intersect(quals, tags.people[end + 1][1])  # type: ignore[arg-type]
            reader.consumed.update(range(end, tags.people[end + 1][0]))
        reader.anchor = (metric, quals, i)
        return
    if i in tags.action:
        quals = _quals_before(reader, i)
        end = tags.action[i][0]
        if reader.low(end) == "of" and end + 1 in tags.people:  # "arrests of foreigners"
            quals = _intersect(quals, tags.people[end + 1][1])  # type: ignore[arg-type]
            reader.consumed.update(range(end, tags.people[end + 1][0]))
        reader.anchor = (str(tags.action[i][1]), quals, i)
        return
    if i in tags.domain:
        end, domain = tags.domain[i]
        if domain == "cases" and (i - 1 in tags.generic or any(e == i for e, _v in tags.types.values())):
            return  # "convicted of trafficking offences": what they did, not a figure
        np = _NP("domain", str(domain), _quals_before(reader, i), i, end, [])
        np = reader._finish_np("domain", str(domain), np.quals, i, end, [], None, False)
        base, _problem = reader.resolve_base(np, subset=False)
        quals = dict(np.quals)
        if np.type_code and not np.generic:
            quals["type"] = frozenset({np.type_code})  # "the number of cases involving forced labour"
        if base:
            reader.anchor = (base, quals, i)
        return
    if i in tags.people:
        end, quals = tags.people[i]
        verb = reader.nearest_verb(i, end, None, limit=4)
        if verb and verb[0] != "neg":
            reader.anchor = (lx.VERB_METRIC[verb[0]], _intersect(_quals_before(reader, i), quals), i)  # type: ignore[arg-type]


def _quals_before(reader: _Reader, i: int) -> Quals:
    quals: Quals = {}
    for _start, (end, value) in reader.tags.qualw.items():
        if end == i or (end == i - 1 and reader.low(i - 1) in {"-"}):
            quals = _intersect(quals, value)  # type: ignore[arg-type]
    return quals


def _read_number(reader: _Reader, i: int) -> dict[str, object] | None:
    """Read the figure at token ``i``; None when it is not a claim."""
    t = reader.t
    tok = t[i]
    num = tok.num
    assert num is not None  # noqa: S101
    tags = reader.tags
    if num.kind == "count" and re.match(r"0\d", num.text):
        return None
    if num.kind == "count" and isinstance(num.value, float):
        return None
    if (
        num.kind == "count"
        and num.value <= 10
        and reader.low(i - 1) in {"the", "these", "those", "both", "all"}
        and reader.low(i + 1) != "of"
    ):
        return None  # "the two suspects": people already named, not a figure
    # the comparator, and a subset marker before it
    comparator = {"vague": ">=", "fraction": "~"}.get(num.kind, "=")
    first = i
    if i in tags.comp_end:
        cstart, symbol = tags.comp_end[i]
        comparator, first = str(symbol), cstart
    subset = first in tags.subset_end  # "including four foreigners", "of whom 241 ..."
    subset_start = tags.subset_end[first][0] if first in tags.subset_end else first
    # a range: "between 200 and 300 victims"
    claimed_max: int | float | None = None
    j = i + 1
    if (
        reader.low(i - 1) == "between"
        and reader.low(i + 1) == "and"
        and i + 2 < reader.n
        and t[i + 2].kind == "num"
    ):
        claimed_max = t[i + 2].num.value  # type: ignore[union-attr]
        comparator = "between"
        first = i - 1
        reader.consumed.add(i + 2)
        j = i + 3
    if num.kind == "vague" and reader.low(j) == "of":
        j += 1
    # differences: "12 more victims than last year", "an increase of 50"
    change = _is_change_before(reader, first)
    if reader.low(j) in lx.DIFFERENCE_WORDS:
        if any(reader.low(k) == "than" for k in range(j + 1, min(reader.n, j + 4))) or reader.low(j) in {
            "higher",
            "lower",
        }:
            change = True  # "12 more victims than last year"
        else:
            j += 1  # "82 more were convicted", "12 additional victims": a count of further ones
    if num.kind in {"percent", "fraction"}:
        return _read_percent(reader, i, first, comparator, change)
    np = reader.scan_np(j)
    if np.head == "unit":
        return None
    np.start = first  # verbs are measured from the figure itself
    if (
        num.value == 1
        and comparator == "="
        and np.head in {"domain", "people"}
        and not reader.t[np.end - 1].low.endswith("s")
        and not subset
    ):
        return None  # "one victim, a 16-year-old girl, ...": a person, not a figure
    if change:
        base = _base_for_change(reader, np)
        if base is None:
            return None
        return _claim(
            reader,
            i,
            first,
            max(np.end, j),
            num.value,
            comparator,
            base,
            {},
            None,
            unit="change",
            problem="a change between periods: CTIS checks totals, not changes (yet)",
        )
    of_frame = np.head is None and (reader.low(j) == "of" or num.whole is not None)
    if of_frame:
        return _read_of_frame(reader, i, first, j, comparator, claimed_max)
    if np.head is None:
        return _read_bare(reader, i, first, j, comparator, subset, claimed_max)
    # a noun phrase: "290 victims", "four foreigners", "241 female"
    base, problem = reader.resolve_base(np, subset or np.head in {"ellipsis"})
    if base is None and problem is None:
        return None
    quals = dict(np.quals)
    end = np.end
    if np.head in {"ellipsis", "people"} and (subset or np.head == "ellipsis"):
        more, verb, pend, found = reader.predicate(np.end)
        if found and pend - np.end <= 4:
            quals = _intersect(quals, more)
            if verb and base and lx.VERB_DOMAIN.get(verb) == lx.METRIC_DOMAIN.get(base):
                base = lx.VERB_METRIC[verb]
            end = pend
    if np.mixed:
        quals["mixed"] = frozenset({_MIXED})
    type_code = None if np.generic else np.type_code
    claim = _claim(
        reader,
        i,
        min(first, subset_start if subset else first),
        end,
        num.value,
        comparator,
        base,
        quals,
        type_code,
        problem=problem,
        claimed_max=claimed_max,
    )
    if base and ((not subset and np.head in {"domain", "action", "people"}) or reader.anchor is None):
        reader.anchor = (base, {}, i)
    return claim


def _is_change_before(reader: _Reader, first: int) -> bool:
    """'an increase of 50', 'up by 12', 'rose by 30'."""
    k = first - 1
    if reader.low(k) in {"by", "of"} and k - 1 >= 0 and (k - 1) in reader.tags.change:
        return True
    return (
        reader.low(k) == "by"
        and k - 1 >= 0
        and reader.t[k - 1].kind == "word"
        and (reader.low(k - 1).endswith("ed") or reader.low(k - 1) in {"rose", "fell", "grew", "up", "down"})
    )


def _base_for_change(reader: _Reader, np: _NP) -> str | None:
    if np.head in {"domain", "action", "people", "ellipsis"}:
        base, _p = reader.resolve_base(np, subset=False)
        return base
    return reader.anchor[0] if reader.anchor else None


def _read_of_frame(
    reader: _Reader, i: int, first: int, j: int, comparator: str, claimed_max: int | float | None
) -> dict[str, object] | None:
    """'241 of whom were women', '134 of the 290 victims were minors', '241 out of 290 victims were women'."""
    num = reader.t[i].num
    assert num is not None  # noqa: S101
    k = j
    if reader.low(k) == "out" and reader.low(k + 1) == "of":
        k += 2
    elif reader.low(k) == "of":
        k += 1
    base: str | None = None
    if (
        reader.low(k) in {"those", "these"}
        and k + 1 in reader.tags.verbs
        and reader.tags.verbs[k + 1][1] != "neg"
    ):
        k += 1
    if reader.low(k) in _PRONOUN_SUBSETS:
        if num.value == 1 and reader.low(i) == "one" and reader.low(k) not in {"whom", "them"}:
            return None
        base = reader.anchor[0] if reader.anchor else None
        k += 1
        base_quals: Quals = {}
    else:
        if reader.low(i) == "one":
            return None
        while reader.low(k) in _DETERMINERS:
            k += 1
        if k < reader.n and reader.t[k].kind == "num":
            k += 1
        if k in reader.tags.verbs:  # "of those rescued"
            cls = str(reader.tags.verbs[k][1])
            if cls == "neg":
                return None
            base = lx.VERB_METRIC[cls]
            k = reader.tags.verbs[k][0]
            base_quals = {}
        else:
            np = reader.scan_np(k, allow_skip=2)
            if np.head not in {"domain", "action", "people"}:
                return None
            base, _problem = reader.resolve_base(np, subset=True)
            base_quals = np.quals
            k = np.end
            # "of the victims rescued", "of the suspects arrested"
            if k in reader.tags.verbs and reader.tags.verbs[k][1] != "neg":
                cls = str(reader.tags.verbs[k][1])
                if base and lx.VERB_DOMAIN.get(cls) == lx.METRIC_DOMAIN.get(base):
                    base = lx.VERB_METRIC[cls]
                k = reader.tags.verbs[k][0]
    if base is None:
        return None
    quals, verb, end, found = reader.predicate(k)
    if not found:
        subject = _subject_quals(reader, first)  # "minors accounted for 134 of the 290 victims"
        if not subject:
            return None
        quals, end = subject, k
    if verb and lx.VERB_DOMAIN.get(verb) == lx.METRIC_DOMAIN.get(base):
        base = lx.VERB_METRIC[verb]
    return _claim(
        reader,
        i,
        first,
        end,
        num.value,
        comparator,
        base,
        _intersect(base_quals, quals),
        None,
        claimed_max=claimed_max,
    )


def _read_bare(
    reader: _Reader,
    i: int,
    first: int,
    j: int,
    comparator: str,
    subset: bool,
    claimed_max: int | float | None,
) -> dict[str, object] | None:
    """A number with no noun: '134 were minors', '290 were rescued', 'Arrests: 134', 'rose to 290'."""
    num = reader.t[i].num
    assert num is not None  # noqa: S101
    tags = reader.tags
    # "134 were minors", "of whom 241 were female", "290 were rescued"
    if reader.low(j) == "(" and reader.skip_paren(j) in tags.copula:
        j = reader.skip_paren(j)
    if j in tags.copula or subset:
        quals, verb, end, found = reader.predicate(j)
        if found and (quals or verb):
            base = None
            if verb and verb != "neg":
                base = lx.VERB_METRIC[verb]
                if (
                    reader.anchor
                    and lx.METRIC_DOMAIN.get(reader.anchor[0]) == lx.VERB_DOMAIN[verb]
                    and not quals
                ):
                    base = lx.VERB_METRIC[verb]
            elif reader.anchor:
                base = reader.anchor[0]
            if base is None:
                return None
            if verb is None and not subset and reader.anchor and reader.anchor[2] == -1 and not quals:
                return None
            return _claim(
                reader, i, first, end, num.value, comparator, base, quals, None, claimed_max=claimed_max
            )
    # "they convicted 138.", "police rescued 290 and arrested 134"
    if first - 1 in tags.verbs or any(end == first and v != "neg" for _s, (end, v) in tags.verbs.items()):
        cls = next((str(v) for s_, (end, v) in tags.verbs.items() if end == first), None)
        nxt = reader.t[j] if j < reader.n else None
        if (
            cls
            and cls != "neg"
            and (nxt is None or nxt.kind in {"punct", "period"} or nxt.low in {"in", "during", "and", "for"})
        ):
            return _claim(
                reader,
                i,
                first,
                j,
                num.value,
                comparator,
                lx.VERB_METRIC[cls],
                {},
                None,
                claimed_max=claimed_max,
            )
    # a list of figures: "384 in 2022, 496 in 2023 and 616 in 2024"
    nxt_period = j < reader.n and (
        reader.t[j].kind == "period"
        or (
            reader.low(j) in {"in", "during", "for"} and j + 1 < reader.n and reader.t[j + 1].kind == "period"
        )
    )
    if (
        nxt_period
        and reader.low(first - 1) in {",", ";", "and"}
        and reader.anchor is not None
        and reader.anchor[2] >= 0
    ):
        base, quals, _pos = reader.anchor
        return _claim(reader, i, first, j, num.value, comparator, base, quals, None, claimed_max=claimed_max)
    # a figure linked to a label named before it
    if first in tags.link_end and reader.anchor is not None and reader.anchor[2] >= 0:
        lstart, _ = tags.link_end[first]
        if i - reader.anchor[2] > 14 and reader.low(lstart) not in {":", "-", "–", "—"}:
            return None
        # a list item such as "Victims rescued: 290" or "rose to 290"
        if reader.low(j) in {"more", "fewer", "less"}:
            return None
        nxt = reader.t[j] if j < reader.n else None
        if (
            nxt is not None
            and nxt.kind == "word"
            and nxt.low not in lx.STOP_WORDS
            and j not in tags.verbs
            and j not in tags.copula
            and nxt.low not in {"and", "or"}
        ):
            return None
        base, quals, _pos = reader.anchor
        label = _label_quals(reader, lstart)
        if label and reader.low(lstart) in {":", "-", "–", "—"}:
            quals = _intersect(quals, label)  # "Victims: 290 (women: 241; under 18: 134)"
        return _claim(reader, i, first, j, num.value, comparator, base, quals, None, claimed_max=claimed_max)
    return None


def _label_quals(reader: _Reader, lstart: int) -> Quals:
    """Qualifiers of a label ending right before ``lstart``: 'under 18: 134', 'women: 241'."""
    k = lstart - 1
    if k < 0:
        return {}
    if reader.t[k].kind == "qual" and reader.t[k].quals:
        return dict(reader.t[k].quals)
    if reader.t[k].text in {"F", "M"}:  # "(F: 241, M: 49)"
        return {"sex": frozenset({"female" if reader.t[k].text == "F" else "male"})}
    for _start, (end, value) in [*reader.tags.people.items(), *reader.tags.qualw.items()]:
        if end == k + 1:
            return dict(value)  # type: ignore[arg-type]
    return {}


def _read_percent(
    reader: _Reader, i: int, first: int, comparator: str, change: bool
) -> dict[str, object] | None:
    """'83% of the victims were women', 'women made up 83 percent of victims', '83% were female'."""
    num = reader.t[i].num
    assert num is not None  # noqa: S101
    tags = reader.tags
    j = i + 1
    # changes: "up 15%", "a 15% rise", "rose by 15 percent", "15% more"
    before = {
        reader.low(k)
        for k in range(max(0, first - 3), first)
        if not (reader.low(k) == "up" and reader.low(k - 1) in {"made", "make", "makes", "making"})
    }
    after = reader.low(j)
    if (
        change
        or (
            before
            & {
                "up",
                "down",
                "rose",
                "fell",
                "increased",
                "decreased",
                "grew",
                "dropped",
                "declined",
                "jumped",
                "climbed",
                "surged",
                "by",
            }
        )
        or after
        in {
            "increase",
            "rise",
            "drop",
            "decline",
            "decrease",
            "jump",
            "more",
            "fewer",
            "higher",
            "lower",
            "up",
            "down",
            "growth",
            "fall",
            "reduction",
            "surge",
        }
    ):
        base = reader.anchor[0] if reader.anchor else None
        for k in range(j, min(reader.n, j + 6)):
            if k in tags.action:
                base = str(tags.action[k][1])
                break
            if k in tags.domain:
                np = reader.scan_np(k)
                base = reader.resolve_base(np, subset=False)[0]
                break
        if base is None:
            return None
        return _claim(
            reader,
            i,
            first,
            j + 1,
            num.value,
            comparator,
            base,
            {},
            None,
            unit="change",
            problem="a change between periods: CTIS checks totals, not changes (yet)",
        )
    base: str | None = None
    base_quals: Quals = {}
    quals: Quals = {}
    k = j
    if reader.low(k) == "of" or (num.kind == "fraction" and reader.low(k) == "the"):
        k += 1 if reader.low(k) == "of" else 0
        if reader.low(k) in {"those", "these"} and k + 1 in tags.verbs and tags.verbs[k + 1][1] != "neg":
            k += 1
        if reader.low(k) in _PRONOUN_SUBSETS:
            base = reader.anchor[0] if reader.anchor else None
            k += 1
        else:
            while reader.low(k) in _DETERMINERS:
                k += 1
            if k < reader.n and reader.t[k].kind == "num":
                k += 1
            if k in tags.verbs and tags.verbs[k][1] != "neg":
                base = lx.VERB_METRIC[str(tags.verbs[k][1])]
                k = tags.verbs[k][0]
            else:
                np = reader.scan_np(k, allow_skip=2)
                if np.head in {"domain", "action", "people"}:
                    base, _p = reader.resolve_base(np, subset=True)
                    base_quals = np.quals if np.head != "people" else {}
                    if np.head == "people" and np.quals:
                        # "83% of women": the whole is the group, not a subgroup
                        base_quals = np.quals
                    k = np.end
                    if k in tags.verbs and tags.verbs[k][1] != "neg":
                        cls = str(tags.verbs[k][1])
                        if base and lx.VERB_DOMAIN.get(cls) == lx.METRIC_DOMAIN.get(base):
                            base = lx.VERB_METRIC[cls]
                        k = tags.verbs[k][0]
                else:
                    return None
        more, verb, end, found = reader.predicate(k)
        if found:
            quals = _intersect(quals, more)
            if verb and base and lx.VERB_DOMAIN.get(verb) == lx.METRIC_DOMAIN.get(base):
                base = lx.VERB_METRIC[verb]
        else:
            end = k
        # "women made up 83% of the victims": the group is the subject
        subject = _subject_quals(reader, first)
        if subject:
            quals = _intersect(quals, subject)
    elif (np := reader.scan_np(k, allow_skip=1)).head in {"domain", "action"} or (
        num.kind == "fraction" and np.head == "people"
    ):
        # "1 in 5 victims was a man", "one in three suspects were foreigners"
        base, _p = reader.resolve_base(np, subset=True)
        k = np.end
        if k in tags.verbs and tags.verbs[k][1] != "neg":
            cls = str(tags.verbs[k][1])
            if base and lx.VERB_DOMAIN.get(cls) == lx.METRIC_DOMAIN.get(base):
                base = lx.VERB_METRIC[cls]
            k = tags.verbs[k][0]
        more, verb, end, found = reader.predicate(k)
        if not found:
            return None
        quals = more
        if np.head == "people":
            base_quals = np.quals
    else:
        # "83% were women", "83% female", "(83% female)"
        more, verb, end, found = reader.predicate(k)
        if not found or not reader.anchor:
            return None
        base = reader.anchor[0]
        quals = more
    if base is None:
        return None
    quals = _intersect(quals, reader.province_quals(i, end))
    claim = _claim(
        reader, i, first, end, num.value, comparator, base, quals, None, unit="percent", base_quals=base_quals
    )
    return claim


def _subject_quals(reader: _Reader, first: int) -> Quals:
    """The group before 'made up / accounted for / represented / were' in 'women made up 83% of victims'."""
    k = first - 1
    if k >= 0 and reader.low(k) in {"for", "up"}:
        k -= 1
    if k >= 0 and reader.low(k) in {
        "accounted",
        "made",
        "make",
        "makes",
        "account",
        "accounts",
        "comprised",
        "represented",
        "represent",
        "represents",
        "constituted",
        "constitute",
        "formed",
        "form",
        "were",
        "are",
        "was",
        "is",
    }:
        k -= 1
        if k >= 0 and reader.low(k) in {"together", "alone", "also"}:
            k -= 1
        for _start, (end, value) in reader.tags.people.items():
            if end == k + 1:
                return dict(value)  # type: ignore[arg-type]
        for start, (end, _value) in reader.tags.domain.items():
            if end == k + 1 and _quals_before(reader, start):
                return _quals_before(reader, start)  # "child victims accounted for 46%"
        for _start, (end, value) in reader.tags.qualw.items():
            if end == k + 1:
                return dict(value)  # type: ignore[arg-type]
        if reader.t[k].kind == "qual" and reader.t[k].quals:
            return dict(reader.t[k].quals)  # type: ignore[arg-type]
    return {}


def _claim(
    reader: _Reader,
    i: int,
    first: int,
    end: int,
    value: int | float,
    comparator: str,
    base: str | None,
    quals: Quals,
    type_code: str | None,
    *,
    unit: str = "count",
    problem: str | None = None,
    claimed_max: int | float | None = None,
    base_quals: Quals | None = None,
) -> dict[str, object]:
    end = max(end, i + 1)
    out: dict[str, object] = {
        "tokens": (first, end, i),
        "claimed": value,
        "comparator": comparator,
        "unit": unit,
        "claimed_max": claimed_max,
        "problem": problem,
        "metric": None,
        "breakdown": None,
        "base_metric": None,
        "base_breakdown": None,
    }
    if base is None:
        out["problem"] = problem or "no metric matches what is counted"
        return out
    if unit == "change":
        out["metric"] = base
        return out
    all_quals = _intersect(quals, reader.province_quals(first, end)) if unit == "count" else quals
    metric, breakdown, why = resolve_metric(base, _intersect(base_quals or {}, all_quals), type_code)
    out["metric"], out["breakdown"] = metric, breakdown
    if why and not problem:
        out["problem"] = why
    if unit == "percent":
        b_metric, b_breakdown, b_why = resolve_metric(base, base_quals or {}, None)
        out["base_metric"], out["base_breakdown"] = b_metric, b_breakdown
        if (metric, breakdown) == (b_metric, b_breakdown) and not out["problem"]:
            out["problem"] = "a percentage of a whole with no subgroup that CTIS can count"
        if b_why and not out["problem"]:
            out["problem"] = b_why
    if not out["problem"] and _is_plan(reader, first):
        out["problem"] = "a plan or target, not a reported figure"
    if not out["problem"]:
        if reader.tags.event and _event_near(reader, first, end):
            out["problem"] = "a figure about one operation or place, not a total for a period"
        else:
            out["problem"] = reader.country_problem(first, end)
    return out


_PLAN_WORDS = {
    "plan",
    "plans",
    "planned",
    "planning",
    "aim",
    "aims",
    "aiming",
    "target",
    "targets",
    "targeting",
    "goal",
    "will",
    "would",
    "expects",
    "expect",
    "expected",
    "hopes",
    "hope",
    "pledged",
    "pledges",
    "vowed",
    "intends",
    "intend",
    "seeks",
    "want",
    "wants",
    "could",
    "might",
    "may",
}


def _is_plan(reader: _Reader, first: int) -> bool:
    a, _ = reader.clause(first)
    return any(reader.low(k) in _PLAN_WORDS and reader.t[k].text != "May" for k in range(a, first))


def _event_near(reader: _Reader, first: int, end: int) -> bool:
    a, _ = reader.clause(first)
    _, b = reader.clause(max(first, end - 1))
    # the event phrase may sit in the next clause too ("..., in a raid on a compound")
    b = min(reader.n, b + 12)
    window = " ".join(reader.low(k) if reader.t[k].kind in {"word", "punct"} else "<x>" for k in range(a, b))
    return bool(_EVENT.search(window))


def _make_claim(sent: Sentence, original: str, c: dict[str, object]) -> Claim:
    first, end, _i = c["tokens"]  # type: ignore[misc]
    toks = sent.toks
    while end - 1 > first and (
        toks[end - 1].low
        in {
            "and",
            "or",
            ",",
            "the",
            "a",
            "an",
            "in",
            "of",
            "-",
            "were",
            "was",
            "(",
            ";",
            ":",
            "from",
            "to",
            "by",
        }
    ):
        end -= 1
    start = sent.start + toks[first].start
    stop = sent.start + toks[end - 1].end
    return Claim(
        sentence=sent.text,
        start=start,
        end=stop,
        phrase=original[start:stop],
        claimed=c["claimed"],  # type: ignore[arg-type]
        comparator=str(c["comparator"]),
        unit=str(c["unit"]),
        metric=c["metric"],  # type: ignore[arg-type]
        breakdown=c["breakdown"],  # type: ignore[arg-type]
        base_metric=c["base_metric"],  # type: ignore[arg-type]
        base_breakdown=c["base_breakdown"],  # type: ignore[arg-type]
        claimed_max=c["claimed_max"],  # type: ignore[arg-type]
        problem=c["problem"],  # type: ignore[arg-type]
    )


def _assign_period(
    reader: _Reader,
    claim: Claim,
    tokens: tuple[int, int, int],
    usable: list[tuple[int, _UsablePeriod]],
    state: _State,
) -> None:
    first, end, _i = tokens
    chosen: PeriodMention | None = None
    # 1. right next to the figure: "290 victims in 2024", "250 in 2023", "In 2024 290 victims"
    compared = reader.low(first - 1) in {"from", "with", "to", "than", "against", "versus", "vs", "vs."}
    for idx, up in usable:
        if up.comparison and not compared:
            continue
        if end <= idx <= end + 3 and not any(
            reader.is_boundary(k) or reader.t[k].kind == "num" for k in range(end, idx)
        ):
            chosen = up.mention
            break
        if first - 3 <= idx < first and not any(
            reader.is_boundary(k) or reader.t[k].kind == "num" for k in range(idx + 1, first)
        ):
            chosen = up.mention
    if chosen is None:
        ca, cb = reader.clause(first)
        _, cb2 = reader.clause(max(first, end - 1))
        inside = [(idx, up) for idx, up in usable if ca <= idx < max(cb, cb2) and not up.comparison]
        if inside:
            chosen = min(inside, key=lambda x: abs(x[0] - first))[1].mention
    if chosen is None:
        before = [(idx, up) for idx, up in usable if idx < first and not up.comparison]
        after = [(idx, up) for idx, up in usable if idx >= end and not up.comparison]
        if before:
            chosen = before[-1][1].mention
        elif after:
            chosen = after[0][1].mention
    if chosen is None:
        chosen = state.carried
    if chosen is None:
        if not claim.problem:
            claim.problem = "no period found: say when (e.g. 'in the first half of 2024')"
        return
    claim.period = chosen.period
    claim.period_text = chosen.text.strip()
    if chosen.period is None and not claim.problem:
        claim.problem = chosen.reason or f"unknown period phrase {chosen.text!r}"
