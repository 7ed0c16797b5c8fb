"""Count tables: the shape every figure takes on its way to the release gate.

A :class:`CountTable` holds exact counts of one metric for one period, by zero,
one or two dimensions, together with the margins a reader of the published
table would see (row totals, column totals, grand total).  Whoever builds a
table (a release, the TIP or GLOTIP exports) builds it from the metric registry;
the gate (``ctis.publication.gate``) is the only code that turns it into
something publishable.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CountTable:
    """Exact counts by up to two dimensions, with the margins that are published with them.

    ``cells`` maps a tuple of dimension values (one per entry of ``dimensions``;
    the empty tuple for a table with no breakdown) to a count.  ``total`` is the
    figure published as the table's grand total: for most metrics it equals the
    sum of the cells, but for a metric that counts one record under several
    values (a case with operations in two provinces) it may be smaller, and the
    gate must treat it as given, not as a sum.
    """

    name: str
    metric: str
    period: str
    dimensions: tuple[str, ...]
    cells: dict[tuple[str, ...], int]
    total: int
    title: str = ""
    #: what the counted units are: "victims", "suspects", "cases", "operations"
    unit: str = ""
    notes: list[str] = field(default_factory=list)

    def values(self, axis: int) -> list[str]:
        """The values seen on one axis, in first-seen order."""
        return list(dict.fromkeys(key[axis] for key in self.cells))

    def margin(self, axis: int) -> dict[str, int]:
        """Sums of the cells over every other axis, per value of ``axis``."""
        out: dict[str, int] = {}
        for key, n in self.cells.items():
            out[key[axis]] = out.get(key[axis], 0) + n
        return out
