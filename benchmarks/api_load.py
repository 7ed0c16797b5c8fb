"""Load test: the dashboard page and a report endpoint over real HTTP, on loopback.

What is measured
----------------
Two requests a signed-in user makes, on the demo data:

(a) ``GET /dashboard?period=2024-H1``: the HTML page, with a browser session
    cookie (signed in through ``POST /login``);
(b) ``GET /api/v1/reports?period=2024-H1&by=sex``: JSON, with a personal API
    token sent as ``Authorization: Bearer``.

Each endpoint gets an *open-loop* load at a fixed rate (default 200 requests
per second for 20 s): request *i* is scheduled at ``start + i / rate`` and sent
then whether or not earlier requests have been answered, and its latency is
measured from that scheduled time, not from when it actually left.  A slow
server therefore shows up as queueing in the figures instead of silently
lowering the request rate (no coordinated omission).  Requests that fail (an
exception or a status other than 200) count as errors with the time until they
failed; requests still unanswered when the drain deadline passes (``--drain``
after the last send) are abandoned and counted as errors with the time until
then.  Both are lower bounds, so errors can only raise the percentiles.

The goal is p99 < 50 ms at 200 req/s, with no errors and at least 95 % of the
offered rate answered.  Beside the open-loop figures each endpoint reports its
latency one request at a time (no queueing) and the rate a closed loop of 4
clients reaches (about the server's capacity).  As references, in the same
run:

* ``compute_report`` called in-process on the same database (no HTTP), for the
  report endpoint and for the dashboard's seven calls: the query part alone;
* the *floor*: the same open loop against a no-op ASGI app under the same
  uvicorn, i.e. what the load generator, loopback TCP and uvicorn cost on this
  machine (on a shared 2-core machine this is not negligible; see the docs);
* when the goal is missed (or with ``--profile on``): a cProfile of the
  dashboard handler (``page_identity`` + ``pages.dashboard`` with template
  rendering, called directly in this process, no HTTP), summarised by the
  functions that make up a request.

How
---
A temporary directory holds everything: an SQLite database by default, or,
with ``--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres``,
a fresh database ``ctis_apiload_<random>`` created on that server and dropped
at the end (also on error or SIGTERM).  The script migrates it, stores the demo
records (``build_demo``), creates an analyst account (scope ``all``) and an API
token, then, for each endpoint, starts a fresh server in a separate process
(``python -m uvicorn --factory ctis.web.app:create_app``, one worker as
``ctis serve`` runs it; ``--workers`` for more) so that the load generator does
not share its GIL and no backlog carries from one endpoint to the next.  Both
processes get the same ``CTIS_DATABASE_URL``, ``CTIS_DATA_DIR`` and a key ring
generated for this run in ``CTIS_FIELD_KEYS``.  The load comes from one asyncio
scheduler with ``httpx.AsyncClient`` (at most ``--connections`` requests in
flight), after a 2 s closed-loop warm-up per endpoint.  Everything listens on
127.0.0.1 only; the run is bounded in time (``--seconds`` <= 120 per endpoint)
and in requests (<= 100,000 per endpoint).  Exit status 1 when a goal is missed.

Run it with::

    .venv/bin/python benchmarks/api_load.py [--rate 200] [--seconds 20]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--endpoints dashboard,report] [--connections 64] [--workers 1]
        [--profile auto|on|off] [--no-floor]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import math
import os
import pstats
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore imports sniffio afresh in each lock and event it sets up and falls back to asyncio when
    # it is missing (anyio >= 4.11 no longer installs it); Python does not cache a failed import, so
    # every request paid several file-system searches (~5 ms of the generator's CPU per request on this
    # machine).  A None entry makes that import fail at once.  See encode/httpcore#1103.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

HOST = "127.0.0.1"
PERIOD = "2024-H1"
GOAL_P99_MS = 50.0
GOAL_RATE = 200.0
MAX_SECONDS = 120.0
MAX_RATE = 2000.0
MAX_REQUESTS = 100_000
WARMUP_SECONDS = 2.0
WARMUP_WORKERS = 4
UNLOADED_SECONDS = 2.0
USERNAME = "loadtest"


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    auth: str  # "cookie" or "token"
    what: str


ENDPOINTS = {
    "dashboard": Endpoint("dashboard", f"/dashboard?period={PERIOD}", "cookie", "HTML, session cookie"),
    "report": Endpoint("report", f"/api/v1/reports?period={PERIOD}&by=sex", "token", "JSON, Bearer token"),
}
FLOOR = Endpoint("floor", "/", "none", "no-op ASGI app: what the generator, loopback and uvicorn add")
FLOOR_SECONDS = 5.0


class LatencyStats:
    """Errors, throughput and percentiles of a run, for any record with these four fields."""

    completed: int  # answered with status 200
    errors: Counter[str]
    latencies: list[float]  # seconds, every request sent
    elapsed: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds over every request sent."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] * 1000


@dataclass
class Result(LatencyStats):
    endpoint: Endpoint
    rate: float
    seconds: float
    sent: int = 0
    completed: int = 0  # answered with status 200
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, every request sent
    max_send_lag: float = 0.0  # how late the generator itself sent a request
    elapsed: float = 0.0  # first scheduled send to last answer
    body_bytes: int = 0
    closed_loop_rate: float = 0.0  # what the warm-up's closed loop achieved: roughly the server's capacity
    server_cpu: float | None = None  # CPU seconds the server's processes used during the open loop
    generator_cpu: float = 0.0  # CPU seconds this process (the load generator) used during the open loop
    unloaded: list[float] = field(default_factory=list)  # one client, one request at a time (seconds)

    def goal(self) -> tuple[str, str]:
        p99 = self.percentile(99)
        if self.rate < GOAL_RATE:
            return "n/a", f"run at {self.rate:g} req/s, below the goal's rate"
        reasons = []
        if not p99 < GOAL_P99_MS:
            reasons.append(f"p99 {p99:.1f} ms")
        if self.error_count:
            reasons.append(f"{self.error_count} errors")
        if self.throughput < 0.95 * GOAL_RATE:
            reasons.append(f"throughput {self.throughput:.1f} req/s")
        return ("MISS", ", ".join(reasons)) if reasons else ("PASS", "")


# -- database, accounts and the server process ---------------------------------------------------
@contextlib.contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    """The URL of a fresh database: SQLite in ``tmp``, or a new PostgreSQL database dropped afterwards."""
    if url is None:
        yield f"sqlite:///{tmp / 'ctis.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(url)
    if not server.drivername.startswith("postgresql"):
        sys.exit("--database-url takes a PostgreSQL server URL (SQLite is the default)")
    if server.drivername == "postgresql":
        server = server.set(drivername="postgresql+psycopg")
    if server.host not in {HOST, "localhost"}:
        sys.exit(f"--database-url must point at {HOST}: this benchmark stays on loopback")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"ctis_apiload_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(engine: Any, password: str) -> str:
    """Migrate, store the demo records and create the analyst; returns the API token's secret."""
    from sqlalchemy import select

    from ctis import accounts
    from ctis.demo.generator import build_demo
    from ctis.storage.db import migrate, session_scope
    from ctis.storage.models import Agency

    started = time.perf_counter()
    migrate(engine)
    counts = build_demo(engine)
    with session_scope(engine) as session:
        agency_id = session.scalar(select(Agency.id).where(Agency.external_id == "AG-NCCT"))
        user = accounts.create_user(
            session, USERNAME, password, "analyst", display_name="Load test", agency_id=agency_id, scope="all"
        )
        _token, secret = accounts.create_token(session, user, "api-load benchmark")
    print(
        f"database ready in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
    )
    return secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(env: dict[str, str], tmp: Path, workers: int = 1, floor: bool = False) -> Iterator[str]:
    """The application (with ``floor``: a no-op ASGI app) under uvicorn in a child process; yields its URL."""
    port = free_port()
    log = (tmp / "server.log").open("ab")
    app = (
        ["--app-dir", str(Path(__file__).resolve().parent), "api_load:noop_app"]
        if floor
        else ["ctis.web.app:create_app", "--factory"]
    )
    command = [
        sys.executable, "-m", "uvicorn", *app,
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log", "--no-server-header",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://{HOST}:{port}"
    SERVER_PIDS[url] = proc.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}):\n" + _tail(tmp / "server.log"))
            try:
                if httpx.get(url + ("/" if floor else "/login"), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s:\n" + _tail(tmp / "server.log"))
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


#: Process id of the server listening at each URL, to read its CPU time.
SERVER_PIDS: dict[str, int] = {}


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its children, from /proc; None where there is no /proc.

    CPU per request is the figure that noise on a shared machine disturbs least: waiting for a
    core shows in latency, not in CPU time.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    try:
        while pending:
            p = pending.pop()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
    except (OSError, ValueError, IndexError):
        return None
    return total


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def sign_in(url: str, password: str) -> str:
    """The session cookie of a browser sign-in through the real form (its page first: the CSRF token)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        form = client.get("/login").text
        token = form.split('name="csrf_token" value="', 1)[-1].split('"', 1)[0]
        data = {"username": USERNAME, "password": password, "next": "/dashboard", "csrf_token": token}
        r = client.post("/login", data=data)
        cookie = r.cookies.get("ctis_session")
        if r.status_code != 303 or not cookie:
            raise RuntimeError(f"sign-in failed: {r.status_code} {r.text[:300]}")
        check = client.get(ENDPOINTS["dashboard"].path, cookies={"ctis_session": cookie})
        if check.status_code != 200:
            raise RuntimeError(f"dashboard with the session cookie: {check.status_code}")
    return cookie


async def noop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: an ASGI app that answers at once, to measure what the generator and uvicorn add."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


# -- the load generator --------------------------------------------------------------------------
@dataclass
class RawResponse:
    status_code: int
    content: bytes


class RawClient:
    """A minimal HTTP/1.1 keep-alive client for GET requests on loopback: the load generator.

    httpx costs about 2 ms of CPU per request on this machine (7 ms when the server falls
    behind), as much as the server itself; at 200 req/s the generator then takes a whole
    core of the two and the figures measure the generator.  This client sends pre-encoded
    requests on pooled connections and reads back the status line, the headers it needs
    (Content-Length, chunked encoding, Connection: close) and the body: well under a
    millisecond.  It is used for the load only; sign-in and start-up checks use httpx.
    """

    def __init__(self, base_url: str, max_connections: int, timeout: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or HOST, parts.port or 80
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._encoded: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}

    def _request(
        self, path: str, headers: dict[str, str], method: str = "GET", body: bytes | None = None
    ) -> bytes:
        if body is not None:  # a write: its body changes with each request, so it is not kept
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: */*"]
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        key = (path, tuple(sorted(headers.items())))
        raw = self._encoded.get(key)
        if raw is None:
            lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: */*"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            raw = self._encoded[key] = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return raw

    async def get(self, path: str, headers: dict[str, str] | None = None) -> RawResponse:
        return await self.send(self._request(path, headers or {}))

    async def patch_json(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> RawResponse:
        """A PATCH with a JSON body (``benchmarks/api_records_load.py``).

        Sent again on a fresh connection only where the server had closed the idle one before
        reading it, as for a GET; the records API's version check makes a repeat a 409, never a
        second change.
        """
        return await self.send(self._request(path, headers or {}, "PATCH", body))

    async def send(self, request: bytes) -> RawResponse:
        """One pre-encoded request on a pooled keep-alive connection."""
        async with self._slots:
            deadline = clock() + self.timeout
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            try:
                response, keep = await asyncio.wait_for(self._round_trip(conn, request), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                conn[1].close()
                stale = reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial)
                if not stale:
                    raise
                # The server closed an idle keep-alive connection (uvicorn does after 5 s) just
                # as it was reused: send again on a new one, as browsers and httpx do for a GET.
                # The retry's time counts in the latency, measured from the scheduled send.
                conn = await asyncio.open_connection(self.host, self.port)
                try:
                    response, keep = await asyncio.wait_for(
                        self._round_trip(conn, request), max(0.0, deadline - clock())
                    )
                except BaseException:
                    conn[1].close()
                    raise
            except BaseException:
                conn[1].close()
                raise
            if keep:
                self._idle.append(conn)
            else:
                conn[1].close()
            return response

    @staticmethod
    async def _round_trip(
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[RawResponse, bool]:
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip().lower()
        if fields.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        else:
            body = await reader.readexactly(int(fields.get("content-length", "0")))
        return RawResponse(status, body), fields.get("connection") != "close"

    async def aclose(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()


#: The generator's clock. Not ``loop.time()``: uvloop's is libuv's cached clock, in whole milliseconds.
clock = time.perf_counter


def run_async(main: Any) -> Any:
    """Run the generator on uvloop where it is installed (it is, with the server): less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


#: What a failed request can raise in the generator: connection errors and timeouts (OSError),
#: a connection closed mid-answer (EOFError), an answer that is not HTTP (ValueError).
REQUEST_ERRORS = (OSError, EOFError, ValueError, asyncio.LimitOverrunError)


def auth_headers(endpoint: Endpoint, cookie: str, token: str) -> dict[str, str]:
    if endpoint.auth == "cookie":
        return {"Cookie": f"ctis_session={cookie}"}
    if endpoint.auth == "token":
        return {"Authorization": f"Bearer {token}"}
    return {}


async def warm_up(client: RawClient, path: str, headers: dict[str, str]) -> int:
    """Closed loop for WARMUP_SECONDS: opens connections and warms caches without building a queue."""
    end = clock() + WARMUP_SECONDS
    done = 0

    async def worker() -> None:
        nonlocal done
        while clock() < end:
            with contextlib.suppress(*REQUEST_ERRORS):
                if (await client.get(path, headers=headers)).status_code == 200:
                    done += 1

    await asyncio.gather(*(worker() for _ in range(WARMUP_WORKERS)))
    return done


async def sequential(client: RawClient, path: str, headers: dict[str, str]) -> list[float]:
    """Latencies of one request at a time for UNLOADED_SECONDS: the cost of a request with no queueing."""
    end = clock() + UNLOADED_SECONDS
    times: list[float] = []
    while clock() < end and len(times) < 1000:
        t0 = clock()
        with contextlib.suppress(*REQUEST_ERRORS):
            if (await client.get(path, headers=headers)).status_code == 200:
                times.append(clock() - t0)
    return sorted(times)


async def open_loop(
    client: RawClient,
    endpoint: Endpoint,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    drain: float,
    connections: int,
    path_of: Callable[[int], str] | None = None,
) -> Result:
    """The open loop; ``path_of(i)``, where given, names request *i*'s path instead of the endpoint's."""
    result = Result(endpoint, rate, seconds)
    total = min(int(rate * seconds), MAX_REQUESTS)
    # At most `connections` requests inside httpx: its pool scans every waiting request at each event,
    # which under a deep backlog would make the generator, not the server, the bottleneck.  Waiting
    # here is client-side queueing like a browser's, and counts in the latency (measured from schedule).
    slots = asyncio.Semaphore(connections)
    interval = 1.0 / rate
    last_answer = 0.0

    async def one(scheduled: float, path: str) -> None:
        nonlocal last_answer
        lag = clock() - scheduled
        result.max_send_lag = max(result.max_send_lag, lag)
        try:
            async with slots:
                r = await client.get(path, headers=headers)
        except REQUEST_ERRORS as exc:
            result.errors[type(exc).__name__] += 1
        else:
            if r.status_code == 200:
                result.completed += 1
                result.body_bytes += len(r.content)
            else:
                result.errors[f"HTTP {r.status_code}"] += 1
        now = clock()
        last_answer = max(last_answer, now)
        result.latencies.append(now - scheduled)

    start = clock() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        scheduled = start + i * interval
        await asyncio.sleep(max(0.0, scheduled - clock()))  # yields even when behind schedule
        tasks.append(asyncio.create_task(one(scheduled, endpoint.path if path_of is None else path_of(i))))
        result.sent += 1
    deadline = start + total * interval + drain
    _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - clock()))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        abandoned = clock()
        for i, task in enumerate(tasks):
            if task.cancelled():
                result.errors["unanswered at drain deadline"] += 1
                result.latencies.append(abandoned - (start + i * interval))
        last_answer = max(last_answer, abandoned)
    result.elapsed = max(last_answer - start, interval)
    return result


async def load(
    url: str, endpoints: list[Endpoint], seconds: float, cookie: str, token: str, args: argparse.Namespace
) -> list[Result]:
    results = []
    client = RawClient(url, args.connections, args.timeout)
    try:
        for endpoint in endpoints:
            headers = auth_headers(endpoint, cookie, token)
            n = await warm_up(client, endpoint.path, headers)
            unloaded = await sequential(client, endpoint.path, headers)
            print(
                f"{endpoint.name}: warmed up ({n} requests in {WARMUP_SECONDS:g} s, closed loop, "
                f"{WARMUP_WORKERS} clients), {len(unloaded)} sequential; open loop for {seconds:g} s ...",
                flush=True,
            )
            pid = SERVER_PIDS.get(url)
            cpu_before, own_before = (tree_cpu_seconds(pid) if pid else None), time.process_time()
            # The generator's own garbage collections would stall its sends and reads, and such a
            # stall reads as server latency: collect now, then not until this open loop is over.
            gc.collect()
            gc.disable()
            try:
                result = await open_loop(
                    client, endpoint, headers, args.rate, seconds, args.drain, args.connections
                )
            finally:
                gc.enable()
            cpu_after = tree_cpu_seconds(pid) if pid else None
            if cpu_before is not None and cpu_after is not None:
                result.server_cpu = cpu_after - cpu_before
            result.generator_cpu = time.process_time() - own_before
            result.closed_loop_rate = n / WARMUP_SECONDS
            result.unloaded = unloaded
            results.append(result)
    finally:
        await client.aclose()
    return results


# -- in-process references and profile -----------------------------------------------------------
def timed(fn: Callable[[], Any], budget: float = 3.0, most: int = 300) -> list[float]:
    fn()  # warm-up
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < most and (len(times) < 5 or time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)


def in_process(engine: Any) -> list[tuple[str, list[float]]]:
    """``compute_report`` as endpoint (b) calls it, and the dashboard's report calls, without HTTP."""
    from sqlalchemy.orm import Session

    from ctis.domain.periods import months, parse_period
    from ctis.metrics import compute_report
    from ctis.web.pages import DASHBOARD_CHARTS

    period = parse_period(PERIOD)
    dims = [d for d, _m, _t in DASHBOARD_CHARTS]

    def report() -> None:
        with Session(engine) as session:
            compute_report(session, period, None, ["sex"]).as_dict()

    def dashboard_queries() -> None:
        with Session(engine) as session:
            compute_report(session, period, None, dims)
            for month in months(period):
                compute_report(session, month, ["cases_cracked_down", "victims_rescued"])

    return [
        ("compute_report(2024-H1, all metrics, by=sex) [= report endpoint]", timed(report)),
        (f"dashboard's compute_report calls (by {len(dims)} dims + 6 months)", timed(dashboard_queries)),
    ]


def _request(app: Any, path_qs: str, cookie: str) -> Any:
    from starlette.requests import Request

    path, _, query = path_qs.partition("?")
    headers = [(b"host", HOST.encode()), (b"cookie", f"ctis_session={cookie}".encode())]
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "root_path": "",
        "server": (HOST, 80), "client": (HOST, 40000), "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "headers": headers, "app": app,
    }  # fmt: skip
    return Request(scope)


#: Functions whose cumulative time explains a dashboard request: label, then (file suffix, function) pairs.
PROFILE_ROWS: list[tuple[str, list[tuple[str, str]]]] = [
    ("page_identity (session cookie -> user)", [("ctis/web/pages.py", "page_identity")]),
    ("compute_report (all calls)", [("ctis/metrics/report.py", "compute_report")]),
    ("  Metric.facts (query parts from the registry)", [("ctis/metrics/registry.py", "facts")]),
    ("  total_query + breakdown_query (build statements)", [
        ("ctis/metrics/report.py", "total_query"), ("ctis/metrics/report.py", "breakdown_query")]),
    ("  Session.execute (all of running a statement)", [("sqlalchemy/orm/session.py", "execute")]),
    ("    statement cache key (every execution)", [("sqlalchemy/sql/cache_key.py", "_generate_cache_key")]),
    ("    SQL compilation (statement cache misses)", [("sqlalchemy/sql/elements.py", "_compiler")]),
    ("    DBAPI cursor.execute (the database itself)", [
        ("~", "<method 'execute' of 'sqlite3.Cursor' objects>"), ("psycopg/cursor.py", "execute")]),
    ("period_choices (period selector)", [("ctis/web/pages.py", "period_choices")]),
    ("render (Jinja2 template)", [("ctis/web/pages.py", "render")]),
    ("json.dumps (chart data)", [("json/__init__.py", "dumps")]),
    ("commit", [("sqlalchemy/orm/session.py", "commit")]),
]  # fmt: skip


def profile_dashboard(engine: Any, cookie: str, requests: int = 40, top: int = 20) -> str:
    """cProfile of the dashboard handler in this thread: what the server does per request, minus HTTP.

    The request goes through the same functions as in the server (``page_identity`` from the session
    cookie, ``pages.dashboard``, template rendering, commit), called directly: a profiler sees one thread
    only, and the server runs sync handlers in a thread pool.
    """
    from sqlalchemy.orm import Session

    from ctis.web import pages
    from ctis.web.app import create_app

    app = create_app(engine)
    path = ENDPOINTS["dashboard"].path
    queries = 0

    def count(*_args: Any) -> None:
        nonlocal queries
        queries += 1

    from sqlalchemy import event

    def handle() -> None:
        request = _request(app, path, cookie)
        with Session(engine, expire_on_commit=False) as db, db.begin():
            who = pages.page_identity(request, db)
            response = pages.dashboard(request, db, who, PERIOD)
        if response.status_code != 200:
            raise RuntimeError(f"dashboard answered {response.status_code}")

    plain = timed(handle, budget=3.0, most=100)
    event.listen(engine, "before_cursor_execute", count)
    handle()
    event.remove(engine, "before_cursor_execute", count)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        handle()
    profiler.disable()

    out = io.StringIO()
    print(
        f"  dashboard handler without HTTP: p50 {ms(plain, 50):.1f} ms (n={len(plain)}), "
        f"{queries} SQL statements per request",
        file=out,
    )
    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in table.values())
    print(
        f"  under cProfile: {total / requests * 1000:.1f} ms per request; cumulative time per request:",
        file=out,
    )
    for label, funcs in PROFILE_ROWS:
        rows = [
            v for (file, _line, fn), v in table.items() if any(file.endswith(x) and fn == f for x, f in funcs)
        ]
        calls, cum = sum(v[1] for v in rows), sum(v[3] for v in rows)
        if calls:
            print(
                f"    {label:<52} {cum / requests * 1000:7.1f} ms {cum / total:5.0%}"
                f"  ({calls / requests:g} calls)",
                file=out,
            )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    body = text.getvalue()
    body = body[body.find("   ncalls") :] if "   ncalls" in body else body
    print(f"  top {top} functions by own time (all {requests} requests):", file=out)
    print(body.replace(str(Path(sys.prefix)), "<venv>"), file=out)
    return out.getvalue()


# -- output ---------------------------------------------------------------------------------------
def ms(values: list[float], q: float) -> float:
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[rank - 1] * 1000


def print_result(r: Result) -> None:
    e = r.endpoint
    print(f"\n{e.name}: GET {e.path}  ({e.what})")
    print(
        f"  offered {r.rate:g} req/s for {r.seconds:g} s: sent {r.sent}, completed {r.completed}, "
        f"errors {r.error_count}, achieved {r.throughput:.1f} req/s"
    )
    if r.errors:
        print("  errors: " + ", ".join(f"{k} x{n}" for k, n in r.errors.most_common()))
    print(
        f"  latency ms: p50 {r.percentile(50):.1f}  p90 {r.percentile(90):.1f}  "
        f"p99 {r.percentile(99):.1f}  max {r.percentile(100):.1f}"
    )
    size = r.body_bytes / r.completed if r.completed else 0
    if r.unloaded:
        print(
            f"  unloaded (one at a time, {len(r.unloaded)} requests): p50 {ms(r.unloaded, 50):.1f} ms, "
            f"p99 {ms(r.unloaded, 99):.1f} ms; capacity (closed loop, {WARMUP_WORKERS} clients): "
            f"{r.closed_loop_rate:.1f} req/s"
        )
    print(f"  (avg body {size / 1024:.1f} KiB; generator's worst send lag {r.max_send_lag * 1000:.1f} ms)")
    if r.completed:
        server = (
            f"server {r.server_cpu / r.completed * 1000:.2f} ms ({r.server_cpu / r.elapsed:.2f} cores)"
            if r.server_cpu is not None and r.elapsed > 0
            else "server n/a"
        )
        print(
            f"  CPU per answered request in the open loop: {server}, "
            f"generator {r.generator_cpu / r.completed * 1000:.2f} ms"
        )
    if e is FLOOR:
        return
    verdict, why = r.goal()
    print(
        f"  goal: p99 < {GOAL_P99_MS:g} ms at {GOAL_RATE:g} req/s  {verdict}" + (f" ({why})" if why else "")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rate", type=float, default=GOAL_RATE, help="requests per second (default 200)")
    ap.add_argument(
        "--seconds", type=float, default=20.0, help=f"per endpoint (default 20, max {MAX_SECONDS:g})"
    )
    ap.add_argument("--endpoints", default="dashboard,report", help="comma-separated: dashboard, report")
    ap.add_argument(
        "--database-url", help="PostgreSQL server URL on 127.0.0.1: a fresh database is made there"
    )
    ap.add_argument("--connections", type=int, default=64, help="client connection pool limit (default 64)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    ap.add_argument(
        "--drain", type=float, default=10.0, help="seconds to wait for answers after the last send"
    )
    ap.add_argument("--no-floor", action="store_true", help="skip the no-op app's run (the floor)")
    ap.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default 1, as ctis serve)"
    )
    ap.add_argument(
        "--profile", choices=["auto", "on", "off"], default="auto", help="auto: when a goal is missed"
    )
    args = ap.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not 0 < args.rate <= MAX_RATE:
        ap.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 1 <= args.workers <= 8:
        ap.error("--workers must be in [1, 8]")
    if not 1 <= args.connections <= 1000:
        ap.error("--connections must be in [1, 1000]")
    args.names = [n.strip() for n in args.endpoints.split(",") if n.strip()]
    unknown = [n for n in args.names if n not in ENDPOINTS]
    if unknown or not args.names:
        ap.error(f"unknown endpoints {unknown}; choose from {', '.join(ENDPOINTS)}")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the clean-ups: stop the server, drop the database


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="ctis-apiload-") as tmp_name:
        tmp = Path(tmp_name)
        from ctis.security.crypto import KeyRing

        env_vars = {"CTIS_FIELD_KEYS": KeyRing.generate().to_json(), "CTIS_DATA_DIR": str(tmp / "data")}
        os.environ.update(env_vars)  # this process seals the demo data with the same key ring
        with database(args.database_url, tmp) as url:
            from ctis.storage.db import make_engine

            os.environ["CTIS_DATABASE_URL"] = url
            engine = make_engine(url)
            password = "pw-" + secrets.token_urlsafe(24)
            token = prepare(engine, password)
            backend = engine.dialect.name
            print(
                f"backend: {backend}; cores: {os.cpu_count()}; python {sys.version.split()[0]}; "
                f"load average {os.getloadavg()[0]:.2f}"
            )

            print("\nin-process reference (same database, no HTTP; before the server starts):")
            for label, times in in_process(engine):
                print(f"  {label}: p50 {ms(times, 50):.1f} ms, p99 {ms(times, 99):.1f} ms (n={len(times)})")

            env = {**os.environ, **env_vars, "CTIS_DATABASE_URL": url}
            print(
                f"\nload: open loop {args.rate:g} req/s, pool {args.connections} connections, "
                f"timeout {args.timeout:g} s, drain {args.drain:g} s\n"
            )
            results = []
            if not args.no_floor:
                with server_process(env, tmp, floor=True) as base:
                    floor_seconds = min(FLOOR_SECONDS, args.seconds)
                    results += run_async(load(base, [FLOOR], floor_seconds, "", "", args))
            cookie = ""
            for name in args.names:  # a fresh server per endpoint: no backlog carried from one to the next
                with server_process(env, tmp, args.workers) as base:
                    if not cookie:
                        cookie = sign_in(base, password)
                        print(f"signed in as {USERNAME!r} through POST /login; API token made in-process")
                    print(f"server: uvicorn, {args.workers} worker process(es), at {base}", flush=True)
                    results += run_async(load(base, [ENDPOINTS[name]], args.seconds, cookie, token, args))
            for r in results:
                print_result(r)
            print(
                f"\nload average (1 min) after the load: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
            )

            missed = any(r.goal()[0] == "MISS" for r in results if r.endpoint is not FLOOR)
            if "dashboard" in args.names and (args.profile == "on" or (args.profile == "auto" and missed)):
                print("\nprofile of the dashboard handler (in this process, cProfile, no HTTP):")
                print(profile_dashboard(engine, cookie))
            engine.dispose()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
