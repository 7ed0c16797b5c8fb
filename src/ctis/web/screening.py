"""Screening over the API: a crawler pushes batches of posts; analysts and investigators read them back.

Routes are thin, as elsewhere: they authenticate (``ApiIdentity``), call
``ctis.screening.service`` (which authorises and audits) and shape the answer.
A batch is screened post by post: a post that cannot be screened is named in
``errors`` with its position and reason while the others are stored; only a
batch with no usable post at all, or one that is not a batch, is refused
(422), and then nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict

from ctis.records import Invalid
from ctis.screening import service
from ctis.screening.posts import MAX_ID, PostError, parse_post
from ctis.security.permissions import Permission, authorize
from ctis.web.api import ERRORS
from ctis.web.deps import DB, ApiIdentity

router = APIRouter(prefix="/api/v1", tags=["screening"])

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


@router.post("/posts", responses=ERRORS, operation_id="ingest_posts", openapi_extra=BATCH_SCHEMA)
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


@router.get("/posts/{post_id}", responses=ERRORS, operation_id="get_post")
def get_post(who: ApiIdentity, db: DB, post_id: PostId) -> PostOut:
    """A screened post: score, indicators with the words behind them, entities, model features, network."""
    return PostOut(**service.get_post(db, who.actor, post_id))


@router.put("/posts/{post_id}/status", responses=ERRORS, operation_id="set_post_status")
def set_post_status(who: ApiIdentity, db: DB, post_id: PostId, body: StatusIn) -> PostOut:
    """An analyst's decision: new, benign, watch or referred."""
    return PostOut(**service.set_status(db, who.actor, post_id, body.status))


@router.get("/networks/{network_id}", responses=ERRORS, operation_id="get_network")
def get_network(who: ApiIdentity, db: DB, network_id: NetworkId) -> NetworkOut:
    """A network: template with its varying slots, members over time, contact points, languages."""
    return NetworkOut(**service.get_network(db, who.actor, network_id))
