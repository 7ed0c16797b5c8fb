"""The trend of flagged posts: the ``posts_flagged`` metric of the registry, week by week or month by month.

The count is not defined here: each period's figure is the registry's
``posts_flagged`` (``ctis.metrics.registry``) computed through the shared,
versioned report cache, so the queue's chart, the dashboard, reports and claim
checks give the same number for the same period.  This module only cuts a date
range into weeks (Monday to Sunday) or calendar months and reads the figures.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ctis.domain.periods import Period, months
from ctis.metrics.report import UNKNOWN, report_cache
from ctis.records import Invalid
from ctis.security.permissions import Actor, Permission, authorize
from ctis.storage.models import ScreenedPost

METRIC = "posts_flagged"
INTERVALS = ("week", "month")
#: Periods one trend may hold: two years of weeks, or ten of months.
MAX_PERIODS = 120
#: The range shown when none is asked: this many periods up to the newest flagged post.
DEFAULT_SPAN = {"week": 12, "month": 12}


def weeks(start: date, end: date) -> list[Period]:
    """ISO weeks (Monday to Sunday) touching ``start``..``end``, clipped to it; labelled as ranges
    so each label is a period every report and drill-down accepts."""
    out: list[Period] = []
    day = start
    while day <= end:
        week_end = min(day + timedelta(days=6 - day.weekday()), end)
        out.append(Period(day, week_end, f"{day.isoformat()}..{week_end.isoformat()}", "range"))
        day = week_end + timedelta(days=1)
    return out


def _whole(month: Period) -> Period:
    """A month cut by the range is labelled as the range it covers, so its label (which pages use
    to link to the posts behind the figure) means the same days as its count."""
    if month.start.day == 1 and (month.end + timedelta(days=1)).day == 1:
        return month
    return Period(month.start, month.end, f"{month.start.isoformat()}..{month.end.isoformat()}", "range")


def default_range(session: Session, interval: str) -> tuple[date, date]:
    """Whole periods up to the one holding the newest flagged post (or today): the last twelve
    months, or the last twelve weeks."""
    newest = session.scalar(select(func.max(ScreenedPost.posted_at)).where(ScreenedPost.flagged.is_(True)))
    day = newest.date() if newest is not None else date.today()
    if interval == "week":
        end = day + timedelta(days=6 - day.weekday())
        return end - timedelta(days=7 * DEFAULT_SPAN["week"] - 1), end
    end = date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    first = date(day.year - (1 if day.month < DEFAULT_SPAN["month"] else 0), day.month % 12 + 1, 1)
    return first, end


def trend(
    session: Session,
    actor: Actor,
    interval: str = "month",
    start: date | None = None,
    end: date | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """Flagged posts per week or month by posted date, in total and by language.

    With ``language`` the counts are those of that language only (from the
    registry's breakdown by language).  ``undated`` counts flagged posts with no
    posted date, which no period holds.
    """
    authorize(actor, Permission.SCREENING_READ)
    if interval not in INTERVALS:
        raise Invalid({"interval": f"must be one of {', '.join(INTERVALS)}"})
    if language is not None and not (1 <= len(language) <= 8 and language.replace("-", "").isalpha()):
        raise Invalid({"language": "a language code such as en, km, th, zh, vi"})
    if start is None or end is None:
        default_start, default_end = default_range(session, interval)
        start, end = start or default_start, end or default_end
    if end < start:
        raise Invalid({"end": "the range ends before it starts"})
    periods = (
        weeks(start, end)
        if interval == "week"
        else [_whole(m) for m in months(Period(start, end, "", "range"))]
    )
    if len(periods) > MAX_PERIODS:
        raise Invalid({"start": f"at most {MAX_PERIODS} {interval}s in one trend, not {len(periods)}"})
    rows: list[dict[str, Any]] = []
    languages: set[str] = set()
    for p in periods:
        report = report_cache.report(session, p, [METRIC], ["language"])
        by_language = report.by.get("language", {}).get(METRIC, {})
        languages.update(by_language)
        count = by_language.get(language, 0) if language else report.metrics[METRIC]
        rows.append({"label": p.label, "start": p.start, "end": p.end, "count": count,
                     "by_language": by_language})  # fmt: skip
    undated = session.scalar(
        select(func.count())
        .select_from(ScreenedPost)
        .where(ScreenedPost.flagged.is_(True), ScreenedPost.posted_at.is_(None))
    )
    return {
        "metric": METRIC, "interval": interval, "start": start, "end": end, "language": language,
        "periods": rows, "total": sum(r["count"] for r in rows),
        "languages": sorted(languages - {UNKNOWN}) + ([UNKNOWN] if UNKNOWN in languages else []),
        "undated": int(undated or 0),
    }  # fmt: skip
