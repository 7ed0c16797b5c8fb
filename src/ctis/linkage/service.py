"""Person linkage in storage: runs, person identities, the review queue and decisions.

The engine (:mod:`ctis.linkage.engine`) is data in, data out; this module is
what the CLI (``ctis link``), the demo and the web front end call to apply it
to the records, on behalf of an actor:

* :func:`run_linkage` opens the linkage fields of every record of one kind
  (sealed at rest) with the key ring, runs the engine, and only once the
  engine has finished writes the outcome in the caller's transaction: each
  record's ``person_id`` (the smallest record id of its person), the review
  queue of the run, and a :class:`~ctis.storage.models.LinkRun` with the model
  and counts.  A failing engine writes nothing but a failed run, so the
  previous identities stay as they were.  One audit entry per run.
* :func:`review_queue` lists the uncertain pairs of the latest run and the
  decisions whose records changed since they were made, with both records
  (identifying fields opened for those who may see them; every page is audited).
* :func:`decide` records a reviewer's verdict.  A confirmation merges the two
  persons at once; every later run honours the verdict (a confirmed pair
  always links, a rejected pair never ends in one person), until either
  record's linkage fields change: the decision keeps a keyed fingerprint of
  both records, and a run that finds a different fingerprint marks it stale,
  stops honouring it, and puts the pair back in the queue.
* :func:`person_records` lists the records of the person a record belongs to.

Permissions: ``linkage:run`` to run, ``linkage:review`` to read the queue and
decide (administrators and data officers); reading a person's records needs
the kind's read permission and shows only the records in the actor's scope.
Person ids are internal row ids and never leave this module for a caller that
may not identify the people (the queue and person views need ``identify`` to
show names; a viewer never reaches them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from ctis.linkage.engine import INPUT_COLUMNS, Decision, LinkModel, LinkResult, link
from ctis.records import Invalid, NotFound, Page, scope_clause
from ctis.security import audit
from ctis.security.crypto import KeyRing, load_key_ring
from ctis.security.permissions import READ, Actor, Permission, authorize, may_identify
from ctis.storage.models import LinkDecision, LinkReviewPair, LinkRun, Suspect, Victim, utcnow
from ctis.storage.repository import bump_data_version

#: Record kinds linked, each with itself.
KINDS = ("victims", "suspects")
_MODEL = {"victims": Victim, "suspects": Suspect}
#: The date an age on a record refers to (the age is recorded "at identification" / "at arrest").
_EVENT_DATE = {"victims": "rescue_date", "suspects": "arrest_date"}
_SEALED = ("name_latin", "name_khmer", "date_of_birth", "phone")
#: The fields a decision's fingerprint covers: what the engine compares.
FINGERPRINT_FIELDS = tuple(c for c in INPUT_COLUMNS if c != "record_id")
ENGINES = ("duckdb", "spark")
MAX_PER_PAGE = 100

Linker = Callable[..., LinkResult]


log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did (the stored :class:`LinkRun`, without the model)."""

    id: int
    kind: str
    status: str
    engine: str
    trained: bool
    match_threshold: float
    review_threshold: float
    records: int
    persons: int
    linked_records: int
    review_pairs: int
    stale_decisions: int
    unlinkable: list[str]  # external ids of the records left as their own person
    pairs_scored: int
    seconds: float
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    error: str | None = None

    @property
    def duplicates(self) -> int:
        """Records beyond the first of each person: what de-duplication takes off the counts."""
        return self.records - self.persons


@dataclass
class ReviewItem:
    """A pair a reviewer should decide: uncertain in the latest run, or decided before a record changed."""

    kind: str
    record_id_l: int
    record_id_r: int
    probability: float | None  # None for a changed decision the latest run did not score as uncertain
    reason: str  # "uncertain" or "changed"
    previous: bool | None  # the stale verdict (True same, False different), or None
    linked: bool = False  # the two records are one person now (a link to confirm, not one to make)
    left: dict[str, Any] = field(default_factory=dict)
    right: dict[str, Any] = field(default_factory=dict)


#: A page of the review queue: the same shape as a page of records.
ReviewPage = Page[ReviewItem]


@dataclass
class DecisionView:
    kind: str
    record_id_l: int
    record_id_r: int
    same: bool
    decided_by: str
    decided_at: datetime
    merged: bool  # a confirmation that joined two persons at once
    split: bool = False  # a rejection that parted the records of one person at once


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise Invalid({"kind": f"linkage links victims or suspects, not {kind!r}"})


# -- reading the records ------------------------------------------------------------------------


def read_fields(
    session: Session, kind: str, keys: KeyRing, ids: list[int] | None = None
) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """The engine's input fields of every record of ``kind`` (or of ``ids``), and row id -> external id.

    Sealed fields are opened here with the key ring and never leave the process.
    """
    table: Any = _MODEL[kind].__table__
    event = table.c[_EVENT_DATE[kind]]
    cols = [table.c.id, table.c.external_id, table.c.age, event, table.c.sex, table.c.nationality,
            table.c.province, *[table.c[c] for c in _SEALED]]  # fmt: skip
    query = select(*cols).order_by(table.c.id)
    if ids is not None:
        query = query.where(table.c.id.in_(ids))
    fields: dict[int, dict[str, Any]] = {}
    external: dict[int, str] = {}
    for r in session.execute(query).mappings():
        rid = int(r["id"])
        opened = {
            c: keys.open(bytes(r[c]), table.name, c, rid) if r[c] is not None else None for c in _SEALED
        }
        on: date | None = r[_EVENT_DATE[kind]]
        fields[rid] = {
            "record_id": str(rid), "name_latin": opened["name_latin"], "name_khmer": opened["name_khmer"],
            "date_of_birth": opened["date_of_birth"], "age": r["age"],
            "age_on": on.isoformat() if on else None, "sex": r["sex"], "nationality": r["nationality"],
            "province": r["province"], "phone": opened["phone"],
        }  # fmt: skip
        external[rid] = str(r["external_id"])
    return fields, external


def linkage_frame(fields: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """The engine's input: one row per record, Python values (ints stay ints, missing is None)."""
    return pd.DataFrame(list(fields.values()), columns=list(INPUT_COLUMNS), dtype=object)


def fingerprint(keys: KeyRing, kind: str, left: dict[str, Any], right: dict[str, Any]) -> str:
    """Keyed hash of both records' linkage fields: changes when either record's fields do.

    Keyed (the key ring's index key) because the fields are identifying: a plain
    hash of a name and a date of birth could be reversed by trying candidates.
    """
    canonical = json.dumps(
        [
            kind,
            [str(left.get(c)) for c in FINGERPRINT_FIELDS],
            [str(right.get(c)) for c in FINGERPRINT_FIELDS],
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(keys.index_key, b"ctis-link|" + canonical.encode(), hashlib.sha256).hexdigest()


# -- runs -----------------------------------------------------------------------------------------


def latest_run(session: Session, kind: str, *, succeeded: bool = True) -> LinkRun | None:
    query = select(LinkRun).where(LinkRun.kind == kind)
    if succeeded:
        query = query.where(LinkRun.status == "succeeded")
    return session.scalars(query.order_by(LinkRun.id.desc()).limit(1)).first()


def run_linkage(
    session: Session,
    actor: Actor,
    kind: str,
    *,
    engine: str = "duckdb",
    match_threshold: float = 0.5,
    review_threshold: float = 0.2,
    retrain: bool = True,
    linker: Linker = link,
) -> RunSummary:
    """Link the records of ``kind`` (victims with victims, suspects with suspects).

    ``retrain`` False reuses the model of the latest successful run (incremental
    linking after an import: no EM, the same parameters), and trains one only
    if there is none.  The caller commits; on an engine failure the returned
    summary has status ``failed`` and nothing but the failed run is written.
    ``linker`` is the engine's :func:`~ctis.linkage.engine.link` (replaceable in tests).
    """
    authorize(actor, Permission.LINKAGE_RUN)
    _check_kind(kind)
    if engine not in ENGINES:
        raise Invalid({"engine": f"one of {', '.join(ENGINES)}"})
    if not 0 < review_threshold <= match_threshold <= 1:
        raise Invalid({"match_threshold": "thresholds must satisfy 0 < review ≤ match ≤ 1"})
    keys = load_key_ring()
    started = utcnow()
    fields, external = read_fields(session, kind, keys)
    frame = linkage_frame(fields)

    decisions = session.scalars(select(LinkDecision).where(LinkDecision.kind == kind))
    honoured, stale = _honoured(keys, kind, fields, decisions)

    previous = latest_run(session, kind)
    model: LinkModel | None = None
    if not retrain and previous is not None and previous.model:
        try:
            model = LinkModel.from_json(previous.model)
        except ValueError:  # saved by an earlier model format: this run trains a new one
            model = None
    run = LinkRun(
        kind=kind, status="failed", engine=engine, trained=model is None, model=None,
        match_threshold=match_threshold, review_threshold=review_threshold, records=len(frame),
        persons=0, linked_records=0, review_pairs=0, unlinkable="[]", pairs_scored=0, seconds=0.0,
        started_at=started, started_by=actor.username,
    )  # fmt: skip
    try:
        if frame.empty:  # nothing to link: every engine step would be on an empty table
            result = LinkResult({}, [], [], model or LinkModel.prior(), 0, 0.0)
        else:
            result = linker(
                frame, model=model, engine=engine, match_threshold=match_threshold,
                review_threshold=review_threshold, decisions=honoured,
            )  # fmt: skip
    except Exception as exc:  # the engine's failure is the run's outcome, not the caller's crash
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        run.finished_at = utcnow()
        session.add(run)
        session.flush()
        audit.record(session, actor.username, "link", kind, run.id, {"status": "failed"})
        return _summary(run, external, stale=len(stale))

    # -- the engine has finished: write everything of the run (the caller's one transaction)
    person_of = _persons(result, fields)
    run.status = "succeeded"
    run.model = result.model.to_json()
    # a batch too small to train on is linked with the starting values: not a trained model
    run.trained = model is None and result.model.trained
    run.persons = len(set(person_of.values()))
    sizes: dict[int, int] = {}
    for p in person_of.values():
        sizes[p] = sizes.get(p, 0) + 1
    run.linked_records = sum(n for n in sizes.values() if n > 1)
    run.unlinkable = json.dumps(sorted(int(r) for r in result.unlinkable))
    run.pairs_scored = int(result.pairs_scored)
    run.seconds = float(result.seconds)
    session.add(run)
    session.flush()
    _write_persons(session, kind, person_of)
    for d in stale:
        d.stale = True
    session.execute(delete(LinkReviewPair).where(LinkReviewPair.kind == kind))
    queued = {(min(int(a), int(b)), max(int(a), int(b))): p for a, b, p in result.review}
    session.add_all(
        LinkReviewPair(run_id=run.id, kind=kind, record_id_l=l_, record_id_r=r_, probability=float(p))
        for (l_, r_), p in sorted(queued.items())
    )
    run.review_pairs = len(queued)
    run.finished_at = utcnow()
    bump_data_version(session)
    audit.record(
        session, actor.username, "link", kind, run.id,
        {"status": "succeeded", "records": run.records, "persons": run.persons,
         "review": run.review_pairs, "stale": len(stale), "trained": run.trained},
    )  # fmt: skip
    return _summary(run, external, stale=len(stale))


def _honoured(
    keys: KeyRing, kind: str, fields: dict[int, dict[str, Any]], decisions: Iterable[LinkDecision]
) -> tuple[list[Decision], list[LinkDecision]]:
    """The decisions to honour (both records as they were when decided), and those gone stale."""
    honoured: list[Decision] = []
    stale: list[LinkDecision] = []
    for d in decisions:
        left, right = fields.get(d.record_id_l), fields.get(d.record_id_r)
        if left is None or right is None:  # a record was deleted (or is not read): nothing to honour
            continue
        if d.stale or fingerprint(keys, kind, left, right) != d.fingerprint:
            stale.append(d)
            continue
        honoured.append(Decision(str(d.record_id_l), str(d.record_id_r), d.same))
    return honoured, stale


def _persons(result: LinkResult, fields: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Record id -> person id (the smallest record id of the person), for every record read.

    The engine names a cluster by its smallest id *as text*; the person id is
    the smallest as a number.  Unlinkable records and any record the engine
    did not return are their own person.
    """
    members: dict[str, list[int]] = {}
    for rid, cluster in result.clusters.items():
        members.setdefault(cluster, []).append(int(rid))
    person_of = {rid: rid for rid in fields}
    for ids in members.values():
        first = min(ids)
        for rid in ids:
            if rid in person_of:
                person_of[rid] = first
    return person_of


def _write_persons(session: Session, kind: str, person_of: dict[int, int], *, some: bool = False) -> None:
    """Set ``person_id`` where it changed, with Core statements: linkage edits no record
    (no version bump, ``updated_at`` kept). ``some``: ``person_of`` holds a few records,
    not the whole table."""
    table: Any = _MODEL[kind].__table__
    query = select(table.c.id, table.c.person_id)
    if some:
        query = query.where(table.c.id.in_(list(person_of)))
    current = dict(session.execute(query).all())
    changes = [{"rid": rid, "pid": pid} for rid, pid in person_of.items() if current.get(rid) != pid]
    if not changes:
        return
    statement = (
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(person_id=bindparam("pid"), updated_at=table.c.updated_at)
    )
    for i in range(0, len(changes), 500):
        session.connection().execute(statement, changes[i : i + 500])


def _summary(run: LinkRun, external: dict[int, str], *, stale: int = 0) -> RunSummary:
    unlinkable = [external.get(i, str(i)) for i in json.loads(run.unlinkable or "[]")]
    return RunSummary(
        id=run.id, kind=run.kind, status=run.status, engine=run.engine, trained=run.trained,
        match_threshold=run.match_threshold, review_threshold=run.review_threshold,
        records=run.records, persons=run.persons, linked_records=run.linked_records,
        review_pairs=run.review_pairs, stale_decisions=stale, unlinkable=unlinkable,
        pairs_scored=run.pairs_scored, seconds=run.seconds, started_at=run.started_at,
        finished_at=run.finished_at, started_by=run.started_by, error=run.error,
    )  # fmt: skip


def link_runs(session: Session, actor: Actor, kind: str, limit: int = 20) -> list[RunSummary]:
    """The latest runs of ``kind``, newest first (what a run page lists)."""
    authorize(actor, Permission.LINKAGE_RUN)
    _check_kind(kind)
    runs = list(
        session.scalars(select(LinkRun).where(LinkRun.kind == kind).order_by(LinkRun.id.desc()).limit(limit))
    )
    table: Any = _MODEL[kind].__table__
    wanted = {i for r in runs for i in json.loads(r.unlinkable or "[]")}
    external = (
        dict(session.execute(select(table.c.id, table.c.external_id).where(table.c.id.in_(wanted))).all())
        if wanted
        else {}
    )
    return [_summary(r, external) for r in runs]


# -- review ---------------------------------------------------------------------------------------


def _record_views(session: Session, actor: Actor, kind: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """What a reviewer compares: the record's fields, identifying ones only for those who may see them."""
    from ctis.storage.repository import Repository

    model: Any = _MODEL[kind]
    rows = list(session.scalars(select(model).where(model.id.in_(ids)))) if ids else []
    repo = Repository(session, actor=actor.username)
    identify = may_identify(actor, kind)
    values = repo.values(kind, rows, identify=identify)
    out: dict[int, dict[str, Any]] = {}
    for row, v in zip(rows, values, strict=True):
        v = {k: v[k] for k in v if k not in {"operations", "means_of_control"}}
        v["id"] = row.id
        v["person_id"] = row.person_id or row.id  # NULL: never seen by a run, its own person
        v["masked"] = not identify
        out[row.id] = v
    return out


def review_queue(
    session: Session, actor: Actor, kind: str, *, page: int = 1, per_page: int = 20
) -> ReviewPage:
    """The pairs waiting for a reviewer: changed decisions first, then the latest run's uncertain
    pairs from the most probable down.  Each page shown is one audited read of its records."""
    authorize(actor, Permission.LINKAGE_REVIEW)
    _check_kind(kind)
    authorize(actor, READ[kind])
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid({"per_page": f"must be between 1 and {MAX_PER_PAGE}"})
    if page < 1:
        raise Invalid({"page": "must be 1 or more"})
    queued = {
        (q.record_id_l, q.record_id_r): q.probability
        for q in session.scalars(select(LinkReviewPair).where(LinkReviewPair.kind == kind))
    }
    items: list[ReviewItem] = []
    stale = session.scalars(
        select(LinkDecision)
        .where(LinkDecision.kind == kind, LinkDecision.stale.is_(True))
        .order_by(LinkDecision.decided_at, LinkDecision.id)
    )
    for d in stale:
        pair = (d.record_id_l, d.record_id_r)
        items.append(ReviewItem(kind, *pair, queued.pop(pair, None), "changed", d.same))
    current = select(LinkDecision.record_id_l, LinkDecision.record_id_r).where(
        LinkDecision.kind == kind, LinkDecision.stale.is_(False)
    )
    decided = {(int(a), int(b)) for a, b in session.execute(current)}
    for (lo, hi), p in sorted(queued.items(), key=lambda kv: (-kv[1], kv[0])):
        if (lo, hi) not in decided:  # decided since the run
            items.append(ReviewItem(kind, lo, hi, p, "uncertain", None))
    total = len(items)
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise Invalid({"page": f"page {page} is past the last page ({pages})"})
    shown = items[(page - 1) * per_page : page * per_page]
    ids = sorted({i for it in shown for i in (it.record_id_l, it.record_id_r)})
    views = _record_views(session, actor, kind, ids)
    for it in shown:
        it.left, it.right = views.get(it.record_id_l, {}), views.get(it.record_id_r, {})
        p_l, p_r = it.left.get("person_id"), it.right.get("person_id")
        it.linked = p_l is not None and p_l == p_r
    if ids:
        detail = {"ids": ids, "purpose": "linkage review", "identified": may_identify(actor, kind)}
        audit.record(session, actor.username, "list", kind, None, detail)
    return ReviewPage(shown, total, page, per_page)


def decide(
    session: Session, actor: Actor, kind: str, record_id_l: int, record_id_r: int, same: bool
) -> DecisionView:
    """Record a reviewer's verdict on a pair: ``same`` True confirms one person, False two.

    The verdict replaces any earlier one on the pair and is honoured by every
    later run until either record changes.  A confirmation merges the two
    persons at once (the smaller person id wins); a rejection of two records
    that are one person now parts them at once (:func:`_split_person`).
    """
    authorize(actor, Permission.LINKAGE_REVIEW)
    _check_kind(kind)
    lo, hi = sorted((int(record_id_l), int(record_id_r)))
    if lo == hi:
        raise Invalid({"record_id_r": "a record is always the same person as itself"})
    table: Any = _MODEL[kind].__table__
    found = dict(session.execute(select(table.c.id, table.c.person_id).where(table.c.id.in_([lo, hi]))).all())
    if set(found) != {lo, hi}:
        raise NotFound(f"no {kind} record {hi if lo in found else lo}")
    keys = load_key_ring()
    pair, _external = read_fields(session, kind, keys, [lo, hi])
    print_ = fingerprint(keys, kind, pair[lo], pair[hi])
    probability = session.scalar(
        select(LinkReviewPair.probability).where(
            LinkReviewPair.kind == kind, LinkReviewPair.record_id_l == lo, LinkReviewPair.record_id_r == hi
        )
    )
    decision = session.scalars(
        select(LinkDecision).where(
            LinkDecision.kind == kind, LinkDecision.record_id_l == lo, LinkDecision.record_id_r == hi
        )
    ).first()
    now = utcnow()
    if decision is None:
        decision = LinkDecision(kind=kind, record_id_l=lo, record_id_r=hi)
        session.add(decision)
    decision.same = bool(same)
    decision.fingerprint = print_
    decision.stale = False
    decision.probability = probability
    decision.decided_by = actor.username
    decision.decided_at = now
    session.execute(
        delete(LinkReviewPair).where(
            LinkReviewPair.kind == kind, LinkReviewPair.record_id_l == lo, LinkReviewPair.record_id_r == hi
        )
    )
    merged = split = False
    if not same and found[lo] is not None and found[lo] == found[hi]:
        split = _split_person(session, kind, keys, found[lo])
    if same:
        p_lo, p_hi = found[lo] or lo, found[hi] or hi
        if p_lo != p_hi:
            keep, gone = min(p_lo, p_hi), max(p_lo, p_hi)
            session.connection().execute(
                update(table)
                .where(table.c.person_id.in_([keep, gone]) | table.c.id.in_([keep, gone, lo, hi]))
                .values(person_id=keep, updated_at=table.c.updated_at)
            )
            merged = True
            bump_data_version(session)
    session.flush()
    audit.record(session, actor.username, "link-decide", kind, lo,
                 {"pair": [lo, hi], "same": bool(same), "merged": merged, "split": split})  # fmt: skip
    return DecisionView(kind, lo, hi, bool(same), actor.username, now, merged, split)


def _split_person(session: Session, kind: str, keys: KeyRing, person: int) -> bool:
    """Link one person's records again, now that a reviewer rejected a pair of them.

    Links are made from "more likely than not", and a rejected link would
    otherwise hold until the next run. A rejection can only part records, never
    join others to them, so the latest run's model on this person's records,
    with every decision still holding among them, says which persons they fall
    into. The next full run may draw the line a little differently: its name
    frequencies come from the whole register, here from the model's table.
    Returns whether the records were parted."""
    previous = latest_run(session, kind)
    if previous is None or not previous.model:
        return False
    try:
        model = LinkModel.from_json(previous.model)
    except ValueError:  # saved by an earlier model format: the next run applies the rejection
        return False
    table: Any = _MODEL[kind].__table__
    ids = [int(i) for i in session.scalars(select(table.c.id).where(table.c.person_id == person))]
    fields, _external = read_fields(session, kind, keys, ids)
    among = select(LinkDecision).where(
        LinkDecision.kind == kind, LinkDecision.record_id_l.in_(ids), LinkDecision.record_id_r.in_(ids)
    )
    honoured, _stale = _honoured(keys, kind, fields, session.scalars(among))
    try:
        result = link(
            linkage_frame(fields), model=model, match_threshold=previous.match_threshold,
            review_threshold=previous.review_threshold, decisions=honoured,
        )  # fmt: skip
    except Exception:  # the verdict is kept either way; the next run applies it
        log.exception("re-linking person %s of %s after a rejection failed", person, kind)
        return False
    person_of = _persons(result, fields)
    if len(set(person_of.values())) < 2:
        return False
    _write_persons(session, kind, person_of, some=True)
    bump_data_version(session)
    return True


# -- persons --------------------------------------------------------------------------------------


def person_records(session: Session, actor: Actor, kind: str, external_id: str) -> list[dict[str, Any]]:
    """The records of the person ``external_id`` belongs to, in id order, as far as the actor may see.

    Identifying fields are opened only for those who may identify; the read is
    audited with the ids shown.  A record never linked is its own person: a list of one.
    """
    _check_kind(kind)
    authorize(actor, READ[kind])
    model: Any = _MODEL[kind]
    table: Any = model.__table__
    clause = scope_clause(actor, kind)
    query = select(table.c.id, table.c.person_id).where(table.c.external_id == external_id)
    if clause is not None:
        query = query.where(clause)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"no {kind} record {external_id!r}")
    person = row.person_id or row.id
    members = select(model).where((model.person_id == person) | (model.id == person) | (model.id == row.id))
    if clause is not None:
        members = members.where(clause)
    rows = list(session.scalars(members.order_by(model.id)))
    views = _record_views(session, actor, kind, [r.id for r in rows])
    out = [views[r.id] | {"external_id": r.external_id} for r in rows]
    detail = {
        "ids": [r.id for r in rows],
        "purpose": "person records",
        "identified": may_identify(actor, kind),
    }
    audit.record(session, actor.username, "list", kind, row.id, detail)
    return out
