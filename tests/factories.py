"""Small builders for hand-made fixtures: every record goes through domain validation."""

from __future__ import annotations

from itertools import count
from typing import Any

from sqlalchemy import Engine

from ctis.domain.records import (
    AgencyIn,
    AssistanceIn,
    CaseIn,
    OperationIn,
    ProsecutionIn,
    RecordIn,
    ReferralIn,
    SuspectIn,
    VictimIn,
)
from ctis.storage.db import session_scope
from ctis.storage.repository import Repository

_serial = count(1)


def _ext(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


class Fixture:
    """Collects records in dependency order, then stores them in one transaction."""

    def __init__(self) -> None:
        self.records: list[RecordIn] = []

    def _add(self, schema: type[RecordIn], prefix: str, **fields: Any) -> RecordIn:
        fields.setdefault("external_id", _ext(prefix))
        record = schema.model_validate(fields)
        self.records.append(record)
        return record

    def agency(self, **f: Any) -> RecordIn:
        f.setdefault("name_en", "Test agency")
        return self._add(AgencyIn, "AG", **f)

    def operation(self, day: str, **f: Any) -> RecordIn:
        f.setdefault("province", "KH-12")
        f.setdefault("operation_kind", "raid")
        return self._add(OperationIn, "OP", operation_date=day, **f)

    def case(self, *operations: RecordIn, **f: Any) -> RecordIn:
        f.setdefault("offence_type", "trafficking_in_persons")
        return self._add(CaseIn, "CASE", operations=[o.external_id for o in operations], **f)

    def suspect(self, **f: Any) -> RecordIn:
        f.setdefault("sex", "male")
        return self._add(SuspectIn, "SUS", **f)

    def victim(self, rescue_date: str, *operations: RecordIn, **f: Any) -> RecordIn:
        f.setdefault("sex", "female")
        return self._add(
            VictimIn,
            "VIC",
            rescue_date=rescue_date,
            operations=[o.external_id for o in operations],
            **f,
        )

    def prosecution(self, suspect: RecordIn, **f: Any) -> RecordIn:
        return self._add(ProsecutionIn, "PRO", suspect=suspect.external_id, **f)

    def assistance(self, victim: RecordIn, **f: Any) -> RecordIn:
        return self._add(AssistanceIn, "AST", victim=victim.external_id, **f)

    def referral(self, victim: RecordIn, to: RecordIn, **f: Any) -> RecordIn:
        return self._add(ReferralIn, "REF", victim=victim.external_id, to_agency=to.external_id, **f)

    def save(self, engine: Engine) -> None:
        order = [
            "agencies",
            "operations",
            "cases",
            "suspects",
            "victims",
            "prosecutions",
            "assistance",
            "referrals",
        ]
        with session_scope(engine) as session:
            repo = Repository(session, actor="test")
            for kind in order:
                batch = [r for r in self.records if r.kind == kind]
                if batch:
                    repo.upsert_many(batch)
