"""Public releases: plan, protect through the gate, store, list, and write as CSV.

A release is asked for as metrics × periods × breakdowns.  Each (metric,
period) gives one table per breakdown (``sex``, or ``sex:age_band`` for a
cross-table), or one table of the total alone when no breakdown is asked for.
Every count comes from the metric registry (``cross_tab`` and ``compute_report``);
the gate (:func:`ctis.publication.gate.protect`) decides what may leave; only
what it returns is stored, never an exact count.  Creating a release is
audited in the same transaction as the rows it writes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ctis.domain.periods import Period, parse_period, report_period
from ctis.domain.values import value_sets
from ctis.io.files import write_csv
from ctis.metrics.registry import DIMENSIONS, METRICS, get_metric
from ctis.metrics.report import UNKNOWN, compute_report, cross_tab
from ctis.publication.gate import (
    TOTAL,
    DpParams,
    Figure,
    Method,
    ProtectedRelease,
    ProtectedTable,
    ReleaseRefused,
    SuppressionParams,
    protect,
)
from ctis.publication.tables import CountTable
from ctis.security import audit
from ctis.security.permissions import Actor, Permission, authorize
from ctis.storage.models import Agency, Release, ReleaseCell

__all__ = [
    "TRANSPARENCY",
    "ReleaseRefused",
    "ReleaseRequest",
    "create_release",
    "earlier_figures",
    "get_release",
    "latest_release",
    "list_releases",
    "lock_releases",
    "privacy_budget",
    "recounter",
    "release_csv",
    "spent_epsilon",
    "store_release",
]

#: Bounds on one request: each table is solved and audited, so the size of a release is its cost.
MAX_METRICS, MAX_PERIODS, MAX_BREAKDOWNS = 8, 12, 6
DEFAULT_BUDGET = 5.0
#: The kind of a release made for the transparency page; a standard export's is ``export:LAYOUT``.
TRANSPARENCY = "transparency"


def privacy_budget() -> float:
    """The total ε all DP releases together may spend (``CTIS_PRIVACY_BUDGET``, default 5)."""
    raw = os.environ.get("CTIS_PRIVACY_BUDGET", "")
    if not raw.strip():
        return DEFAULT_BUDGET
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"CTIS_PRIVACY_BUDGET must be a number, not {raw!r}") from None
    if not value > 0:
        raise ValueError("CTIS_PRIVACY_BUDGET must be above 0")
    return value


@dataclass
class ReleaseRequest:
    """What an administrator asks to publish; :meth:`check` says what is wrong with it, if anything."""

    metrics: list[str]
    periods: list[str]
    breakdowns: list[str]
    method: str = "suppression"
    threshold: int = 10
    epsilon: float = 1.0
    note: str = ""

    def check(self) -> tuple[list[Period], list[tuple[str, ...]]]:
        metrics = list(dict.fromkeys(m.strip() for m in self.metrics if m.strip()))
        if not metrics:
            raise ValueError("choose at least one metric")
        for key in metrics:
            if key not in METRICS:
                raise ValueError(f"unknown metric {key!r}; known: {', '.join(METRICS)}")
        self.metrics = metrics
        labels = list(dict.fromkeys(p.strip() for p in self.periods if p.strip()))
        if not labels:
            raise ValueError("choose at least one period")
        periods = [report_period(p) for p in labels]
        breakdowns: list[tuple[str, ...]] = []
        for raw in dict.fromkeys(b.strip() for b in self.breakdowns if b.strip()):
            dims = tuple(d.strip() for d in raw.split(":"))
            if len(dims) > 2 or len(set(dims)) != len(dims):
                raise ValueError(f"breakdown {raw!r}: one dimension, or two joined by ':' (sex:age_band)")
            for d in dims:
                if d not in DIMENSIONS:
                    raise ValueError(f"unknown breakdown {d!r}; known: {', '.join(DIMENSIONS)}")
            breakdowns.append(dims)
        if len(metrics) > MAX_METRICS or len(periods) > MAX_PERIODS or len(breakdowns) > MAX_BREAKDOWNS:
            raise ValueError(
                f"a release holds at most {MAX_METRICS} metrics, {MAX_PERIODS} periods "
                f"and {MAX_BREAKDOWNS} breakdowns"
            )
        if self.method not in {m.value for m in Method}:
            raise ValueError("method must be 'suppression' or 'dp'")
        if len(self.note) > 2000:
            raise ValueError("the note is limited to 2000 characters")
        return periods, breakdowns

    def params(self, spent: float) -> SuppressionParams | DpParams:
        if self.method == Method.SUPPRESSION:
            return SuppressionParams(threshold=int(self.threshold))
        return DpParams(epsilon=float(self.epsilon), budget=privacy_budget(), spent=spent)


def domain(session: Session, dimension: str) -> list[str]:
    """Every value a breakdown can take, from the value sets, so which cells exist never depends on data."""
    name = DIMENSIONS[dimension]
    if name == "agency":
        codes = [str(i) for i in session.execute(select(Agency.id).order_by(Agency.id)).scalars()]
    elif name in value_sets():
        codes = value_sets()[name].codes
    elif name == "country":
        import pycountry

        codes = sorted(c.alpha_3 for c in pycountry.countries)
    else:  # pragma: no cover - every dimension names one of the above
        raise ValueError(f"no value set for {dimension!r}")
    return [*codes, UNKNOWN] if UNKNOWN not in codes else list(codes)


def build_tables(
    session: Session, metrics: Sequence[str], periods: Sequence[Period], breakdowns: Sequence[tuple[str, ...]]
) -> list[CountTable]:
    """Exact count tables from the registry, one per metric × period × breakdown (zeros filled in)."""
    tables = []
    domains = {d: domain(session, d) for dims in breakdowns for d in dims}
    for key in metrics:
        metric = get_metric(key)
        for period in periods:
            total = compute_report(session, period, [key]).metrics[key]
            base = CountTable(f"{key} {period.label}", key, period.label, (), {(): total}, total)
            usable = [dims for dims in breakdowns if all(d in metric.dimensions for d in dims)]
            if not usable:
                tables.append(_titled(base, metric.label_en, metric.unit))
                continue
            for dims in usable:
                counts = cross_tab(session, period, key, dims)
                cells = {combo: 0 for combo in _product([domains[d] for d in dims])}
                for combo, n in counts.items():
                    cells[combo] = cells.get(combo, 0) + n
                name = f"{key} {period.label} by {' × '.join(dims)}"
                table = CountTable(name, key, period.label, dims, cells, total)
                tables.append(_titled(table, metric.label_en, metric.unit))
    return tables


def _titled(t: CountTable, title: str, unit: str) -> CountTable:
    t.title, t.unit = title, unit
    return t


def _product(lists: list[list[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for values in lists:
        out = [(*combo, v) for combo in out for v in values]
    return out


def spent_epsilon(session: Session) -> float:
    """ε spent by every release so far: the privacy ledger."""
    return float(session.execute(select(func.coalesce(func.sum(Release.epsilon), 0.0))).scalar_one())


def earlier_figures(session: Session) -> list[Figure]:
    """Everything earlier suppression releases made public, for the gate's audit against differencing.

    Noisy counts of DP releases are left out: they are not equations about the
    records, and their protection is the ε ledger's business.
    """
    rows = session.execute(
        select(ReleaseCell).join(Release, Release.id == ReleaseCell.release_id).where(Release.method != "dp")
    ).scalars()
    return [
        Figure(
            r.metric,
            r.period_start,
            r.period_end,
            tuple(json.loads(r.dimensions)),
            tuple(json.loads(r.key)),
            r.value,
        )
        for r in rows
    ]


def recounter(session: Session) -> Callable[[Figure], int | None]:
    """The exact count now of an earlier release's figure, computed again through the registry."""
    cache: dict[tuple[str, date, date, tuple[str, ...]], dict[tuple[str, ...], int]] = {}

    def recount(f: Figure) -> int | None:
        if f.metric not in METRICS or not all(d in METRICS[f.metric].dimensions for d in f.dimensions):
            return None
        key = (f.metric, f.start, f.end, f.dimensions)
        if key not in cache:
            period = Period(f.start, f.end, f"{f.start}..{f.end}", "range")
            cache[key] = cross_tab(session, period, f.metric, f.dimensions) if f.dimensions else {}
            if not f.dimensions:
                cache[key] = {(): compute_report(session, period, [f.metric]).metrics[f.metric]}
        where = f.where
        return sum(
            n
            for cell, n in cache[key].items()
            if all(where.get(d, v) == v for d, v in zip(f.dimensions, cell, strict=True))
        )

    return recount


_recounter = recounter  # the name it had before exports used it


def lock_releases(session: Session) -> None:
    """One release or export at a time on PostgreSQL, so the ε ledger and version numbers cannot race.

    Call it before reading the ledger or the earlier figures: what is read must
    still be the history when the new release is written.  SQLite writers are
    serialised by the database itself.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE releases IN EXCLUSIVE MODE"))


def create_release(session: Session, actor: Actor, request: ReleaseRequest) -> Release:
    """Protect and store a release, or raise ``ReleaseRefused`` / ``ValueError`` having written nothing.

    The caller owns the transaction; the audit entry is written in it, with the
    release rows, so a release without its audit entry cannot exist.
    """
    authorize(actor, Permission.RELEASES_PUBLISH)
    periods, breakdowns = request.check()
    lock_releases(session)
    params = request.params(spent_epsilon(session))
    tables = build_tables(session, request.metrics, periods, breakdowns)
    protected = protect(
        tables, request.method, params, earlier=earlier_figures(session), recount=recounter(session)
    )
    return _store(session, actor, protected, request)


def _store(session: Session, actor: Actor, protected: ProtectedRelease, request: ReleaseRequest) -> Release:
    asked = {"metrics": request.metrics, "periods": request.periods, "breakdowns": request.breakdowns}
    release, cells = store_release(
        session,
        actor,
        method=protected.method.value,
        parameters=protected.parameters,
        request=asked,
        tables=protected.tables,
        epsilon=protected.epsilon,
        note=request.note,
        created_at=protected.created_at,
    )
    hidden = sum(1 for c in cells if c.value is None)
    audit.record(
        session,
        actor.username,
        "publish",
        "releases",
        release.id,
        {"version": release.version, "method": release.method, "epsilon": release.epsilon,
         "figures": len(cells), "hidden": hidden, "request": asked},
    )  # fmt: skip
    session.flush()
    return release


def store_release(
    session: Session,
    actor: Actor,
    *,
    method: str,
    parameters: dict[str, object],
    request: dict[str, object],
    tables: Sequence[ProtectedTable],
    epsilon: float = 0.0,
    note: str = "",
    kind: str = TRANSPARENCY,
    created_at: datetime | None = None,
) -> tuple[Release, list[ReleaseCell]]:
    """Write a release and the figures it made public; the caller writes the audit entry beside it.

    Shared by transparency releases and standard exports so that both land in
    one history: the next release's gate reads every figure either published,
    and the ε ledger sums both.  Nothing exact is stored: only what ``tables``
    (the gate's output) show.
    """
    version = int(session.execute(select(func.coalesce(func.max(Release.version), 0))).scalar_one()) + 1
    stored = dict(parameters)
    stored["request"] = request
    release = Release(
        version=version,
        created_at=(created_at or datetime.now(UTC)).replace(tzinfo=None),
        created_by=actor.username,
        method=method,
        parameters=json.dumps(stored, ensure_ascii=False, sort_keys=True),
        epsilon=epsilon,
        note=note or None,
        kind=kind,
    )
    session.add(release)
    session.flush()
    cells = []
    for t in tables:
        p = parse_period(t.period)
        for cell in t.cells.values():
            cells.append(
                ReleaseCell(
                    release_id=release.id,
                    table_name=t.name,
                    metric=t.metric,
                    period=p.label,
                    period_start=p.start,
                    period_end=p.end,
                    dimensions=json.dumps(list(t.dimensions)),
                    key=json.dumps(list(cell.key), ensure_ascii=False),
                    value=cell.value,
                    status=cell.status.value,
                )
            )
    session.add_all(cells)
    session.flush()
    return release, cells


def list_releases(session: Session) -> list[Release]:
    return list(session.execute(select(Release).order_by(Release.version.desc())).scalars())


def get_release(session: Session, version: int, kind: str | None = None) -> Release | None:
    """Release ``version``; with ``kind``, only if it is of that kind (the public page asks for its own)."""
    query = select(Release).where(Release.version == version)
    if kind is not None:
        query = query.where(Release.kind == kind)
    return session.execute(query).scalar_one_or_none()


def latest_release(session: Session) -> Release | None:
    """The latest transparency release: an export's tables were made for their recipient, not the page."""
    query = select(Release).where(Release.kind == TRANSPARENCY).order_by(Release.version.desc()).limit(1)
    return session.execute(query).scalar_one_or_none()


def release_cells(session: Session, release: Release) -> list[ReleaseCell]:
    return list(
        session.execute(
            select(ReleaseCell).where(ReleaseCell.release_id == release.id).order_by(ReleaseCell.id)
        ).scalars()
    )


#: How a figure's status reads in public: primary and secondary are both just "suppressed",
#: because telling them apart would tell a reader which hidden cells are small.
PUBLIC_STATUS = {"published": "exact", "primary": "suppressed", "secondary": "suppressed", "noise": "noisy"}


@dataclass(frozen=True)
class PublicFigure:
    table: str
    metric: str
    period: str
    period_start: str
    period_end: str
    dimensions: tuple[str, ...]
    key: tuple[str, ...]
    value: int | None
    status: str

    @property
    def is_total(self) -> bool:
        return all(v == TOTAL for v in self.key)


def public_figures(session: Session, release: Release) -> list[PublicFigure]:
    """The release as the public sees it: values, with hidden ones marked but not told apart."""
    return [
        PublicFigure(
            c.table_name,
            c.metric,
            c.period,
            c.period_start.isoformat(),
            c.period_end.isoformat(),
            tuple(json.loads(c.dimensions)),
            tuple(json.loads(c.key)),
            c.value,
            PUBLIC_STATUS.get(c.status, "suppressed"),
        )
        for c in release_cells(session, release)
    ]


def release_csv(session: Session, release: Release) -> str:
    """The release as CSV: one row per figure; ``*`` in a breakdown column marks a margin."""
    out = io.StringIO()
    rows = []
    for f in public_figures(session, release):
        dims = [*f.dimensions, "", ""][:2]
        key = [*f.key, "", ""][:2]
        rows.append(
            [release.version, release.method, f.metric, f.period, f.period_start, f.period_end,
             dims[0], key[0], dims[1], key[1], "" if f.value is None else f.value, f.status]
        )  # fmt: skip
    # through the one CSV writer, so that a category value that begins like a formula is neutralised
    write_csv(
        out,
        ["release", "method", "metric", "period", "period_start", "period_end", "dimension_1", "value_1",
         "dimension_2", "value_2", "value", "status"],
        rows,
    )  # fmt: skip
    return out.getvalue()


def describe(release: Release) -> dict[str, object]:
    """A release's header for listings and the API (no figures)."""
    params = json.loads(release.parameters)
    return {
        "version": release.version,
        "created_at": release.created_at.isoformat(timespec="seconds"),
        "created_by": release.created_by,
        "method": release.method,
        "parameters": {k: v for k, v in params.items() if k != "request"},
        "request": params.get("request", {}),
        "epsilon": release.epsilon,
        "note": release.note,
        "kind": release.kind,
    }
