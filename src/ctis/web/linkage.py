"""Person linkage in the web application: the data officer's page, the review queue, person views, API.

Routes are thin, as elsewhere: they authenticate, call :mod:`ctis.linkage.service`
(which authorises, opens sealed fields only for those who may identify, and
audits every read of person fields) or the read-only look-ups of
:mod:`ctis.linkage.web_support`, and shape the answer.  No linkage logic lives
here.

A run is synchronous (seconds at the demo's scale) and expensive, so two
guards stand in front of it: one run of a kind at a time in this process
(409), and a pause of :data:`MIN_INTERVAL_S` seconds after the previous run of
the kind ended (429 with ``Retry-After``), so that a double click, a script in a
loop or a fuzzer cannot keep the server busy linking.  Tests set
``app.state.link_interval`` to 0.

A pair of records is named in URLs by its *pair id*, ``"<lo>-<hi>"``: the two
records' internal ids, smaller first.  Unlike the id of a row of the review
queue, it stays the same from run to run and also names a decision gone stale.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session

from ctis.domain.records import IDENTIFYING_FIELDS
from ctis.linkage import service, web_support
from ctis.linkage.service import KINDS, ReviewItem, RunSummary
from ctis.records import Invalid, NotFound
from ctis.security.permissions import Actor, Permission, authorize
from ctis.storage.models import utcnow
from ctis.web import i18n
from ctis.web.api import ERRORS, Problem
from ctis.web.deps import DB, ApiIdentity, check_csrf
from ctis.web.pages import PageIdentity, quote, render

api = APIRouter(prefix="/api/v1", tags=["linkage"])
pages = APIRouter(include_in_schema=False)
N_ = i18n.N_

#: Seconds after a run of a kind ends before another may start (``app.state.link_interval``).
MIN_INTERVAL_S = 60
_RUNNING = {kind: threading.Lock() for kind in KINDS}
PER_PAGE = 20
#: Unlinkable records listed on the page (the API's latest run names them all).
MAX_UNLINKABLE_SHOWN = 200
#: What a reviewer compares, in this order; the event date is the rescue or arrest date.
COMPARED = ("name_latin", "name_khmer", "date_of_birth", "age", "sex", "nationality", "province", "phone",
            "agency", "event_date", "case")  # fmt: skip
EVENT_DATE = {"victims": "rescue_date", "suspects": "arrest_date"}
PAIR = re.compile(r"^([0-9]{1,9})-([0-9]{1,9})$")

KIND_LABELS = {"victims": N_("Victims"), "suspects": N_("Suspects")}
REASONS = {"uncertain": N_("Uncertain match"), "changed": N_("Changed since decided")}

Kind = Literal["victims", "suspects"]
KindParam = Annotated[Kind, PathParam(description="victims or suspects: each kind is linked with itself")]
PairId = Annotated[
    str,
    PathParam(
        pattern=PAIR.pattern,
        max_length=19,
        description='The internal ids of the two records, smaller first: "12-345" (a review item\'s "pair")',
    ),
]
PersonId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$",
        description="The external id of any record of the person",
    ),
]  # fmt: skip


# -- answers ------------------------------------------------------------------------------------------


class RunIn(BaseModel):
    """Options of a run started through the API (the engine is DuckDB; thresholds are the defaults)."""

    model_config = ConfigDict(extra="forbid")
    retrain: StrictBool = Field(
        default=True,
        description="Train the model again (EM) on the records; false reuses the latest run's model",
    )


class RunOut(BaseModel):
    id: int
    kind: str
    status: str = Field(description="succeeded, or failed (then nothing but the run itself was written)")
    error: str | None
    engine: str
    trained: bool
    match_threshold: float
    review_threshold: float
    records: int
    persons: int
    linked_records: int = Field(description="Records that share their person with at least one other")
    duplicates: int = Field(description="records - persons: what de-duplication takes off the counts")
    review_pairs: int
    stale_decisions: int = Field(description="Decisions this run found stale (known for a run just made)")
    unlinkable: list[str] = Field(description="External ids of records with no usable name and no date")
    unlinkable_count: int
    pairs_scored: int
    engine_seconds: float
    seconds: float | None = Field(
        description="Wall-clock time of the whole run, reading and writing included"
    )
    started_at: datetime
    finished_at: datetime | None
    started_by: str


class RecordSide(BaseModel):
    """One record of a pair or of a person, with the fields linkage compares.

    Identifying fields are null and named in ``masked`` for a caller whose role
    may not identify people of this kind.
    """

    external_id: str
    name_latin: str | None = None
    name_khmer: str | None = None
    date_of_birth: date | None = None
    age: int | None = None
    sex: str | None = None
    nationality: str | None = None
    province: str | None = None
    phone: str | None = None
    agency: str | None = None
    case: str | None = None
    event_date: date | None = Field(
        default=None, description="Rescue date of a victim, arrest date of a suspect"
    )
    masked: list[str] = Field(default_factory=list)


class ReviewItemOut(BaseModel):
    pair: str = Field(description='Pair id, "<lo>-<hi>", for deciding')
    probability: float | None = Field(description="Match probability of the latest run (null: not scored)")
    reason: str = Field(description="uncertain, or changed: a record changed since the pair was decided")
    linked: bool = Field(
        description="The records are one person now: a link to confirm (or reject, which splits them at the "
        "next run) rather than one to make"
    )
    previous: bool | None = Field(
        description="The stale decision of a changed pair: true same, false different"
    )
    left: RecordSide
    right: RecordSide


class ReviewPageOut(BaseModel):
    kind: str
    items: list[ReviewItemOut]
    total: int
    page: int
    per_page: int
    pages: int


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    same: StrictBool = Field(description="true: the same person; false: different people")


class DecisionOut(BaseModel):
    kind: str
    pair: str
    same: bool
    decided_by: str
    decided_at: datetime
    merged: bool = Field(description="A confirmation that joined two persons at once")
    split: bool = Field(description="A rejection that parted the records of one person at once")


class PersonOut(BaseModel):
    kind: str
    person: str = Field(description="External id of the person's first record you may see")
    count: int
    records: list[RecordSide]


BUSY: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": Problem, "description": "A run of this kind is in progress"},
    429: {"model": Problem, "description": "The previous run ended too recently; see Retry-After"},
}


def run_out(run: RunSummary) -> RunOut:
    wall = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return RunOut(
        id=run.id, kind=run.kind, status=run.status, error=run.error, engine=run.engine, trained=run.trained,
        match_threshold=run.match_threshold, review_threshold=run.review_threshold, records=run.records,
        persons=run.persons, linked_records=run.linked_records, duplicates=run.duplicates,
        review_pairs=run.review_pairs, stale_decisions=run.stale_decisions, unlinkable=run.unlinkable,
        unlinkable_count=len(run.unlinkable), pairs_scored=run.pairs_scored, engine_seconds=run.seconds,
        seconds=wall, started_at=run.started_at, finished_at=run.finished_at, started_by=run.started_by,
    )  # fmt: skip


def side(kind: str, view: dict[str, Any]) -> RecordSide:
    """A record view of the service as the fields compared; masking kept in the record pages' form."""
    masked = view.get("masked", [])
    if isinstance(masked, bool):  # the service may flag masking as a whole
        masked = list(IDENTIFYING_FIELDS) if masked else []
    dob = view.get("date_of_birth")
    return RecordSide(
        external_id=str(view.get("external_id", "")), name_latin=view.get("name_latin"),
        name_khmer=view.get("name_khmer"),
        date_of_birth=date.fromisoformat(dob) if isinstance(dob, str) else dob,
        age=view.get("age"), sex=view.get("sex"), nationality=view.get("nationality"),
        province=view.get("province"), phone=view.get("phone"), agency=view.get("agency"),
        case=view.get("case"), event_date=view.get(EVENT_DATE[kind]),
        masked=[f for f in masked if f in RecordSide.model_fields],
    )  # fmt: skip


def pair_id(item: ReviewItem) -> str:
    return f"{item.record_id_l}-{item.record_id_r}"


def parse_pair(value: str) -> tuple[int, int]:
    found = PAIR.match(value)
    if found is None:
        raise NotFound(f"no pair {value[:40]!r}: a pair id is two record ids, e.g. 12-345")
    lo, hi = sorted((int(found[1]), int(found[2])))
    if lo == hi:
        raise NotFound(f"no pair {value!r}: a record is always the same person as itself")
    return lo, hi


def review_out(kind: str, item: ReviewItem) -> ReviewItemOut:
    return ReviewItemOut(
        pair=pair_id(item), probability=item.probability, reason=item.reason, previous=item.previous,
        linked=item.linked,
        left=side(kind, item.left), right=side(kind, item.right),
    )  # fmt: skip


# -- the services, guarded ---------------------------------------------------------------------------


class Busy(Exception):
    """A run may not start now: ``status`` 409 (one in progress) or 429 (too soon after the last)."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.detail, self.retry_after = status, detail, retry_after


def start_run(request: Request, db: Session, actor: Actor, kind: str, *, retrain: bool = True) -> RunSummary:
    """Run the linkage of ``kind`` now and commit it, unless a guard refuses (:class:`Busy`)."""
    authorize(actor, Permission.LINKAGE_RUN)
    if kind not in KINDS:
        raise NotFound(f"linkage links victims or suspects, not {kind[:40]!r}")
    interval = float(getattr(request.app.state, "link_interval", MIN_INTERVAL_S))
    last = service.latest_run(db, kind, succeeded=False)
    if interval > 0 and last is not None and last.finished_at is not None:
        wait = interval - (utcnow() - last.finished_at).total_seconds()
        if wait > 0:
            raise Busy(429, f"the last {kind} run ended moments ago; try again in {math.ceil(wait)} s",
                       math.ceil(wait))  # fmt: skip
    lock = _RUNNING[kind]
    if not lock.acquire(blocking=False):
        raise Busy(409, f"a {kind} run is in progress; wait for it to finish")
    try:
        summary = service.run_linkage(db, actor, kind, retrain=retrain)
        db.commit()  # inside the lock: the next request sees this run and waits its turn
        return summary
    finally:
        lock.release()


def _busy_http(exc: Busy) -> HTTPException:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return HTTPException(status_code=exc.status, detail=exc.detail, headers=headers)


# -- API -----------------------------------------------------------------------------------------------


@api.post("/linkage/{kind}/runs", responses=BUSY, operation_id="run_linkage", status_code=201)
def api_run(
    request: Request,
    who: ApiIdentity,
    db: DB,
    kind: KindParam,
    body: Annotated[RunIn | None, Body(description='Optional: {"retrain": false} reuses the model')] = None,
) -> RunOut:
    """Link the records of a kind now (synchronously). A failed run answers with status "failed" and
    its error: it is recorded, and the person identities of the previous run stay as they were."""
    try:
        summary = start_run(request, db, who.actor, kind, retrain=body.retrain if body else True)
    except Busy as exc:
        raise _busy_http(exc) from None
    return run_out(summary)


@api.get("/linkage/{kind}/runs/latest", responses=ERRORS, operation_id="latest_link_run")
def api_latest(who: ApiIdentity, db: DB, kind: KindParam) -> RunOut:
    """The latest run of a kind, whatever its outcome (404 before the first)."""
    latest = web_support.overview(db, who.actor, kind).latest
    if latest is None:
        raise NotFound(f"no {kind} linkage run yet")
    return run_out(latest)


@api.get("/linkage/{kind}/review", responses=ERRORS, operation_id="link_review_queue")
def api_review(
    who: ApiIdentity,
    db: DB,
    kind: KindParam,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=service.MAX_PER_PAGE)] = PER_PAGE,
) -> ReviewPageOut:
    """Pairs waiting for a reviewer, both records side by side: decisions gone stale first, then
    the latest run's uncertain pairs, most probable first. Each page is an audited read."""
    found = service.review_queue(db, who.actor, kind, page=page, per_page=per_page)
    return ReviewPageOut(kind=kind, items=[review_out(kind, i) for i in found.items], total=found.total,
                         page=found.page, per_page=found.per_page, pages=found.pages)  # fmt: skip


def _decide(db: Session, actor: Actor, kind: str, pair: str, same: bool) -> DecisionOut:
    authorize(actor, Permission.LINKAGE_REVIEW)
    lo, hi = parse_pair(pair)
    if not web_support.decidable(db, actor, kind, lo, hi):
        raise NotFound(f"pair {lo}-{hi} is not in the {kind} review queue")
    made = service.decide(db, actor, kind, lo, hi, same)
    return DecisionOut(
        kind=kind, pair=f"{made.record_id_l}-{made.record_id_r}", same=made.same,
        decided_by=made.decided_by, decided_at=made.decided_at, merged=made.merged, split=made.split,
    )  # fmt: skip


@api.post("/linkage/{kind}/review/{pair}", responses=ERRORS, operation_id="decide_link_pair")
def api_decide(who: ApiIdentity, db: DB, kind: KindParam, pair: PairId, body: DecisionIn) -> DecisionOut:
    """Record a reviewer's verdict on a pair of the queue: honoured by every later run until either
    record changes. A confirmation joins the two persons at once."""
    return _decide(db, who.actor, kind, pair, body.same)


@api.get("/persons/{kind}/{person}", responses=ERRORS, operation_id="get_person")
def api_person(who: ApiIdentity, db: DB, kind: KindParam, person: PersonId) -> PersonOut:
    """The records of one person, named by any of its records (those in your agency scope; an
    audited read, identifying fields masked unless your role may identify)."""
    views = service.person_records(db, who.actor, kind, person)
    return PersonOut(kind=kind, person=str(views[0]["external_id"]), count=len(views),
                     records=[side(kind, v) for v in views])  # fmt: skip


# -- pages ---------------------------------------------------------------------------------------------


def field_title(kind: str, name: str) -> str:
    """A compared field's label as on record pages; the event date is the rescue or arrest date."""
    from ctis.web.pages import field_label

    return field_label(EVENT_DATE[kind] if name == "event_date" else name)


def display(kind: str, name: str, value: Any) -> str | None:
    """A compared field's value as the page shows it (None: nothing recorded)."""
    from ctis.domain.values import country_label
    from ctis.web.pages import code_label

    if value is None or value == "":
        return None
    lang = i18n.current_lang.get()
    digits = lang == "km" and i18n.khmer_digits.get()
    if isinstance(value, date):
        return i18n.format_date(value, lang, digits)
    if isinstance(value, int):
        return i18n.format_number(value, lang, digits)
    if name == "nationality":
        return country_label(str(value), lang)
    return str(code_label(kind, name, value))


def compare_rows(kind: str, left: RecordSide, right: RecordSide) -> list[dict[str, Any]]:
    """The rows of a side-by-side comparison: each field's two values, whether they differ, and
    whether a side is masked (shown as on record pages: "hidden")."""
    rows = []
    for name in COMPARED:
        a, b = getattr(left, name), getattr(right, name)
        rows.append({
            "name": name, "title": field_title(kind, name),
            "left": display(kind, name, a), "right": display(kind, name, b),
            "left_masked": name in left.masked, "right_masked": name in right.masked,
            "differs": a is not None and b is not None and a != b,
            "link": {"agency": "agencies", "case": "cases"}.get(name), "raw_left": a, "raw_right": b,
        })  # fmt: skip
    return rows


def when(value: datetime | None) -> str:
    """A moment as the page shows it: the date in the page's language, then the time (UTC)."""
    if value is None:
        return ""
    lang = i18n.current_lang.get()
    digits = lang == "km" and i18n.khmer_digits.get()
    text = f"{i18n.format_date(value, lang, digits)} {value:%H:%M} UTC"
    return i18n.to_khmer_digits(text) if digits else text


def _check_page_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"linkage links victims or suspects, not {kind[:40]!r}")


def _overview_page(
    request: Request, db: Session, who: Any, *, result: RunSummary | None = None, result_kind: str = "",
    refused: str = "", status: int = 200,
) -> HTMLResponse:  # fmt: skip
    kinds = [web_support.overview(db, who.actor, k) for k in KINDS]
    return render(request, "linkage_overview.html", who, status=status, overviews=kinds, result=result,
                  result_kind=result_kind, refused=refused, kind_labels=KIND_LABELS, when=when,
                  max_unlinkable=MAX_UNLINKABLE_SHOWN)  # fmt: skip


@pages.get("/linkage", response_class=HTMLResponse)
def overview_page(
    request: Request,
    db: DB,
    who: PageIdentity,
    kind: Annotated[str, Query(max_length=20)] = "",
    run: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> HTMLResponse:
    """Per kind: the latest run, the review queue's size, the unlinkable records; ``?kind=&run=``
    shows the outcome of a run started here."""
    authorize(who.actor, Permission.LINKAGE_RUN)
    result = None
    if run is not None and kind:
        _check_page_kind(kind)
        result = web_support.run_summary(db, who.actor, kind, run)
    return _overview_page(request, db, who, result=result, result_kind=kind)


@pages.post("/linkage/{kind}/run", response_model=None)
def run_form(
    request: Request,
    db: DB,
    who: PageIdentity,
    kind: str,
    reuse: Annotated[str, Form(max_length=5)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """ "Link now": runs, then shows the outcome on the linkage page (a refusal is shown at once)."""
    check_csrf(request, who, csrf_token)
    _check_page_kind(kind)
    try:
        summary = start_run(request, db, who.actor, kind, retrain=not reuse)
    except Busy as exc:
        return _overview_page(request, db, who, refused=exc.detail, result_kind=kind, status=exc.status)
    return RedirectResponse(f"/linkage?kind={kind}&run={summary.id}#result", status_code=303)


@pages.get("/linkage/{kind}/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DB,
    who: PageIdentity,
    kind: str,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    """The review queue, pair by pair, the two records side by side."""
    _check_page_kind(kind)
    authorize(who.actor, Permission.LINKAGE_REVIEW)
    # after the last pair of the last page is decided, show the page that is now the last
    last = max(1, math.ceil(web_support.pending_reviews(db, kind) / PER_PAGE))
    found = service.review_queue(db, who.actor, kind, page=min(page, last), per_page=PER_PAGE)
    items = [review_out(kind, i) for i in found.items]
    verdict, _sep, decided_pair = done.partition(":")
    decided = (
        (verdict, decided_pair) if verdict in {"same", "different"} and PAIR.match(decided_pair) else None
    )
    return render(request, "linkage_review.html", who, kind=kind, queue=found, decided=decided,
                  items=[(i, compare_rows(kind, i.left, i.right)) for i in items], reasons=REASONS,
                  kind_labels=KIND_LABELS)  # fmt: skip


@pages.post("/linkage/{kind}/review/{pair}", response_model=None)
def decide_form(
    request: Request,
    db: DB,
    who: PageIdentity,
    kind: str,
    pair: str,
    same: Annotated[str, Form(max_length=5)] = "",
    page: Annotated[int, Form(ge=1, le=100_000)] = 1,
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    check_csrf(request, who, csrf_token)
    _check_page_kind(kind)
    if same not in {"1", "0"}:
        raise Invalid({"same": "choose same person (1) or different people (0)"})
    made = _decide(db, who.actor, kind, pair, same == "1")
    done = ("same:" if made.same else "different:") + made.pair
    return RedirectResponse(f"/linkage/{kind}/review?page={page}&done={quote(done)}", status_code=303)


@pages.get("/persons/{kind}/{external_id}", response_class=HTMLResponse)
def person_page(request: Request, db: DB, who: PageIdentity, kind: str, external_id: str) -> HTMLResponse:
    """The records of one person: those linkage found (or a reviewer confirmed) to be the same."""
    _check_page_kind(kind)
    views = service.person_records(db, who.actor, kind, external_id)
    records = [side(kind, v) for v in views]
    rows = [{"title": field_title(kind, n), "name": n, "link": {"agency": "agencies", "case": "cases"}.get(n),
             "cells": [(display(kind, n, getattr(r, n)), n in r.masked, getattr(r, n)) for r in records]}
            for n in COMPARED]  # fmt: skip
    return render(request, "linkage_person.html", who, kind=kind, asked=external_id, records=records,
                  rows=rows, kind_labels=KIND_LABELS)  # fmt: skip


def record_panel(db: Session, actor: Actor, kind: str, external_id: str) -> int | None:
    """For a record page: how many records its person has (None where linkage does not apply)."""
    return web_support.person_size(db, actor, kind, external_id)


router = APIRouter()
router.include_router(api)
router.include_router(pages)
