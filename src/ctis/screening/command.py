"""``ctis screen FILE``: screen a file of posts, link them into networks, print or store the results.

The file is read line by line and screened in batches, so a crawler's daily
dump of a million posts needs neither a million posts in memory at once nor
one transaction for all of them.  Each batch is stored in its own
transaction (``--store``); the network index is built once from the
database and then grows with the file, so later batches link to earlier
ones.  A post's network can change as later posts arrive (two networks
merge), so the results are printed at the end, with the networks as they
finally are.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctis.io.files import write_csv, write_xlsx
from ctis.screening import service
from ctis.screening.networks import NUM_PERM, NetworkIndex, values_of
from ctis.screening.posts import BadLine, Post, PostError, read_file
from ctis.screening.score import Screened, screen_many, warm_up
from ctis.security.permissions import Actor

BATCH = 1000
#: Worker processes by default: one per core this process may use, at most this many.
MAX_WORKERS = 8
CSV_HEADER = ("id", "language", "score", "flagged", "indicators", "phones", "handles", "urls", "emails",
              "salary_usd_month", "network")  # fmt: skip


@dataclass
class Outcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def _batches(path: Path, outcome: Outcome) -> Iterator[list[Post]]:
    batch: list[Post] = []
    for _line, item in read_file(path):
        if isinstance(item, BadLine):
            outcome.bad.append(item)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def cli_actor() -> Actor:
    """Whoever runs the command on the server acts as an administrator, named in the audit log."""
    return Actor(0, f"cli:{getpass.getuser()}", "administrator", agency_id=None, scope="all")


def default_workers() -> int:
    """One worker per core this process may run on (``--workers`` overrides), at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


#: What a worker sends back for a batch when nothing is stored: each post's JSON line, the batch's
#: signatures as the bytes of one uint32 array (512 bytes a post) and each post's contact points.
#: Unpickling whole :class:`Screened` objects cost the main process 0.14 ms a post, as much as
#: linking it; a :class:`MinHash` object a post still cost a fifth of the linking.
Light = tuple[list[dict[str, Any]], bytes, list[list[str]]]


def to_light(screened: list[Screened]) -> Light:
    """What :func:`link_light` needs of a screened batch (from ``screen_many(..., minhash=False)``)."""
    values = np.array([values_of(s.signature) for s in screened], dtype="<u4").reshape(-1, NUM_PERM)
    return [s.summary() for s in screened], values.tobytes(), [s.entities.contacts() for s in screened]


def link_light(index: NetworkIndex, batch: Light) -> list[dict[str, Any]]:
    """Add a batch of :data:`Light` results to the network index, in order; their JSON lines."""
    summaries, signatures, contacts = batch
    values = np.frombuffer(signatures, dtype="<u4").reshape(len(summaries), NUM_PERM)
    for summary, row, points in zip(summaries, values, contacts, strict=True):
        index.add(summary["id"], row, points)
    return summaries


def _screened_batches(
    path: Path, outcome: Outcome, workers: int, light: bool = False
) -> Iterator[tuple[list[Post], list[Screened] | Light | None]]:
    """Batches of posts, screened by ``workers`` processes ahead of the caller (None: screen in-process).

    At most two batches per worker are in flight, so a file of a million posts
    is never in memory at once.  ``light``: the batches are screened into
    :data:`Light` results (in this process too, when there are no workers),
    else screened by the caller in-process, or sent back whole by the workers.
    """
    if workers <= 1:
        for batch in _batches(path, outcome):
            yield batch, _screen_light(batch) if light else None
        return
    warm_up()  # the model trained or loaded, rules and tables built once here: the workers inherit them
    task = _screen_light if light else _screen_parts
    with ProcessPoolExecutor(workers) as pool:
        pending: deque[tuple[list[Post], Future[Any]]] = deque()
        for batch in _batches(path, outcome):
            pending.append((batch, pool.submit(task, batch)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def _screen_parts(batch: list[Post]) -> list[Screened]:
    return screen_many(batch)


def _screen_light(batch: list[Post]) -> Light:
    return to_light(screen_many(batch, explain=False, minhash=False))


def run(path: Path, engine: Engine | None, progress: Any = None, workers: int | None = None) -> Outcome:
    """Screen every post of ``path``; store them through ``engine`` when one is given.

    With ``workers`` > 1 (the default: one per core) the screening runs in that
    many processes while this one links (and stores) the batches already
    screened; the results are the same as with one process (a test compares
    them).  Raises :class:`PostError` when the file cannot be read at all
    (missing, wrong kind).
    """
    if not path.is_file():
        raise PostError(f"{path}: no such file")
    workers = default_workers() if workers is None else workers
    outcome = Outcome()
    index: NetworkIndex
    if engine is None:
        index = NetworkIndex()
    else:
        with Session(engine) as session:
            index = service.load_index(session)
    actor = cli_actor()
    for batch, screened in _screened_batches(path, outcome, workers, light=engine is None):
        if engine is None and screened is not None:
            outcome.results.extend(link_light(index, screened))  # type: ignore[arg-type]
        else:
            if engine is None:
                results = service.screen_only(batch, index, screened)  # type: ignore[arg-type]
            else:
                with Session(engine) as session, session.begin():
                    results = service.ingest(
                        session,
                        actor,
                        batch,
                        index=index,
                        screened=screened,  # type: ignore[arg-type]
                    ).screened
            for s in results:
                outcome.results.append(s.summary())
        if progress is not None:
            progress(len(batch))
    for summary in outcome.results:  # networks as they are once the whole file is in
        summary["network"] = index.network_of(summary["id"])
    return outcome


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    e = summary["entities"]
    return {
        "id": summary["id"], "language": summary["language"], "score": summary["score"],
        "flagged": "yes" if summary["flagged"] else "no", "indicators": "; ".join(summary["indicators"]),
        "phones": "; ".join(e["phones"]), "handles": "; ".join(e["handles"]), "urls": "; ".join(e["urls"]),
        "emails": "; ".join(e["emails"]), "salary_usd_month": e["salary_usd_month"],
        "network": summary["network"] or "",
    }  # fmt: skip


def render(outcome: Outcome, fmt: str, console: Console, output: Path | None) -> str | None:
    """Print or write the results; returns what was written to a file, for the message."""
    if fmt == "json":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in outcome.results)
    elif fmt == "csv":
        buf = io.StringIO()
        write_csv(buf, CSV_HEADER, [_row(r) for r in outcome.results])
        text = buf.getvalue()
    elif fmt == "xlsx":
        target = output or Path("ctis-screening.xlsx")
        write_xlsx(target, {"posts": (CSV_HEADER, [_row(r) for r in outcome.results])})
        return str(target)
    else:
        table = Table("id", "lang", "score", "flagged", "indicators", "network")
        for r in outcome.results:
            flag = "[bold red]yes[/bold red]" if r["flagged"] else "no"
            table.add_row(r["id"], r["language"], f"{r['score']:.2f}", flag, ", ".join(r["indicators"]),
                          r["network"] or "")  # fmt: skip
        console.print(table)
        flagged = sum(1 for r in outcome.results if r["flagged"])
        networks = len({r["network"] for r in outcome.results if r["network"]})
        console.print(f"{len(outcome.results)} posts screened, {flagged} flagged, {networks} networks.")
        return None
    if output is not None:
        output.write_text(text, encoding="utf-8")
        return str(output)
    sys.stdout.write(text)
    return None
