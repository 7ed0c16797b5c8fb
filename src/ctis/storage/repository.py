"""The repository: the only way records are written and read back as records.

It turns validated domain records (``ctis.domain.records``) into rows and back.
References between records travel as external ids; the repository resolves
them, writes derived columns (ages on the event day), and leaves a row
untouched when nothing changed, so that re-importing a file bumps no version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ctis.domain.records import SCHEMAS, RecordIn, SuspectIn, VictimIn, columns
from ctis.storage.models import MODELS, Operation, RecordMixin

Outcome = Literal["created", "updated", "unchanged"]
_CHUNK = 900  # below SQLite's bound-parameter limit


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Repository:
    """Record access for one unit of work, on behalf of one actor."""

    def __init__(self, session: Session, actor: str = "system"):
        self.session = session
        self.actor = actor
        self._ids: dict[str, dict[str, int]] = {}

    # -- look-ups ---------------------------------------------------------
    def ids_by_external_id(
        self, kind: str, external_ids: Iterable[str] | None = None
    ) -> dict[str, int]:
        """External id -> row id, for all rows of a kind or just the ones asked for."""
        model: Any = MODELS[kind]
        if external_ids is None:
            rows = self.session.execute(select(model.external_id, model.id))
            return dict(rows.all())
        wanted = sorted(set(external_ids))
        out: dict[str, int] = {}
        for chunk in _chunks(wanted):
            rows = self.session.execute(
                select(model.external_id, model.id).where(model.external_id.in_(chunk))
            )
            out.update(rows.all())
        return out

    def external_ids_by_id(self, kind: str) -> dict[int, str]:
        model: Any = MODELS[kind]
        return {i: e for e, i in self.session.execute(select(model.external_id, model.id))}

    def existing(self, kind: str, external_ids: list[str]) -> dict[str, Any]:
        model: Any = MODELS[kind]
        out: dict[str, Any] = {}
        for chunk in _chunks(sorted(set(external_ids))):
            for row in self.session.scalars(select(model).where(model.external_id.in_(chunk))):
                out[row.external_id] = row
        return out

    # -- writes -----------------------------------------------------------
    def upsert_many(self, records: list[RecordIn]) -> dict[Outcome, int]:
        """Create or update records of one kind, matched on external id."""
        counts: dict[Outcome, int] = {"created": 0, "updated": 0, "unchanged": 0}
        if not records:
            return counts
        kind = records[0].kind
        current = self.existing(kind, [r.external_id for r in records])
        refs = self._resolve_all(records)
        for record in records:
            outcome = self._apply(record, current.get(record.external_id), refs)
            counts[outcome] += 1
        self.session.flush()
        return counts

    def upsert(self, record: RecordIn) -> Outcome:
        return next(k for k, v in self.upsert_many([record]).items() if v)

    def _resolve_all(self, records: list[RecordIn]) -> dict[str, dict[str, int]]:
        """Row ids of every record referred to; unknown references raise ``LookupError``."""
        wanted: dict[str, set[str]] = {}
        schema = type(records[0])
        for record in records:
            for column, kind in schema.references.items():
                value = getattr(record, column)
                if value:
                    wanted.setdefault(kind, set()).update(
                        value if isinstance(value, list) else [value]
                    )
        resolved = {kind: self.ids_by_external_id(kind, ids) for kind, ids in wanted.items()}
        for kind, ids in wanted.items():
            missing = sorted(ids - resolved[kind].keys())
            if missing:
                raise LookupError(f"no {kind} record with external id {missing[0]!r}")
        return resolved

    def _values(self, record: RecordIn, refs: dict[str, dict[str, int]]) -> dict[str, Any]:
        """Column values of the row for ``record`` (relationships excluded)."""
        schema = type(record)
        values: dict[str, Any] = {}
        for name in schema.model_fields:
            value = getattr(record, name)
            kind = schema.references.get(name)
            if kind is not None:
                if isinstance(value, list):
                    continue  # many-to-many, set by _apply
                values[f"{name}_id"] = refs[kind][value] if value else None
            elif isinstance(value, list):
                values[name] = ";".join(value) or None
            else:
                values[name] = value
        if isinstance(record, VictimIn):
            values["age_at_rescue"] = record.age_at_rescue
        elif isinstance(record, SuspectIn):
            values["age_at_arrest"] = record.age_at_arrest
        return values

    def _apply(self, record: RecordIn, row: Any, refs: dict[str, dict[str, int]]) -> Outcome:
        model: Any = MODELS[record.kind]
        values = self._values(record, refs)
        operations: list[int] | None = None
        if "operations" in type(record).references:
            operations = sorted({refs["operations"][e] for e in record.operations})
        if row is None:
            row = model(**values, created_by=self.actor, updated_by=self.actor)
            if operations is not None:
                row.operations = self._operations(operations)
            self.session.add(row)
            return "created"
        changed = False
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if operations is not None and sorted(op.id for op in row.operations) != operations:
            row.operations = self._operations(operations)
            changed = True
        if changed:
            row.updated_by = self.actor
            return "updated"
        return "unchanged"

    def _operations(self, ids: list[int]) -> list[Operation]:
        if not ids:
            return []
        return list(self.session.scalars(select(Operation).where(Operation.id.in_(ids))))

    # -- reads ------------------------------------------------------------
    def export_rows(self, kind: str) -> Iterator[dict[str, str]]:
        """Rows of ``kind`` as the import template's columns, as text, in id order.

        What this yields, ``ctis import`` reads back unchanged.
        """
        model: Any = MODELS[kind]
        schema = SCHEMAS[kind]
        names = {k: self.external_ids_by_id(k) for k in set(schema.references.values())}
        query = select(model).order_by(model.id)
        if "operations" in schema.references:
            query = query.options(selectinload(model.operations))
        for row in self.session.scalars(query):
            yield {name: _text(self._field(row, name, schema, names)) for name in columns(kind)}

    @staticmethod
    def _field(
        row: RecordMixin, name: str, schema: type[RecordIn], names: dict[str, dict[int, str]]
    ) -> Any:
        kind = schema.references.get(name)
        if kind is None:
            return getattr(row, name)
        if name == "operations":
            return [op.external_id for op in sorted(row.operations, key=lambda o: o.id)]  # type: ignore[attr-defined]
        ref_id = getattr(row, f"{name}_id")
        return names[kind].get(ref_id) if ref_id is not None else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(value)
    return str(value)
