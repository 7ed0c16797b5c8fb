"""Compute reports and drill-downs from the registry.

A report is, for one period, the total of each requested metric and, per
requested dimension, the count per value.  Each count is one SQL query built
from the metric's :class:`~ctis.metrics.registry.Facts`; the query is the one a
person would write by hand (the benchmark checks that it costs the same).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, distinct, exists, func, or_, select
from sqlalchemy.orm import Session

from ctis.domain.periods import Period
from ctis.metrics.registry import DIMENSIONS, METRICS, Facts, Metric, get_metric
from ctis.storage.models import MODELS, DataVersion, LinkRun

UNKNOWN = "unknown"


@dataclass
class Report:
    period: Period
    metrics: dict[str, int]
    #: dimension -> metric key -> dimension value -> count
    by: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: Whether the people figures count persons found by linkage: True when the
    #: latest link run of each people unit in the report covers all its records
    #: (see :func:`linkage_covers`).  False for a report of cases and operations only.
    deduplicated: bool = False
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": self.period.as_dict(),
            "counts": "persons" if self.deduplicated else "records",
            "deduplicated": self.deduplicated,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "metrics": dict(self.metrics),
        }
        if self.by:
            out["by"] = self.by
        return out


def _count(facts: Facts) -> Any:
    """The COUNT expression of a metric: ``COUNT(*)`` when each row is one record (its id is the
    non-null primary key), ``COUNT(DISTINCT …)`` when a record can appear in several rows (fan-out
    joins) or several records are one person."""
    if facts.fan_out or facts.row_id is not None:
        return func.count(distinct(facts.record_id))
    return func.count()


def first_records(facts: Facts) -> Select[Any]:
    """The id of each counted person's first record in the facts (the smallest record id), one row
    per person: where a person must stand for one record (published tables, CTDC rows)."""
    row_id = facts.row_id if facts.row_id is not None else facts.record_id
    return select(func.min(row_id)).select_from(facts.from_).where(*facts.where).group_by(facts.record_id)


def total_query(facts: Facts) -> Select[Any]:
    return select(_count(facts)).select_from(facts.from_).where(*facts.where)


def breakdown_query(facts: Facts, dimension: str) -> Select[Any]:
    column = facts.dimensions[dimension]
    return select(column, _count(facts)).select_from(facts.from_).where(*facts.where).group_by(column)


def check_dimensions(dimensions: Iterable[str]) -> list[str]:
    dims = list(dict.fromkeys(dimensions))
    if dims == ["all"]:
        return list(DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}, all")
    return dims


def compute_report(
    session: Session,
    period: Period,
    metric_keys: Sequence[str] | None = None,
    by: Iterable[str] = (),
) -> Report:
    """Totals and breakdowns for ``period``; a metric without a dimension is left out of it."""
    metrics: list[Metric] = [get_metric(k) for k in metric_keys] if metric_keys else list(METRICS.values())
    dims = check_dimensions(by)
    report = Report(period=period, metrics={})
    people = {m.unit for m in metrics} & set(PEOPLE_UNITS)
    report.deduplicated = bool(people) and all(linkage_covers(session, unit) for unit in sorted(people))
    for metric in metrics:
        facts = metric.facts(period)
        report.metrics[metric.key] = int(session.execute(total_query(facts)).scalar_one())
        for dim in dims:
            if dim not in facts.dimensions:
                continue
            rows = session.execute(breakdown_query(facts, dim)).all()
            counts: dict[str, int] = {}
            for value, n in rows:  # a missing value and a recorded "unknown" are one cell
                code = UNKNOWN if value is None else str(value)
                counts[code] = counts.get(code, 0) + int(n)
            report.by.setdefault(dim, {})[metric.key] = dict(sorted(counts.items()))
    return report


#: Units whose figures count persons (``ctis.linkage``).
PEOPLE_UNITS = ("victims", "suspects")


def linkage_covers(session: Session, unit: str) -> bool:
    """Whether the latest link run of ``unit`` covers all its records.

    A run gives every record it saw a ``person_id`` (its own id when it found no
    other record of the person); a record created since has none and counts as
    its own person until the next run, so the figures are then not fully de-duplicated.
    """
    table = MODELS[unit].__table__  # type: ignore[attr-defined]
    ran = session.scalar(
        select(exists().where(LinkRun.kind == unit, LinkRun.status == "succeeded"))
    )
    if not ran:
        return False
    return not session.scalar(select(exists().where(table.c.person_id.is_(None))))


def cross_tab(
    session: Session, period: Period, metric_key: str, dims: Sequence[str]
) -> dict[tuple[str, ...], int]:
    """Counts of one metric by several dimensions at once: ``{(value, value, ...): count}``.

    Publication needs cross-tables (sex × age band, sex × nationality) whose
    cells add up to the one-dimensional breakdowns and to the total, so that
    suppression can reason about every margin.  A missing value and a recorded
    "unknown" are one cell, as in :func:`compute_report`.  For a metric with
    ``fan_out`` a record falls in one cell per combination it has (a case with
    operations in two provinces), exactly as the one-dimensional breakdowns count it.

    People (victims, suspects) are counted as persons, and a person whose linked
    records disagree (one agency wrote "female", another "unknown") would fall in
    two cells: the table would no longer add up to its total, and one person
    would change two cells of a published table, twice the sensitivity the
    release gate's noise is scaled for.  So each person contributes through one
    record only, their first in the period (the smallest record id), as the
    CTDC export does.  Where a person's records agree, this is the breakdown.
    """
    metric = get_metric(metric_key)
    facts = metric.facts(period)
    dims = check_dimensions(dims)
    missing = [d for d in dims if d not in facts.dimensions]
    if missing:
        raise ValueError(f"{metric_key} has no breakdown by {missing[0]!r}")
    columns = [facts.dimensions[d] for d in dims]
    where = list(facts.where)
    if facts.row_id is not None:  # people: one record per person (contribution bounding)
        where.append(facts.row_id.in_(first_records(facts)))
    query = select(*columns, _count(facts)).select_from(facts.from_).where(*where).group_by(*columns)
    cells: dict[tuple[str, ...], int] = {}
    for *values, n in session.execute(query).all():
        key = tuple(UNKNOWN if v is None else str(v) for v in values)
        cells[key] = cells.get(key, 0) + int(n)
    return dict(sorted(cells.items()))


_TOKEN_SQL = f"SELECT token FROM {DataVersion.__tablename__} WHERE id = 1"


def data_token(session: Session) -> str | None:
    """The data version token: it changes in every transaction that changes records.

    Read on every cached request, so as plain SQL on the session's connection:
    a third of the cost of the same query through the statement cache.
    """
    value = session.connection().exec_driver_sql(_TOKEN_SQL).scalar()
    return None if value is None else str(value)


class VersionedCache:
    """A bounded LRU of values computed from the records, valid for one data version token.

    Any transaction that changes records changes the token (``DataVersion``), so
    a key that includes the token is never served after the records behind it
    changed; stale entries simply age out.  Shared by the threads of one process.
    """

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ReportCache(VersionedCache):
    """Recent reports, keyed on the database, the data version token and the question asked.

    One cheap query reads the token; a caller that asks several reports in one
    request reads it once and passes it as ``token``.
    """

    def report(
        self,
        session: Session,
        period: Period,
        metric_keys: Sequence[str] | None = None,
        by: Iterable[str] = (),
        token: str | None = None,
    ) -> Report:
        dims = check_dimensions(by)
        if token is None:
            token = data_token(session)
        key = (
            str(session.get_bind().url),
            token,
            period.start,
            period.end,
            tuple(metric_keys or ()),
            tuple(dims),
        )
        hit = self.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        fresh = compute_report(session, period, metric_keys, dims)
        if token is not None:
            self.put(key, fresh)
        return fresh


#: The process-wide cache the web front end uses.
report_cache = ReportCache()


@dataclass(frozen=True)
class DrillRow:
    """One counted thing of a figure: a record, or for people a person.

    ``id`` and ``external_id`` are those of the person's first record in the
    figure (the smallest id); ``records`` lists every record of the person the
    figure counts, ``(id, external_id)`` in id order, the first included.  A
    front end shows only the records the viewer may see (``records.visible_ids``):
    the grouping itself says that two records are one person.
    """

    id: int
    external_id: str
    records: tuple[tuple[int, str], ...] = ()


def drill_down(
    session: Session,
    metric_key: str,
    period: Period,
    dimension: str | None = None,
    value: str | None = None,
) -> tuple[str, list[DrillRow]]:
    """What a figure counts: ``(unit, rows)`` in id order, one row per record or, for people, per person.

    ``len(rows)`` is the figure; a person's row lists each of their records the
    figure counts (``DrillRow.records``).

    With ``dimension`` and ``value``, only the records in that cell of the
    breakdown; ``unknown`` selects the records with no value.
    """
    metric = get_metric(metric_key)
    facts = metric.facts(period)
    where = list(facts.where)
    if dimension is not None:
        if dimension not in facts.dimensions:
            raise ValueError(f"{metric_key} has no breakdown by {dimension!r}")
        column = facts.dimensions[dimension]
        if value is None or value == UNKNOWN:
            # agency is an integer column: only a missing value is "unknown" there
            where.append(
                column.is_(None) if dimension == "agency" else or_(column.is_(None), column == UNKNOWN)
            )
        else:
            where.append(column == (int(value) if dimension == "agency" else value))
    if facts.unit not in MODELS:
        # screened posts: no record table; the post's own id stands for the external id, and the
        # row number for the id (callers only use it to filter by what the reader may see)
        found = session.scalars(
            select(facts.record_id).select_from(facts.from_).where(*where).distinct().order_by(facts.record_id)
        ).all()
        return facts.unit, [DrillRow(i, str(post_id)) for i, post_id in enumerate(found, 1)]
    table = MODELS[facts.unit].__table__  # type: ignore[attr-defined]
    if facts.row_id is None:
        ids = select(facts.record_id).select_from(facts.from_).where(*where).distinct().subquery()
        rows = session.execute(
            select(table.c.id, table.c.external_id).where(table.c.id.in_(select(ids))).order_by(table.c.id)
        ).all()
        return facts.unit, [DrillRow(r.id, r.external_id, ((r.id, r.external_id),)) for r in rows]
    # people: the records in the figure, grouped by the person they belong to
    pairs = select(facts.row_id.label("rid"), facts.record_id.label("pid")).select_from(facts.from_)
    pairs = pairs.where(*where).distinct().subquery()
    linked = session.execute(
        select(pairs.c.pid, table.c.id, table.c.external_id)
        .join(table, table.c.id == pairs.c.rid)
        .order_by(table.c.id)
    ).all()
    persons: dict[int, list[tuple[int, str]]] = {}
    for pid, rid, ext in linked:
        persons.setdefault(int(pid), []).append((int(rid), str(ext)))
    out = [DrillRow(recs[0][0], recs[0][1], tuple(recs)) for recs in persons.values()]
    out.sort(key=lambda r: r.id)
    return facts.unit, out
