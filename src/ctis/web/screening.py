"""Screening over the API: a crawler pushes batches of posts; analysts and investigators read them back.

Routes are thin, as elsewhere: they authenticate (``ApiIdentity``), call
``ctis.screening.service`` (which authorises and audits) and shape the answer.
A batch is screened post by post: a post that cannot be screened is named in
``errors`` with its position and reason while the others are stored; only a
batch with no usable post at all, or one that is not a batch, is refused
(422), and then nothing is written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ctis.domain.values import value_set
from ctis.records import Invalid
from ctis.screening import leads, matching, service, trend
from ctis.screening.posts import MAX_ID, PostError, parse_post
from ctis.security.permissions import Actor, Permission, authorize, can
from ctis.web import i18n
from ctis.web.api import ERRORS
from ctis.web.deps import DB, ApiIdentity, check_csrf
from ctis.web.pages import PageIdentity, _script_json, quote, render

api = APIRouter(prefix="/api/v1", tags=["screening"])
pages = APIRouter(include_in_schema=False)
N_ = i18n.N_

#: Names of the indicators and statuses as the pages show them (the catalogue translates them).
LABELS = {
    "deception": N_("Deception"), "debt_bondage": N_("Debt bondage"),
    "document_retention": N_("Retention of identity documents"), "isolation": N_("Isolation"),
    "restriction_of_movement": N_("Restriction of movement"), "excessive_overtime": N_("Excessive overtime"),
    "unskilled_online_work": N_("Unskilled online work"),
    "high_pay_unskilled": N_("High pay for unskilled online work"),
    "scam_sector": N_("Gambling or crypto work"),
    "no_experience": N_("No experience needed"), "travel_paid": N_("Travel paid"),
    "messaging_app_only": N_("Messaging-app-only contact"), "hub_location": N_("Hub location"),
    "urgent_departure": N_("Urgent departure"), "age_limit": N_("Age limit"), "fees": N_("Fees or deposits"),
    "foreign_work": N_("Work abroad"), "sexual_exploitation": N_("Hostess or entertainment work"),
    "company_identity": N_("Company identified"), "formal_application": N_("Formal application"),
    "qualifications": N_("Qualifications required"), "corporate_email": N_("Company e-mail address"),
    "new": N_("new"), "benign": N_("benign"), "watch": N_("watch"), "referred": N_("referred"),
}  # fmt: skip

#: Posts per request: a crawler sends more in several requests (the body limit is 1 MB anyway).
MAX_BATCH = 500

PostId = Annotated[str, PathParam(max_length=MAX_ID, description="The post's id as its source gave it")]
NetworkId = Annotated[str, PathParam(max_length=20, description="A network id (NW-…)")]


class PostEntities(BaseModel):
    phones: list[str]
    handles: list[str]
    urls: list[str]
    emails: list[str]
    salary_usd_month: int | None


class PostResult(BaseModel):
    id: str
    language: str
    score: float
    flagged: bool
    indicators: list[str]
    entities: PostEntities
    network: str | None


class BatchError(BaseModel):
    index: int
    id: str | None
    error: str


class BatchOut(BaseModel):
    results: list[PostResult]
    errors: list[BatchError]
    created: int
    updated: int
    networks: list[str]


class PostOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    text: str
    title: str | None
    source: str | None
    url: str | None
    posted_at: datetime | None
    language: str
    score: float
    flagged: bool
    indicators: list[dict[str, Any]]
    entities: dict[str, Any]
    model_features: list[Any]
    network: str | None
    status: str


class NetworkOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    asked_for: str
    status: str
    size: int
    template: str
    languages: list[str]
    contacts: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    flagged: int
    members: list[dict[str, Any]]


class StatusIn(BaseModel):
    status: str


BATCH_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["posts"],
                    "properties": {
                        "posts": {
                            "type": "array",
                            "maxItems": MAX_BATCH,
                            "items": {
                                "type": "object",
                                "required": ["id", "text"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "text": {"type": "string"},
                                    "title": {"type": "string"},
                                    "source": {"type": "string"},
                                    "url": {"type": "string"},
                                    "posted_at": {"type": "string", "format": "date-time"},
                                },
                            },
                        }
                    },
                }
            }
        }
    }
}


@api.post("/posts", responses=ERRORS, operation_id="ingest_posts", openapi_extra=BATCH_SCHEMA)
def ingest_posts(
    who: ApiIdentity, db: DB, body: Annotated[Any, Body(description='{"posts": [{"id": …, "text": …}, …]}')]
) -> BatchOut:
    """Screen and store a batch of posts; each post's result, or its error, in the answer."""
    authorize(who.actor, Permission.SCREENING_WRITE)
    items = body.get("posts") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise Invalid({"posts": 'send {"posts": [...]} with at least one post'})
    if len(items) > MAX_BATCH:
        raise Invalid({"posts": f"at most {MAX_BATCH} posts per request, not {len(items)}"})
    posts, errors = [], []
    for i, item in enumerate(items):
        try:
            posts.append(parse_post(item))
        except PostError as exc:
            raw_id = item.get("id") if isinstance(item, dict) else None
            post_id = str(raw_id)[:MAX_ID] if isinstance(raw_id, str | int) else None
            errors.append(BatchError(index=i, id=post_id, error=str(exc)))
    if not posts:
        raise Invalid({f"posts[{e.index}]": e.error for e in errors[:50]})
    result = service.ingest(db, who.actor, posts)
    return BatchOut(
        results=[PostResult(**s.summary()) for s in result.screened],
        errors=errors,
        created=result.created,
        updated=result.updated,
        networks=result.networks,
    )


@api.get("/posts/{post_id}", responses=ERRORS, operation_id="get_post")
def get_post(who: ApiIdentity, db: DB, post_id: PostId) -> PostOut:
    """A screened post: score, indicators with the words behind them, entities, model features, network."""
    return PostOut(**service.get_post(db, who.actor, post_id))


@api.put("/posts/{post_id}/status", responses=ERRORS, operation_id="set_post_status")
def set_post_status(who: ApiIdentity, db: DB, post_id: PostId, body: StatusIn) -> PostOut:
    """An analyst's decision: new, benign or watch (a post becomes referred by referring it)."""
    return PostOut(**service.set_status(db, who.actor, post_id, body.status))


@api.get("/networks/{network_id}", responses=ERRORS, operation_id="get_network")
def get_network(who: ApiIdentity, db: DB, network_id: NetworkId) -> NetworkOut:
    """A network: template with its varying slots, members over time, contact points, languages."""
    return NetworkOut(**service.get_network(db, who.actor, network_id))


class NewCaseIn(BaseModel):
    """The fields of a case opened by a referral; validated as the case form's (``save_record``)."""

    model_config = ConfigDict(extra="forbid")
    offence_type: str = Field(max_length=40, description="An offence_type code, e.g. forced_criminality")
    external_id: str | None = Field(default=None, max_length=100)
    opened_on: date | None = None
    status: str | None = Field(default=None, max_length=20)
    agency: str | None = Field(default=None, max_length=100, description="The agency's external id")
    legal_article: str | None = Field(default=None, max_length=200)


class ReferIn(BaseModel):
    """Refer to an existing case (``case``, its external id) or open one (``new_case``), not both."""

    model_config = ConfigDict(extra="forbid")
    case: str | None = Field(default=None, max_length=100)
    new_case: NewCaseIn | None = None
    note: str | None = Field(default=None, max_length=leads.MAX_NOTE)


class LeadOut(BaseModel):
    id: int
    subject: str
    post: str | None
    network: str | None
    case: str | None
    case_created: bool
    note: str | None
    contacts: list[str]
    created_by: str
    created_at: datetime


class NetworkStatusOut(BaseModel):
    id: str
    status: str


class MatchesOut(BaseModel):
    network: str
    asked_for: str
    matches: list[dict[str, Any]]
    hidden: int
    withheld: list[str] = Field(
        default=[], description="Kinds of person you may not identify: their matches are not shown"
    )


class TrendPeriod(BaseModel):
    label: str
    start: date
    end: date
    count: int
    by_language: dict[str, int]


class TrendOut(BaseModel):
    metric: str
    interval: str
    start: date
    end: date
    language: str | None
    periods: list[TrendPeriod]
    total: int
    languages: list[str]
    undated: int


Interval = Literal["week", "month"]


def _new_case(body: ReferIn) -> dict[str, Any] | None:
    if body.new_case is None:
        return None
    return {k: v for k, v in body.new_case.model_dump().items() if v is not None}


@api.post("/posts/{post_id}/refer", responses=ERRORS, operation_id="refer_post", status_code=201)
def refer_post(who: ApiIdentity, db: DB, post_id: PostId, body: ReferIn) -> LeadOut:
    """Refer a post to investigators: a lead linked to an existing case or to a case opened now."""
    return LeadOut(**leads.refer(db, who.actor, "post", post_id, case=body.case, new_case=_new_case(body),
                                 note=body.note))  # fmt: skip


@api.post("/networks/{network_id}/refer", responses=ERRORS, operation_id="refer_network", status_code=201)
def refer_network(who: ApiIdentity, db: DB, network_id: NetworkId, body: ReferIn) -> LeadOut:
    """Refer a whole network: the lead keeps the network's contact points as they are now."""
    return LeadOut(**leads.refer(db, who.actor, "network", network_id, case=body.case,
                                 new_case=_new_case(body), note=body.note))  # fmt: skip


@api.put("/networks/{network_id}/status", responses=ERRORS, operation_id="set_network_status")
def set_network_status(who: ApiIdentity, db: DB, network_id: NetworkId, body: StatusIn) -> NetworkStatusOut:
    """An analyst's decision on a network: new, benign or watch."""
    return NetworkStatusOut(**leads.set_network_status(db, who.actor, network_id, body.status))


@api.get("/networks/{network_id}/matches", responses=ERRORS, operation_id="network_matches")
def network_matches(who: ApiIdentity, db: DB, network_id: NetworkId) -> MatchesOut:
    """Victim and suspect records whose phone appears in the network's posts (masked as on record pages)."""
    return MatchesOut(**matching.network_matches(db, who.actor, network_id))


@api.get("/screening/trend", responses=ERRORS, operation_id="screening_trend")
def screening_trend(
    who: ApiIdentity,
    db: DB,
    interval: Annotated[Interval, Query(description="week (Monday to Sunday) or month")] = "month",
    start: Annotated[date | None, Query(description="First day; default: a year before end")] = None,
    end: Annotated[date | None, Query(description="Last day; default: the newest flagged post")] = None,
    language: Annotated[str | None, Query(max_length=8, description="Only posts in this language")] = None,
) -> TrendOut:
    """Flagged posts per week or month by posted date (the registry's posts_flagged), by language."""
    return TrendOut(**trend.trend(db, who.actor, interval, start, end, language or None))


# -- pages: the analyst's queue, a post with its highlights, a network with its graph ---------------------


def highlighted(text: str, indicators: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text cut into plain pieces and marked spans (the first indicator to claim a span names it)."""
    spans = sorted({(s[0], s[1], h["name"], h["family"]) for h in indicators for s in h["spans"]})
    pieces: list[dict[str, Any]] = []
    at = 0
    for start, end, name, family in spans:
        if start < at or end > len(text):
            continue
        if start > at:
            pieces.append({"text": text[at:start]})
        pieces.append({"text": text[start:end], "indicator": name, "family": family})
        at = end
    pieces.append({"text": text[at:]})
    return pieces


def graph(network: dict[str, Any], width: int = 720) -> dict[str, Any]:
    """A two-column drawing: posts on the left, the contact points they share on the right."""
    members = network["members"][:40]
    contacts = [c for c, n in network["contacts"].items() if n >= 2][:25] or list(network["contacts"])[:25]
    step = 22
    height = max(len(members), len(contacts), 1) * step + 20
    left = {m["id"]: (160, 20 + i * step) for i, m in enumerate(members)}
    right = {c: (width - 260, 20 + i * step) for i, c in enumerate(contacts)}
    edges = [(left[pid], right[c]) for pid, cs in network.get("member_contacts", {}).items() if pid in left
             for c in cs if c in right]  # fmt: skip
    return {"width": width, "height": height, "left": left, "right": right, "edges": edges,
            "flagged": {m["id"] for m in members if m["flagged"]}}  # fmt: skip


def _offence_choices() -> list[tuple[str, str]]:
    lang = i18n.current_lang.get()
    return [(v.code, v.label(lang)) for v in value_set("offence_type").values]


def _refer_context(who: Any) -> dict[str, Any]:
    """What the referral form offers: an existing case always; a new case to those who may open one."""
    return {
        "may_refer": can(who.actor, Permission.SCREENING_REFER),
        "may_open_case": can(who.actor, Permission.CASES_WRITE),
        "offences": _offence_choices(),
    }


def _trend_chart(data: dict[str, Any], lang: str) -> str:
    return _script_json({
        "labels": [r["label"] for r in data["periods"]], "counts": [r["count"] for r in data["periods"]],
        "title": i18n.gettext(lang, i18n.N_("Flagged posts")), "metric": data["metric"],
    })  # fmt: skip


@pages.get("/screening", response_class=HTMLResponse)
def queue_page(
    request: Request,
    db: DB,
    who: PageIdentity,
    status: Annotated[str | None, Query(max_length=20)] = None,
    everything: Annotated[bool, Query(alias="all")] = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    interval: Annotated[Interval, Query()] = "month",
    language: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    """Flagged posts, highest score first (``?all=1`` lists unflagged posts too), under the trend
    of flagged posts per week or month (the registry's posts_flagged)."""
    posts, total = service.list_posts(db, who.actor, status or None, not everything, page, 50)
    flagged = trend.trend(db, who.actor, interval, language=language or None)
    return render(request, "screening_queue.html", who, posts=posts, total=total, page=page,
                  pages=max(1, -(-total // 50)), status_filter=status or "", everything=everything,
                  statuses=service.STATUSES, labels=LABELS, trend=flagged,
                  chart_json=_trend_chart(flagged, i18n.current_lang.get()))  # fmt: skip


@pages.get("/screening/posts/{post_id}", response_class=HTMLResponse)
def post_page(request: Request, db: DB, who: PageIdentity, post_id: PostId) -> HTMLResponse:
    post = service.get_post(db, who.actor, post_id)
    text = f"{post['title']}\n{post['text']}" if post["title"] else post["text"]
    pieces = highlighted(text, post["indicators"])
    return render(request, "screening_post.html", who, post=post, pieces=pieces, statuses=service.DECISIONS,
                  labels=LABELS, leads=leads.leads_of(db, who.actor, "post", post["id"]),
                  **_refer_context(who))  # fmt: skip


@pages.post("/screening/posts/{post_id}/status", response_model=None)
def post_status_form(
    request: Request,
    db: DB,
    who: PageIdentity,
    post_id: PostId,
    status: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    check_csrf(request, who, csrf_token)
    service.set_status(db, who.actor, post_id, status)
    return RedirectResponse(f"/screening/posts/{quote(post_id)}", status_code=303)


def _form_referral(
    db: Session, actor: Actor, subject: str, subject_id: str, case: str, new: str, offence_type: str,
    opened_on: str, agency: str, note: str,
) -> dict[str, Any]:  # fmt: skip
    """A referral from the page's form: ``new`` chooses a new case over the one named in ``case``."""
    new_case: dict[str, Any] | None = None
    if new:
        new_case = {"offence_type": offence_type.strip()}
        if opened_on.strip():
            new_case["opened_on"] = opened_on.strip()
        if agency.strip():
            new_case["agency"] = agency.strip()
    return leads.refer(db, actor, subject, subject_id, case=None if new else (case.strip() or None),
                       new_case=new_case, note=note or None)  # fmt: skip


ReferField = Annotated[str, Form(max_length=100)]


@pages.post("/screening/posts/{post_id}/refer", response_model=None)
def post_refer_form(
    request: Request, db: DB, who: PageIdentity, post_id: PostId,
    case: ReferField = "", new: Annotated[str, Form(max_length=5)] = "", offence_type: ReferField = "",
    opened_on: Annotated[str, Form(max_length=20)] = "", agency: ReferField = "",
    note: Annotated[str, Form(max_length=leads.MAX_NOTE)] = "", csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:  # fmt: skip
    check_csrf(request, who, csrf_token)
    _form_referral(db, who.actor, "post", post_id, case, new, offence_type, opened_on, agency, note)
    return RedirectResponse(f"/screening/posts/{quote(post_id)}#leads", status_code=303)


@pages.get("/screening/networks/{network_id}", response_class=HTMLResponse)
def network_page(request: Request, db: DB, who: PageIdentity, network_id: NetworkId) -> HTMLResponse:
    network = service.get_network(db, who.actor, network_id)
    return render(
        request,
        "screening_network.html",
        who,
        network=network,
        graph=graph(network),
        labels=LABELS,
        leads=leads.leads_of(db, who.actor, "network", network["id"]),
        matches=matching.network_matches(db, who.actor, network["id"]),
        decisions=leads.DECISIONS,
        **_refer_context(who),
    )


@pages.post("/screening/networks/{network_id}/status", response_model=None)
def network_status_form(
    request: Request,
    db: DB,
    who: PageIdentity,
    network_id: NetworkId,
    status: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    check_csrf(request, who, csrf_token)
    changed = leads.set_network_status(db, who.actor, network_id, status)
    return RedirectResponse(f"/screening/networks/{quote(changed['id'])}", status_code=303)


@pages.post("/screening/networks/{network_id}/refer", response_model=None)
def network_refer_form(
    request: Request, db: DB, who: PageIdentity, network_id: NetworkId,
    case: ReferField = "", new: Annotated[str, Form(max_length=5)] = "", offence_type: ReferField = "",
    opened_on: Annotated[str, Form(max_length=20)] = "", agency: ReferField = "",
    note: Annotated[str, Form(max_length=leads.MAX_NOTE)] = "", csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:  # fmt: skip
    check_csrf(request, who, csrf_token)
    lead = _form_referral(db, who.actor, "network", network_id, case, new, offence_type, opened_on, agency,
                          note)  # fmt: skip
    return RedirectResponse(f"/screening/networks/{quote(lead['network'])}#leads", status_code=303)


def record_panel(db: Session, actor: Actor, kind: str, external_id: str) -> dict[str, Any] | None:
    """Screening facts for a record page: a case's leads, and networks sharing a phone of the record
    (of its victims and suspects, for a case).  None for readers without ``screening:read``."""
    if not can(actor, Permission.SCREENING_READ) or kind not in ("cases", "victims", "suspects"):
        return None
    case_leads = leads.leads_of_case(db, actor, external_id) if kind == "cases" else []
    networks = matching.record_networks(db, actor, kind, external_id)
    return {"leads": case_leads, "networks": networks}


router = APIRouter()
router.include_router(api)
router.include_router(pages)
