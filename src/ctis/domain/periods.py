"""Reporting periods.

A period is an inclusive date range with a label.  The committee reports by
month, quarter, half-year and calendar year; the US TIP report uses a year
that runs 1 April – 31 March and is named after the year it ends in
(``TIP2024`` = 2023-04-01..2024-03-31); anything else is an explicit range.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

#: The longest period a report, a dashboard, a drill-down or an export is computed for.  Longer
#: ones (``0001-01-01..9999-12-31``) are refused with a message: they mean nothing to the
#: committee, and a trend over them is tens of thousands of months of work for one request.
MAX_PERIOD_YEARS = 20
#: The calendar years a report period may lie in.  Outside them (year 1, 9999) a period is a typo
#: or a probe, and its last day plus one would overflow the calendar in the SQL bounds.
REPORT_YEARS = range(1900, 3000)

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("range", re.compile(r"^(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})$")),
    ("tip", re.compile(r"^TIP\s*(\d{4})$", re.IGNORECASE)),
    ("half", re.compile(r"^(\d{4})-H([12])$", re.IGNORECASE)),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)),
    ("month", re.compile(r"^(\d{4})-(\d{2})$")),
    ("year", re.compile(r"^(\d{4})$")),
]


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    label: str
    kind: str

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_dict(self) -> dict[str, str]:
        return {
            "label": self.label,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def parse_period(text: str) -> Period:
    """Parse ``2024``, ``2024-03``, ``2024-Q3``, ``2024-H1``, ``TIP2024`` or ``A..B``."""
    raw = text.strip()
    for kind, pattern in _PATTERNS:
        m = pattern.match(raw)
        if not m:
            continue
        try:
            if kind == "range":
                start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
                if end < start:
                    raise ValueError(f"period {raw!r} ends before it starts")
                return Period(start, end, f"{start}..{end}", kind)
            year = int(m[1])
            if kind == "year":
                return Period(date(year, 1, 1), date(year, 12, 31), str(year), kind)
            if kind == "tip":
                return Period(date(year - 1, 4, 1), date(year, 3, 31), f"TIP{year}", kind)
            if kind == "half":
                h = int(m[2])
                first = 1 if h == 1 else 7
                return Period(date(year, first, 1), _month_end(year, first + 5), f"{year}-H{h}", kind)
            if kind == "quarter":
                q = int(m[2])
                first = 3 * (q - 1) + 1
                return Period(date(year, first, 1), _month_end(year, first + 2), f"{year}-Q{q}", kind)
            month = int(m[2])
            return Period(date(year, month, 1), _month_end(year, month), f"{year}-{month:02d}", kind)
        except ValueError as exc:
            if "period" in str(exc):
                raise
            raise ValueError(f"invalid period {raw!r}: {exc}") from None
    raise ValueError(
        f"unknown period {raw!r}: use 2024, 2024-03, 2024-Q3, 2024-H1, TIP2024 "
        "(1 April 2023 – 31 March 2024) or 2024-01-15..2024-02-10"
    )


def _years_after(day: date, years: int) -> date | None:
    """The same day ``years`` later (29 February -> 1 March); None past the calendar's end."""
    if day.year + years > date.max.year:
        return None
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def check_length(period: Period, longest: int = MAX_PERIOD_YEARS) -> Period:
    """``period`` itself, or ``ValueError`` when it is longer than ``longest`` years or lies
    outside :data:`REPORT_YEARS`."""
    limit = _years_after(period.start, longest)
    if limit is not None and period.end >= limit:
        raise ValueError(
            f"period {period.label!r} is longer than {longest} years, the longest a report covers; "
            "choose a shorter period"
        )
    first, last = REPORT_YEARS[0], REPORT_YEARS[-1]
    if period.start.year < first or period.end.year > last:
        raise ValueError(f"period {period.label!r} is outside the years {first}–{last} a report covers")
    return period


def report_period(text: str) -> Period:
    """:func:`parse_period`, refusing a period longer than :data:`MAX_PERIOD_YEARS` years.

    For every period a person asks a report, dashboard, drill-down or export for (CLI, API, pages).
    """
    return check_length(parse_period(text))


def months(period: Period) -> list[Period]:
    """The calendar months a period touches, clipped to it: the axis of a trend chart."""
    out: list[Period] = []
    day = period.start
    while day <= period.end:
        end = min(_month_end(day.year, day.month), period.end)
        out.append(Period(day, end, f"{day.year}-{day.month:02d}", "month"))
        if end == date.max:  # the day after would overflow the calendar
            break
        day = end + timedelta(days=1)
    return out
