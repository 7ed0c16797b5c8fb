"""Releases in the browser and over the API, and the public transparency page.

Administrators create releases here (``/admin/releases``, ``/api/v1/releases``)
through the same service as ``ctis publish``.  ``/transparency`` is public: it
needs no session and reads nothing but the stored release, which holds only
what the gate let out — so the page cannot show an exact small count even by
mistake.  Hidden figures read "suppressed", whether they were small or hidden
to protect a small one: telling the two apart would point at the small ones.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctis.metrics.registry import DIMENSIONS, METRICS
from ctis.publication import releases
from ctis.publication.gate import TOTAL, ReleaseRefused
from ctis.security.permissions import Permission, authorize
from ctis.storage.models import Agency, Release
from ctis.web import i18n
from ctis.web.api import ERRORS
from ctis.web.deps import DB, ApiIdentity, check_csrf
from ctis.web.pages import PageIdentity, _ordered_codes, _script_json, field_label, render, value_label

router = APIRouter()
#: A release version in a path: a database integer, so a number past its range is a 422, not a 500.
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]

METHODS = (i18n.N_("suppression"), i18n.N_("dp"))
STATUS_WORDS = (i18n.N_("exact"), i18n.N_("suppressed"), i18n.N_("noisy"))


class ReleaseIn(BaseModel):
    metrics: list[str] = Field(min_length=1, max_length=releases.MAX_METRICS)
    periods: list[str] = Field(min_length=1, max_length=releases.MAX_PERIODS)
    breakdowns: list[str] = Field(default_factory=list, max_length=releases.MAX_BREAKDOWNS)
    method: str = Field("suppression", description="suppression or dp")
    threshold: int = Field(10, ge=2, le=1000, description="suppression: smallest count published")
    epsilon: float = Field(1.0, gt=0, le=100, description="dp: the ε this release spends")
    note: str = Field("", max_length=2000)


def _create(db: Session, who: Any, request: releases.ReleaseRequest) -> Release:
    """Create a release or answer 422 with the gate's reason; nothing is written when refused."""
    try:
        return releases.create_release(db, who.actor, request)
    except ReleaseRefused as exc:
        raise HTTPException(status_code=422, detail=f"release refused: {exc.reason}") from None
    except (ValueError, KeyError) as exc:
        raise HTTPException(status_code=422, detail=str(exc).strip("'\"")) from None


def _release_json(db: Session, release: Release) -> dict[str, Any]:
    out = releases.describe(release)
    out["figures"] = [
        {
            "metric": f.metric,
            "period": f.period,
            "dimensions": list(f.dimensions),
            "key": list(f.key),
            "value": f.value,
            "status": f.status,
        }
        for f in releases.public_figures(db, release)
    ]
    return out


# -- API -------------------------------------------------------------------------------------------
@router.get("/api/v1/releases", tags=["releases"], responses=ERRORS)
def api_list(who: ApiIdentity, db: DB) -> dict[str, Any]:
    """Every release, newest first, with the ε ledger."""
    authorize(who.actor, Permission.REPORTS_READ)
    return {
        "releases": [releases.describe(r) for r in releases.list_releases(db)],
        "epsilon_spent": releases.spent_epsilon(db),
        "epsilon_budget": releases.privacy_budget(),
    }


@router.get("/api/v1/releases/{version}", tags=["releases"], responses=ERRORS)
def api_get(who: ApiIdentity, db: DB, version: Version) -> dict[str, Any]:
    """One release with every published figure (hidden ones with a null value)."""
    authorize(who.actor, Permission.REPORTS_READ)
    release = releases.get_release(db, version)
    if release is None:
        raise HTTPException(status_code=404, detail=f"no release {version}")
    return _release_json(db, release)


@router.post("/api/v1/releases", tags=["releases"], responses=ERRORS, status_code=201)
def api_create(who: ApiIdentity, db: DB, body: ReleaseIn) -> dict[str, Any]:
    """Protect and publish a release; 422 with the reason when the gate refuses it."""
    authorize(who.actor, Permission.RELEASES_PUBLISH)
    request = releases.ReleaseRequest(
        body.metrics, body.periods, body.breakdowns, body.method, body.threshold, body.epsilon, body.note
    )
    return _release_json(db, _create(db, who, request))


# -- administrator page ----------------------------------------------------------------------------
def _admin(request: Request, db: Session, who: Any, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("error", None)
    context.setdefault("form", {"metrics": [], "periods": "", "breakdowns": "", "method": "suppression",
                                "threshold": 10, "epsilon": 1.0, "note": ""})  # fmt: skip
    return render(
        request,
        "publication_admin.html",
        who,
        status=status,
        releases=[releases.describe(r) for r in releases.list_releases(db)],
        spent=releases.spent_epsilon(db),
        budget=releases.privacy_budget(),
        metrics=METRICS,
        dimensions=list(DIMENSIONS),
        **context,
    )


@router.get("/admin/releases", response_class=HTMLResponse)
def admin_page(request: Request, db: DB, who: PageIdentity, created: int | None = None) -> HTMLResponse:
    authorize(who.actor, Permission.RELEASES_PUBLISH)
    return _admin(request, db, who, created=created)


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


@router.post("/admin/releases", response_model=None)
def admin_create(
    request: Request,
    db: DB,
    who: PageIdentity,
    metrics: Annotated[list[str] | None, Form(max_length=60)] = None,
    periods: Annotated[str, Form(max_length=500)] = "",
    breakdowns: Annotated[str, Form(max_length=500)] = "",
    method: Annotated[str, Form(max_length=20)] = "suppression",
    threshold: Annotated[str, Form(max_length=10)] = "10",
    epsilon: Annotated[str, Form(max_length=20)] = "1",
    note: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, who, csrf_token)
    authorize(who.actor, Permission.RELEASES_PUBLISH)
    form = {"metrics": metrics or [], "periods": periods, "breakdowns": breakdowns, "method": method,
            "threshold": threshold, "epsilon": epsilon, "note": note}  # fmt: skip
    lang = i18n.current_lang.get()
    try:
        k, eps = int(threshold), float(epsilon)
    except ValueError:
        error = i18n.gettext(lang, i18n.N_("The threshold must be a whole number and ε a number."))
        return _admin(request, db, who, status=422, error=error, form=form)
    asked = releases.ReleaseRequest(metrics or [], _split(periods), _split(breakdowns), method, k, eps, note)
    try:
        release = releases.create_release(db, who.actor, asked)
    except ReleaseRefused as exc:
        return _admin(request, db, who, status=422, error=exc.reason, form=form)
    except (ValueError, KeyError) as exc:
        return _admin(request, db, who, status=422, error=str(exc).strip("'\""), form=form)
    return RedirectResponse(f"/admin/releases?created={release.version}", status_code=303)


# -- the public page -------------------------------------------------------------------------------
def transparency_view(db: Session, release: Release, lang: str) -> dict[str, Any]:
    """Headline figures, trends and breakdown tables of a release, labelled in ``lang``."""
    agencies = {str(i): n for i, n in db.execute(select(Agency.id, Agency.name_en)).all()}
    figures = releases.public_figures(db, release)
    by_metric: dict[str, list[releases.PublicFigure]] = defaultdict(list)
    for f in figures:
        by_metric[f.metric].append(f)
    out = []
    for key, figs in by_metric.items():
        metric = METRICS.get(key)
        # longest-running last: of Q1 and H1 the headline is H1, the later-ending
        periods = sorted({(f.period_end, f.period_start, f.period) for f in figs})
        totals: dict[str, int | None] = {}
        for f in figs:
            if f.is_total:
                totals[f.period] = f.value
        tables = []
        seen = set()
        for f in figs:
            if not f.dimensions or (f.period, f.dimensions) in seen:
                continue
            seen.add((f.period, f.dimensions))
            same = (f.period, f.dimensions)
            cells = [g for g in figs if (g.period, g.dimensions) == same]
            tables.append(_table(f.period, f.dimensions, cells, agencies))
        out.append(
            {
                "key": key,
                "label": metric.label(lang) if metric else key,
                "definition": metric.definition if metric else "",
                "periods": [label for _end, _start, label in periods],
                "totals": totals,
                "latest": totals.get(periods[-1][2]) if periods else None,
                "latest_period": periods[-1][2] if periods else "",
                "tables": tables,
            }
        )
    return {"metrics": out}


def _table(
    period: str, dims: tuple[str, ...], cells: list[releases.PublicFigure], agencies: dict[str, str]
) -> dict[str, Any]:
    def label(dim: str, code: str) -> str:
        if code == TOTAL:
            return i18n.gettext(i18n.current_lang.get(), i18n.N_("All"))
        try:
            return value_label(dim, code, agencies)
        except KeyError:
            return code

    values = {c.key: c for c in cells}

    def nonzero(key: tuple[str, ...]) -> bool:
        cell = values.get(key)
        return cell is not None and cell.value != 0

    if len(dims) == 1:  # values that are zero say nothing: left out
        codes = [*_ordered_codes(dims[0], [k[0] for k in values if nonzero(k) and k[0] != TOTAL]), TOTAL]
        rows = [{"label": label(dims[0], c), "cells": [values.get((c,))]} for c in codes]
        return {"period": period, "dims": [field_label(d) for d in dims], "columns": [], "rows": rows}
    rows_codes = [*_ordered_codes(dims[0], {k[0] for k in values if k[0] != TOTAL}), TOTAL]
    col_codes = [*_ordered_codes(dims[1], {k[1] for k in values if k[1] != TOTAL}), TOTAL]
    rows_codes = [r for r in rows_codes if any(nonzero((r, c)) for c in col_codes)]
    col_codes = [c for c in col_codes if any(nonzero((r, c)) for r in rows_codes)]
    rows = [
        {"label": label(dims[0], r), "cells": [values.get((r, c)) for c in col_codes]} for r in rows_codes
    ]
    return {
        "period": period,
        "dims": [field_label(d) for d in dims],
        "columns": [label(dims[1], c) for c in col_codes],
        "rows": rows,
    }


@router.get("/transparency", response_class=HTMLResponse)
def transparency(request: Request, db: DB) -> HTMLResponse:
    """The latest public release: no sign-in, nothing but what the gate published."""
    lang = i18n.current_lang.get()
    release = releases.latest_release(db)
    view = transparency_view(db, release, lang) if release else {"metrics": []}
    chart = {
        "labels": {"total": i18n.gettext(lang, i18n.N_("Total"))},
        "trends": [
            {"id": f"trend-{m['key']}", "label": m["label"], "periods": m["periods"],
             "values": [m["totals"].get(p) for p in m["periods"]]}
            for m in view["metrics"]
            if len(m["periods"]) > 1
        ],
    }  # fmt: skip
    params = releases.describe(release)["parameters"] if release else {}
    return render(
        request,
        "transparency.html",
        None,
        release=release,
        params=params,
        view=view,
        chart_json=_script_json(chart),
    )


def _csv(db: Session, release: Release | None) -> Response:
    if release is None:
        raise HTTPException(status_code=404, detail="no release has been published yet")
    return Response(
        releases.release_csv(db, release),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ctis-release-{release.version}.csv"'},
    )


@router.get("/transparency/release.csv")
def latest_csv(db: DB) -> Response:
    """The latest release as CSV."""
    return _csv(db, releases.latest_release(db))


@router.get("/transparency/releases/{version}.csv")
def version_csv(db: DB, version: Version) -> Response:
    """Any transparency release as CSV, by its version number (exports are not the page's to give)."""
    return _csv(db, releases.get_release(db, version, releases.TRANSPARENCY))
