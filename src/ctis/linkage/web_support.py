"""What the linkage pages and API need beyond :mod:`ctis.linkage.service`: read-only look-ups.

The service runs, lists and decides; the web front end also needs to show one
stored run (the result of "Link now" after its redirect), how many pairs wait
for a reviewer without opening any record (the overview page reads no person
field, so it audits nothing), whether a pair is one a reviewer may decide,
and how many records a record's person has (the record page's link).  Each
function authorises through :func:`~ctis.security.permissions.authorize`
like the service; none writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from ctis.linkage import service
from ctis.linkage.service import KINDS, RunSummary
from ctis.records import Invalid, NotFound, scope_clause
from ctis.security.permissions import READ, Actor, Permission, authorize, can
from ctis.storage.models import MODELS, LinkDecision, LinkReviewPair, LinkRun


@dataclass
class KindOverview:
    """One kind on the linkage page: the latest attempt, the run whose identities are in force,
    and the number of pairs waiting for a reviewer."""

    kind: str
    latest: RunSummary | None  # the latest run, whatever its outcome
    in_force: RunSummary | None  # the latest successful run: the person identities now stored
    pending: int


def _summaries(session: Session, kind: str, runs: list[LinkRun]) -> list[RunSummary]:
    """Stored runs as summaries, with the unlinkable records named by their external ids."""
    table: Any = MODELS[kind].__table__
    wanted = {int(i) for r in runs for i in json.loads(r.unlinkable or "[]")}
    external: dict[int, str] = {}
    if wanted:
        query = select(table.c.id, table.c.external_id).where(table.c.id.in_(sorted(wanted)))
        external = {int(i): str(e) for i, e in session.execute(query)}
    return [service._summary(r, external) for r in runs]


def pending_reviews(session: Session, kind: str) -> int:
    """Pairs :func:`~ctis.linkage.service.review_queue` would list, counted without reading a record:
    decisions gone stale, plus the latest run's uncertain pairs that nobody has decided."""
    stale = session.scalar(
        select(func.count()).select_from(LinkDecision).where(LinkDecision.kind == kind, LinkDecision.stale)
    )
    decided = exists().where(
        and_(
            LinkDecision.kind == LinkReviewPair.kind,
            LinkDecision.record_id_l == LinkReviewPair.record_id_l,
            LinkDecision.record_id_r == LinkReviewPair.record_id_r,
        )
    )
    undecided = session.scalar(
        select(func.count()).select_from(LinkReviewPair).where(LinkReviewPair.kind == kind, ~decided)
    )
    return int(stale or 0) + int(undecided or 0)


def overview(session: Session, actor: Actor, kind: str) -> KindOverview:
    """The state of linkage for ``kind``: what the linkage page shows (needs ``linkage:run``)."""
    authorize(actor, Permission.LINKAGE_RUN)
    if kind not in KINDS:
        raise Invalid({"kind": f"linkage links victims or suspects, not {kind[:40]!r}"})
    last = service.latest_run(session, kind, succeeded=False)
    good = last if last is None or last.status == "succeeded" else service.latest_run(session, kind)
    runs = [r for r in (last, good) if r is not None]
    summaries = dict(zip([r.id for r in runs], _summaries(session, kind, runs), strict=True))
    return KindOverview(
        kind,
        summaries[last.id] if last is not None else None,
        summaries[good.id] if good is not None else None,
        pending_reviews(session, kind),
    )


def run_summary(session: Session, actor: Actor, kind: str, run_id: int) -> RunSummary:
    """One stored run of ``kind`` (the outcome of a run started from the page), or NotFound."""
    authorize(actor, Permission.LINKAGE_RUN)
    run = session.get(LinkRun, run_id)
    if run is None or run.kind != kind:
        raise NotFound(f"no {kind} linkage run {run_id}")
    return _summaries(session, kind, [run])[0]


def decidable(session: Session, actor: Actor, kind: str, record_id_l: int, record_id_r: int) -> bool:
    """True if the pair is one a reviewer may decide through the web: in the review queue of
    the latest run, or decided before (a verdict may be changed, a stale one renewed)."""
    authorize(actor, Permission.LINKAGE_REVIEW)
    lo, hi = sorted((record_id_l, record_id_r))
    queued = select(LinkReviewPair.id).where(
        LinkReviewPair.kind == kind, LinkReviewPair.record_id_l == lo, LinkReviewPair.record_id_r == hi
    )
    decided = select(LinkDecision.id).where(
        LinkDecision.kind == kind, LinkDecision.record_id_l == lo, LinkDecision.record_id_r == hi
    )
    return session.scalar(queued.limit(1)) is not None or session.scalar(decided.limit(1)) is not None


def person_size(session: Session, actor: Actor, kind: str, external_id: str) -> int | None:
    """How many records the person of record ``external_id`` has, of those the actor may see.

    None where linkage does not apply (another kind, no read permission, no such
    record).  Counts rows only: no person field is read, so nothing is audited.
    """
    if kind not in KINDS or not can(actor, READ[kind]):
        return None
    model: Any = MODELS[kind]
    clause = scope_clause(actor, kind)
    query = select(model.id, model.person_id).where(model.external_id == external_id)
    if clause is not None:
        query = query.where(clause)
    row = session.execute(query).first()
    if row is None:
        return None
    person = row.person_id or row.id
    members = (
        select(func.count()).select_from(model).where((model.person_id == person) | (model.id == person))
    )
    if clause is not None:
        members = members.where(clause)
    return max(1, int(session.scalar(members) or 0))
