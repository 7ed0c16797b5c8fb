"""The allegation register on the web: the API under ``/api/v1/allegations``, pages under ``/allegations``.

Routes are thin, as elsewhere: they authenticate (``ApiIdentity`` or the page
identity), call ``ctis.allegations`` (which authorises, scopes, masks and
audits) and shape the answer.  Pages post forms back with the session's CSRF
token; invalid input re-renders the page with a message beside each field and
rolls the unit of work back, so nothing is written.

The evidence sheet (``/allegations/{id}/sheet`` and ``sheet.pdf``) is made from
one template in both forms, so the PDF says exactly what the page says; the
PDF is drawn by WeasyPrint with the Noto Sans Khmer font embedded.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ctis import allegations as service
from ctis import records
from ctis.domain.allegations import EVIDENCE_KINDS, AllegationIn, FigureEvidenceIn, RecordEvidenceIn
from ctis.domain.values import value_set
from ctis.metrics.registry import DIMENSIONS, METRICS
from ctis.security.permissions import Permission, can
from ctis.storage.models import Agency
from ctis.web import i18n
from ctis.web.api import ERRORS, Problem
from ctis.web.deps import DB, ApiIdentity, Identity, NotSignedIn, check_csrf, identify
from ctis.web.pages import KIND_TITLES, PageIdentity, quote, render, templates, value_label

api = APIRouter(prefix="/api/v1/allegations", tags=["allegations"])
pages = APIRouter(include_in_schema=False)

N_ = i18n.N_
FONTS = Path(__file__).resolve().parent / "static" / "vendor" / "fonts"

#: Labels of the allegation's fields, as people read them.
LABELS = {
    "external_id": N_("Reference of the allegation"),
    "source": N_("Source of the allegation"),
    "source_detail": N_("Source detail (outlet, country, channel)"),
    "alleged_on": N_("Date of the allegation"),
    "received_on": N_("Received by the committee on"),
    "text": N_("The allegation, word for word"),
    "place": N_("Place alleged"),
    "province": N_("Province"),
    "people_alleged": N_("People alleged"),
    "facts_alleged": N_("Facts alleged"),
    "finding": N_("Finding on the allegation"),
    "finding_summary": N_("Summary of the finding"),
    "finding_on": N_("Finding made on"),
    "agency": N_("Agency"),
    "entry_on": N_("Date of the entry"),
    "kind": N_("Kind of record"),
    "metric": N_("Figure of the registry"),
    "period": N_("Period"),
    "dimension": N_("Breakdown"),
    "value": N_("Breakdown value"),
    "note": N_("Note on the evidence"),
    "type": N_("Evidence for the finding"),
}
#: Fields of the create and edit forms; the finding has its own form on the allegation's page.
FORM_FIELDS = ("external_id", "source", "source_detail", "alleged_on", "received_on", "text", "place",
               "province", "people_alleged", "facts_alleged", "agency")  # fmt: skip
TEXTAREAS = {"text", "people_alleged", "facts_alleged", "finding_summary"}
DATES = {"alleged_on", "received_on", "finding_on", "entry_on"}
CHOICES = {"source": "allegation_source", "finding": "allegation_finding", "province": "province"}


# -- API models (documentation of the answers) -------------------------------------------------------


class AllegationOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    external_id: str
    source: str
    source_detail: str | None
    alleged_on: date
    received_on: date | None
    text: str
    place: str | None
    province: str | None
    people_alleged: str | None
    facts_alleged: str | None
    finding: str
    finding_summary: str | None
    finding_on: date | None
    agency: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str


class LogEntryOut(BaseModel):
    id: int
    entry_on: date
    author: str
    text: str
    created_at: datetime


class EvidenceOut(BaseModel):
    """A record link (kind, external_id, the record as you may see it) or a figure computed now."""

    model_config = ConfigDict(extra="allow")
    id: int
    type: str
    note: str | None
    created_by: str
    created_at: datetime


class AllegationDetail(AllegationOut):
    log: list[LogEntryOut]
    evidence: list[EvidenceOut]


class AllegationPage(BaseModel):
    items: list[AllegationOut]
    total: int
    page: int
    per_page: int
    pages: int


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}}}


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Changed by someone else since you read it"}
}
EVIDENCE_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [RecordEvidenceIn.model_json_schema(), FigureEvidenceIn.model_json_schema()]
                }
            }
        }
    }
}
Id = Annotated[str, PathParam(max_length=100, description="The allegation's reference (external id)")]


def _version(body: dict[str, Any]) -> int:
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise records.Invalid({"version": "send the version of the allegation you read (an integer)"})
    return version


# -- API ---------------------------------------------------------------------------------------------


@api.get("", responses=ERRORS, operation_id="list_allegations")
def list_allegations(
    who: ApiIdentity,
    db: DB,
    q: Annotated[str | None, Query(max_length=200, description="Reference prefix or words")] = None,
    source: Annotated[str | None, Query(max_length=30)] = None,
    finding: Annotated[str | None, Query(max_length=30)] = None,
    province: Annotated[str | None, Query(max_length=8)] = None,
    agency: Annotated[str | None, Query(max_length=100, description="Agency external id")] = None,
    date_from: date | None = None,
    date_to: date | None = None,
    sort: Annotated[str, Query(max_length=40, description="Column, '-' prefix for descending")] = "-id",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=service.MAX_PER_PAGE)] = 50,
) -> AllegationPage:
    """Allegations you may see (your agency's, or all with an all-agency scope), filtered and paginated."""
    filters = {k: v for k, v in (("source", source), ("finding", finding), ("province", province)) if v}
    query = service.AllegationQuery(q=q, filters=filters, date_from=date_from, date_to=date_to,
                                    agency=agency, sort=sort, page=page, per_page=per_page)  # fmt: skip
    result = service.list_allegations(db, who.actor, query)
    return AllegationPage(
        items=[AllegationOut(**i) for i in result.items],
        total=result.total,
        page=result.page,
        per_page=result.per_page,
        pages=result.pages,
    )


@api.post("", status_code=201, responses=ERRORS, operation_id="create_allegation",
          openapi_extra=_schema(AllegationIn))  # fmt: skip
def create_allegation(
    who: ApiIdentity, db: DB, body: Annotated[dict[str, Any], Body(description="Fields of AllegationIn")]
) -> AllegationOut:
    """Register an allegation; ``source``, ``alleged_on`` and ``text`` are required."""
    view, _ = service.save_allegation(db, who.actor, body)
    return AllegationOut(**view)


@api.get("/{external_id}", responses=ERRORS, operation_id="get_allegation")
def get_allegation(who: ApiIdentity, db: DB, external_id: Id) -> AllegationDetail:
    """One allegation with its log and evidence; linked persons masked as on their own pages."""
    return AllegationDetail(**service.get_allegation(db, who.actor, external_id))


@api.patch("/{external_id}", responses=ERRORS | CONFLICT, operation_id="update_allegation",
           openapi_extra=_schema(AllegationIn))  # fmt: skip
def update_allegation(
    who: ApiIdentity,
    db: DB,
    external_id: Id,
    body: Annotated[dict[str, Any], Body(description="Fields to change, with the 'version' you read")],
) -> AllegationOut:
    """Change some fields; 409 with the current allegation if it changed since the version you send."""
    view, _ = service.save_allegation(db, who.actor, body, external_id, _version(body))
    return AllegationOut(**view)


@api.post("/{external_id}/log", status_code=201, responses=ERRORS, operation_id="add_allegation_log_entry")
def add_log_entry(
    who: ApiIdentity,
    db: DB,
    external_id: Id,
    body: Annotated[dict[str, Any], Body(description="entry_on (default today) and text")],
) -> LogEntryOut:
    """Append a step of the investigation; entries are never changed or removed."""
    return LogEntryOut(**service.add_log_entry(db, who.actor, external_id, body))


@api.put("/{external_id}/finding", responses=ERRORS | CONFLICT, operation_id="set_allegation_finding")
def set_finding(
    who: ApiIdentity,
    db: DB,
    external_id: Id,
    body: Annotated[
        dict[str, Any],
        Body(description="finding, finding_on (required unless open), finding_summary, version"),
    ],
) -> AllegationOut:
    """Record the finding: substantiated, partly substantiated, unsubstantiated, or open again."""
    return AllegationOut(**service.set_finding(db, who.actor, external_id, body, _version(body)))


@api.post("/{external_id}/evidence", status_code=201, responses=ERRORS,
          operation_id="add_allegation_evidence", openapi_extra=EVIDENCE_SCHEMA)  # fmt: skip
def add_evidence(
    who: ApiIdentity,
    db: DB,
    external_id: Id,
    body: Annotated[Any, Body(description="A record (kind, external_id) or a figure (metric, period)")],
) -> EvidenceOut:
    """Link a record you may see, or a figure of the registry (its value is computed when shown)."""
    return EvidenceOut(**service.add_evidence(db, who.actor, external_id, body))


@api.delete("/{external_id}/evidence/{evidence_id}", status_code=204, responses=ERRORS,
            operation_id="remove_allegation_evidence")  # fmt: skip
def remove_evidence(
    who: ApiIdentity, db: DB, external_id: Id, evidence_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]
) -> Response:
    """Remove one evidence link (the removal is audited)."""
    service.remove_evidence(db, who.actor, external_id, evidence_id)
    return Response(status_code=204)


# -- pages -------------------------------------------------------------------------------------------


def label(name: str) -> str:
    return i18n.gettext(i18n.current_lang.get(), LABELS.get(name, name))


def choice_label(name: str, code: Any) -> str:
    if code in (None, ""):
        return "—"
    return value_set(CHOICES[name]).label(str(code), i18n.current_lang.get())


def kind_label(kind: str) -> str:
    return i18n.gettext(i18n.current_lang.get(), KIND_TITLES.get(kind, kind))


def _choices(name: str) -> list[tuple[str, str]]:
    lang = i18n.current_lang.get()
    return [(v.code, v.label(lang)) for v in value_set(CHOICES[name]).values]


def _page(request: Request, name: str, who: Identity, status: int = 200, **context: Any) -> HTMLResponse:
    context.update(
        label=label, choice_label=choice_label, kind_label=kind_label, choices=_choices,
        textareas=TEXTAREAS, dates=DATES, coded=CHOICES,
        can_write=can(who.actor, Permission.ALLEGATIONS_WRITE),
    )  # fmt: skip
    return render(request, name, who, status=status, **context)


class _Rollback(Exception):
    """Undo the unit of work and answer with ``response`` (a page re-rendered with its messages)."""

    def __init__(self, response: Response):
        super().__init__()
        self.response = response


async def _form_work(request: Request, work: Any) -> Response:
    """Read the form, then run ``work(db, who, form)`` in one unit of work after the CSRF check."""
    form = await request.form()

    def job() -> Response:
        try:
            with Session(request.app.state.engine, expire_on_commit=False) as db, db.begin():
                who = identify(request, db)
                if who is None:
                    raise NotSignedIn()
                check_csrf(request, who, str(form.get("csrf_token", "")))
                return work(db, who, form)  # type: ignore[no-any-return]
        except _Rollback as stop:
            return stop.response

    return await run_in_threadpool(job)


def _fields(form: FormData, names: tuple[str, ...] | set[str], creating: bool) -> dict[str, Any]:
    """The posted fields; blank ones are left out when creating, so defaults apply, and clear when editing."""
    out: dict[str, Any] = {}
    for name in names:
        if name in form:
            value = str(form[name])
            if value.strip() or not creating or name == "external_id":
                out[name] = value
    return out


def _version_of(form: FormData) -> int | None:
    try:
        return int(str(form.get("version", "")))
    except ValueError:
        return None


@pages.get("/allegations", response_class=HTMLResponse)
def allegation_list(
    request: Request,
    db: DB,
    who: PageIdentity,
    q: str | None = None,
    source: str | None = None,
    finding: str | None = None,
    province: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    page: int = 1,
) -> HTMLResponse:
    filters = {k: v for k, v in (("source", source), ("finding", finding), ("province", province)) if v}
    query = service.AllegationQuery(
        q=q or None, filters=filters, page=page, per_page=50,
        date_from=records.parse_optional_date(date_from, "date_from"),
        date_to=records.parse_optional_date(date_to, "date_to"),
    )  # fmt: skip
    result = service.list_allegations(db, who.actor, query)
    params = {k: v for k, v in request.query_params.items() if k != "page"}
    base = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return _page(request, "allegation_list.html", who, page=result, selected=filters, q=q or "",
                 date_from=date_from or "", date_to=date_to or "", base=base)  # fmt: skip


def _form_page(
    request: Request, who: Identity, values: dict[str, Any], errors: dict[str, str], creating: bool,
    status: int = 200, conflict: dict[str, Any] | None = None,
) -> HTMLResponse:  # fmt: skip
    return _page(request, "allegation_form.html", who, status=status, fields=FORM_FIELDS, values=values,
                 errors=errors, creating=creating, conflict=conflict)  # fmt: skip


@pages.get("/allegations/new", response_class=HTMLResponse)
def allegation_new(request: Request, who: PageIdentity) -> HTMLResponse:
    from ctis.security.permissions import authorize

    authorize(who.actor, Permission.ALLEGATIONS_WRITE)
    return _form_page(request, who, {"received_on": date.today().isoformat()}, {}, creating=True)


@pages.post("/allegations/new", response_model=None)
async def allegation_create(request: Request) -> Response:
    def work(db: Session, who: Identity, form: FormData) -> Response:
        data = _fields(form, FORM_FIELDS, creating=True)
        try:
            view, _ = service.save_allegation(db, who.actor, data)
        except records.Invalid as exc:
            raise _Rollback(_form_page(request, who, data, exc.errors, True, status=422)) from None
        return RedirectResponse(f"/allegations/{quote(view['external_id'])}", status_code=303)

    return await _form_work(request, work)


def _detail(
    request: Request, db: Session, who: Identity, external_id: str, status: int = 200,
    errors: dict[str, dict[str, str]] | None = None, posted: dict[str, dict[str, Any]] | None = None,
) -> HTMLResponse:  # fmt: skip
    view = service.get_allegation(db, who.actor, external_id)
    metrics = [(m.key, m.label(i18n.current_lang.get())) for m in METRICS.values()]
    return _page(request, "allegation_detail.html", who, status=status, view=view, errors=errors or {},
                 posted=posted or {}, evidence_kinds=EVIDENCE_KINDS, metrics=metrics,
                 dimensions=list(DIMENSIONS), today=date.today().isoformat())  # fmt: skip


@pages.get("/allegations/{external_id}", response_class=HTMLResponse)
def allegation_detail(request: Request, db: DB, who: PageIdentity, external_id: str) -> HTMLResponse:
    return _detail(request, db, who, external_id)


@pages.get("/allegations/{external_id}/edit", response_class=HTMLResponse)
def allegation_edit(request: Request, db: DB, who: PageIdentity, external_id: str) -> HTMLResponse:
    from ctis.security.permissions import authorize

    authorize(who.actor, Permission.ALLEGATIONS_WRITE)
    view = service.get_allegation(db, who.actor, external_id)
    return _form_page(request, who, view, {}, creating=False)


@pages.post("/allegations/{external_id}/edit", response_model=None)
async def allegation_update(request: Request, external_id: str) -> Response:
    def work(db: Session, who: Identity, form: FormData) -> Response:
        data = _fields(form, set(FORM_FIELDS) - {"external_id"}, creating=False)
        version = _version_of(form)
        values = {**data, "external_id": external_id, "version": version}
        try:
            service.save_allegation(db, who.actor, data, external_id, version)
        except records.Invalid as exc:
            raise _Rollback(_form_page(request, who, values, exc.errors, False, status=422)) from None
        except records.Conflict as exc:
            values["version"] = exc.current["version"]
            raise _Rollback(
                _form_page(request, who, values, {}, False, status=409, conflict=exc.current)
            ) from None
        return RedirectResponse(f"/allegations/{quote(external_id)}", status_code=303)

    return await _form_work(request, work)


def _detail_action(request: Request, external_id: str, section: str, action: Any) -> Any:
    """A form of the allegation's page: on invalid input the page comes back with the messages."""

    def work(db: Session, who: Identity, form: FormData) -> Response:
        data = {k: str(v) for k, v in form.items() if k != "csrf_token"}
        try:
            action(db, who, data)
        except records.Invalid as exc:
            page = _detail(request, db, who, external_id, 422, {section: exc.errors}, {section: data})
            raise _Rollback(page) from None
        except records.Conflict:
            message = {"__all__": str(i18n.gettext(i18n.current_lang.get(), CHANGED))}
            page = _detail(request, db, who, external_id, 409, {section: message}, {section: data})
            raise _Rollback(page) from None
        return RedirectResponse(f"/allegations/{quote(external_id)}#{section}", status_code=303)

    return work


CHANGED = N_(
    "Someone else changed this allegation since you opened it. Nothing was saved; check and try again."
)


@pages.post("/allegations/{external_id}/log", response_model=None)
async def allegation_log(request: Request, external_id: str) -> Response:
    def add(db: Session, who: Identity, data: dict[str, Any]) -> None:
        service.add_log_entry(db, who.actor, external_id, {k: data.get(k) for k in ("entry_on", "text")})

    return await _form_work(request, _detail_action(request, external_id, "log", add))


@pages.post("/allegations/{external_id}/finding", response_model=None)
async def allegation_finding(request: Request, external_id: str) -> Response:
    def save(db: Session, who: Identity, data: dict[str, Any]) -> None:
        fields = {k: data.get(k) for k in ("finding", "finding_summary", "finding_on")}
        service.set_finding(db, who.actor, external_id, fields, _version_of(data))  # type: ignore[arg-type]

    return await _form_work(request, _detail_action(request, external_id, "finding", save))


@pages.post("/allegations/{external_id}/evidence", response_model=None)
async def allegation_evidence(request: Request, external_id: str) -> Response:
    def add(db: Session, who: Identity, data: dict[str, Any]) -> None:
        if data.get("type") == "figure":
            names = ("type", "metric", "period", "dimension", "value", "note")
        else:
            names = ("type", "kind", "external_id", "note")
        service.add_evidence(db, who.actor, external_id, {k: data.get(k) or None for k in names})

    section = "evidence"
    return await _form_work(request, _detail_action(request, external_id, section, add))


@pages.post("/allegations/{external_id}/evidence/{evidence_id}/delete", response_model=None)
async def allegation_evidence_delete(request: Request, external_id: str, evidence_id: str) -> Response:
    def remove(db: Session, who: Identity, data: dict[str, Any]) -> None:
        if not evidence_id.isdigit() or not 0 < int(evidence_id) < 2**31:
            raise records.NotFound(f"no evidence {evidence_id}")
        service.remove_evidence(db, who.actor, external_id, int(evidence_id))

    return await _form_work(request, _detail_action(request, external_id, "evidence", remove))


# -- the evidence sheet ------------------------------------------------------------------------------

#: Print styles of the PDF; the fonts are files of this application, embedded in the PDF.
PDF_CSS = """
@font-face { font-family: "Noto Sans Khmer"; font-weight: 400;
  src: url("{khmer400}") format("woff2"); unicode-range: U+1780-17FF, U+19E0-19FF, U+200C-200D, U+25CC; }
@font-face { font-family: "Noto Sans Khmer"; font-weight: 700;
  src: url("{khmer700}") format("woff2"); unicode-range: U+1780-17FF, U+19E0-19FF, U+200C-200D, U+25CC; }
@font-face { font-family: "Noto Sans Khmer"; font-weight: 400; src: url("{latin400}") format("woff2"); }
@font-face { font-family: "Noto Sans Khmer"; font-weight: 700; src: url("{latin700}") format("woff2"); }
@page { size: A4; margin: 18mm 16mm 20mm;
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #555;
    font-family: "Noto Sans Khmer", sans-serif; } }
body { font-family: "Noto Sans Khmer", sans-serif; font-size: 10pt; line-height: 1.5; color: #111; }
h1 { font-size: 16pt; margin: 0 0 4mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; }
blockquote { margin: 0; padding: 2mm 4mm; border-left: 2pt solid #888; background: #f4f4f4; }
table { border-collapse: collapse; width: 100%; } th, td { border: .5pt solid #999; padding: 1.5mm; }
th { text-align: left; background: #eee; } td.num { text-align: right; }
dl.meta { display: block; } dl.meta dt { font-weight: 700; } dl.meta dd { margin: 0 0 2mm; }
.muted { color: #555; font-size: 8.5pt; } .finding { font-weight: 700; }
"""


def _pdf_css() -> str:
    files = {f"{script}{weight}": (FONTS / f"noto-sans-khmer-{script}-{weight}-normal.woff2").as_uri()
             for script in ("khmer", "latin") for weight in (400, 700)}  # fmt: skip
    css = PDF_CSS
    for key, uri in files.items():
        css = css.replace("{" + key + "}", uri)
    return css


def _figure_rows(db: Session, sheet: service.Sheet) -> list[dict[str, Any]]:
    agencies = dict(db.execute(select(Agency.external_id, Agency.name_en)).all())
    out = []
    for f in sheet.figures:
        cell = None
        if f["dimension"]:
            if f["dimension"] == "agency":
                shown = agencies.get(f["value"], f["value"])
            else:
                try:
                    shown = value_label(f["dimension"], f["value"], {})
                except KeyError:  # a breakdown without a value set: its code is its label
                    shown = f["value"]
            cell = (i18n.gettext(i18n.current_lang.get(), _dimension_title(f["dimension"])), shown)
        out.append({**f, "cell": cell})
    return out


def _dimension_title(dimension: str) -> str:
    from ctis.web.pages import FIELD_LABELS

    return FIELD_LABELS.get(dimension, dimension.replace("_", " "))


def _sheet_html(db: Session, who: Identity, external_id: str, lang: str, form: str) -> str:
    if lang not in i18n.SUPPORTED:
        raise records.Invalid({"lang": f"unknown language {lang!r}; use one of {', '.join(i18n.SUPPORTED)}"})
    sheet = service.evidence_sheet(db, who.actor, external_id, form=form)
    with i18n.use_language(lang):
        return templates.get_template("allegation_sheet.html").render(
            sheet=sheet, a=sheet.allegation, figures=_figure_rows(db, sheet), lang=lang, pdf=form == "pdf",
            label=label, choice_label=choice_label, kind_label=kind_label,
            other_lang="en" if lang == "km" else "km",
        )  # fmt: skip


@pages.get("/allegations/{external_id}/sheet", response_class=HTMLResponse)
def allegation_sheet(
    db: DB, who: PageIdentity, external_id: str, lang: Annotated[str | None, Query(max_length=5)] = None
) -> HTMLResponse:
    """The evidence sheet as a page (print it, or download the PDF)."""
    return HTMLResponse(_sheet_html(db, who, external_id, lang or i18n.current_lang.get(), "html"))


@pages.get("/allegations/{external_id}/sheet.pdf", response_model=None)
def allegation_sheet_pdf(
    db: DB, who: PageIdentity, external_id: str, lang: Annotated[str | None, Query(max_length=5)] = None
) -> Response:
    """The same sheet as a printable PDF with the Khmer font embedded."""
    html = _sheet_html(db, who, external_id, lang or i18n.current_lang.get(), "pdf")
    try:
        with warnings.catch_warnings():
            # WeasyPrint announces at import that a future version will need HarfBuzz-Subset; this
            # one subsets with fontTools, and the notice would otherwise repeat on every server start.
            warnings.filterwarnings("ignore", message="HarfBuzz-Subset", category=DeprecationWarning)
            import weasyprint
    except (ImportError, OSError) as exc:  # its system libraries (Pango, HarfBuzz) are missing
        return Response(
            f"PDF output is not available on this server ({type(exc).__name__}); "
            "use the HTML sheet and print it instead.",
            status_code=503,
            media_type="text/plain; charset=utf-8",
        )
    pdf = render_pdf(weasyprint, html)
    name = f"evidence-sheet-{external_id}-{lang or i18n.current_lang.get()}.pdf"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"'})  # fmt: skip


def render_pdf(weasyprint: Any, html: str) -> bytes:
    """PDF bytes of a sheet's HTML; nothing is fetched but the font files of this application."""
    from urllib.parse import unquote

    from weasyprint.text.fonts import FontConfiguration

    class FontsOnly(weasyprint.URLFetcher):  # type: ignore[misc, name-defined]
        def fetch(self, url: str, headers: Any = None) -> Any:
            if not (url.startswith("file://") and Path(unquote(url[7:])).parent == FONTS):
                raise ValueError(f"the evidence sheet fetches nothing but its fonts ({url})")
            return super().fetch(url, headers)

    fetcher = FontsOnly(allowed_protocols=("file",))
    fonts = FontConfiguration()  # @font-face rules of a stylesheet load only through one of these
    css = weasyprint.CSS(string=_pdf_css(), url_fetcher=fetcher, font_config=fonts)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher)
    return document.write_pdf(stylesheets=[css], font_config=fonts)  # type: ignore[no-any-return]


#: The one router the application includes: the API (documented) and the pages (not in the schema).
router = APIRouter()
router.include_router(api)
router.include_router(pages)
