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

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from ctis.security.crypto import KeyRing
from ctis.services import clear_records
from ctis.storage.db import make_engine, migrate

REDIS_URL = os.environ.get("CTIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_SERVER = os.environ.get("CTIS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TODAY = date(2026, 1, 15)  # a fixed 'today' for validation of future dates

# A key ring for this test session only: sealed test data is unreadable afterwards.
os.environ.setdefault("CTIS_FIELD_KEYS", KeyRing.generate().to_json())
# argon2id at full cost (64 MiB) would dominate the suite; the parameters are tested separately.
os.environ.setdefault("CTIS_ARGON2_MEMORY_KIB", "1024")

#: One account per role in web databases; the password is made for this test session.
PASSWORD = "pw-" + uuid.uuid4().hex
ROLE_USERS = {
    "admin": ("administrator", "AG-NCCT", "all"),
    "officer": ("data_officer", "AG-NCCT", "all"),
    "police": ("investigator", "AG-PS-POL", "own"),
    "social": ("social_worker", "AG-NGO-LOTUS", "own"),
    "analyst": ("analyst", "AG-NCCT", "all"),
    "viewer": ("viewer", "AG-AHTJP", "own"),
}


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


def redis_or_skip() -> None:
    """Skip a test without the Redis server of ``CTIS_TEST_REDIS_URL``, or fail (``CTIS_REQUIRE_REDIS=1``)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CTIS_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    import redis

    redis_or_skip()
    name = f"ctis-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)
    client.close()


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
    from sqlalchemy.orm import Session

    from ctis.security import audit

    with Session(engine) as session, session.begin():  # which begins, as a new database's does
        audit.open_chain(session, new_database=True)


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


def add_role_users(engine: Engine) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from ctis import accounts
    from ctis.storage.models import Agency

    with Session(engine) as session, session.begin():
        for username, (role, agency, scope) in ROLE_USERS.items():
            agency_id = session.scalar(select(Agency.id).where(Agency.external_id == agency))
            accounts.create_user(session, username, PASSWORD, role, agency_id=agency_id, scope=scope)


def demo_web_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, label: str
) -> Iterator[Engine]:
    """A PostgreSQL database of its own with the demo records and one account per role."""
    from ctis.demo.generator import build_demo

    engine = _engine_for("postgresql", request, tmp_path_factory.mktemp(label), label)
    migrate(engine)
    build_demo(engine)
    add_role_users(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def web_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The demo database the web tests share; they may add records to it."""
    yield from demo_web_database(request, tmp_path_factory, "web")


class LiveServer:
    """The real application on a real port (uvicorn in a thread)."""

    def __init__(self, engine: Engine):
        import socket
        import threading

        import uvicorn

        from ctis.web.app import create_app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.app = create_app(engine)
        config = uvicorn.Config(  # proxy headers off, as `ctis serve` has them (ctis.web.deps)
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        import time

        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(web_engine: Engine) -> Iterator[LiveServer]:
    server = LiveServer(web_engine)
    yield server
    server.stop()


_CLIENTS: list[httpx.Client] = []


def http_client(base_url: str, **kwargs: object) -> httpx.Client:
    """An httpx client closed automatically at the end of the test."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30, **kwargs)  # type: ignore[arg-type]
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def form_token(client: httpx.Client, path: str = "/login") -> str:
    """The CSRF token a page's forms carry (the sign-in page's: the pre-session token of its cookie)."""
    import re

    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, (page.status_code, page.text[:300])
    return found.group(1)


def post_login(
    client: httpx.Client, username: str, password: str, next: str = "/dashboard", **kwargs: object
) -> httpx.Response:
    """Sign in as a browser does: open the sign-in page (its CSRF cookie and token), then post the form."""
    data = {"username": username, "password": password, "next": next, "csrf_token": form_token(client)}
    return client.post("/login", data=data, **kwargs)  # type: ignore[arg-type]


def sign_in(base_url: str, username: str, password: str = PASSWORD) -> httpx.Client:
    """An httpx client with a signed-in browser session and its CSRF token in ``client.csrf``."""
    import re

    client = http_client(base_url)
    r = post_login(client, username, password)
    assert r.status_code == 303, r.text[:500]
    account = client.get("/account")
    found = re.search(r'name="csrf_token" value="([^"]+)"', account.text)
    assert found, (account.status_code, account.headers, account.text[:300])
    client.csrf = found.group(1)  # type: ignore[attr-defined]
    return client
