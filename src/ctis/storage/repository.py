"""The repository: the only way records are written and read back as records.

It turns validated domain records (``ctis.domain.records``) into rows and back.
References between records travel as external ids; the repository resolves
them, writes derived columns (ages on the event day), and leaves a row
untouched when nothing changed, so that re-importing a file bumps no version.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, Literal

from sqlalchemy import func, literal, select, text, union_all, update
from sqlalchemy.orm import Session, selectinload

from ctis.domain.records import IDENTIFYING_FIELDS, SCHEMAS, RecordIn, SuspectIn, VictimIn, columns
from ctis.security import audit
from ctis.security.crypto import KeyRing, load_key_ring
from ctis.storage.models import MODELS, DataVersion, Operation

#: Kinds whose identifying fields are sealed at rest.
PERSON_KINDS = ("victims", "suspects")

Outcome = Literal["created", "updated", "unchanged"]
_CHUNK = 900  # below SQLite's bound-parameter limit


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Repository:
    """Record access for one unit of work, on behalf of one actor."""

    def __init__(self, session: Session, actor: str = "system", keys: KeyRing | None = None):
        self.session = session
        self.actor = actor
        self.keys = keys or load_key_ring()

    # -- sealed fields ----------------------------------------------------
    def unseal(self, row: Any, column: str) -> str | None:
        blob = getattr(row, column)
        if blob is None:
            return None
        return self.keys.open(bytes(blob), row.__tablename__, column, row.id)

    def identity(self, row: Any) -> dict[str, Any]:
        """The identifying fields of a person row, opened (the caller decides who sees them)."""
        out: dict[str, Any] = {c: self.unseal(row, c) for c in IDENTIFYING_FIELDS}
        if out["date_of_birth"]:
            out["date_of_birth"] = date.fromisoformat(out["date_of_birth"])
        return out

    def _seal(self, row: Any, record: RecordIn, is_new: bool) -> list[str]:
        """Seal the record's identifying fields into ``row``; return the columns that changed."""
        changed = []
        current = dict.fromkeys(IDENTIFYING_FIELDS) if is_new else self.identity(row)
        for column in IDENTIFYING_FIELDS:
            value = getattr(record, column)
            if value == current[column]:
                continue
            plain = value.isoformat() if isinstance(value, date) else value
            blob = None if plain is None else self.keys.seal(plain, row.__tablename__, column, row.id)
            setattr(row, column, blob)
            changed.append(column)
        index = self.keys.index_tokens(record.name_latin, record.name_khmer)  # type: ignore[attr-defined]
        if row.name_index != index:
            row.name_index = index
        return changed

    def _allocate_ids(self, model: Any, n: int) -> list[int]:
        """Row ids for ``n`` new rows, known before insert so values can be sealed to them."""
        table = model.__table__
        if self.session.get_bind().dialect.name == "postgresql":
            rows = self.session.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table.name, "n": n},
            )
            return [int(r[0]) for r in rows]
        # SQLite: take the write lock first so no other writer can take the same ids.
        self.session.execute(text(f"UPDATE {table.name} SET id = id WHERE 0"))
        top = self.session.execute(select(func.max(table.c.id))).scalar_one() or 0
        return list(range(top + 1, top + 1 + n))

    # -- look-ups ---------------------------------------------------------
    def ids_by_external_id(self, kind: str, external_ids: Iterable[str] | None = None) -> dict[str, int]:
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
        new = sum(1 for r in records if r.external_id not in current)
        ids = iter(self._allocate_ids(MODELS[kind], new)) if new else iter(())
        events: list[audit.Event] = []
        for record in records:
            outcome = self._apply(record, current.get(record.external_id), refs, ids, events)
            counts[outcome] += 1
        self.session.flush()
        audit.record_many(self.session, self.actor, events)
        if counts["created"] or counts["updated"]:
            bump_data_version(self.session)
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
                    wanted.setdefault(kind, set()).update(value if isinstance(value, list) else [value])
        resolved = {kind: self.ids_by_external_id(kind, ids) for kind, ids in wanted.items()}
        for kind, ids in wanted.items():
            missing = sorted(ids - resolved[kind].keys())
            if missing:
                raise LookupError(f"no {kind} record with external id {missing[0]!r}")
        return resolved

    def _values(self, record: RecordIn, refs: dict[str, dict[str, int]]) -> dict[str, Any]:
        """Column values of the row for ``record`` (relationships and sealed fields excluded)."""
        schema = type(record)
        values: dict[str, Any] = {}
        sealed = IDENTIFYING_FIELDS if record.kind in PERSON_KINDS else ()
        for name in schema.model_fields:
            if name in sealed:
                continue
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

    def _apply(
        self,
        record: RecordIn,
        row: Any,
        refs: dict[str, dict[str, int]],
        ids: Iterator[int],
        events: list[audit.Event],
    ) -> Outcome:
        model: Any = MODELS[record.kind]
        values = self._values(record, refs)
        person = record.kind in PERSON_KINDS
        operations: list[int] | None = None
        if "operations" in type(record).references:
            operations = sorted({refs["operations"][e] for e in record.operations})  # type: ignore[attr-defined]
        if row is None:
            row = model(id=next(ids), **values, created_by=self.actor, updated_by=self.actor)
            if person:
                self._seal(row, record, is_new=True)
            if operations is not None:
                row.operations = self._operations(operations)
            self.session.add(row)
            events.append(audit.Event("create", record.kind, row.id))
            return "created"
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        for name in changed:
            setattr(row, name, values[name])
        if person:
            changed += self._seal(row, record, is_new=False)
        if operations is not None and sorted(op.id for op in row.operations) != operations:
            row.operations = self._operations(operations)
            changed.append("operations")
        if changed:
            row.updated_by = self.actor
            events.append(audit.Event("update", record.kind, row.id, {"fields": sorted(changed)}))
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
        query = select(model).order_by(model.id)
        if "operations" in SCHEMAS[kind].references:
            query = query.options(selectinload(model.operations))
        batch: list[Any] = []
        for row in self.session.scalars(query):
            batch.append(row)
            if len(batch) == 1000:
                yield from ({k: _text(v) for k, v in view.items()} for view in self.values(kind, batch))
                batch = []
        yield from ({k: _text(v) for k, v in view.items()} for view in self.values(kind, batch))

    def values(self, kind: str, rows: list[Any], identify: bool = True) -> list[dict[str, Any]]:
        """Template-column values of ``rows`` (references as external ids), typed.

        With ``identify`` false, identifying fields are left as None and never opened.
        """
        if not rows:
            return []
        schema = SCHEMAS[kind]
        wanted: dict[str, set[int]] = {}
        for column, ref_kind in schema.references.items():
            if column == "operations":
                continue
            wanted.setdefault(ref_kind, set()).update({getattr(r, f"{column}_id") for r in rows} - {None})
        names = self._external_ids(wanted)
        person = kind in PERSON_KINDS
        out = []
        for row in rows:
            values: dict[str, Any] = {}
            if person:
                values = self.identity(row) if identify else dict.fromkeys(IDENTIFYING_FIELDS)
            for name in columns(kind):
                if name in values:
                    continue
                ref_kind = schema.references.get(name)
                if ref_kind is None:
                    value = getattr(row, name)
                    values[name] = (
                        value.split(";")
                        if name == "means_of_control" and value
                        else ([] if name == "means_of_control" else value)
                    )
                elif name == "operations":
                    values[name] = [op.external_id for op in sorted(row.operations, key=lambda o: o.id)]
                else:
                    ref_id = getattr(row, f"{name}_id")
                    values[name] = names[ref_kind].get(ref_id) if ref_id is not None else None
            out.append(values)
        return out

    def _external_ids(self, wanted: dict[str, set[int]]) -> dict[str, dict[int, str]]:
        """External ids of the referenced records, per kind, in as few statements as fit.

        One ``UNION ALL`` over the kinds while the ids fit in one statement's parameters:
        a read of one victim names its case and its agency, and a statement each was a
        quarter of that request's database round trips.
        """
        out: dict[str, dict[int, str]] = {kind: {} for kind in wanted}
        batch: list[Any] = []
        size = 0
        for kind, ids in wanted.items():
            model: Any = MODELS[kind]
            for chunk in _chunks(sorted(ids)):
                if batch and size + len(chunk) > _CHUNK:
                    self._collect(batch, out)
                    batch, size = [], 0
                picked = (literal(kind).label("kind"), model.id, model.external_id)
                batch.append(select(*picked).where(model.id.in_(chunk)))
                size += len(chunk)
        if batch:
            self._collect(batch, out)
        return out

    def _collect(self, parts: list[Any], out: dict[str, dict[int, str]]) -> None:
        statement = parts[0] if len(parts) == 1 else union_all(*parts)
        for kind, record_id, external_id in self.session.execute(statement):
            out[kind][record_id] = external_id


def bump_data_version(session: Session) -> None:
    """Mark the records as changed, in the caller's transaction (see ``DataVersion``)."""
    session.execute(update(DataVersion).where(DataVersion.id == 1).values(token=uuid.uuid4().hex))


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
