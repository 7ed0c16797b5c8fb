"""Server-rendered pages (Jinja2 + HTMX), in Khmer and English.

Pages call the same services as the API.  Every figure shown comes from
``compute_report`` and links to ``/drill``, which lists the records behind it.
Forms post back to themselves; invalid input re-renders the form with the
message beside each field and everything the user typed kept.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote as _quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ctis import accounts, records
from ctis.domain.ages import AGE_BANDS, UNKNOWN_BAND
from ctis.domain.periods import Period, months, report_period
from ctis.domain.records import IDENTIFYING_FIELDS, SCHEMAS
from ctis.domain.values import country_label, value_set
from ctis.metrics import METRICS, drill_down
from ctis.metrics.registry import DIMENSIONS, FREE_DIMENSIONS
from ctis.metrics.report import VersionedCache, data_token, report_cache
from ctis.security import audit, probing
from ctis.security.permissions import READ, WRITE, Permission, authorize, can
from ctis.storage.models import (
    MODELS,
    Agency,
    ApiToken,
    Operation,
    Victim,
    case_operations,
    victim_operations,
)
from ctis.storage.repository import PERSON_KINDS
from ctis.web import i18n
from ctis.web.deps import (
    DB,
    LANG_COOKIE,
    SESSION_COOKIE,
    Identity,
    NotSignedIn,
    check_csrf,
    check_pre_session_csrf,
    client_address,
    identify,
    pre_session_token,
    set_pre_session_cookie,
)
from ctis.web.forms import CHOICES, STATUS, form_fields

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(__import__("pathlib").Path(__file__).parent / "templates"))
i18n.install_jinja(templates.env)

KIND_TITLES = {
    "operations": i18n.N_("Operations"),
    "cases": i18n.N_("Cases"),
    "suspects": i18n.N_("Suspects"),
    "prosecutions": i18n.N_("Prosecutions"),
    "victims": i18n.N_("Victims"),
    "assistance": i18n.N_("Assistance"),
    "referrals": i18n.N_("Referrals"),
    "agencies": i18n.N_("Agencies"),
}
#: Labels of record fields (and of the report dimensions) as people read them.
FIELD_LABELS = {
    "external_id": i18n.N_("External id"),
    "name_latin": i18n.N_("Name (Latin script)"),
    "name_khmer": i18n.N_("Name (Khmer script)"),
    "name_en": i18n.N_("Name (English)"),
    "name_km": i18n.N_("Name (Khmer)"),
    "sex": i18n.N_("Sex"),
    "date_of_birth": i18n.N_("Date of birth"),
    "age": i18n.N_("Age"),
    "age_at_rescue": i18n.N_("Age at rescue"),
    "age_at_arrest": i18n.N_("Age at arrest"),
    "age_band": i18n.N_("Age band"),
    "age_group": i18n.N_("Adult or child"),
    "exploitation_form": i18n.N_("Form of trafficking"),
    "victim_status": i18n.N_("Victim status"),
    "nationality": i18n.N_("Nationality"),
    "province": i18n.N_("Province"),
    "case": i18n.N_("Case"),
    "agency": i18n.N_("Agency"),
    "phone": i18n.N_("Phone"),
    "address": i18n.N_("Address"),
    "rescue_date": i18n.N_("Rescue date"),
    "status": i18n.N_("Status"),
    "country_of_exploitation": i18n.N_("Country of exploitation"),
    "exploitation_type": i18n.N_("Exploitation type"),
    "labour_sector": i18n.N_("Labour sector"),
    "means_of_control": i18n.N_("Means of control"),
    "recruiter_relation": i18n.N_("Recruiter's relation to the victim"),
    "operations": i18n.N_("Operations"),
    "arrest_date": i18n.N_("Arrest date"),
    "charges": i18n.N_("Charges"),
    "operation_date": i18n.N_("Operation date"),
    "lead_agency": i18n.N_("Lead agency"),
    "operation_kind": i18n.N_("Kind of operation"),
    "description": i18n.N_("Description"),
    "offence_type": i18n.N_("Offence type"),
    "legal_article": i18n.N_("Legal article"),
    "opened_on": i18n.N_("Opened on"),
    "agency_kind": i18n.N_("Kind of agency"),
    "suspect": i18n.N_("Suspect"),
    "charged_on": i18n.N_("Charged on"),
    "outcome": i18n.N_("Outcome"),
    "verdict_on": i18n.N_("Verdict on"),
    "sentence_months": i18n.N_("Sentence (months)"),
    "suspended": i18n.N_("Suspended sentence"),
    "fine_khr": i18n.N_("Fine (KHR)"),
    "victim": i18n.N_("Victim"),
    "assistance_type": i18n.N_("Assistance type"),
    "start_date": i18n.N_("Start date"),
    "end_date": i18n.N_("End date"),
    "notes": i18n.N_("Notes"),
    "to_agency": i18n.N_("Referred to agency"),
    "referred_on": i18n.N_("Referred on"),
    "service": i18n.N_("Service"),
    "consent": i18n.N_("Consent"),
    "consent_date": i18n.N_("Consent date"),
}
ROLE_LABELS = {
    "administrator": i18n.N_("Administrator"),
    "data_officer": i18n.N_("Data officer"),
    "investigator": i18n.N_("Investigator"),
    "social_worker": i18n.N_("Social worker"),
    "analyst": i18n.N_("Analyst"),
    "viewer": i18n.N_("Viewer"),
}
DASHBOARD_CHARTS = [
    ("sex", "victims_rescued", i18n.N_("Victims by sex")),
    ("age_band", "victims_rescued", i18n.N_("Victims by age band")),
    ("exploitation_type", "victims_rescued", i18n.N_("Victims by exploitation type")),
    ("nationality", "victims_rescued", i18n.N_("Victims by nationality")),
    ("province", "victims_rescued", i18n.N_("Victims by province")),
]


def quote(value: str) -> str:
    return _quote(value, safe="")


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


def page_identity(request: Request, db: DB) -> Identity:
    who = identify(request, db)
    if who is None:
        raise NotSignedIn()
    return who


PageIdentity = Annotated[Identity, Depends(page_identity)]


def value_label(dimension: str, code: str | None, agencies: dict[str, str]) -> str:
    lang = i18n.current_lang.get()
    if code is None or code == "unknown":
        return i18n.gettext(lang, i18n.N_("Unknown"))
    if dimension == "agency":
        return agencies.get(str(code), str(code))
    if dimension == "nationality":
        return country_label(code, lang)
    if dimension == "age_band":
        return code
    if dimension in FREE_DIMENSIONS:  # screened posts' language, status, network: codes as they are
        return i18n.gettext(lang, code) if dimension == "post_status" else code
    return value_set(dimension).label(code, lang)


def field_label(name: str) -> str:
    """A record field or report dimension as people read it, in the page's language."""
    return i18n.gettext(i18n.current_lang.get(), FIELD_LABELS.get(name, name))


def role_label(role: str) -> str:
    return i18n.gettext(i18n.current_lang.get(), ROLE_LABELS.get(role, role))


def code_label(kind: str, field: str, value: Any) -> Any:
    """The label of a coded value (``female`` -> "Female"); other values unchanged."""
    set_name = CHOICES.get(field) or (STATUS.get(kind) if field == "status" else None)
    if set_name is None or value is None:
        return value
    vs = value_set(set_name)
    lang = i18n.current_lang.get()
    if isinstance(value, list):
        return [vs.label(v, lang) for v in value]
    return vs.label(str(value), lang)


def render(
    request: Request, name: str, who: Identity | None, status: int = 200, **context: Any
) -> HTMLResponse:
    lang = i18n.current_lang.get()
    pre_csrf, fresh = pre_session_token(request)  # for the sign-in and language forms
    context.update(
        pre_csrf=pre_csrf,
        khmer_digits=i18n.khmer_digits.get(),
        field_label=field_label,
        role_label=role_label,
        code_label=code_label,
        who=who,
        lang=lang,
        csrf=who.csrf_token if who else "",
        kinds=KIND_TITLES,
        can=(lambda p: who is not None and can(who.actor, Permission(p))),
        can_read=(lambda k: who is not None and can(who.actor, READ[k])),
        path=request.url.path,
        query=str(request.url.query),
    )
    response = templates.TemplateResponse(request, name, context, status_code=status)
    if fresh:
        set_pre_session_cookie(request, response, pre_csrf)
    return response


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    return render(request, "error.html", None, status=status, status_code=status, detail=detail)


# -- signing in and out -------------------------------------------------------
@router.get("/", response_model=None)
def home(request: Request, db: DB) -> Response:
    return RedirectResponse("/dashboard" if identify(request, db) else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", None, next=_safe_next(next), error=None)


def _client(request: Request) -> str:
    return client_address(request)


@router.post("/login", response_model=None)
def login(
    request: Request,
    db: DB,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    # A forged sign-in (login CSRF) would put the victim in the attacker's account; refused
    # before it counts against anyone's limits.
    check_pre_session_csrf(request, csrf_token)
    limiter = request.app.state.limiter
    keys = {"account": username.casefold(), "address": _client(request), "global": "all"}
    # The attempt is counted before the password is checked, in the same step as the limit
    # check: parallel guesses cannot all pass while the first ones are being verified.
    reservation = limiter.reserve(keys)
    if not reservation.granted:
        response = render(
            request,
            "login.html",
            None,
            status=429,
            next=_safe_next(next),
            error=i18n.N_("Too many attempts. Try again later."),
            username=username,
        )
        response.headers["Retry-After"] = str(reservation.wait)
        return response
    try:
        user = accounts.authenticate(db, username, password, _client(request))
    except BaseException:
        limiter.release(reservation)  # no answer about the password left the server
        raise
    if user is None:  # the reservation stays, as the failure
        # The same answer for an unknown account and a wrong password.
        return render(
            request,
            "login.html",
            None,
            status=401,
            next=_safe_next(next),
            error=i18n.N_("Wrong username or password."),
            username=username,
        )
    limiter.release(reservation)
    limiter.reset("account", username.casefold())
    accounts.end_session(db, request.cookies.get(SESSION_COOKIE))  # a new id at every sign-in
    secret, _csrf = accounts.start_session(db, user, _client(request))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    response.set_cookie(LANG_COOKIE, user.language, samesite="lax", secure=request.app.state.secure_cookies)
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, db: DB, who: PageIdentity, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, who, csrf_token)
    accounts.end_session(db, request.cookies.get(SESSION_COOKIE))
    audit.record(db, who.user.username, "sign_out", "users", who.user.id, {"address": _client(request)})
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang", response_model=None)
def switch_language(
    request: Request,
    db: DB,
    lang: Annotated[str, Form(max_length=5)],
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
    digits: Annotated[str, Form(max_length=5)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Remember the language in a cookie and, when signed in, in the account (CSRF-checked: it writes)."""
    if lang not in i18n.SUPPORTED:
        lang = i18n.DEFAULT_LANG
    who = identify(request, db)
    check_pre_session_csrf(request, csrf_token, who)
    if who is not None:
        who.user.language = lang
    response = RedirectResponse(_safe_next(next), status_code=303)
    secure = request.app.state.secure_cookies
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure)
    if digits in {"km", "latin"}:  # only the numerals button changes them; a language switch keeps them
        response.set_cookie("ctis_digits", digits, max_age=365 * 86400, samesite="lax", secure=secure)
    return response


# -- dashboard, drill-down and reports ----------------------------------------
def _data_years(db: Session) -> list[int]:
    first, last = db.execute(select(func.min(Victim.rescue_date), func.max(Victim.rescue_date))).one()
    if first is None:
        year = date.today().year
        return [year]
    return list(range(first.year, last.year + 1))


def period_choices(db: Session) -> list[tuple[str, list[str]]]:
    years = _data_years(db)
    return [
        (i18n.N_("Half-year"), [f"{y}-H{h}" for y in reversed(years) for h in (2, 1)]),
        (i18n.N_("Year"), [str(y) for y in reversed(years)]),
        (i18n.N_("US TIP year"), [f"TIP{y + 1}" for y in reversed(years)]),
        (i18n.N_("Quarter"), [f"{y}-Q{q}" for y in reversed(years) for q in (4, 3, 2, 1)]),
        (i18n.N_("Month"), [f"{y}-{m:02d}" for y in reversed(years) for m in range(12, 0, -1)]),
    ]


def _default_period(db: Session) -> str:
    last = db.scalar(select(func.max(Victim.rescue_date)))
    day = last or date.today()
    return f"{day.year}-H{1 if day.month <= 6 else 2}"


_BAND_ORDER = [label for _low, _high, label in AGE_BANDS] + [UNKNOWN_BAND]


def _ordered_codes(dimension: str, codes: Any) -> list[str]:
    """Codes of a breakdown in reading order: age bands youngest first, others sorted, unknown last."""
    if dimension == "age_band":
        return sorted(codes, key=lambda c: _BAND_ORDER.index(c) if c in _BAND_ORDER else len(_BAND_ORDER))
    return sorted(codes, key=lambda c: (c is None or c == UNKNOWN_BAND, str(c)))


def _script_json(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: no label can close the element."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _period_or_error(value: str) -> Period:
    try:
        return report_period(value)
    except ValueError as exc:
        raise records.Invalid({"period": str(exc)}) from None


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, db: DB, who: PageIdentity, period: str | None = None) -> HTMLResponse:
    authorize(who.actor, Permission.REPORTS_READ)
    token = data_token(db)
    lang = i18n.current_lang.get()
    key = (str(db.get_bind().url), token, period, lang, i18n.khmer_digits.get())
    cached = _dashboard_panels.get(key) if token is not None else None
    if cached is None:
        p = _period_or_error(period or _default_period(db))
        # Rendered by the autoescaping page environment, so already safe HTML.
        cached = (p, Markup(_dashboard_panel(db, p, token, lang)))  # noqa: S704
        if token is not None:
            _dashboard_panels.put(key, cached)
    p, panel = cached
    return render(request, "dashboard.html", who, period=p, panel=panel)


#: Rendered dashboard panels by (database, data version, period asked, language, digits).
#: The panel is the same for everyone who may read reports (all figures, all agencies;
#: drill-downs filter by scope), so one rendering serves every user until the records change.
_dashboard_panels = VersionedCache(size=128)


def _dashboard_panel(db: Session, p: Period, token: str | None, lang: str) -> str:
    rep = report_cache.report(db, p, None, [d for d, _m, _t in DASHBOARD_CHARTS], token=token)
    agencies = {str(i): n for i, n in db.execute(select(Agency.id, Agency.name_en)).all()}
    trend = []
    for month in months(p):
        m = report_cache.report(db, month, ["cases_cracked_down", "victims_rescued"], token=token).metrics
        trend.append(
            {"label": month.label, "cases": m["cases_cracked_down"], "victims": m["victims_rescued"]}
        )
    charts = []
    for dim, key, title in DASHBOARD_CHARTS:
        counts = rep.by.get(dim, {}).get(key, {})
        if dim == "age_band":  # youngest first, as the bands go
            ordered = [(c, counts[c]) for c in _ordered_codes(dim, counts)]
        else:
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        charts.append(
            {
                "id": f"chart-{dim}",
                "title": i18n.gettext(lang, title),
                "dimension": dim,
                "metric": key,
                "rows": [{"code": c, "label": value_label(dim, c, agencies), "count": n} for c, n in ordered],
            }
        )
    chart_data = {
        "trend": trend,
        "charts": charts,
        "period": p.label,
        "labels": {
            "cases": i18n.gettext(lang, i18n.N_("Cases cracked down")),
            "victims": i18n.gettext(lang, i18n.N_("Victims rescued")),
        },
    }
    return templates.env.get_template("_dashboard_panel.html").render(
        period=p,
        report=rep,
        metrics=METRICS,
        charts=charts,
        trend=trend,
        chart_json=_script_json(chart_data),
        choices=period_choices(db),
        lang=lang,
        path="/dashboard",
        field_label=field_label,
    )


@router.get("/drill", response_class=HTMLResponse)
def drill(
    request: Request,
    db: DB,
    who: PageIdentity,
    metric: str,
    period: str,
    dimension: str | None = None,
    value: str | None = None,
) -> HTMLResponse:
    authorize(who.actor, Permission.REPORTS_READ)
    if metric not in METRICS:
        raise records.NotFound(f"unknown metric {metric!r}")
    if dimension is not None and dimension not in DIMENSIONS:
        raise records.Invalid({"dimension": f"unknown dimension {dimension!r}"})
    p = _period_or_error(period)
    try:
        unit, rows = drill_down(db, metric, p, dimension, value)
    except ValueError as exc:
        raise records.Invalid({"dimension": str(exc)}) from None
    visible = records.visible_ids(db, who.actor, unit, [r.id for r in rows])
    shown = [r for r in rows if r.id in visible]
    audit.record_drill(db, who.user.username, metric, p.label, dimension, value, unit, len(shown), len(rows))
    agencies = {str(i): n for i, n in db.execute(select(Agency.id, Agency.name_en)).all()}
    return render(
        request,
        "drill.html",
        who,
        metric=METRICS[metric],
        period=p,
        unit=unit,
        rows=shown,
        total=len(rows),
        hidden=len(rows) - len(shown),
        dimension=dimension,
        value=value,
        value_text=value_label(dimension, value, agencies) if dimension else None,
    )


@router.get("/reports", response_class=HTMLResponse)
def reports(
    request: Request, db: DB, who: PageIdentity, period: str | None = None, by: str | None = None
) -> HTMLResponse:
    authorize(who.actor, Permission.REPORTS_READ)
    p = _period_or_error(period or _default_period(db))
    dims = [by] if by else []
    try:
        rep = report_cache.report(db, p, None, dims)
    except ValueError as exc:
        raise records.Invalid({"by": str(exc)}) from None
    agencies = {str(i): n for i, n in db.execute(select(Agency.id, Agency.name_en)).all()}
    breakdown = None
    if by:
        per_metric = rep.by.get(by, {})
        codes = _ordered_codes(by, {c for counts in per_metric.values() for c in counts})
        breakdown = {
            "codes": codes,
            "labels": [value_label(by, c, agencies) for c in codes],
            "rows": per_metric,
        }
    query = f"period={quote(p.label)}" + (f"&by={quote(by)}" if by else "")
    return render(
        request,
        "reports.html",
        who,
        period=p,
        report=rep,
        metrics=METRICS,
        by=by,
        dimensions=list(DIMENSIONS),
        breakdown=breakdown,
        choices=period_choices(db),
        download=query,
    )


# -- records -------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in SCHEMAS:
        raise records.NotFound(f"unknown kind {kind!r}")


LIST_COLUMNS = {
    "agencies": ["name_en", "agency_kind"],
    "operations": ["operation_date", "operation_kind", "province", "lead_agency"],
    "cases": ["offence_type", "status", "opened_on", "operations"],
    "suspects": ["name_latin", "name_khmer", "sex", "nationality", "arrest_date", "case"],
    "victims": [
        "name_latin",
        "name_khmer",
        "sex",
        "age_at_rescue",
        "nationality",
        "rescue_date",
        "exploitation_type",
    ],
    "prosecutions": ["suspect", "charged_on", "outcome", "verdict_on", "sentence_months"],
    "assistance": ["victim", "assistance_type", "start_date", "agency"],
    "referrals": ["victim", "to_agency", "referred_on", "consent"],
}


@router.get("/records/{kind}", response_class=HTMLResponse)
def record_list(
    request: Request,
    db: DB,
    who: PageIdentity,
    kind: str,
    q: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    page: int = 1,
    sort: str = "-id",
) -> HTMLResponse:
    _check_kind(kind)
    filters = {k: v for k, v in request.query_params.items() if k in records.FILTERS[kind] and v}
    query = records.ListQuery(
        q=q or None,
        filters=filters,
        sort=sort,
        page=page,
        per_page=50,
        date_from=records.parse_optional_date(date_from, "date_from"),
        date_to=records.parse_optional_date(date_to, "date_to"),
    )
    result = records.list_records(db, who.actor, kind, query)
    filter_choices = []
    for name in records.FILTERS[kind]:
        set_name = (
            STATUS.get(kind)
            if name == "status"
            else {"outcome": "prosecution_outcome", "service": "assistance_type"}.get(name, name)
        )
        if name == "nationality":
            filter_choices.append((name, None))
        else:
            vs = value_set(set_name)
            filter_choices.append((name, [(v.code, v.label(i18n.current_lang.get())) for v in vs.values]))
    params = {k: v for k, v in request.query_params.items() if k != "page"}
    base = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    # htmx asks for the rows only; a history restore (back button) needs the whole page.
    partial = request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request")
    template = "_rows.html" if partial else "records_list.html"
    return render(
        request,
        template,
        who,
        kind=kind,
        page=result,
        columns=LIST_COLUMNS[kind],
        filters=filter_choices,
        selected=filters,
        q=q or "",
        date_from=date_from or "",
        date_to=date_to or "",
        base=base,
        person=kind in PERSON_KINDS,
        can_write=can(who.actor, WRITE[kind]),
    )


def _related(
    db: Session, who: Identity, kind: str, view: dict[str, Any]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Records linked to this one, as (kind, items) the actor may see."""
    ext = view["external_id"]
    links: list[tuple[str, str, str]] = []  # (kind, column, value)
    if kind == "cases":
        links = [("suspects", "case", ext), ("victims", "case", ext), ("prosecutions", "case", ext)]
    elif kind == "suspects":
        links = [("prosecutions", "suspect", ext)]
    elif kind == "victims":
        links = [("assistance", "victim", ext), ("referrals", "victim", ext)]
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for rel_kind, column, value in links:
        if not can(who.actor, READ[rel_kind]):
            continue
        model: Any = MODELS[rel_kind]
        parent: Any = MODELS[kind]
        parent_id = db.scalar(select(parent.id).where(parent.external_id == value))
        q = select(model).where(getattr(model, f"{column}_id") == parent_id).order_by(model.id).limit(200)
        clause = records.scope_clause(who.actor, rel_kind)
        if clause is not None:
            q = q.where(clause)
        rows = list(db.scalars(q))
        items = records._view(records.Repository(db, actor=who.user.username), who.actor, rel_kind, rows)
        out.append((rel_kind, items))
    if kind == "operations":
        op_id = db.scalar(select(Operation.id).where(Operation.external_id == ext))
        for rel_kind, link, id_col in (
            ("cases", case_operations, case_operations.c.case_id),
            ("victims", victim_operations, victim_operations.c.victim_id),
        ):
            if not can(who.actor, READ[rel_kind]):
                continue
            model = MODELS[rel_kind]
            q = select(model).where(model.id.in_(select(id_col).where(link.c.operation_id == op_id)))  # type: ignore[attr-defined]
            clause = records.scope_clause(who.actor, rel_kind)
            if clause is not None:
                q = q.where(clause)
            rows = list(db.scalars(q.limit(200)))
            out.append((rel_kind, records._view(records.Repository(db), who.actor, rel_kind, rows)))
    return out


@router.get("/records/{kind}/new", response_class=HTMLResponse)
def record_new(request: Request, who: PageIdentity, kind: str) -> HTMLResponse:
    _check_kind(kind)
    authorize(who.actor, WRITE[kind])
    return _form(request, who, kind, values=_defaults(kind), errors={}, creating=True)


def _defaults(kind: str) -> dict[str, Any]:
    """What a new record holds unless the user says otherwise, so the form shows it (status: confirmed)."""
    out: dict[str, Any] = {}
    for name, info in SCHEMAS[kind].model_fields.items():
        if not info.is_required() and isinstance(info.default, str | int | bool) and info.default != "":
            out[name] = info.default
    return out


def _form(
    request: Request,
    who: Identity,
    kind: str,
    values: dict[str, Any],
    errors: dict[str, str],
    creating: bool,
    status: int = 200,
    conflict: dict[str, Any] | None = None,
) -> HTMLResponse:
    from ctis.security.permissions import may_identify

    fields = form_fields(kind)
    hidden = set(IDENTIFYING_FIELDS) if kind in PERSON_KINDS and not may_identify(who.actor, kind) else set()
    fields = [f for f in fields if f.name not in hidden]
    return render(
        request,
        "record_form.html",
        who,
        status=status,
        kind=kind,
        fields=fields,
        values=values,
        errors=errors,
        creating=creating,
        conflict=conflict,
    )


def _form_data(kind: str, form: FormData, creating: bool) -> dict[str, Any]:
    """The record fields of a posted form.

    When creating, a field left blank is not sent at all, so the schema's default
    applies (a status of "confirmed") instead of an error; the external id stays
    required, so that an empty form saved by mistake makes no record. When
    editing, a blank field clears the value.
    """
    data: dict[str, Any] = {}
    for f in form_fields(kind):
        if f.input == "checkboxes":
            data[f.name] = form.getlist(f.name)
        elif f.name in form:
            value = str(form[f.name])
            if value.strip() or not creating or f.name == "external_id":
                data[f.name] = value
    return data


@router.post("/records/{kind}/new", response_model=None)
async def record_create(request: Request, kind: str) -> Response:
    _check_kind(kind)
    form = await request.form()
    return await _run_sync(request, lambda db, who: _save(request, db, who, kind, form, None))


@router.get("/records/{kind}/{external_id}", response_class=HTMLResponse)
def record_detail(request: Request, db: DB, who: PageIdentity, kind: str, external_id: str) -> HTMLResponse:
    _check_kind(kind)
    view = records.get_record(db, who.actor, kind, external_id)
    fields = [f.name for f in form_fields(kind)]
    extra = [k for k in ("age_at_rescue", "age_at_arrest") if k in view]
    from ctis.web.linkage import record_panel as person_panel  # imports this module too
    from ctis.web.screening import record_panel  # screening's pages import this module

    return render(
        request,
        "record_detail.html",
        who,
        kind=kind,
        view=view,
        fields=fields + extra,
        related=_related(db, who, kind, view),
        can_write=can(who.actor, WRITE[kind]),
        references=SCHEMAS[kind].references,
        screening=record_panel(db, who.actor, kind, external_id),
        person_records=person_panel(db, who.actor, kind, external_id),
    )


@router.get("/records/{kind}/{external_id}/edit", response_class=HTMLResponse)
def record_edit(request: Request, db: DB, who: PageIdentity, kind: str, external_id: str) -> HTMLResponse:
    _check_kind(kind)
    authorize(who.actor, WRITE[kind])
    view = records.get_record(db, who.actor, kind, external_id)
    return _form(request, who, kind, values=view, errors={}, creating=False)


@router.post("/records/{kind}/{external_id}/edit", response_model=None)
async def record_update(request: Request, kind: str, external_id: str) -> Response:
    _check_kind(kind)
    form = await request.form()
    return await _run_sync(request, lambda db, who: _save(request, db, who, kind, form, external_id))


class _Rollback(Exception):
    """Undo the unit of work and answer with ``response`` (a form re-rendered with its errors)."""

    def __init__(self, response: Response, after: Any = None):
        super().__init__()
        self.response = response
        self.after = after  # run once the unit of work is rolled back (a refusal's own audit entry)


async def _run_sync(request: Request, work: Any) -> Response:
    """Run a form handler in a thread with its own unit of work (forms are read asynchronously)."""
    from starlette.concurrency import run_in_threadpool

    def job() -> Response:
        try:
            with Session(request.app.state.engine, expire_on_commit=False) as db, db.begin():
                who = identify(request, db)
                if who is None:
                    raise NotSignedIn()
                return work(db, who)  # type: ignore[no-any-return]
        except _Rollback as stop:
            if stop.after is not None:
                stop.after()
            return stop.response

    return await run_in_threadpool(job)


def _save(
    request: Request, db: Session, who: Identity, kind: str, form: FormData, external_id: str | None
) -> Response:
    check_csrf(request, who, str(form.get("csrf_token", "")))
    data = _form_data(kind, form, creating=external_id is None)
    if external_id is not None:
        data.pop("external_id", None)
    version = form.get("version")
    try:
        expected = int(str(version)) if version not in (None, "") else None
    except ValueError:
        expected = None
    try:
        view, _created = records.save_record(
            db, who.actor, kind, data, external_id=external_id, expected_version=expected
        )
    except records.Invalid as exc:
        # The page is rendered while the session is still open (it reads the signed-in
        # user), then raising rolls the unit of work back.
        values = {**data, "version": version, "external_id": external_id or data.get("external_id", "")}
        refused = exc if isinstance(exc, records.HiddenRuleRefused) else None
        status = refused.status if refused else 422
        page = _form(request, who, kind, values, exc.errors, external_id is None, status=status)
        if refused is None:
            raise _Rollback(page) from None
        if refused.retry_after:
            page.headers["Retry-After"] = str(refused.retry_after)
        engine = request.app.state.engine
        audit_it = lambda: probing.record_after_rollback(engine, refused.actor, refused.events)  # noqa: E731
        raise _Rollback(page, audit_it) from None
    except records.Conflict as exc:
        values = {**data, "version": exc.current["version"], "external_id": external_id}
        raise _Rollback(
            _form(request, who, kind, values, {}, False, status=409, conflict=exc.current)
        ) from None
    return RedirectResponse(f"/records/{kind}/{quote(view['external_id'])}", status_code=303)


# -- account -------------------------------------------------------------------
@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: DB, who: PageIdentity, new_token: str | None = None) -> HTMLResponse:
    tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id == who.user.id).order_by(ApiToken.id)))
    return render(request, "account.html", who, tokens=tokens, message=None, error=None)


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    db: DB,
    who: PageIdentity,
    current: Annotated[str, Form(max_length=1000)],
    new: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, who, csrf_token)
    from ctis.security.passwords import verify_password

    ok, _ = verify_password(who.user.password_hash, current)
    tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id == who.user.id)))
    if not ok:
        return render(
            request,
            "account.html",
            who,
            status=422,
            tokens=tokens,
            message=None,
            error=i18n.N_("The current password is wrong."),
        )
    try:
        accounts.change_password(db, who.user, new)
    except accounts.AccountError as exc:
        return render(request, "account.html", who, status=422, tokens=tokens, message=None, error=str(exc))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/account/tokens", response_class=HTMLResponse)
def new_token(
    request: Request,
    db: DB,
    who: PageIdentity,
    name: Annotated[str, Form(max_length=100)],
    csrf_token: Annotated[str, Form()] = "",
) -> HTMLResponse:
    check_csrf(request, who, csrf_token)
    authorize(who.actor, Permission.TOKENS_OWN)
    if who.via_token:  # as in the API: a token cannot mint tokens
        raise HTTPException(status_code=403, detail="a token cannot create tokens; sign in to make one")
    try:
        _token, secret = accounts.create_token(db, who.user, name)
    except accounts.AccountError as exc:
        raise records.Invalid({"name": str(exc)}) from None
    tokens = list(db.scalars(select(ApiToken).where(ApiToken.user_id == who.user.id).order_by(ApiToken.id)))
    return render(request, "account.html", who, tokens=tokens, message=secret, error=None)


@router.post("/account/tokens/{token_id}/revoke", response_model=None)
def revoke(
    request: Request,
    db: DB,
    who: PageIdentity,
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # a database integer: past it, a 422
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, who, csrf_token)
    accounts.revoke_token(db, who.user, token_id)
    return RedirectResponse("/account", status_code=303)
