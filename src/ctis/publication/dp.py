"""Differentially private counts through OpenDP, and the ε they spend.

Privacy unit: one person (or one counted record) added to or removed from the
records.  Per table, the interior cells are one vector query: under a metric
that counts each unit under one value, a unit changes one cell by one (L1
sensitivity 1); under a ``fan_out`` metric (a case with operations in several
provinces) it can change every cell by one, so the sensitivity is the number of
cells.  OpenDP's discrete Laplace mechanism on integers adds noise of scale
sensitivity / ε_table, and ``map`` confirms the ε it spends.  Margins and the
grand total are sums of the noisy cells (post-processing, no further ε), so a
published table always adds up; a table with no breakdown is its total alone.
The release's ε is split evenly over its tables: they may count the same
people, so their ε add up (sequential composition).  Noisy counts are
clamped at zero after noise (also post-processing).
"""

from __future__ import annotations

from ctis.domain.periods import parse_period
from ctis.publication.gate import (
    TOTAL,
    CellStatus,
    DpParams,
    Method,
    ProtectedRelease,
    ProtectedTable,
    PublishedCell,
    ReleaseRefused,
)
from ctis.publication.tables import CountTable


def _fan_out(metric: str) -> bool:
    from ctis.metrics.registry import METRICS

    m = METRICS.get(metric)
    return bool(m is None or m.facts(parse_period("2024")).fan_out)


def check_budget(params: DpParams) -> None:
    """Refuse, before any noise is drawn, a release that would take the ledger past the budget."""
    if params.spent + params.epsilon > params.budget + 1e-9:
        raise ReleaseRefused(
            f"this release needs ε={params.epsilon:g}, the ledger has spent ε={params.spent:g} "
            f"of a budget of ε={params.budget:g}; only ε={max(0.0, params.budget - params.spent):g} is left"
        )


def noisy_release(tables: list[CountTable], params: DpParams) -> ProtectedRelease:
    import opendp.prelude as dp

    check_budget(params)
    dp.enable_features("contrib")
    share = params.epsilon / len(tables)
    spent = 0.0
    out = []
    for t in tables:
        keys = list(t.cells) if t.dimensions else [()]
        exact = [t.cells[k] for k in keys] if t.dimensions else [t.total]
        sensitivity = len(keys) if t.dimensions and _fan_out(t.metric) else 1
        space = (dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int))
        mechanism = dp.m.make_laplace(*space, scale=sensitivity / share)
        used = float(mechanism.map(sensitivity))
        if used > share * (1 + 1e-9):  # OpenDP's accounting must agree with ours
            raise RuntimeError(f"the mechanism spends ε={used}, more than the share {share}")
        spent += used
        noisy = [max(0, int(v)) for v in mechanism(exact)]
        cells: dict[tuple[str, ...], PublishedCell] = {}
        for key, value in zip(keys, noisy, strict=True):
            cells[key] = PublishedCell(key, value, CellStatus.NOISE)
        n = len(t.dimensions)
        if n:
            for axis in range(n):
                sums: dict[str, int] = {}
                for key, value in zip(keys, noisy, strict=True):
                    sums[key[axis]] = sums.get(key[axis], 0) + value
                if n > 1:
                    for v, s in sums.items():
                        key = (v, TOTAL) if axis == 0 else (TOTAL, v)
                        cells[key] = PublishedCell(key, s, CellStatus.NOISE)
            cells[(TOTAL,) * n] = PublishedCell((TOTAL,) * n, sum(noisy), CellStatus.NOISE)
        out.append(
            ProtectedTable(t.name, t.metric, t.period, t.dimensions, cells, t.title, t.unit, list(t.notes))
        )
    parameters = params.as_dict() | {"mechanism": "discrete Laplace (OpenDP)", "per_table": share}
    return ProtectedRelease(Method.DP, parameters, out, epsilon=spent)
