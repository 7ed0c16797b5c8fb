"""Load test: what users do with person records, over real HTTP, on loopback.

What is measured
----------------
``benchmarks/api_load.py`` measures the dashboard and a report, which only read.
Most of an office's day is person records, and every touch of one appends an
audit entry, so on SQLite nearly every such request is a writer queueing for
the database's single write lock.  Five workloads, as a data officer (scope
``all``, may identify: every read opens sealed fields) with a personal API token:

* ``read``: ``GET /api/v1/victims/{id}``, one victim (audited), ids in turn;
* ``list``: ``GET /api/v1/victims?page=N&per_page=50``, a list page (audited);
* ``search``: ``GET /api/v1/victims?q=WORD&per_page=20``, a name word through the
  blind index (audited), words taken from the demo's own names;
* ``write``: ``PATCH /api/v1/victims/{id}`` with the version last read, changing one
  coded field; each client edits a victim of its own, so a 409 is an error;
* ``mix``: per client, in turn, 6 reads, 2 list pages, 1 search and 1 write.

Each runs at concurrency 1, 8 and 32 (``--clients``): a *closed* loop of that many
clients, each sending its next request when its last is answered, for
``--seconds``.  Every row prints p50 and p99 latency, throughput and the error
count (any status other than 200, any exception).  Then ``read``, ``list`` and
``search`` each get an *open* loop at ``--rate`` (200) req/s with at most 32
requests in flight, scheduled and measured as in ``api_load.py`` (latency from
the scheduled time: no coordinated omission), for the goal **p99 < 50 ms at
200 req/s, no errors, at least 95 % answered**.  After each backend the audit
chain is verified (``ctis.security.audit.verify``): no errors with a broken
chain would be no success.

References in the same run, as ``api_load.py`` has them:

* the *floor*: the same closed loops against the no-op ASGI app under the same
  uvicorn (what the generator, loopback TCP and uvicorn cost on this machine);
* in-process: ``records.get_record``, ``list_records`` and ``save_record`` called
  directly on the same database, each in its own committed transaction with its
  audit entry, no HTTP (the storage and audit part of each request).

How
---
For each backend (``--backends sqlite,postgresql``) a temporary database gets the
demo records (``api_load.prepare``), an analyst and a data officer with a token.
Each workload gets a fresh server process (``python -m uvicorn --factory
ctis.web.app:create_app``, one worker as ``ctis serve``; ``--workers`` for more),
a 1 s warm-up, then its rows.  PostgreSQL runs in a fresh database on the server
named by ``--postgres-url`` (on 127.0.0.1), dropped afterwards.  Exit status 1
when an open-loop row misses the goal or any row has errors.

Run it with::

    .venv/bin/python benchmarks/api_records_load.py [--backends sqlite,postgresql]
        [--seconds 5] [--open-seconds 10] [--rate 200] [--clients 1,8,32]
        [--workloads read,list,search,write,mix] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_load as base  # the sibling's server, database and generator machinery

OFFICER = "loadofficer"
WORKLOADS = ("read", "list", "search", "write", "mix")
OPEN_LOOP = ("read", "list", "search")  # the goal is for reads
MIX = ("read", "read", "list", "read", "search", "read", "read", "list", "read", "write")
CLIENTS = (1, 8, 32)
MAX_CLIENTS = 64
IN_FLIGHT = 32  # the open loop's most requests at once
WARMUP = 1.0
LIST_PAGES = 20
REFERENCE_SECONDS = 2.0  # per in-process reference (at most)
RELATIONS = ("friend", "family")  # a coded field a PATCH may flip without touching a cross-field rule
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Row(base.LatencyStats):
    """One closed loop: a workload at a concurrency on a backend (or the floor)."""

    backend: str
    workload: str
    clients: int
    seconds: float
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float | None = None


@dataclass
class Setup:
    """What the generator needs to know about the database it loads."""

    token: str
    victims: list[str]  # external ids, in id order
    words: list[str]  # name words to search for
    writable: list[str]  # one victim per client, for the writes
    versions: dict[str, int] = field(default_factory=dict)


def prepare(engine: Any, password: str) -> Setup:
    """The demo records (through ``api_load.prepare``), a data officer with a token, ids and words."""
    from sqlalchemy import select

    from ctis import accounts, records
    from ctis.storage.db import session_scope
    from ctis.storage.models import Agency, Victim

    base.prepare(engine, password)
    with session_scope(engine) as session:
        agency_id = session.scalar(select(Agency.id).where(Agency.external_id == "AG-NCCT"))
        user = accounts.create_user(
            session,
            OFFICER,
            password,
            "data_officer",
            display_name="Records load",
            agency_id=agency_id,
            scope="all",
        )
        _token, token = accounts.create_token(session, user, "records load benchmark")
        actor = accounts.actor_of(user)
        victims = list(session.scalars(select(Victim.external_id).order_by(Victim.id)))
        words: list[str] = []
        for ext in victims[:: max(1, len(victims) // 40)]:  # read as the officer: audited like any read
            name = records.get_record(session, actor, "victims", ext).get("name_latin") or ""
            if name.split() and name.split()[0] not in words:
                words.append(name.split()[0])
    if len(victims) < MAX_CLIENTS or not words:
        raise RuntimeError(f"the demo data has {len(victims)} victims and {len(words)} name words: too few")
    return Setup(token, victims, words, victims[-MAX_CLIENTS:])


# -- the workloads ---------------------------------------------------------------------------------
class Workloads:
    """The request a client sends next, per workload; keeps each writable victim's version."""

    def __init__(self, client: base.RawClient, setup: Setup):
        self.client = client
        self.setup = setup
        self.headers = {"Authorization": f"Bearer {setup.token}"}
        self.pages = max(1, min(LIST_PAGES, len(setup.victims) // 50))

    def read_path(self, i: int) -> str:
        victims = self.setup.victims
        return f"/api/v1/victims/{victims[(i * 7919) % len(victims)]}"

    def list_path(self, i: int) -> str:
        return f"/api/v1/victims?page={1 + i % self.pages}&per_page=50"

    def search_path(self, i: int) -> str:
        words = self.setup.words
        return f"/api/v1/victims?q={quote(words[i % len(words)])}&per_page=20"

    async def versions(self) -> None:
        """The current version of each writable victim, read before any write is timed."""
        for ext in self.setup.writable:
            r = await self.client.get(f"/api/v1/victims/{ext}", headers=self.headers)
            if r.status_code != 200:
                raise RuntimeError(f"reading {ext} before the writes: HTTP {r.status_code}")
            self.setup.versions[ext] = int(json.loads(r.content)["version"])

    async def write(self, client_index: int, n: int) -> base.RawResponse:
        ext = self.setup.writable[client_index]
        body = {"version": self.setup.versions[ext], "recruiter_relation": RELATIONS[n % 2]}
        r = await self.client.patch_json(f"/api/v1/victims/{ext}", json.dumps(body).encode(), self.headers)
        if r.status_code in {200, 409}:  # keep the version for the next write (a 409 says the current)
            answer = json.loads(r.content)
            self.setup.versions[ext] = int((answer.get("current") or answer)["version"])
        return r

    def request(self, workload: str, client_index: int, n: int) -> Awaitable[base.RawResponse]:
        if workload == "mix":
            workload = MIX[(n + client_index) % len(MIX)]
        if workload == "write":
            return self.write(client_index, n)
        i = client_index * 1_000_003 + n
        path = {"read": self.read_path, "list": self.list_path, "search": self.search_path}[workload](i)
        return self.client.get(path, headers=self.headers)


async def closed_loop(
    send: Callable[[int, int], Awaitable[base.RawResponse]],
    row: Row,
    pid: int | None,
) -> Row:
    """``row.clients`` clients, each sending its next request when its last is answered."""
    end = base.clock() + row.seconds

    async def one_client(index: int) -> None:
        n = 0
        while base.clock() < end:
            t0 = base.clock()
            try:
                r = await send(index, n)
            except base.REQUEST_ERRORS as exc:
                row.errors[type(exc).__name__] += 1
            else:
                if r.status_code == 200:
                    row.completed += 1
                else:
                    row.errors[f"HTTP {r.status_code}"] += 1
            row.latencies.append(base.clock() - t0)
            n += 1

    cpu_before = base.tree_cpu_seconds(pid) if pid else None
    started = base.clock()
    await asyncio.gather(*(one_client(i) for i in range(row.clients)))
    row.elapsed = base.clock() - started
    cpu_after = base.tree_cpu_seconds(pid) if pid else None
    if cpu_before is not None and cpu_after is not None:
        row.server_cpu = cpu_after - cpu_before
    return row


async def load_workload(
    url: str, backend: str, workload: str, setup: Setup, args: argparse.Namespace
) -> tuple[list[Row], base.Result | None]:
    """One workload against one fresh server: a warm-up, the closed loops, then its open loop."""
    client = base.RawClient(url, max(MAX_CLIENTS, IN_FLIGHT), args.timeout)
    rows: list[Row] = []
    result = None
    try:
        work = Workloads(client, setup)
        if workload in {"write", "mix"}:
            await work.versions()
        pid = base.SERVER_PIDS.get(url)
        await closed_loop(lambda i, n: work.request(workload, i, n), Row(backend, workload, 4, WARMUP), None)
        for clients in args.client_counts:
            row = Row(backend, workload, clients, args.seconds)
            rows.append(await closed_loop(lambda i, n: work.request(workload, i, n), row, pid))
            print(
                f"  {backend} {workload} x{clients}: {row.completed} answered, {row.error_count} errors",
                flush=True,
            )
        if workload in OPEN_LOOP and args.open_seconds > 0:
            path_of = {"read": work.read_path, "list": work.list_path, "search": work.search_path}[workload]
            endpoint = base.Endpoint(f"{backend} {workload}", path_of(0), "token", "JSON, Bearer token")
            result = await base.open_loop(
                client, endpoint, work.headers, args.rate, args.open_seconds, args.drain, IN_FLIGHT, path_of
            )
    finally:
        await client.aclose()
    return rows, result


async def load_floor(url: str, args: argparse.Namespace) -> list[Row]:
    client = base.RawClient(url, MAX_CLIENTS, args.timeout)
    try:
        send: Callable[[int, int], Awaitable[base.RawResponse]] = lambda _i, _n: client.get("/")  # noqa: E731
        await closed_loop(send, Row("floor", "no-op", 4, WARMUP), None)
        pid = base.SERVER_PIDS.get(url)
        return [
            await closed_loop(send, Row("floor", "no-op", c, min(args.seconds, 3.0)), pid)
            for c in args.client_counts
        ]
    finally:
        await client.aclose()


# -- in-process reference ----------------------------------------------------------------------------
def in_process(engine: Any, setup: Setup, seconds: float) -> list[tuple[str, list[float]]]:
    """Each path's storage and audit work, called directly: one committed transaction per call."""
    from sqlalchemy import select

    from ctis import accounts, records
    from ctis.storage.db import session_scope
    from ctis.storage.models import User

    with session_scope(engine) as session:
        actor = accounts.actor_of(session.scalars(select(User).where(User.username == OFFICER)).one())
    turn = iter(range(10**9))
    victims, words, ext = setup.victims, setup.words, setup.writable[0]

    def read() -> None:
        with session_scope(engine) as session:
            records.get_record(session, actor, "victims", victims[(next(turn) * 7919) % len(victims)])

    def listing() -> None:
        with session_scope(engine) as session:
            records.list_records(session, actor, "victims", records.ListQuery(page=1 + next(turn) % 10))

    def search() -> None:
        with session_scope(engine) as session:
            query = records.ListQuery(q=words[next(turn) % len(words)], per_page=20)
            records.list_records(session, actor, "victims", query)

    def write() -> None:
        with session_scope(engine) as session:
            version = records.get_record(session, actor, "victims", ext)["version"]
            data = {"recruiter_relation": RELATIONS[next(turn) % 2]}
            records.save_record(session, actor, "victims", data, external_id=ext, expected_version=version)

    budget = min(REFERENCE_SECONDS, seconds)
    return [
        ("get_record (read, audited)", base.timed(read, budget=budget, most=200)),
        ("list_records page of 50 (audited)", base.timed(listing, budget=budget, most=200)),
        ("list_records name search (audited)", base.timed(search, budget=budget, most=200)),
        ("get_record + save_record (write, audited)", base.timed(write, budget=budget, most=200)),
    ]


# -- output -------------------------------------------------------------------------------------------
def print_rows(rows: list[Row]) -> None:
    print(
        f"\n{'backend':<11}{'workload':<9}{'clients':>8}{'answered':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'req/s':>9}{'errors':>8}{'server CPU ms/req':>19}"
    )
    for r in rows:
        cpu = (
            f"{r.server_cpu / r.completed * 1000:.2f}" if r.server_cpu is not None and r.completed else "n/a"
        )
        print(
            f"{r.backend:<11}{r.workload:<9}{r.clients:>8}{r.completed:>10}{r.percentile(50):>9.1f}"
            f"{r.percentile(99):>9.1f}{r.percentile(100):>9.1f}{r.throughput:>9.1f}{r.error_count:>8}{cpu:>19}"
        )
        if r.errors:
            print("    errors: " + ", ".join(f"{k} x{n}" for k, n in r.errors.most_common()))


def print_open(results: list[base.Result]) -> None:
    print(
        f"\nopen loop at the goal's rate, at most {IN_FLIGHT} in flight "
        f"(goal: p99 < {base.GOAL_P99_MS:g} ms at {base.GOAL_RATE:g} req/s, no errors):"
    )
    print(
        f"{'workload':<20}{'offered':>9}{'achieved':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>10}{'errors':>8}  goal"
    )
    for r in results:
        verdict, why = r.goal()
        print(
            f"{r.endpoint.name:<20}{r.rate:>9g}{r.throughput:>10.1f}{r.percentile(50):>9.1f}"
            f"{r.percentile(90):>9.1f}{r.percentile(99):>9.1f}{r.percentile(100):>10.1f}{r.error_count:>8}"
            f"  {verdict}" + (f" ({why})" if why else "")
        )
        if r.errors:
            print("    errors: " + ", ".join(f"{k} x{n}" for k, n in r.errors.most_common()))
        if r.max_send_lag > 0.05:
            print(f"    (the generator sent up to {r.max_send_lag * 1000:.0f} ms late: a busy machine)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--backends", default="sqlite", help="comma-separated: sqlite, postgresql (default sqlite)"
    )
    ap.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="PostgreSQL server on 127.0.0.1")
    ap.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}"
    )
    ap.add_argument(
        "--clients", default=",".join(map(str, CLIENTS)), help="closed-loop concurrencies (1,8,32)"
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="per closed-loop row (default 5, max 60)")
    ap.add_argument("--open-seconds", type=float, default=10.0, help="per open-loop row; 0 skips them")
    ap.add_argument("--rate", type=float, default=base.GOAL_RATE, help="open-loop requests per second")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    ap.add_argument(
        "--drain", type=float, default=10.0, help="open loop: wait for answers after the last send"
    )
    ap.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default 1, as ctis serve)"
    )
    ap.add_argument("--no-floor", action="store_true", help="skip the no-op app's rows (the floor)")
    ap.add_argument("--no-reference", action="store_true", help="skip the in-process reference")
    args = ap.parse_args(argv)
    args.backend_names = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.workload_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    try:
        args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        ap.error("--clients takes whole numbers, e.g. 1,8,32")
    if not args.backend_names or set(args.backend_names) - {"sqlite", "postgresql"}:
        ap.error("--backends: choose from sqlite, postgresql")
    if not args.workload_names or set(args.workload_names) - set(WORKLOADS):
        ap.error(f"--workloads: choose from {', '.join(WORKLOADS)}")
    if not args.client_counts or not all(1 <= c <= MAX_CLIENTS for c in args.client_counts):
        ap.error(f"--clients must each be in [1, {MAX_CLIENTS}]")
    if not 0 < args.seconds <= 60 or not 0 <= args.open_seconds <= base.MAX_SECONDS:
        ap.error(f"--seconds must be in (0, 60], --open-seconds in [0, {base.MAX_SECONDS:g}]")
    if not 0 < args.rate <= base.MAX_RATE:
        ap.error(f"--rate must be in (0, {base.MAX_RATE:g}]")
    if not 1 <= args.workers <= 8:
        ap.error("--workers must be in [1, 8]")
    return args


def run_backend(
    backend: str, args: argparse.Namespace, tmp: Path, env_vars: dict[str, str]
) -> tuple[list[Row], list[base.Result], bool]:
    """Every workload on one backend; returns the rows, the open-loop results and whether the chain held."""
    from ctis.security import audit
    from ctis.storage.db import make_engine

    rows: list[Row] = []
    results: list[base.Result] = []
    work_dir = tmp / backend
    work_dir.mkdir()
    with base.database(args.postgres_url if backend == "postgresql" else None, work_dir) as url:
        os.environ["CTIS_DATABASE_URL"] = url
        engine = make_engine(url)
        password = "pw-" + secrets.token_urlsafe(24)
        setup = prepare(engine, password)
        print(f"{backend}: {len(setup.victims)} victims, {len(setup.words)} search words", flush=True)
        if not args.no_reference:
            print(f"\n{backend}: in-process reference (same database, no HTTP, one transaction per call):")
            for label, times in in_process(engine, setup, args.seconds):
                p50, p99 = base.ms(times, 50), base.ms(times, 99)
                print(f"  {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(times)})")
        env = {**os.environ, **env_vars, "CTIS_DATABASE_URL": url}
        for workload in args.workload_names:  # a fresh server per workload: no backlog carried over
            with base.server_process(env, work_dir, args.workers) as server:
                more, result = base.run_async(load_workload(server, backend, workload, setup, args))
                rows += more
                if result is not None:
                    results.append(result)
        check = audit.verify(engine)
        print(f"{backend}: {check}")
        engine.dispose()
    return rows, results, check.ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, base._terminate)
    with tempfile.TemporaryDirectory(prefix="ctis-recordsload-") as tmp_name:
        tmp = Path(tmp_name)
        from ctis.security.crypto import KeyRing

        env_vars = {"CTIS_FIELD_KEYS": KeyRing.generate().to_json(), "CTIS_DATA_DIR": str(tmp / "data")}
        os.environ.update(env_vars)  # this process seals the demo data with the same key ring
        print(
            f"records load: cores {os.cpu_count()}; python {sys.version.split()[0]}; "
            f"load average {os.getloadavg()[0]:.2f}; {args.workers} worker(s); closed loops of "
            f"{args.seconds:g} s at {args.clients} clients; "
            f"open loops {args.open_seconds:g} s at {args.rate:g} req/s"
        )
        rows: list[Row] = []
        if not args.no_floor:
            env = {**os.environ, **env_vars}
            with base.server_process(env, tmp, floor=True) as server:
                rows += base.run_async(load_floor(server, args))
        results: list[base.Result] = []
        chains_ok = True
        for backend in args.backend_names:
            more, res, ok = run_backend(backend, args, tmp, env_vars)
            rows += more
            results += res
            chains_ok &= ok
        print_rows(rows)
        if results:
            print_open(results)
        print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    errors = sum(r.error_count for r in rows if r.backend != "floor")
    missed = any(r.goal()[0] == "MISS" for r in results)
    print(f"errors in all rows: {errors}; audit chains intact: {'yes' if chains_ok else 'NO'}")
    return 1 if errors or missed or not chains_ok else 0


if __name__ == "__main__":
    sys.exit(main())
