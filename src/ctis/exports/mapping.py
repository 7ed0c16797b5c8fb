"""From our codes to a standard's codes, keeping score of what does not map.

A standard export is a mapping, and a mapping that silently loses a value
misleads whoever reads the export: a victim of forced fishing labour must not
vanish from the labour-sector columns without anyone knowing.  Every export
therefore carries an :class:`UnmappedLog`: each source value that had no place
in the target layout, how often it occurred and what the export did with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ctis.domain.values import value_set


@dataclass(frozen=True)
class Unmapped:
    """One source value with no mapping: which field, which value, how many records, what was done."""

    field: str
    value: str
    count: int
    action: str

    def as_dict(self) -> dict[str, str | int]:
        return {"field": self.field, "value": self.value, "count": self.count, "action": self.action}


class UnmappedLog:
    """Counts of unmapped values by (field, value, action), in first-seen order."""

    HEADER = ("field", "value", "count", "action")

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, field: str, value: str, action: str, count: int = 1) -> None:
        self._counts[(field, value, action)] += count

    def items(self) -> list[Unmapped]:
        return [Unmapped(f, v, n, a) for (f, v, a), n in self._counts.items()]

    def __bool__(self) -> bool:
        return bool(self._counts)


def ctdc_codes(value_set_name: str) -> dict[str, str]:
    """``{our code: CTDC code or column}`` for a value set, empty strings left out.

    The ``ctdc`` column of ``domain/data/value_sets.csv`` is the one place the
    correspondence is kept; a code whose cell is empty has no CTDC equivalent.
    """
    return {v.code: v.ctdc for v in value_set(value_set_name).values if v.ctdc}
