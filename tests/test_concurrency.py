"""Concurrent use of the embedded default: ``ctis serve`` on one SQLite file.

A busy office is several people at once, and every read of a victim appends an
audit entry, so every request is a writer.  These tests start the real server
(``ctis serve`` in its own process, as a user runs it) on an SQLite file and
check, from several threads at once, that no request gets a 5xx, that the audit
chain stays intact, and that a long write by another process (an import, a
linkage run) makes requests wait or get 503 with ``Retry-After``, never 500.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from ctis import accounts
from ctis.security import audit
from ctis.storage.db import make_engine, migrate, session_scope
from ctis.storage.models import Agency
from tests.conftest import PASSWORD, LiveServer
from tests.factories import Fixture

pytestmark = [pytest.mark.web, pytest.mark.slow]

THREADS = 8
ROUNDS = 12  # per thread: a read, a list page, and every other round a write
VICTIMS = THREADS


@dataclass
class Served:
    url: str
    token: str
    engine: Engine
    db_path: Path
    victims: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(tmp: Path) -> tuple[Engine, Path, str, list[str]]:
    """A migrated SQLite file with an agency, a data officer (may identify and edit) and victims."""
    db_path = tmp / "var" / "ctis.db"
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)
    data = Fixture()
    data.agency(external_id="AG-CONC", name_en="Concurrency test agency")
    ids = [
        data.victim("2024-03-01", external_id=f"VIC-CONC-{i}", agency="AG-CONC", age=20 + i).external_id
        for i in range(VICTIMS)
    ]
    data.save(engine)
    with session_scope(engine) as session:
        agency_id = session.scalar(select(Agency.id).where(Agency.external_id == "AG-CONC"))
        user = accounts.create_user(
            session, "officer", PASSWORD, "data_officer", agency_id=agency_id, scope="all"
        )
        _token, secret = accounts.create_token(session, user, "concurrency test")
    return engine, db_path, secret, ids


@contextmanager
def _serve(tmp: Path, workers: int, extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    engine, db_path, token, ids = _prepare(tmp)
    port = _free_port()
    env = {
        **os.environ,
        "CTIS_DATA_DIR": str(tmp / "var"),
        "CTIS_DATABASE_URL": f"sqlite:///{db_path}",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "ctis.cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start in 60 s"
            time.sleep(0.1)
        yield Served(url, token, engine, db_path, ids)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        engine.dispose()


def _worker(served: Served, index: int, seen: Counter[str], failures: list[str]) -> None:
    """One client: audited reads of a victim, list pages, searches and PATCH writes of its own victim."""
    headers = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=60) as client:
        for n in range(ROUNDS):
            try:
                _round(client, served, index, n, seen, failures)
            except httpx.HTTPError as exc:  # a connection dropped mid-answer is a server failure too
                failures.append(f"{type(exc).__name__}: {exc}")


def _round(
    client: httpx.Client, served: Served, index: int, n: int, seen: Counter[str], failures: list[str]
) -> None:
    mine = served.victims[index]
    other = served.victims[(index + n) % len(served.victims)]
    answers = [client.get(f"/api/v1/victims/{other}"), client.get("/api/v1/victims?per_page=5")]
    answers.append(client.get("/api/v1/victims", params={"q": "VIC-CONC"}))
    if n % 2 == 0:
        current = client.get(f"/api/v1/victims/{mine}")
        answers.append(current)
        if current.status_code == 200:
            body = {"version": current.json()["version"], "age": 30 + n}
            answers.append(client.patch(f"/api/v1/victims/{mine}", json=body))
    for r in answers:
        seen[str(r.status_code)] += 1
        if r.status_code >= 500:
            failures.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")


def _run_clients(served: Served) -> tuple[Counter[str], list[str]]:
    seen: Counter[str] = Counter()
    failures: list[str] = []
    threads = [threading.Thread(target=_worker, args=(served, i, seen, failures)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return seen, failures


def _assert_no_5xx_and_intact_chain(served: Served) -> None:
    seen, failures = _run_clients(served)
    assert not failures, f"{len(failures)} answers were 5xx, e.g. {failures[:3]}; all: {dict(seen)}"
    assert seen["200"] >= THREADS * ROUNDS * 3, dict(seen)
    check = audit.verify(served.engine)
    assert check.ok, str(check)
    # every audited read and write is in the chain: at least one entry per answered read of a victim
    assert check.entries >= THREADS * ROUNDS, str(check)


def test_eight_clients_reading_and_writing_victims_get_no_5xx_and_keep_the_chain(tmp_path: Path) -> None:
    with _serve(tmp_path, workers=1) as served:
        _assert_no_5xx_and_intact_chain(served)


def _redis_url() -> str:
    import redis

    url = os.environ.get("CTIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("CTIS_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis at {url}: {exc}")
    return url


def test_two_worker_processes_on_one_sqlite_file_get_no_5xx(tmp_path: Path) -> None:
    with _serve(tmp_path, workers=2, extra_env={"CTIS_REDIS_URL": _redis_url()}) as served:
        _assert_no_5xx_and_intact_chain(served)


def _hold_write_lock(db_path: Path, seconds: float, started: threading.Event) -> None:
    """What an import or a linkage run does to the file: one long write transaction."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE audit_log SET id = id WHERE 0")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("hold", "busy_timeout"),
    [(1.5, "10"), (2.5, "1")],
    ids=["shorter-than-the-wait", "longer-than-the-wait"],
)
def test_a_long_write_by_another_process_gives_2xx_or_503_with_retry_after(
    tmp_path: Path, hold: float, busy_timeout: str
) -> None:
    """Requests during another process's write transaction wait for it (shorter than the busy
    timeout) or are answered 503 with Retry-After (longer): never 500."""
    with _serve(tmp_path, workers=1, extra_env={"CTIS_SQLITE_BUSY_TIMEOUT": busy_timeout}) as served:
        started = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(served.db_path, hold, started))
        holder.start()
        assert started.wait(10)
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            with httpx.Client(
                base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}, timeout=60
            ) as c:
                for n in range(3):
                    r = c.get(f"/api/v1/victims/{served.victims[(i + n) % len(served.victims)]}")
                    with lock:
                        answers.append(r)

        clients = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=120)
        holder.join(timeout=30)
        bad = [
            (r.status_code, r.headers.get("retry-after"), r.text[:200])
            for r in answers
            if not (r.is_success or (r.status_code == 503 and int(r.headers.get("retry-after", "0")) > 0))
        ]
        assert not bad, bad
        assert len(answers) == THREADS * 3
        codes = Counter(r.status_code for r in answers)
        if float(busy_timeout) > hold:
            assert codes == {200: THREADS * 3}, codes  # they waited for the lock: no 503 either
        else:
            assert codes[503] > 0, codes  # the wait ran out while the lock was held
        after = httpx.get(
            f"{served.url}/api/v1/victims/{served.victims[0]}",
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=30,
        )
        assert after.status_code == 200
        assert audit.verify(served.engine).ok


def _write_from_another_thread(engine: Engine) -> str:
    """Whether another thread can write now: 'ok', or the error it met within the busy timeout."""
    from sqlalchemy import text

    outcome: list[str] = []

    def write() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO probe (note) VALUES ('other thread')"))
            outcome.append("ok")
        except Exception as exc:  # the outcome is the test's subject
            outcome.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=write)
    t.start()
    t.join(timeout=30)
    return outcome[0] if outcome else "still waiting"


@pytest.mark.parametrize("ending", ["commit", "rollback", "failed statement", "closed without either"])
def test_a_transaction_gives_back_its_write_turn_however_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """Writers in one process queue for an SQLite file in a lock (``storage.db._queue_writers``);
    a turn kept after its transaction ended would stall every later writer of the file."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    monkeypatch.setenv("CTIS_SQLITE_BUSY_TIMEOUT", "0.5")
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"))
    conn = engine.connect()
    conn.execute(text("INSERT INTO probe (note) VALUES ('first')"))
    assert _write_from_another_thread(engine).startswith("OperationalError"), "the write is not exclusive"
    if ending == "commit":
        conn.commit()
    elif ending == "rollback":
        conn.rollback()
    elif ending == "failed statement":
        with pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO probe (note) VALUES (NULL)"))
        conn.rollback()
    conn.close()
    assert _write_from_another_thread(engine) == "ok"
    engine.dispose()


def _probe_server(tmp_path: Path, path: str, error: Exception) -> LiveServer:
    """The real application on loopback with one more route, which raises ``error``."""
    server = LiveServer(make_engine(f"sqlite:///{tmp_path / 'probe.db'}"))

    def probe() -> None:
        raise error

    server.app.add_api_route(path, probe)
    return server


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/v1/busy-probe", "database is locked"),
        ("/busy-probe", "database is locked"),
        ("/api/v1/busy-probe", "database table is locked"),
    ],
)
def test_a_busy_database_is_answered_503_with_retry_after_on_pages_and_the_api(
    tmp_path: Path, path: str, reason: str
) -> None:
    """The last line of defence in ``web/app.py``: whatever route meets SQLite's lock past the busy
    timeout answers 503 with Retry-After (a page for pages, JSON for the API), never 500."""
    from sqlalchemy.exc import OperationalError

    error = OperationalError("INSERT INTO audit_log ...", None, sqlite3.OperationalError(reason))
    server = _probe_server(tmp_path, path, error)
    try:
        r = httpx.get(server.url + path, timeout=30)
    finally:
        server.stop()
    assert r.status_code == 503, r.text[:300]
    assert int(r.headers["retry-after"]) > 0
    assert "busy" in r.text
    wanted = "application/json" if path.startswith("/api/") else "text/html"
    assert r.headers["content-type"].startswith(wanted)


def test_other_database_errors_are_not_dressed_up_as_busy(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    error = OperationalError("SELECT ...", None, sqlite3.OperationalError("no such table: victims"))
    server = _probe_server(tmp_path, "/api/v1/broken-probe", error)
    try:
        assert httpx.get(server.url + "/api/v1/broken-probe", timeout=30).status_code == 500
    finally:
        server.stop()
