"""Period phrases in English prose, resolved to :class:`~ctis.domain.periods.Period`.

Each phrase found becomes a :class:`PeriodMention`: where it is, what it says,
and either the period it names or the reason it cannot be resolved (a vague
phrase such as "in recent years", a relative phrase without a reference date,
a future period).  Resolved periods carry the registry's own labels (``2024``,
``2024-H1``, ``2024-Q3``, ``2024-03``, ``TIP2024`` or ``2024-01-15..2024-02-10``):
a date range that is exactly a standard period gets the standard label, so
"January to June 2024", "H1 2024" and "the first half of 2024" are all
``2024-H1`` and "April 2023 to March 2024" is ``TIP2024``.

Relative phrases ("last year", "this quarter", "the past 12 months") are read
against a reference date: the ``as_of`` date given by the caller, or else a
date found in the text (a dateline).  Phrases without a year ("in March", "the
first half of the year") take the year last named in the text, or else the
reference date's.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

from ctis.claims.numbers import UNITS
from ctis.domain.periods import Period, parse_period

MONTHS: dict[str, int] = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
ORDINALS: dict[str, int] = {
    "first": 1,
    "1st": 1,
    "opening": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "latter": -1,
    "last": -1,
    "final": -1,
}
# "the last six months", "the past twenty-four months": the number words of ``numbers``.
_NUM_WORDS = {**UNITS, "twenty-four": 24}


@dataclass(frozen=True)
class PeriodMention:
    """A period phrase: its span, its text, and its period or why there is none."""

    start: int
    end: int
    text: str
    period: Period | None
    reason: str | None = None
    #: period, day (a single date), dateline, same_period (resolved by the caller)
    kind: str = "period"
    #: for "the same period last year": how many years back from the main period
    shift_years: int = 0

    @property
    def label(self) -> str | None:
        return self.period.label if self.period else None


# --- building blocks -------------------------------------------------------------------------------

_MONTH = (
    r"(?P<{n}>january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_YEAR = r"(?P<{n}>(?:19|20)\d\d)\b"
_DAY = r"(?P<{n}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEARREF = (
    r"(?P<{n}>(?:19|20)\d\d\b|this\s+year|last\s+year|next\s+year|the\s+(?:current|previous|past|same|"
    r"following|preceding|prior|last)\s+year|(?:the\s+)?year)"
)


def _m(name: str) -> str:
    return _MONTH.format(n=name)


def _y(name: str) -> str:
    return _YEAR.format(n=name)


def _d(name: str) -> str:
    return _DAY.format(n=name)


def _yr(name: str) -> str:
    return _YEARREF.format(n=name)


_DATE_DMY = _d("{p}d") + r"\s+(?:of\s+)?" + _m("{p}m") + r",?\s+" + _y("{p}y")
_DATE_MDY = _m("{p}m2") + r"\s+" + _d("{p}d2") + r",?\s+" + _y("{p}y2")
_DATE_ISO = r"(?P<{p}iso>(?:19|20)\d\d-[01]\d-[0-3]\d)\b"
_DATE_SLASH = r"(?P<{p}sl>[0-3]?\d/[01]?\d/(?:19|20)\d\d)\b"


def _date(prefix: str) -> str:
    parts = [_DATE_DMY, _DATE_MDY, _DATE_ISO, _DATE_SLASH]
    return "(?:" + "|".join(p.replace("{p}", prefix) for p in parts) + ")"


#: Nouns after a year that make it the name of a document or an event, not a period ("the 2024 report").
_NOT_A_YEAR_OF = (
    r"(?!\s+(?:report|reports|edition|survey|study|review|assessment|index|ranking|rankings|version|law|laws|act|"
    r"constitution|convention|protocol|decree|sub-decree|prakas|plan|strategy|policy|agreement|memorandum|mou|"
    r"guidelines?|census|elections?|games|budget|action\s+plan|national\s+action\s+plan|amendment|"
    r"regulation|directive|declaration|roadmap|statement)\b)"
)
_RANGE_SEP = r"\s*(?:to|until|till|through|thru|and|-|–|—)\s*"
_FROM = r"(?:(?:from|between)\s+)?"
_PREP = r"(?:(?:in|during|for|throughout|over|across|within|of)\s+)?"
_HALF_WORDS = r"(?P<ord>first|second|1st|2nd|latter|last|final|opening)"
_QUARTER_WORDS = r"(?P<ord>first|second|third|fourth|final|last|1st|2nd|3rd|4th)"

_I = re.IGNORECASE

#: (kind, pattern); the longest match at each position wins, then the earliest in this list.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("date_range", re.compile(r"\b" + _FROM + _date("a") + _RANGE_SEP + _date("b"), _I)),
    (
        "day_range",
        re.compile(
            r"\b" + _FROM + _d("ad") + r"(?:\s+" + _m("am") + r")?" + _RANGE_SEP + _d("bd") + r"\s+"
            r"(?:of\s+)?" + _m("bm") + r",?\s+" + _y("by"),
            _I,
        ),
    ),
    (
        "month_range",
        re.compile(
            r"\b"
            + _FROM
            + _m("am")
            + r"(?:\s+"
            + _y("ay")
            + r")?"
            + _RANGE_SEP
            + _m("bm")
            + r"(?:,?\s+(?:of\s+)?"
            + _y("by")
            + r")?",
            _I,
        ),
    ),
    (
        "year_range",
        re.compile(r"\b" + _FROM + _y("ay") + r"\s*(?:to|until|through|and|-|–|—)\s*" + _y("by"), _I),
    ),
    ("year_short_range", re.compile(r"\b(?P<a>(?:19|20)\d\d)\s*[-–/]\s*(?P<b>\d\d)\b(?![-/]\d)", _I)),
    (
        "tip",
        re.compile(
            r"\b(?:the\s+)?(?:U\.?S\.?\s+)?(?:TIP|trafficking\s+in\s+persons)(?:\s+report(?:ing)?)?"
            r"\s+(?:year|period)\s+" + _y("y"),
            _I,
        ),
    ),
    (
        "tip",
        re.compile(
            r"\b(?:the\s+)?" + _y("y") + r"\s+(?:U\.?S\.?\s+)?(?:TIP|trafficking\s+in\s+persons)"
            r"(?:\s+report(?:ing)?)?(?:\s+(?:year|period))?",
            _I,
        ),
    ),
    ("tip", re.compile(r"\bTIP[\s\-]?" + _y("y"), _I)),
    (
        "half",
        re.compile(
            r"\b(?:the\s+)?" + _HALF_WORDS + r"\s+(?:half|semester)\b(?:\s+(?:of\s+)?" + _yr("y") + r")?",
            _I,
        ),
    ),
    (
        "half6",
        re.compile(
            r"\b(?:the\s+)?(?P<ord>first|last|final|second)\s+(?:six|6)\s+months\b(?:\s+(?:of\s+)?"
            + _yr("y")
            + r")?",
            _I,
        ),
    ),
    (
        "half",
        re.compile(r"\bH(?P<n>[12])(?:[\s\-/]*(?:of\s+)?(?P<y>(?:19|20)\d\d)|(?P<y2>'?\d\d))?(?![\w])", _I),
    ),
    ("half", re.compile(r"\b" + _y("y") + r"[\s\-/]*H(?P<n>[12])(?![\w])", _I)),
    ("half", re.compile(r"\b(?P<n>[12])H[\s\-]*(?P<y>(?:19|20)\d\d|\d\d)(?![\w])", _I)),
    (
        "quarter",
        re.compile(
            r"\b(?:the\s+)?" + _QUARTER_WORDS + r"\s+quarter\b(?:\s+(?:of\s+)?" + _yr("y") + r")?",
            _I,
        ),
    ),
    (
        "quarter3",
        re.compile(
            r"\b(?:the\s+)?(?P<ord>first|last|final)\s+(?:three|3)\s+months\b(?:\s+(?:of\s+)?"
            + _yr("y")
            + r")?",
            _I,
        ),
    ),
    (
        "quarter",
        re.compile(r"\bQ(?P<n>[1-4])(?:[\s\-/]*(?:of\s+)?(?P<y>(?:19|20)\d\d)|(?P<y2>'?\d\d))?(?![\w])", _I),
    ),
    ("quarter", re.compile(r"\b" + _y("y") + r"[\s\-/]*Q(?P<n>[1-4])(?![\w])", _I)),
    ("quarter", re.compile(r"\b(?P<n>[1-4])Q[\s\-]*(?P<y>(?:19|20)\d\d|\d\d)(?![\w])", _I)),
    ("day", re.compile(r"\b(?:on\s+)?" + _date("a"), _I)),
    (
        "day_noyear",
        re.compile(
            r"\b(?:on\s+)?(?:"
            + _m("m")
            + r"\s+"
            + _d("d")
            + r"|"
            + _d("d2")
            + r"\s+"
            + _m("m2")
            + r")\b(?!,?\s+(?:19|20)\d\d)",
            _I,
        ),
    ),
    ("month", re.compile(r"\b" + _m("m") + r",?\s+(?:of\s+)?" + _y("y"), _I)),
    (
        "month_alone",
        re.compile(
            r"\b(?P<prep>in|during|for|throughout|since|last|this|early|late|mid|mid-)\s*"
            + _m("m")
            + r"\b(?!\s+\d)",
            _I,
        ),
    ),
    ("since", re.compile(r"\bsince\s+(?:" + _m("sm") + r"\s+)?" + _y("y"), _I)),
    ("fiscal", re.compile(r"\b(?:the\s+)?(?:fiscal|financial|budget)\s+year\s+(?:(?:19|20)\d\d)", _I)),
    ("fiscal", re.compile(r"\b(?:FY|fiscal\s+year)\s*'?(?:(?:19|20)?\d\d)\b", _I)),
    (
        "cumulative",
        re.compile(
            r"\b(?:by|until|till|as\s+of|as\s+at)\s+(?:the\s+end\s+of\s+)?(?:"
            + _date("c")
            + r"|"
            + _m("xm")
            + r"\s+"
            + _y("xy")
            + r"|"
            + _y("xy2")
            + r")",
            _I,
        ),
    ),
    (
        "year",
        re.compile(
            r"\b(?P<prep>(?:in|during|for|throughout|over|across|of|within)\s+)?(?:the\s+)?"
            r"(?:(?P<cal>calendar)\s+)?(?:year\s+)?" + _y("y") + r"(?:'s)?" + _NOT_A_YEAR_OF,
            _I,
        ),
    ),
    (
        "ytd",
        re.compile(
            r"\b(?:so\s+far\s+this\s+year|this\s+year\s+so\s+far|(?:the\s+)?year[\s\-]to[\s\-]date"
            r"|since\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the|this)\s+year)\b",
            _I,
        ),
    ),
    (
        "same_period",
        re.compile(
            r"\b(?:in\s+|during\s+)?the\s+same\s+(?:period|time|half|quarter|months?)\s+(?:of\s+|in\s+)?"
            r"(?P<y>last\s+year|the\s+previous\s+year|a\s+year\s+(?:earlier|before|ago)|the\s+year\s+"
            r"before|(?:19|20)\d\d\b)",
            _I,
        ),
    ),
    (
        "same_period",
        re.compile(
            r"\b(?P<y>a\s+year\s+(?:earlier|before|ago)|twelve\s+months\s+(?:earlier|before|ago)|"
            r"one\s+year\s+(?:earlier|before|ago))\b",
            _I,
        ),
    ),
    (
        "rolling",
        re.compile(
            r"\b(?:in\s+|over\s+|during\s+|within\s+)?the\s+(?:past|last|previous|preceding)\s+"
            r"(?P<n>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty-four)"
            r"\s+(?P<u>days|weeks|months|years)\b",
            _I,
        ),
    ),
    (
        "months_to",
        re.compile(
            r"\b(?:the\s+)?(?:(?P<n>\d{1,2}|three|six|nine|twelve|eighteen)\s+months?|(?P<yr>year|twelve-month"
            r"|12-month|six-month|three-month)(?:\s+period)?)\s+(?:to|ending|ended|through|up\s+to|until)\s+"
            r"(?:(?:the\s+)?end\s+of\s+)?(?:" + _date("e") + r"|" + _m("em3") + r"\s+" + _y("ey3") + r")",
            _I,
        ),
    ),
    (
        "year_of_context",
        re.compile(
            r"\b(?:the\s+year's|the\s+annual|for\s+the\s+(?:whole|full|entire)\s+year|the\s+full[\s-]year|"
            r"for\s+the\s+year\s+as\s+a\s+whole|the\s+year\s+as\s+a\s+whole)\b",
            _I,
        ),
    ),
    (
        "relative",
        re.compile(
            r"\b(?:(?:in|during|for|throughout|over|of)\s+)?(?P<rel>last\s+year|this\s+year|next\s+year|"
            r"the\s+(?:past|previous|preceding|prior|current|last)\s+(?:year|quarter|month)|last\s+quarter|"
            r"the\s+year\s+before|"
            r"this\s+quarter|last\s+month|this\s+month|last\s+week|this\s+week|the\s+past\s+week|yesterday|"
            r"today|(?:on\s+|last\s+)?(?:mon|tues|wednes|thurs|fri|satur|sun)day)\b",
            _I,
        ),
    ),
    (
        "vague",
        re.compile(
            r"\b(?:(?:in|over|during|throughout)\s+)?(?:recent\s+(?:years|months|weeks|times)|the\s+(?:past|last)\s+"
            r"(?:few|several|couple\s+of)\s+(?:years|months|weeks|days)|over\s+the\s+years|(?:the\s+)?(?:past|last)"
            r"\s+decade|a\s+decade|recently|lately|to\s+date|so\s+far|all[\s\-]time|in\s+history|historically|"
            r"since\s+(?:its|the)\s+(?:creation|establishment|founding|inception|launch)|ever\s+since|"
            r"earlier\s+this\s+(?:year|month)|later\s+this\s+year|in\s+the\s+coming\s+(?:months|years|weeks)|"
            r"the\s+(?:previous\s+|last\s+|current\s+|same\s+)?(?:reporting|review)\s+period|the\s+period\s+under\s+review|(?:the\s+)?holiday\s+season|"
            r"khmer\s+new\s+year|the\s+pandemic|(?:the\s+)?previous\s+years)\b",
            _I,
        ),
    ),
]

_SPEECH_VERBS = re.compile(
    r"\b(said|says|say|told|tells|announced|announces|reported|reports|stated|states|according|declared|"
    r"speaking|spoke|added|noted|explained|claimed|claims|wrote|posted|published|released|revealed|"
    r"highlighted|stressed|remarked|addressed|address|speech)\b",
    _I,
)


# --- helpers ------------------------------------------------------------------------------------------


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def period_for(start: date, end: date) -> Period:
    """The registry's period for a date range: a standard label where the range is a standard period."""
    if start.day == 1 and end == _month_end(end.year, end.month):
        if start.year == end.year:
            if (start.month, end.month) == (1, 12):
                return parse_period(str(start.year))
            if (start.month, end.month) in {(1, 6), (7, 12)}:
                return parse_period(f"{start.year}-H{1 if start.month == 1 else 2}")
            if start.month % 3 == 1 and end.month == start.month + 2:
                return parse_period(f"{start.year}-Q{(start.month - 1) // 3 + 1}")
            if start.month == end.month:
                return parse_period(f"{start.year}-{start.month:02d}")
        if (start.month, end.month) == (4, 3) and end.year == start.year + 1:
            return parse_period(f"TIP{end.year}")
    return parse_period(f"{start.isoformat()}..{end.isoformat()}")


def _year_of(raw: str | None) -> int | None:
    if not raw:
        return None
    raw = raw.strip("'")
    year = int(raw)
    return year + 2000 if year < 100 else year


def _month_of(raw: str | None) -> int | None:
    return MONTHS.get(raw.lower().rstrip(".")) if raw else None


def _date_from(groups: dict[str, str | None], p: str, default_year: int | None = None) -> date | None:
    if groups.get(p + "iso"):
        return date.fromisoformat(groups[p + "iso"])  # type: ignore[arg-type]
    if groups.get(p + "sl"):
        d, m, y = (int(x) for x in groups[p + "sl"].split("/"))  # type: ignore[union-attr]
        return date(y, m, d)
    alt = "" if groups.get(p + "m") else "2"
    month = _month_of(groups.get(p + "m" + alt))
    year = _year_of(groups.get(p + "y" + alt)) or default_year
    day = groups.get(p + "d" + alt)
    if month is None or year is None or day is None:
        return None
    return date(year, month, int(day))


@dataclass(frozen=True)
class Context:
    """What relative phrases are read against."""

    ref: date | None  # the as_of date, or the dateline
    year: int | None = None  # the year last named in the text


_NOT_A_PERIOD = "not a period"


class _Unresolved(Exception):
    pass


def _need_ref(ctx: Context, phrase: str) -> date:
    if ctx.ref is None:
        raise _Unresolved(f"relative period {phrase!r} needs a reference date (as_of or a dateline)")
    return ctx.ref


def _year_ref(raw: str | None, ctx: Context, phrase: str) -> int:
    """The year named by YEARREF (a year, 'this year', 'last year', 'the year'...)."""
    if raw is None:
        if ctx.year is not None:
            return ctx.year
        return _need_ref(ctx, phrase).year
    text = re.sub(r"\s+", " ", raw.lower().strip())
    if text[:2] in {"19", "20"}:
        return int(text[:4])
    if text in {"this year", "the current year"}:
        return _need_ref(ctx, phrase).year
    if text in {"last year", "the past year", "the last year"}:
        return _need_ref(ctx, phrase).year - 1
    if text in {"the previous year", "the preceding year", "the prior year"}:
        if ctx.year is not None:
            return ctx.year - 1
        return _need_ref(ctx, phrase).year - 1
    if text in {"next year", "the following year"}:
        return _need_ref(ctx, phrase).year + 1
    # "the year", "the same year", "year"
    if ctx.year is not None:
        return ctx.year
    return _need_ref(ctx, phrase).year


def _ordinal(raw: str, last: int) -> int:
    n = ORDINALS[raw.lower()]
    return last if n == -1 else n


def _resolve(kind: str, m: re.Match[str], ctx: Context) -> PeriodMention:
    g = m.groupdict()
    phrase = m[0]

    def span(period: Period | None, reason: str | None = None, kind_: str = "period") -> PeriodMention:
        return PeriodMention(m.start(), m.end(), phrase, period, reason, kind_)

    if kind in {"date_range", "day_range"}:
        if kind == "date_range":
            end = _date_from(g, "b")
            start = _date_from(g, "a", end.year if end else None)
        else:
            end = _date_from(g, "b")
            assert end is not None  # noqa: S101 - the pattern requires day, month and year
            month = _month_of(g.get("am")) or end.month
            start = date(end.year, month, int(g["ad"]))
        if start is None or end is None:
            raise _Unresolved(f"incomplete date range {phrase!r}")
        if end < start:
            raise _Unresolved(f"date range {phrase!r} ends before it starts")
        return span(period_for(start, end))
    if kind == "month_range":
        m1, m2 = _month_of(g["am"]), _month_of(g["bm"])
        if m1 is None or m2 is None:  # pragma: no cover - the pattern requires both
            raise _Unresolved(f"unknown months in {phrase!r}")
        if g.get("by") is None and g.get("ay") is None and "may" in {g["am"], g["bm"]}:
            raise _Unresolved(_NOT_A_PERIOD)
        y2 = _year_of(g.get("by"))
        y1 = _year_of(g.get("ay"))
        if y2 is None:
            y2 = y1 if y1 is not None else _year_ref(None, ctx, phrase)
        if y1 is None:
            y1 = y2 if m1 <= m2 else y2 - 1
        start, end = date(y1, m1, 1), _month_end(y2, m2)
        if end < start:
            raise _Unresolved(f"period {phrase!r} ends before it starts")
        return span(period_for(start, end))
    if kind == "year_range":
        y1, y2 = int(g["ay"]), int(g["by"])
        if y2 < y1:
            raise _Unresolved(f"period {phrase!r} ends before it starts")
        return span(period_for(date(y1, 1, 1), date(y2, 12, 31)))
    if kind == "year_short_range":
        first, second = int(g["a"]), int(g["b"])
        if second == (first + 1) % 100:
            raise _Unresolved(f"{phrase!r} is ambiguous (two calendar years, or a fiscal or TIP year?)")
        if 1 <= second <= 12 and "-" in phrase:
            return span(parse_period(f"{first}-{second:02d}"))
        raise _Unresolved(_NOT_A_PERIOD)
    if kind == "tip":
        return span(parse_period(f"TIP{g['y']}"))
    if kind in {"half", "half6"}:
        raw_y = g.get("y") or g.get("y2")
        year = _year_of(raw_y) if raw_y and raw_y.strip("'").isdigit() else None
        if year is None:
            year = _year_ref(g.get("y"), ctx, phrase)
        h = int(g["n"]) if g.get("n") else _ordinal(g["ord"], 2)
        if kind == "half6" and g["ord"].lower() == "second":
            raise _Unresolved(f"{phrase!r} is not a half-year")
        return span(parse_period(f"{year}-H{min(h, 2)}"))
    if kind in {"quarter", "quarter3"}:
        raw_y = g.get("y") or g.get("y2")
        year = _year_of(raw_y) if raw_y and raw_y.strip("'").isdigit() else None
        if year is None:
            year = _year_ref(g.get("y"), ctx, phrase)
        if not g.get("n") and g["ord"].lower() == "last" and raw_y is None:
            raise _Unresolved(_NOT_A_PERIOD)  # "(the) last quarter": the quarter before this one (relative)
        q = int(g["n"]) if g.get("n") else _ordinal(g["ord"], 4)
        return span(parse_period(f"{year}-Q{q}"))
    if kind == "day":
        day = _date_from(g, "a")
        if day is None:  # pragma: no cover
            raise _Unresolved(f"incomplete date {phrase!r}")
        return span(period_for(day, day), kind_="day")
    if kind == "day_noyear":
        month = _month_of(g.get("m") or g.get("m2"))
        if (g.get("m") or g.get("m2") or "") == "may":
            raise _Unresolved(_NOT_A_PERIOD)
        dd = int(g.get("d") or g.get("d2") or 0)
        year = ctx.year or _need_ref(ctx, phrase).year
        if month is None or not 1 <= dd <= 31:
            raise _Unresolved(_NOT_A_PERIOD)
        return span(period_for(date(year, month, dd), date(year, month, dd)), kind_="day")
    if kind == "month":
        month = _month_of(g["m"])
        if month is None:  # pragma: no cover
            raise _Unresolved(_NOT_A_PERIOD)
        return span(parse_period(f"{g['y']}-{month:02d}"))
    if kind == "month_alone":
        if g["m"].lower() == "may" and not g["m"][0].isupper():
            raise _Unresolved(_NOT_A_PERIOD)
        month = _month_of(g["m"])
        assert month is not None  # noqa: S101
        prep = g["prep"].lower()
        if prep == "since":
            ref = _need_ref(ctx, phrase)
            year = ctx.year or (ref.year if month <= ref.month else ref.year - 1)
            return span(period_for(date(year, month, 1), ref))
        if ctx.year is not None and prep not in {"last", "this"}:
            year = ctx.year
        else:
            ref = _need_ref(ctx, phrase)
            year = ref.year if month <= ref.month else ref.year - 1
            if prep == "last" and month >= ref.month:
                year = ref.year - 1
        return span(parse_period(f"{year}-{month:02d}"))
    if kind == "since":
        ref = _need_ref(ctx, phrase)
        month = _month_of(g.get("sm")) or 1
        start = date(int(g["y"]), month, 1)
        if ref < start:
            raise _Unresolved(f"{phrase!r} starts after the reference date {ref}")
        return span(period_for(start, ref))
    if kind == "fiscal":
        raise _Unresolved(f"fiscal year {phrase!r}: CTIS counts calendar, half, quarter and TIP years")
    if kind == "cumulative":
        raise _Unresolved(f"cumulative figure {phrase!r}: the start of the period is not stated")
    if kind == "year":  # a bare year ("2023 was a record year") is a year too
        return span(parse_period(g["y"]))
    if kind == "ytd":
        ref = _need_ref(ctx, phrase)
        return span(period_for(date(ref.year, 1, 1), ref))
    if kind == "same_period":
        raw = g["y"].lower()
        if raw[:2] in {"19", "20"}:
            return PeriodMention(m.start(), m.end(), phrase, None, None, "same_period", shift_years=-int(raw))
        return PeriodMention(m.start(), m.end(), phrase, None, None, "same_period", shift_years=1)
    if kind == "rolling":
        ref = _need_ref(ctx, phrase)
        n_raw = g["n"].lower()
        n = int(n_raw) if n_raw.isdigit() else _NUM_WORDS[n_raw]
        unit = g["u"].lower()
        if unit == "days":
            start = ref - timedelta(days=n - 1)
        elif unit == "weeks":
            start = ref - timedelta(days=7 * n - 1)
        else:
            months = n if unit == "months" else 12 * n
            y, mo = divmod(ref.month - 1 - months, 12)
            y += ref.year
            mo += 1
            day = min(ref.day, calendar.monthrange(y, mo)[1])
            start = date(y, mo, day) + timedelta(days=1)
        return span(period_for(start, ref))
    if kind == "relative":
        rel = re.sub(r"\s+", " ", g["rel"].lower())
        if rel in {"the year before", "a year earlier", "a year before"}:
            rel = "the previous year"
        if rel in {"the previous year", "the preceding year", "the prior year"} and ctx.year is not None:
            return span(parse_period(str(ctx.year - 1)))
        ref = _need_ref(ctx, phrase)
        if rel in {"last year", "the previous year", "the preceding year", "the prior year", "the last year"}:
            return span(parse_period(str(ref.year - 1)))
        if rel in {"this year", "the current year"}:
            return span(parse_period(str(ref.year)))
        if rel == "next year":
            raise _Unresolved(f"{phrase!r} is in the future")
        if rel == "the past year":
            return span(period_for(_add_months(ref, -12) + timedelta(days=1), ref))
        q = (ref.month - 1) // 3 + 1
        if rel in {"this quarter", "the current quarter"}:
            return span(parse_period(f"{ref.year}-Q{q}"))
        if rel in {
            "last quarter",
            "the previous quarter",
            "the past quarter",
            "the preceding quarter",
            "the prior quarter",
            "the last quarter",
        }:
            return span(parse_period(f"{ref.year - 1}-Q4" if q == 1 else f"{ref.year}-Q{q - 1}"))
        if rel in {"this month", "the current month"}:
            return span(parse_period(f"{ref.year}-{ref.month:02d}"))
        if rel in {
            "last month",
            "the previous month",
            "the past month",
            "the preceding month",
            "the prior month",
            "the last month",
        }:
            prev = ref.replace(day=1) - timedelta(days=1)
            return span(parse_period(f"{prev.year}-{prev.month:02d}"))
        if rel in {"last week", "the past week"}:
            monday = ref - timedelta(days=ref.weekday() + 7)
            return span(period_for(monday, monday + timedelta(days=6)))
        if rel == "this week":
            monday = ref - timedelta(days=ref.weekday())
            return span(period_for(monday, ref))
        weekday = re.search(r"(mon|tues|wednes|thurs|fri|satur|sun)day", rel)
        if weekday:
            wanted = ["mon", "tues", "wednes", "thurs", "fri", "satur", "sun"].index(weekday[1])
            day = ref - timedelta(days=(ref.weekday() - wanted) % 7)
            if rel.startswith("last") and day == ref:
                day -= timedelta(days=7)
            return span(period_for(day, day), kind_="day")
        if rel == "yesterday":
            day = ref - timedelta(days=1)
            return span(period_for(day, day), kind_="day")
        return span(period_for(ref, ref), kind_="day")  # today
    if kind == "months_to":
        if g.get("e" + "m3"):
            month = _month_of(g["em3"])
            assert month is not None  # noqa: S101
            end = _month_end(int(g["ey3"]), month)
        else:
            end = _date_from(g, "e")  # type: ignore[assignment]
            if end is None:  # pragma: no cover
                raise _Unresolved(f"incomplete date in {phrase!r}")
        if g.get("n"):
            months = int(g["n"]) if g["n"].isdigit() else _NUM_WORDS[g["n"].lower()]
        else:
            months = {"six-month": 6, "three-month": 3}.get((g.get("yr") or "").lower(), 12)
        start = _add_months(end + timedelta(days=1), -months)
        return span(period_for(start, end))
    if kind == "year_of_context":
        year = ctx.year if ctx.year is not None else _need_ref(ctx, phrase).year
        return span(parse_period(str(year)))
    if kind == "vague":
        raise _Unresolved(f"vague period {phrase.strip()!r}")
    raise _Unresolved(f"unknown period phrase {phrase!r}")  # pragma: no cover


def _add_months(day: date, months: int) -> date:
    y, mo = divmod(day.month - 1 + months, 12)
    y += day.year
    mo += 1
    return date(y, mo, min(day.day, calendar.monthrange(y, mo)[1]))


_LEAD = re.compile(
    r"(?:(?:in|during|for|throughout|over|across|of|within|the|on|from|between|since)\s+)+", _I
)


def find_periods(
    text: str,
    ctx: Context,
    is_count: object = None,
) -> list[PeriodMention]:
    """Every period phrase in ``text`` (one sentence), in order, without overlaps.

    ``is_count(text, end)`` may say that a bare year is in fact a count ("2000
    victims"); such years are left to the number finder.
    """
    candidates: list[tuple[int, int, int, str, re.Match[str]]] = []
    for order, (kind, pattern) in enumerate(PATTERNS):
        for m in pattern.finditer(text):
            if m.end() == m.start():
                continue
            lead = _LEAD.match(m[0])
            core = m.end() - m.start() - (lead.end() if lead else 0)
            candidates.append((m.start(), -core, order, kind, m))
    # the longest phrases first ("the 2024 TIP reporting period" over "during the 2024"), then in order
    candidates.sort(key=lambda c: (c[1], c[0], c[2]))
    chosen: list[tuple[str, re.Match[str]]] = []
    for start, _neg_len, _order, kind, m in candidates:
        if any(not (m.end() <= c.start() or start >= c.end()) for _k, c in chosen):
            continue
        if kind == "year" and not m.group("prep") and callable(is_count) and is_count(text, m.end()):
            continue
        if kind == "day_noyear" and _looks_like_count(text, m):
            continue
        try:
            _resolve(kind, m, ctx)
        except _Unresolved as exc:
            if str(exc) == _NOT_A_PERIOD:
                continue
        except ValueError:
            pass
        chosen.append((kind, m))
    taken: list[PeriodMention] = []
    for kind, m in sorted(chosen, key=lambda c: c[1].start()):
        try:
            mention = _resolve(kind, m, ctx)
        except _Unresolved as exc:
            mention = PeriodMention(m.start(), m.end(), m[0], None, str(exc))
        except ValueError as exc:  # an impossible date such as 31 February
            mention = PeriodMention(m.start(), m.end(), m[0], None, f"invalid date {m[0]!r}: {exc}")
        taken.append(mention)
        if mention.period is not None and mention.kind == "period":
            ctx = replace(ctx, year=mention.period.end.year)
    return taken


def _looks_like_count(text: str, m: re.Match[str]) -> bool:
    """'in March 12 suspects were arrested': the number after the month is a count, not a day."""
    if m.group("d2"):
        return False
    rest = text[m.end() : m.end() + 30].lower()
    return bool(re.match(r"\s+[a-z]", rest)) and not re.match(r"\s+(?:and|to|-|,)", rest)


def has_speech_verb(text: str) -> bool:
    return bool(_SPEECH_VERBS.search(text))


# --- reference dates -------------------------------------------------------------------------------

_DATE_ANY = re.compile(_date("a"), _I)
_DATELINE = re.compile(
    r"^\s*(?:(?:[A-Z][A-Z .'\-]{1,40}|[A-Z][A-Za-z .'\-]{1,40},)\s*(?:\([^)]{1,40}\))?,?\s*)?"
    r"(?:(?:on|dated?|posted(?:\s+on)?|published(?:\s+on)?|updated)\s*:?\s*)?"
    r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?(?P<date>" + _date("a") + r")(?=\s*(?:[-–—:(]|$))",
    _I,
)


def dateline(text: str) -> tuple[date, int, int] | None:
    """The date a text gives itself in a dateline ("PHNOM PENH, 12 December 2024 —", "Posted on 3 June 2024").

    Returns ``(date, start, end)`` of the date in the text, or None.
    """
    first_line = text.lstrip().split("\n", 1)[0]
    offset = len(text) - len(text.lstrip())
    m = _DATELINE.match(first_line)
    if m:
        day = _safe_date(m.groupdict(), "a")
        if day:
            return day, offset + m.start("date"), offset + m.end()
    return None


def first_date(text: str) -> date | None:
    """The first full date anywhere in the text."""
    for m in _DATE_ANY.finditer(text):
        day = _safe_date(m.groupdict(), "a")
        if day:
            return day
    return None


def _safe_date(groups: dict[str, str | None], p: str) -> date | None:
    try:
        return _date_from(groups, p)
    except ValueError:
        return None


def resolve_period(phrase: str, as_of: date | None = None, year: int | None = None) -> Period | None:
    """The period a phrase names on its own ("H1 2024", "last year", "January to June 2024"), or None.

    Raises ``ValueError`` with the reason when the phrase is a period phrase that cannot be resolved.
    """
    found = find_periods(phrase, Context(as_of, year))
    if not found:
        return None
    best = max(found, key=lambda p: p.end - p.start)
    if best.period is None:
        raise ValueError(best.reason or f"unknown period phrase {phrase!r}")
    return best.period
