"""REST API under ``/api/v1``, documented by its OpenAPI schema (``/api/docs``).

Each route is a thin wrapper: it authorises through ``ctis.security.permissions``,
calls a service (``ctis.records``, ``ctis.metrics``, ``ctis.accounts``) and
shapes the answer.  Errors are 4xx with a ``detail`` message: 401 without a
session or token, 403 without the permission, 404 for a record the caller may
not see, 409 for a stale update, 422 for invalid input.
"""

import io
import json
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ctis import accounts, records
from ctis.cli.render import LONG_HEADER, long_rows, render_xlsx
from ctis.domain.periods import report_period
from ctis.domain.records import SCHEMAS
from ctis.io.files import write_csv
from ctis.metrics import METRICS, drill_down
from ctis.metrics.registry import DIMENSIONS
from ctis.metrics.report import report_cache
from ctis.security import audit
from ctis.security.permissions import Permission, authorize
from ctis.storage.models import Agency, ApiToken
from ctis.web.deps import DB, ApiIdentity

router = APIRouter(prefix="/api/v1")

Kind = StrEnum("Kind", {k: k for k in SCHEMAS})  # type: ignore[misc]


class Problem(BaseModel):
    detail: str
    errors: dict[str, str] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Not signed in"},
    403: {"model": Problem, "description": "Not permitted"},
    404: {"model": Problem, "description": "No such record (or not visible to you)"},
    422: {"model": Problem, "description": "Invalid input"},
}


class RecordPage(BaseModel):
    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    pages: int


class MetricOut(BaseModel):
    key: str
    label_en: str
    label_km: str
    definition: str
    unit: str
    dimensions: list[str]


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenOut):
    secret: str = Field(description="Shown once; send it as 'Authorization: Bearer <secret>'")


def _period(value: str) -> Any:
    try:
        return report_period(value)
    except ValueError as exc:
        raise records.Invalid({"period": str(exc)}) from None


def agency_labels(db: DB) -> dict[str, str]:
    from sqlalchemy import select

    return {str(i): n for i, n in db.execute(select(Agency.id, Agency.name_en)).all()}


@router.get("/me", tags=["accounts"], responses=ERRORS)
def me(who: ApiIdentity) -> dict[str, Any]:
    """The signed-in user, their role and permissions."""
    u = who.user
    return {
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "agency_id": u.agency_id,
        "scope": u.scope,
        "language": u.language,
        "permissions": sorted(p.value for p in who.actor.permissions),
    }


@router.get("/metrics", tags=["reports"], responses=ERRORS)
def list_metrics(who: ApiIdentity) -> list[MetricOut]:
    """Every metric of the registry with its counting rule and breakdowns."""
    authorize(who.actor, Permission.REPORTS_READ)
    return [
        MetricOut(
            key=m.key,
            label_en=m.label_en,
            label_km=m.label_km,
            definition=m.definition,
            unit=m.unit,
            dimensions=list(m.dimensions),
        )
        for m in METRICS.values()
    ]


@router.get("/reports", tags=["reports"], responses=ERRORS)
def report(
    who: ApiIdentity,
    db: DB,
    period: Annotated[
        str, Query(description="2024, 2024-03, 2024-Q3, 2024-H1, TIP2024 or A..B", max_length=40)
    ],
    by: Annotated[list[str] | None, Query(description="Breakdown dimensions, or 'all'")] = None,
    metric: Annotated[list[str] | None, Query(description="Only these metrics")] = None,
    format: ReportFormat = ReportFormat.json,
) -> Any:
    """Figures for a period through the metric registry, optionally broken down."""
    authorize(who.actor, Permission.REPORTS_READ)
    p = _period(period)
    for key in metric or []:
        if key not in METRICS:
            raise records.Invalid({"metric": f"unknown metric {key!r}"})
    try:
        rep = report_cache.report(db, p, metric or None, by or ())
    except ValueError as exc:
        raise records.Invalid({"by": str(exc)}) from None
    if format is ReportFormat.json:
        return JSONResponse(rep.as_dict())
    authorize(who.actor, Permission.REPORTS_EXPORT)
    audit.record(db, who.user.username, "export", "report", None, {"period": p.label, "format": format.value})
    labels = agency_labels(db)
    name = f"ctis-report-{p.label.replace('..', '_')}"
    if format is ReportFormat.csv:
        out = io.StringIO()
        write_csv(out, LONG_HEADER, [{"period": p.label, **r} for r in long_rows(rep, labels)])
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    buffer = io.BytesIO()
    render_xlsx(rep, labels, buffer)  # type: ignore[arg-type]
    return StreamingResponse(
        io.BytesIO(buffer.getvalue()),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


@router.get("/metrics/{key}/records", tags=["reports"], responses=ERRORS)
def metric_records(
    who: ApiIdentity,
    db: DB,
    key: Annotated[str, Path(max_length=60)],
    period: Annotated[str, Query(max_length=40)],
    dimension: Annotated[str | None, Query(max_length=40)] = None,
    value: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """The records a figure counts (those the caller may see), by external id."""
    authorize(who.actor, Permission.REPORTS_READ)
    if key not in METRICS:
        raise records.NotFound(f"unknown metric {key!r}")
    if dimension is not None and dimension not in DIMENSIONS:
        raise records.Invalid({"dimension": f"unknown dimension {dimension!r}"})
    try:
        unit, rows = drill_down(db, key, _period(period), dimension, value)
    except ValueError as exc:
        raise records.Invalid({"dimension": str(exc)}) from None
    visible = records.visible_ids(db, who.actor, unit, [r.id for r in rows])
    shown = sum(1 for r in rows if r.id in visible)
    audit.record_drill(db, who.user.username, key, period, dimension, value, unit, shown, len(rows))
    return {
        "metric": key,
        "period": period,
        "unit": unit,
        "count": len(rows),
        "records": [r.external_id for r in rows if r.id in visible],
        "hidden": sum(1 for r in rows if r.id not in visible),
    }


def _register(kind: str) -> None:
    schema = SCHEMAS[kind]
    tag = kind
    filters = records.FILTERS[kind]

    @router.get(f"/{kind}", tags=[tag], responses=ERRORS, operation_id=f"list_{kind}")
    def list_kind(
        who: ApiIdentity,
        db: DB,
        q: Annotated[
            str | None, Query(max_length=200, description="External id prefix or name words")
        ] = None,
        date_from: date | None = None,
        date_to: date | None = None,
        agency: Annotated[str | None, Query(max_length=100, description="Agency external id")] = None,
        sort: Annotated[str, Query(max_length=40, description="Column, '-' prefix for descending")] = "-id",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=records.MAX_PER_PAGE)] = 50,
        filter: Annotated[
            list[str] | None, Query(description=f"name=value; names: {', '.join(filters)}", max_length=20)
        ] = None,
    ) -> RecordPage:
        pairs: dict[str, str] = {}
        for item in filter or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise records.Invalid({"filter": f"expected name=value, got {item!r}"})
            pairs[name] = value
        result = records.list_records(
            db,
            who.actor,
            kind,
            records.ListQuery(
                q=q,
                filters=pairs,
                date_from=date_from,
                date_to=date_to,
                agency=agency,
                sort=sort,
                page=page,
                per_page=per_page,
            ),
        )
        return RecordPage(
            items=result.items,
            total=result.total,
            page=result.page,
            per_page=result.per_page,
            pages=result.pages,
        )

    @router.post(f"/{kind}", tags=[tag], status_code=201, responses=ERRORS, operation_id=f"create_{kind}")
    def create_kind(
        who: ApiIdentity,
        db: DB,
        body: Annotated[
            dict[str, Any], Body(description=f"Fields of {schema.__name__}", openapi_examples=None)
        ],
    ) -> dict[str, Any]:
        view, _ = records.save_record(db, who.actor, kind, body)
        return view

    @router.get(f"/{kind}/{{external_id}}", tags=[tag], responses=ERRORS, operation_id=f"get_{kind}")
    def get_kind(
        who: ApiIdentity, db: DB, external_id: Annotated[str, Path(max_length=100)]
    ) -> dict[str, Any]:
        return records.get_record(db, who.actor, kind, external_id)

    conflict = {409: {"model": Problem, "description": "Changed by someone else since you read it"}}

    @router.patch(
        f"/{kind}/{{external_id}}", tags=[tag], operation_id=f"update_{kind}", responses=ERRORS | conflict
    )
    def update_kind(
        who: ApiIdentity,
        db: DB,
        external_id: Annotated[str, Path(max_length=100)],
        body: Annotated[dict[str, Any], Body(description="Fields to change, with the 'version' you read")],
    ) -> dict[str, Any]:
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise records.Invalid({"version": "send the version of the record you edited (an integer)"})
        view, _ = records.save_record(
            db, who.actor, kind, body, external_id=external_id, expected_version=version
        )
        return view

    list_kind.__doc__ = f"List {kind} you may see, with filters, sorting and pagination."
    create_kind.__doc__ = f"Create a record of {kind}; fields as in the import template."
    get_kind.__doc__ = f"One record of {kind}; identifying fields masked unless you may see them."
    update_kind.__doc__ = f"Change a record of {kind}; 409 if it changed since the version you send."


for _kind in SCHEMAS:
    _register(_kind)


@router.get("/tokens", tags=["accounts"], responses=ERRORS)
def list_tokens(who: ApiIdentity, db: DB) -> list[TokenOut]:
    """Your personal API tokens (never their secrets)."""
    from sqlalchemy import select

    authorize(who.actor, Permission.TOKENS_OWN)
    rows = db.scalars(select(ApiToken).where(ApiToken.user_id == who.user.id).order_by(ApiToken.id))
    return [TokenOut.model_validate(t, from_attributes=True) for t in rows]


@router.post("/tokens", tags=["accounts"], status_code=201, responses=ERRORS)
def create_token(who: ApiIdentity, db: DB, body: TokenIn) -> NewToken:
    """A new personal API token; its secret is shown in this answer only (not to a token: 403)."""
    authorize(who.actor, Permission.TOKENS_OWN)
    if who.via_token:  # a stolen token must not outlive its revocation through tokens it made
        raise HTTPException(status_code=403, detail="a token cannot create tokens; sign in to make one")
    try:
        token, secret = accounts.create_token(db, who.user, body.name)
    except accounts.AccountError as exc:
        raise records.Invalid({"name": str(exc)}) from None
    return NewToken(**TokenOut.model_validate(token, from_attributes=True).model_dump(), secret=secret)


@router.delete("/tokens/{token_id}", tags=["accounts"], status_code=204, responses=ERRORS)
def revoke_token(who: ApiIdentity, db: DB, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Response:
    """Revoke one of your tokens; it stops working at once."""
    authorize(who.actor, Permission.TOKENS_OWN)
    if not accounts.revoke_token(db, who.user, token_id):
        raise records.NotFound(f"no active token {token_id}")
    return Response(status_code=204)


def json_safe(value: Any) -> Any:
    """A record view as plain JSON values (dates as ISO strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat(), ensure_ascii=False))
