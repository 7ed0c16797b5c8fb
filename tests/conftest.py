"""Test fixtures: real databases on both engines.

Every storage and report test runs twice, on SQLite and on PostgreSQL.  Each
test session creates a PostgreSQL database of its own (named with a random
suffix) on the server named by ``CTIS_TEST_POSTGRES_URL`` and drops it at the
end; migrations run once per engine, and each test starts from empty record
tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from ctis.security.crypto import KeyRing
from ctis.services import clear_records
from ctis.storage.db import make_engine, migrate

PG_SERVER = os.environ.get("CTIS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TODAY = date(2026, 1, 15)

# A key ring for this test session only: sealed test data is unreadable afterwards.
os.environ.setdefault(
    "CTIS_FIELD_KEYS", KeyRing.generate().to_json()
)  # a fixed "today" for validation of future dates


def _pg_admin() -> Engine:
    url = make_url(PG_SERVER)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin = _pg_admin()
    name = f"ctis_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - environment problem, reported clearly
        pytest.fail(f"PostgreSQL is required for the storage tests ({PG_SERVER}): {exc}")
    try:
        yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _engine_for(backend: str, request: pytest.FixtureRequest, tmp: Path, label: str) -> Engine:
    if backend == "sqlite":
        return make_engine(f"sqlite:///{tmp / (label + '.db')}")
    base = request.getfixturevalue("pg_database")
    if label == "main":
        return make_engine(base)
    # a second database for the demo, so tests that clear records do not touch it
    admin = _pg_admin()
    name = make_url(base).database + "_" + label
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    request.addfinalizer(lambda: _drop(name))
    return make_engine(make_url(base).set(database=name).render_as_string(hide_password=False))


def _drop(name: str) -> None:
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    engine = _engine_for(backend, request, tmp_path_factory.mktemp(backend), "main")
    migrate(engine)
    yield engine
    engine.dispose()


def _empty(engine: Engine) -> None:
    clear_records(engine)
    with engine.begin() as conn:  # tests start a fresh audit chain too
        conn.execute(text("DELETE FROM audit_log"))


@pytest.fixture
def engine(migrated: Engine) -> Iterator[Engine]:
    """A migrated database with empty record tables and audit log, on each backend."""
    _empty(migrated)
    yield migrated
    _empty(migrated)


@pytest.fixture(scope="session")
def demo_engine(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database holding the demo records, built once per backend; tests must not write to it."""
    from ctis.demo.generator import build_demo

    engine = _engine_for(backend, request, tmp_path_factory.mktemp(backend + "-demo"), "demo")
    migrate(engine)
    build_demo(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI's settings at a fresh SQLite file."""
    from ctis import services

    monkeypatch.setenv("CTIS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CTIS_DATABASE_URL", raising=False)
    services.engine.cache_clear()
    yield tmp_path
    services.engine().dispose()
    services.engine.cache_clear()
