"""Count tables for the TIP and GLOTIP exports, built from the registry and passed through the gate.

Every table here is one metric of the registry cross-tabulated by at most two
of its dimensions (:func:`ctis.metrics.report.cross_tab`), with the registry's
own total; nothing is counted here.  Each table lists every key its value sets
allow, zeros included, because the gate needs the set of cells not to depend on
the data.  Nationalities are the exception that proves the rule: a list of
every country would make tables of a thousand cells that are nearly all zero,
so the countries published one by one are kept in
``domain/data/export_nationalities.csv`` and every other known nationality is
summed into ``other``, again a fixed set of keys.

:func:`apply_gate` is the single seam between an export and the release gate
(``ctis.publication.gate.protect``).  Exact tables leave only with
``exact=True``, which needs ``reports:export`` and is stamped on every file.

A protected export is a publication like any other: its gate is given every
figure earlier releases and exports made public (so a TIP year and a calendar
year cannot be differenced into the quarter between them), a DP export spends
from the same ε ledger, and what it published is recorded as a release of kind
``export:LAYOUT`` (:func:`record_export`) so that later ones are audited
against it.  Exact exports are official, not public, and are never recorded.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import product
from typing import Any

from sqlalchemy.orm import Session

from ctis.domain.periods import Period
from ctis.domain.values import country_label, value_set
from ctis.exports.mapping import Unmapped, UnmappedLog
from ctis.metrics.registry import DIMENSIONS, FREE_DIMENSIONS, METRICS, exploitation_forms
from ctis.metrics.report import UNKNOWN, compute_report, cross_tab
from ctis.publication.gate import (
    CellStatus,
    DpParams,
    Figure,
    Method,
    ProtectedTable,
    PublishedCell,
    ReleaseRefused,
    SuppressionParams,
    margins_of,
    protect,
)
from ctis.publication.releases import (
    earlier_figures,
    lock_releases,
    privacy_budget,
    recounter,
    spent_epsilon,
    store_release,
)
from ctis.publication.tables import CountTable
from ctis.security import audit
from ctis.security.permissions import Actor, Permission, authorize

OTHER = "other"
EXACT_WARNING = (
    "EXACT COUNTS - NOT PROTECTED. For the government's official submission only; "
    "never publish or share these tables."
)


@dataclass(frozen=True)
class TableSpec:
    """One table of a layout: a registry metric by up to two dimensions."""

    name: str  # also the XLSX sheet name: at most 31 characters
    metric: str
    dimensions: tuple[str, ...]
    title: str


@cache
def published_nationalities() -> tuple[str, ...]:
    source = resources.files("ctis.domain").joinpath("data", "export_nationalities.csv")
    with source.open(encoding="utf-8") as fh:
        return tuple(row["code"] for row in csv.DictReader(fh))


def keys_of(dimension: str) -> list[str]:
    """Every value a dimension can take in a published table, ``unknown`` last."""
    if dimension == "nationality":
        return [*published_nationalities(), OTHER, UNKNOWN]
    free = dimension in FREE_DIMENSIONS
    if dimension not in DIMENSIONS or DIMENSIONS[dimension] in {"agency", "country"} or free:
        raise ValueError(f"dimension {dimension!r} has no fixed list of values to publish")
    codes = value_set(DIMENSIONS[dimension]).codes
    return [c for c in codes if c != UNKNOWN] + [UNKNOWN]


def label_of(dimension: str, code: str) -> str:
    """English label of a published key, for the reader of a sheet."""
    if code == UNKNOWN:
        return "Unknown"
    if dimension == "nationality":
        return "Other nationalities" if code == OTHER else f"{country_label(code)} ({code})"
    if dimension == "age_band":
        return code
    return value_set(DIMENSIONS[dimension]).label(code)


def _published_key(dimension: str, code: str) -> str:
    if dimension == "nationality" and code not in published_nationalities() and code != UNKNOWN:
        return OTHER
    return code


def build_table(
    session: Session, period: Period, spec: TableSpec, total: int, log: UnmappedLog
) -> CountTable:
    """The exact :class:`CountTable` of one spec: registry cells on the full key grid, registry total."""
    metric = METRICS[spec.metric]
    dims = spec.dimensions
    if not dims:
        cells: dict[tuple[str, ...], int] = {(): total}
    else:
        cells = dict.fromkeys(product(*(keys_of(d) for d in dims)), 0)
        for key, n in cross_tab(session, period, spec.metric, dims).items():
            published = tuple(_published_key(d, v) for d, v in zip(dims, key, strict=True))
            if published not in cells:
                for d, v in zip(dims, published, strict=True):
                    if v not in keys_of(d):
                        log.add(
                            f"{spec.metric}.{d}", v, "not in the value set; published as a cell of its own", n
                        )
                cells[published] = 0
            cells[published] += n
    return CountTable(
        name=spec.name,
        metric=spec.metric,
        period=period.label,
        dimensions=dims,
        cells=cells,
        total=total,
        title=spec.title,
        unit=metric.unit,
        notes=[metric.definition],
    )


def check_forms(session: Session, period: Period, metric_keys: Iterable[str], log: UnmappedLog) -> None:
    """Report exploitation and offence types with no form of exploitation (they count as ``unknown``)."""
    forms = exploitation_forms()
    keys = list(dict.fromkeys(metric_keys))
    report = compute_report(session, period, keys, ["exploitation_type", "offence_type"])
    for dim, source in (("exploitation_type", "exploitation_type"), ("offence_type", "offence_type")):
        seen: dict[str, int] = {}
        for counts in report.by.get(dim, {}).values():
            for code, n in counts.items():
                if code != UNKNOWN and code not in forms.get(source, {}):
                    seen[code] = max(seen.get(code, 0), n)
        for code, n in seen.items():
            log.add(
                source, code, "no form of exploitation in exploitation_forms.csv; counted as 'unknown'", n
            )


def exact_table(t: CountTable) -> ProtectedTable:
    """An unprotected table in the gate's output shape, so one writer serves both modes."""
    cells = {k: PublishedCell(k, v, CellStatus.PUBLISHED) for k, v in margins_of(t).items()}
    return ProtectedTable(t.name, t.metric, t.period, t.dimensions, cells, t.title, t.unit, list(t.notes))


@dataclass
class Gated:
    tables: list[ProtectedTable]
    method: str
    parameters: dict[str, Any]
    #: tables left out, with the reason
    withheld: list[tuple[str, str]] = field(default_factory=list)
    epsilon: float = 0.0


def apply_gate(
    tables: Sequence[CountTable],
    *,
    exact: bool,
    method: Method | str = Method.SUPPRESSION,
    params: SuppressionParams | DpParams | None = None,
    earlier: Sequence[Figure] = (),
    recount: Callable[[Figure], int | None] | None = None,
) -> Gated:
    """The one place an export's tables meet the release gate.

    With suppression, a table whose total is itself below the threshold would
    make the gate refuse the whole release; such a table is left out instead and
    named in the notes, so that one rare figure does not block the other
    twenty; for the same reason suppression runs metric by metric and keeps the
    tables the gate accepts (:func:`_protect_what_can_be`).  With differential
    privacy :class:`~ctis.publication.gate.ReleaseRefused` (a spent budget)
    propagates: the caller says why and writes nothing.  ``earlier`` and
    ``recount`` are handed to the gate as they are: the figures of the release
    history and the exact count now of each, see :func:`export_tables`.
    """
    if exact:
        return Gated([exact_table(t) for t in tables], "exact", {})
    method = Method(method)
    if params is None:
        params = SuppressionParams() if method is Method.SUPPRESSION else DpParams()
    withheld: list[tuple[str, str]] = []
    kept = list(tables)
    if isinstance(params, SuppressionParams):
        small = [t for t in tables if 0 < t.total < params.threshold]
        withheld = [(t.name, f"total below {params.threshold}: table not published") for t in small]
        kept = [t for t in tables if t not in small]
    if not kept:
        return Gated([], method.value, params.as_dict(), withheld)
    if isinstance(params, SuppressionParams):
        published, refused = _protect_what_can_be(kept, params, earlier, recount)
        withheld += [
            (t.name, "the gate could not protect it together with the other tables") for t in refused
        ]
        return Gated(published, method.value, params.as_dict(), withheld)
    # differential privacy: one release, whose epsilon the gate splits between its tables
    release = protect(kept, method, params, earlier=earlier, recount=recount)
    return Gated(release.tables, method.value, release.parameters, withheld, release.epsilon)


def _protect_what_can_be(
    tables: Sequence[CountTable],
    params: SuppressionParams,
    earlier: Sequence[Figure],
    recount: Callable[[Figure], int | None] | None = None,
) -> tuple[list[ProtectedTable], list[CountTable]]:
    """Suppress metric by metric, leaving out a table the gate cannot protect with the others.

    The gate's audit links a hidden count only to other figures of the same
    metric (this release's and earlier ones'), so protecting each metric's
    tables in a call of their own gives the same guarantee as one call for all
    of them, runs in a fraction of the time (one TIP year on the demo: about
    30 s instead of over 100 s) and lets one awkward metric fail alone.  Within
    a metric the gate refuses, tables are added one at a time and a table that
    makes it refuse is left out; leaving a table out reveals nothing.
    """
    groups: dict[str, list[CountTable]] = {}
    for t in tables:
        groups.setdefault(t.metric, []).append(t)
    published: list[ProtectedTable] = []
    refused: list[CountTable] = []
    for group in groups.values():
        try:
            published += protect(group, Method.SUPPRESSION, params, earlier=earlier, recount=recount).tables
            continue
        except ReleaseRefused:
            pass
        accepted: list[CountTable] = []
        best: list[ProtectedTable] = []
        for t in group:
            try:
                best = protect(
                    [*accepted, t], Method.SUPPRESSION, params, earlier=earlier, recount=recount
                ).tables
                accepted.append(t)
            except ReleaseRefused:
                refused.append(t)
        published += best
    order = {t.name: i for i, t in enumerate(tables)}
    return sorted(published, key=lambda t: order[t.name]), refused


@dataclass
class TableExport:
    """What a TIP or GLOTIP export hands to the writer: published tables and their notes."""

    layout: str
    period: Period
    exact: bool
    specs: list[TableSpec]
    gated: Gated
    unmapped: list[Unmapped]
    #: the version this export was recorded under in the release history (None when exact)
    release: int | None = None

    @property
    def tables(self) -> list[ProtectedTable]:
        return self.gated.tables

    def protection(self) -> str:
        if self.exact:
            return EXACT_WARNING
        params = ", ".join(f"{k}={v}" for k, v in self.gated.parameters.items())
        return f"release gate: {self.gated.method} ({params})"


def export_tables(
    session: Session,
    actor: Actor,
    layout: str,
    period: Period,
    specs: Sequence[TableSpec],
    *,
    exact: bool = False,
    method: Method | str = Method.SUPPRESSION,
    params: SuppressionParams | DpParams | None = None,
    earlier: Sequence[Figure] = (),
) -> TableExport:
    """Build ``specs`` from the registry for ``period``, protect them, record and audit the export.

    Protected tables are public-grade, so ``reports:read`` is enough; exact ones
    need ``reports:export``.  A protected export is audited by the gate against
    every earlier release and export (``earlier`` adds figures published
    elsewhere), a DP one is charged to the ε ledger (``params.spent`` and
    ``params.budget`` are taken from the ledger, never from the caller), and
    both are recorded as a release.  The release rows and the audit entry are
    written in the caller's transaction, which must be committed to keep them.
    """
    authorize(actor, Permission.REPORTS_EXPORT if exact else Permission.REPORTS_READ)
    log = UnmappedLog()
    metric_keys = list(dict.fromkeys(s.metric for s in specs))
    totals = compute_report(session, period, metric_keys).metrics
    check_forms(session, period, metric_keys, log)
    tables = [build_table(session, period, spec, totals[spec.metric], log) for spec in specs]
    version: int | None = None
    release_id: int | None = None
    if exact:
        gated = apply_gate(tables, exact=True)
    else:
        # the history read here must still be the history when this export joins it
        lock_releases(session)
        method = Method(method)
        if method is Method.DP:
            epsilon = params.epsilon if isinstance(params, DpParams) else DpParams().epsilon
            params = DpParams(epsilon=epsilon, budget=privacy_budget(), spent=spent_epsilon(session))
        gated = apply_gate(
            tables,
            exact=False,
            method=method,
            params=params,
            earlier=[*earlier_figures(session), *earlier],
            recount=recounter(session),
        )
        release_id, version = record_export(session, actor, layout, period, gated)
    result = TableExport(layout, period, exact, list(specs), gated, log.items(), version)
    audit.record(
        session,
        actor.username,
        "export",
        layout,
        release_id,
        {
            "period": period.label,
            "exact": exact,
            "method": gated.method,
            "parameters": gated.parameters,
            "tables": len(gated.tables),
            "withheld": len(gated.withheld),
            "unmapped": sum(u.count for u in result.unmapped),
            "release": version,
        },
    )
    return result


def export_kind(layout: str) -> str:
    """The ``kind`` of the release that records a ``layout`` export (``export:tip``)."""
    return f"export:{layout}"


def record_export(
    session: Session, actor: Actor, layout: str, period: Period, gated: Gated
) -> tuple[int, int]:
    """Record what a protected export published as a release; returns its id and version.

    The caller writes the export's audit entry, naming the release, in the same
    transaction; no second entry is written for the release itself.
    """
    release, _cells = store_release(
        session,
        actor,
        method=gated.method,
        parameters=gated.parameters,
        request={
            "layout": layout,
            "period": period.label,
            "tables": [t.name for t in gated.tables],
            "withheld": [name for name, _reason in gated.withheld],
        },
        tables=gated.tables,
        epsilon=gated.epsilon,
        note=f"{layout.upper()} export, {period.label}",
        kind=export_kind(layout),
    )
    return release.id, release.version
