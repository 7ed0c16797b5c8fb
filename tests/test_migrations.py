"""Migrations build the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from ctis.storage.db import migrate
from ctis.storage.models import Base


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
