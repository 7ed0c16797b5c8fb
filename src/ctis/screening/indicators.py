"""Named indicators, fired by the analyst's rule files and by the entities of a post.

The rules live in ``data/rules_<lang>.csv`` (columns ``indicator, pattern,
weight, note``): a prevention analyst who sees recruiters adopt a new phrase
adds a row, and the next screening uses it; no code changes.  Each row names
an indicator of ``data/indicators.csv`` — the ILO forced-labour indicators a
post can show precursors of, the published red flags of scam-compound
recruitment, and signs of a legitimate employer, which weigh *against* a flag.

Some indicators are facts rather than phrases (a hub named in the gazetteer,
an age range, contact only through a messaging app, high pay for unskilled
online work); they fire from the entities, with the same weights file.

Every fired indicator carries the spans that fired it, so the analyst sees
the words behind each flag.
"""

from __future__ import annotations

import csv
import re
import re._constants as sre_constants
import re._parser as sre_parse
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from ctis.screening.entities import FREE_MAIL, Entities, lower_same_length

#: Monthly pay (US dollars) above which unskilled online work is "high pay": two to four times
#: what customer-service or typing work pays in the region's cities.
HIGH_PAY_USD_MONTH = 800
#: An age range whose upper end is at most this is a recruitment age limit, not a legal minimum.
AGE_LIMIT_MAX = 45
FAMILIES = ("ilo", "red_flag", "legitimacy")


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Indicator:
    name: str
    family: str
    weight: float
    label_en: str
    description: str


@dataclass(frozen=True)
class Rule:
    indicator: str
    language: str
    pattern: str
    weight: float
    source: str  # file:line, for the analyst who wants to find the rule again


@dataclass
class Hit:
    """An indicator that fired: its weight is the strongest of its rules that matched."""

    name: str
    family: str
    weight: float
    label: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "family": self.family, "weight": self.weight, "label": self.label,
                "spans": [list(s) for s in self.spans], "rules": self.rules}  # fmt: skip


def data_dir() -> Path:
    return Path(str(resources.files("ctis.screening") / "data"))


@cache
def indicators() -> dict[str, Indicator]:
    """The named indicators and their default weights (``data/indicators.csv``)."""
    out: dict[str, Indicator] = {}
    with (data_dir() / "indicators.csv").open(encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), 2):
            if row["family"] not in FAMILIES:
                raise RuleError(f"indicators.csv:{line}: family must be one of {', '.join(FAMILIES)}")
            out[row["name"]] = Indicator(row["name"], row["family"], float(row["weight"]), row["label_en"],
                                         row["description"])  # fmt: skip
    return out


def load_rules(directory: Path | None = None) -> list[Rule]:
    """Every rule of every ``rules_<lang>.csv``, checked: a bad row stops with its file and line."""
    known = indicators()
    rules: list[Rule] = []
    for path in sorted((directory or data_dir()).glob("rules_*.csv")):
        language = path.stem.removeprefix("rules_")
        with path.open(encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), 2):
                where = f"{path.name}:{line}"
                name, pattern = (row.get("indicator") or "").strip(), row.get("pattern") or ""
                if name not in known:
                    raise RuleError(f"{where}: unknown indicator {name!r}; add it to indicators.csv first")
                try:
                    weight = float(row.get("weight") or known[name].weight)
                    re.compile(pattern)
                except re.error as exc:
                    raise RuleError(
                        f"{where}: the pattern is not a valid regular expression ({exc})"
                    ) from None
                except ValueError:
                    raise RuleError(f"{where}: weight must be a number") from None
                if not pattern.strip() or re.compile(pattern).search(""):
                    raise RuleError(f"{where}: the pattern matches empty text")
                if any(ch.isupper() for ch in re.sub(r"\\.", "", pattern)):
                    raise RuleError(
                        f"{where}: write patterns in lower case (they are matched on lower-cased text)"
                    )
                if known[name].family == "legitimacy":
                    weight = -abs(weight)
                rules.append(Rule(name, language, pattern, weight, where))
    return rules


def triggers(pattern: str) -> tuple[str, ...] | None:
    """Literal strings of which every match of ``pattern`` holds at least one, or None when the
    pattern gives none worth testing (the rule is then always searched).

    Read off the parsed pattern: a run of literal characters that every match
    passes through, or a group of alternatives each of which has such a run.
    Of the candidates the one whose shortest string is longest is kept.
    Testing ``in`` for a few literals is a fast substring search, far cheaper
    than scanning the text with a pattern that starts with an alternation;
    most rules do not fire on a given post, and are then skipped.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    found = _required(list(parsed))
    return tuple(found) if found and min(map(len, found)) >= 1 else None


def _required(items: list[tuple[object, object]]) -> list[str] | None:
    """The best set of required literals in a sequence of parsed items (see :func:`triggers`)."""
    candidates: list[list[str]] = []
    run = ""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            run += chr(arg)  # type: ignore[arg-type]
            continue
        if run:
            candidates.append([run])
            run = ""
        inner: list[str] | None = None
        if op is sre_constants.SUBPATTERN:
            if arg[1] & re.IGNORECASE:  # type: ignore[index]
                return None  # (?i:…) matches more than its literals' spelling
            inner = _required(list(arg[-1]))  # type: ignore[index]
        elif op is sre_constants.BRANCH:
            branches = [_required(list(b)) for b in arg[1]]  # type: ignore[index]
            if all(branches):
                inner = [t for b in branches for t in b]  # type: ignore[union-attr]
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and arg[0] >= 1:  # type: ignore[index]
            inner = _required(list(arg[2]))  # type: ignore[index]
        if inner:
            candidates.append(inner)
    if run:
        candidates.append([run])
    if not candidates:
        return None
    return max(candidates, key=lambda c: (min(map(len, c)), -len(c)))


class RuleSet:
    """The rules compiled one by one, matched against lower-cased text.

    One pattern per rule rather than one alternation of all of them: ``re``
    finds a rule that starts with a literal by scanning for that literal,
    which an alternation (or case-insensitive matching) prevents; matching
    lower-cased text with lower-case patterns keeps that fast path.  A leading
    ``\\b`` is checked by hand for the same reason.  Together about six times
    faster than one case-insensitive alternation.
    """

    def __init__(self, rules: list[Rule], prefilter: bool = True):
        self.rules = rules
        self._compiled: dict[str, list[tuple[Rule, re.Pattern[str], bool, tuple[str, ...] | None]]] = {}
        for rule in rules:
            boundary = rule.pattern.startswith("\\b")
            body = rule.pattern[2:] if boundary else rule.pattern
            need = triggers(body) if prefilter else None
            self._compiled.setdefault(rule.language, []).append((rule, re.compile(body), boundary, need))

    def languages_for(self, language: str) -> list[str]:
        """The post's language and English (region-wide job posts mix it in); all when unknown."""
        if language not in self._compiled:
            return list(self._compiled)
        return [language] + (["en"] if language != "en" and "en" in self._compiled else [])

    def matches(self, text: str, language: str) -> list[tuple[Rule, int, int]]:
        lower = lower_same_length(text)
        found = []
        for lang in self.languages_for(language):
            for rule, pattern, boundary, need in self._compiled[lang]:
                if need is not None:  # a plain loop: a generator in any() cost more than the test
                    for literal in need:
                        if literal in lower:
                            break
                    else:
                        continue  # none of the literals every match holds: the rule cannot match
                pos = 0
                while (m := pattern.search(lower, pos)) is not None:
                    start, end = m.span()
                    if end == start:
                        pos = start + 1
                        continue
                    if boundary and start > 0 and (lower[start - 1].isalnum() or lower[start - 1] == "_"):
                        pos = start + 1
                        continue
                    found.append((rule, start, end))
                    pos = end
        return found


@cache
def default_rules() -> RuleSet:
    return RuleSet(load_rules())


def evaluate(text: str, entities: Entities, language: str, rules: RuleSet | None = None) -> list[Hit]:
    """Indicators that fire on a post (``text`` with digits normalised, as entities were read)."""
    known = indicators()
    hits: dict[str, Hit] = {}

    def fire(name: str, weight: float, start: int, end: int, source: str) -> None:
        info = known[name]
        hit = hits.get(name)
        if hit is None:
            hit = hits[name] = Hit(name, info.family, weight, info.label_en)
        elif abs(weight) > abs(hit.weight):
            hit.weight = weight
        hit.spans.append((start, end, text[start:end]))
        if source not in hit.rules:
            hit.rules.append(source)

    for rule, start, end in (rules or default_rules()).matches(text, language):
        fire(rule.indicator, rule.weight, start, end, rule.source)
    spans = entities.spans
    pay = entities.salary_usd_month
    if pay is not None and pay >= HIGH_PAY_USD_MONTH and "unskilled_online_work" in hits:
        for s in spans:
            if s.kind == "money":
                fire(
                    "high_pay_unskilled",
                    known["high_pay_unskilled"].weight,
                    s.start,
                    s.end,
                    "entities:salary",
                )
    messaging = [s for s in spans if s.kind == "handle"]
    if messaging and not entities.emails and not entities.urls:
        for s in messaging:
            fire("messaging_app_only", known["messaging_app_only"].weight, s.start, s.end, "entities:handles")
    hubs = {p.key for p in entities.places if p.kind in {"hub", "border"}}
    for s in spans:
        if s.kind == "place" and s.value in hubs:
            fire("hub_location", known["hub_location"].weight, s.start, s.end, "gazetteer")
        elif s.kind == "age" and int(s.value.split("-")[1]) <= AGE_LIMIT_MAX:
            fire("age_limit", known["age_limit"].weight, s.start, s.end, "entities:age")
        elif s.kind == "email" and s.value.split("@", 1)[1] not in FREE_MAIL:
            fire("corporate_email", known["corporate_email"].weight, s.start, s.end, "entities:email")
    order = {name: i for i, name in enumerate(known)}
    return sorted(hits.values(), key=lambda h: order[h.name])
