"""Claim checking in the browser and over the API: paste a text, see each figure it claims checked.

The same ``ctis.claims.check_text`` as ``ctis claims check``, so a spokesperson
and a script get the same verdicts; every actual value comes from the metric
registry, and each checked claim links to the records behind the figure.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from ctis.claims import check_text
from ctis.claims.check import ClaimResult
from ctis.security.permissions import Permission, authorize
from ctis.web import i18n
from ctis.web.api import ERRORS
from ctis.web.deps import DB, ApiIdentity, check_csrf
from ctis.web.pages import PageIdentity, render

router = APIRouter()

#: Verdict names as the page shows them (the template translates the code).
VERDICTS = (i18n.N_("supported"), i18n.N_("contradicted"), i18n.N_("unverifiable"))

#: Longest text accepted: a long press release, not a book (the CLI reads files of any size).
MAX_TEXT = 50_000


class ClaimsIn(BaseModel):
    text: str = Field(max_length=MAX_TEXT, description="English prose with the figures to check")
    as_of: date | None = Field(
        None, description="Date that relative periods ('last year') are read against; default: the text's"
    )


def drill_link(result: ClaimResult) -> str | None:
    """The drill-down page of the figure a claim was checked against, when it is one registry cell."""
    drill = result.drill
    if drill is None:
        return None
    query: dict[str, str] = {"metric": drill["metric"], "period": drill["period"]}
    values = drill.get("values") or []
    if drill.get("dimension") and len(values) == 1:
        query.update(dimension=drill["dimension"], value=values[0])
    return "/drill?" + urlencode(query)


def marked(text: str, results: list[ClaimResult]) -> list[dict[str, Any]]:
    """The text cut into plain pieces and claim phrases, so the page can highlight each claim."""
    pieces: list[dict[str, Any]] = []
    at = 0
    for number, result in sorted(enumerate(results, 1), key=lambda nr: nr[1].span):
        start, end = result.span
        if end <= start or start < at or end > len(text):
            continue  # no usable span, or overlapping an earlier claim: listed, not highlighted
        if start > at:
            pieces.append({"text": text[at:start]})
        pieces.append({"text": text[start:end], "claim": number, "verdict": result.verdict})
        at = end
    if at < len(text):
        pieces.append({"text": text[at:]})
    return pieces


@router.post("/api/v1/claims/check", tags=["claims"], responses=ERRORS)
def api_check(who: ApiIdentity, db: DB, body: ClaimsIn) -> dict[str, Any]:
    """Find the statistical claims in a text and check each against the records."""
    authorize(who.actor, Permission.REPORTS_READ)
    results = check_text(db, body.text, body.as_of)
    return {
        "claims": [{**r.as_dict(), "records": drill_link(r)} for r in results],
        "message": None if results else "no statistical claims found in the text",
    }


@router.get("/claims", response_class=HTMLResponse)
def claims_form(request: Request, who: PageIdentity) -> HTMLResponse:
    authorize(who.actor, Permission.REPORTS_READ)
    return render(request, "claims.html", who, text="", as_of="", results=None, error=None)


@router.post("/claims", response_class=HTMLResponse)
def claims_check(
    request: Request,
    db: DB,
    who: PageIdentity,
    text: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    as_of: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> HTMLResponse:
    check_csrf(request, who, csrf_token)
    authorize(who.actor, Permission.REPORTS_READ)
    day: date | None = None
    if as_of.strip():
        try:
            day = date.fromisoformat(as_of.strip())
        except ValueError:
            error = i18n.gettext(i18n.current_lang.get(), i18n.N_("Not a date; write it as YYYY-MM-DD."))
            return render(
                request, "claims.html", who, status=422, text=text, as_of=as_of, results=None, error=error
            )
    results = check_text(db, text, day)
    return render(
        request,
        "claims.html",
        who,
        text=text,
        as_of=as_of,
        results=[(r, drill_link(r)) for r in results],
        pieces=marked(text, results),
        error=None,
    )
