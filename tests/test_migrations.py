"""Migrations build the schema the models describe, on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ctis.storage.db import migrate
from ctis.storage.models import Agency, Base


def test_fresh_database_matches_the_models(migrated: Engine) -> None:
    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(inspect(migrated).get_table_names())
    assert {"victims", "suspects", "cases", "operations", "alembic_version"} <= tables


def test_migrate_is_idempotent_and_seeds_provinces(migrated: Engine) -> None:
    migrate(migrated)
    with migrated.connect() as conn:
        n = conn.exec_driver_sql("SELECT COUNT(*) FROM provinces").scalar_one()
    assert n == 25


def test_optimistic_locking_refuses_a_stale_update(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        s.add(Agency(external_id="AG-LOCK", name_en="Lock test", agency_kind="ngo"))
    first, second = Session(engine), Session(engine)
    a = first.query(Agency).filter_by(external_id="AG-LOCK").one()
    b = second.query(Agency).filter_by(external_id="AG-LOCK").one()
    a.name_en = "Edited by the first officer"
    first.commit()
    b.name_en = "Edited by the second officer, from a stale copy"
    with pytest.raises(StaleDataError):
        second.commit()
    second.rollback()
    first.close()
    second.close()
    with Session(engine) as s:
        row = s.query(Agency).filter_by(external_id="AG-LOCK").one()
        assert (row.name_en, row.version) == ("Edited by the first officer", 2)
