"""Who may do what: the role table, authentication on every route, the permission
matrix, agency scope and the masking of identifying fields, through the real API.

The web database is shared by the web tests and never reset, so every record
made here has an external id with this run's :data:`RUN` in it, and its dates
lie in 2019, outside the demo's years, so that no figure another test counts
changes.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session
from starlette.routing import Mount

from ctis.metrics import METRICS
from ctis.metrics.registry import DIMENSIONS
from ctis.security.permissions import (
    IDENTIFY,
    READ,
    ROLES,
    WRITE,
    Actor,
    Forbidden,
    Permission,
    authorize,
    can,
    may_identify,
)
from ctis.storage.models import MODELS, Agency, Assistance, Referral, Suspect, Victim
from ctis.web.deps import api_identity
from tests.conftest import ROLE_USERS, LiveServer, http_client, sign_in

pytestmark = pytest.mark.web

RUN = uuid.uuid4().hex[:10]
USERS = list(ROLE_USERS)
OWN_SCOPE = [u for u, (_role, _agency, scope) in ROLE_USERS.items() if scope == "own"]
KINDS = list(READ)
FOREIGN = "AG-PP-POL"  # no test account belongs to it: its records are another agency's for own-scope users


def actor_of(username: str) -> Actor:
    role, _agency, scope = ROLE_USERS[username]
    return Actor(id=0, username=username, role=role, agency_id=None, scope=scope)


def agency_of(username: str) -> str:
    return ROLE_USERS[username][1]


# -- 1. the role table ----------------------------------------------------------------------------

#: Every grant, written out: changing what a role may do must change this table too.
MATRIX = """
permission             administrator data_officer investigator social_worker analyst viewer
agencies:read                x             x           x             x          x      x
agencies:write               x             x           .             .          .      .
operations:read              x             x           x             .          x      x
operations:write             x             x           x             .          .      .
cases:read                   x             x           x             x          x      x
cases:write                  x             x           x             .          .      .
suspects:read                x             x           x             .          x      x
suspects:write               x             x           x             .          .      .
suspects:identify            x             x           x             .          .      .
prosecutions:read            x             x           x             .          x      .
prosecutions:write           x             x           x             .          .      .
victims:read                 x             x           x             x          x      x
victims:write                x             x           x             x          .      .
victims:identify             x             x           .             x          .      .
assistance:read              x             x           .             x          x      .
assistance:write             x             x           .             x          .      .
referrals:read               x             x           .             x          x      .
referrals:write              x             x           .             x          .      .
reports:read                 x             x           x             x          x      x
reports:export               x             x           .             .          x      .
records:export               x             x           .             .          .      .
records:import               x             x           .             .          .      .
records:all_agencies         x             x           .             .          x      .
users:manage                 x             .           .             .          .      .
audit:read                   x             .           .             .          .      .
tokens:own                   x             x           x             x          x      x
allegations:read             x             x           x             x          x      x
allegations:write            x             x           x             .          .      .
releases:publish             x             .           .             .          .      .
screening:read               x             .           x             .          x      .
screening:write              x             .           .             .          x      .
screening:refer              x             .           x             .          x      .
linkage:run                  x             x           .             .          .      .
linkage:review               x             x           .             .          .      .
"""


def _matrix() -> dict[tuple[str, str], bool]:
    header, *rows = MATRIX.strip().splitlines()
    roles = header.split()[1:]
    out: dict[tuple[str, str], bool] = {}
    for row in rows:
        permission, *marks = row.split()
        assert len(marks) == len(roles), row
        for role, mark in zip(roles, marks, strict=True):
            assert mark in {"x", "."}, row
            out[role, permission] = mark == "x"
    return out


def test_role_permission_table_is_exactly_the_written_one() -> None:
    expected = _matrix()
    assert {role for role, _ in expected} == set(ROLES)
    assert {p for _, p in expected} == {p.value for p in Permission}
    actual = {(role, p.value): p in ROLES[role] for role in ROLES for p in Permission}
    changed = sorted(
        f"{role} {perm}: granted={actual[role, perm]}"
        for role, perm in expected
        if actual[role, perm] != expected[role, perm]
    )
    assert not changed, "grants differ from the table:\n" + "\n".join(changed)


def test_can_authorize_and_may_identify() -> None:
    own = Actor(id=1, username="p", role="investigator", agency_id=7, scope="own")
    everywhere = Actor(
        id=2, username="o", role="data_officer", agency_id=1, scope="own"
    )  # records:all_agencies
    homeless = Actor(id=3, username="h", role="investigator", agency_id=None, scope="own")
    assert can(own, Permission.CASES_WRITE, 7, check_agency=True)
    assert not can(own, Permission.CASES_WRITE, 8, check_agency=True)
    assert not can(own, Permission.CASES_WRITE, None, check_agency=True)
    assert not can(homeless, Permission.CASES_WRITE, None, check_agency=True)
    assert can(everywhere, Permission.CASES_WRITE, 8, check_agency=True)
    assert not can(own, Permission.ASSISTANCE_READ)
    assert not can(Actor(id=4, username="x", role="no-such-role", agency_id=7), Permission.REPORTS_READ)
    with pytest.raises(Forbidden, match="may not assistance:read"):
        authorize(own, Permission.ASSISTANCE_READ)
    with pytest.raises(Forbidden, match="for agency 8"):
        authorize(own, Permission.CASES_WRITE, 8, check_agency=True)
    authorize(own, Permission.CASES_WRITE, 7, check_agency=True)
    assert may_identify(own, "suspects") and not may_identify(own, "victims")
    assert not may_identify(everywhere, "cases")  # only persons have identifying fields
    assert set(IDENTIFY) == {"victims", "suspects"}


# -- 2. every route authenticates -------------------------------------------------------------------

#: API routes anyone may call: none, every /api/v1 route needs a session or a token.
PUBLIC_API: set[tuple[str, str]] = set()
#: The schema and its viewer, outside /api/v1 (ctis.web.apidocs; no OAuth2 helper page: the API
#: takes sessions and personal tokens, not OAuth2).
API_DOCS = {"/api/openapi.json", "/api/docs"}
#: Pages that answer without a session.
PUBLIC_PAGES = {("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/lang")}
#: The public transparency page and its downloads (ctis.web.publication): released figures only.
PUBLIC_PAGES |= {
    ("GET", "/transparency"),
    ("GET", "/transparency/release.csv"),
    ("GET", "/transparency/releases/{version}.csv"),
}
SAMPLE_PARAMS = {"kind": "victims", "external_id": "VIC-00001", "token_id": "1", "key": "victims_rescued"}


def _routes(app: Any) -> Iterator[tuple[str, str, Any]]:
    """Every (method, path, route) the application answers, included routers flattened."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            assert context.path == "/static", context.path
            continue
        for method in sorted(set(context.methods or ()) - {"HEAD"}):
            yield method, context.path, route


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: SAMPLE_PARAMS.get(m[1], "x"), path)


def _depends_on(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    if method in {"POST", "PATCH", "PUT"}:
        kwargs.setdefault("json", {})
    return client.request(method, url, **kwargs)


def test_every_api_route_needs_a_session_or_token(live_server: LiveServer) -> None:
    api = [(m, p, r) for m, p, r in _routes(live_server.app) if p.startswith("/api/v1/")]
    assert len(api) >= 4 * len(KINDS) + 7
    outside = {p for _m, p, _r in _routes(live_server.app) if not p.startswith("/api/v1/")}
    assert outside >= API_DOCS
    assert {p for p in outside if p.startswith("/api/")} <= API_DOCS  # nothing else outside /api/v1
    anonymous = http_client(live_server.url)
    forged_cookie = http_client(live_server.url, cookies={"ctis_session": "forged-" + RUN})
    forged_token = http_client(live_server.url, headers={"Authorization": "Bearer forged-" + RUN})
    wrong = []
    for method, path, route in api:
        if (method, path) in PUBLIC_API:
            continue
        if not (isinstance(route, APIRoute) and _depends_on(route.dependant, api_identity)):
            wrong.append(f"{method} {path}: does not depend on api_identity")
        for name, client in (("anonymous", anonymous), ("cookie", forged_cookie), ("token", forged_token)):
            r = _send(client, method, _url(path))
            if r.status_code != 401 or not r.json().get("detail"):
                wrong.append(f"{method} {path} ({name}): {r.status_code} {r.text[:100]}")
    assert not wrong, "\n".join(wrong)


def test_every_page_sends_strangers_to_sign_in(live_server: LiveServer) -> None:
    pages = [
        (m, p)
        for m, p, _r in _routes(live_server.app)
        if not p.startswith("/api/") and p not in API_DOCS and (m, p) not in PUBLIC_PAGES
    ]
    assert len(pages) >= 10, pages
    client = http_client(live_server.url)
    wrong = []
    for method, path in pages:
        kwargs = {"data": {"csrf_token": "x"}} if method == "POST" else {}
        r = client.request(method, _url(path), **kwargs)
        if r.status_code not in {302, 303, 307} or not r.headers.get("location", "").startswith("/login"):
            wrong.append(f"{method} {path}: {r.status_code} {r.headers.get('location')}")
    assert not wrong, "\n".join(wrong)
    assert client.get("/").headers["location"] == "/login"


# -- 3. the permission matrix and agency scope through the API --------------------------------------


def payload(kind: str, agency: str, chain: dict[str, str], tag: str) -> dict[str, Any]:
    """A valid new record of ``kind`` filed under ``agency``, linked to the records of ``chain``."""
    xid = f"{kind[:3].upper()}-{RUN}-{tag}"
    op, case, suspect, victim = (chain.get(k) for k in ("operations", "cases", "suspects", "victims"))
    bodies: dict[str, dict[str, Any]] = {
        "agencies": {"name_en": f"Test agency {tag}"},
        "operations": {"operation_date": "2019-03-01", "province": "KH-12", "operation_kind": "raid",
                       "lead_agency": agency},
        "cases": {"offence_type": "trafficking_in_persons", "opened_on": "2019-03-02", "agency": agency,
                  "operations": [op]},
        "suspects": {"sex": "male", "arrest_date": "2019-03-02", "case": case, "agency": agency},
        "victims": {"rescue_date": "2019-03-02", "sex": "female", "age": 17, "case": case, "agency": agency,
                    "operations": [op]},
        "prosecutions": {"suspect": suspect, "case": case, "charged_on": "2019-04-01"},
        "assistance": {"victim": victim, "assistance_type": "shelter", "start_date": "2019-03-03",
                       "agency": agency},
        "referrals": {"victim": victim, "to_agency": agency, "referred_on": "2019-03-04", "consent": True,
                      "consent_date": "2019-03-03"},
    }  # fmt: skip
    return {"external_id": xid, **bodies[kind]}


#: A harmless change per kind, for updates.
CHANGE = {
    "agencies": {"name_km": "ទីភ្នាក់ងារ"}, "operations": {"description": "edited"},
    "cases": {"legal_article": "Art. 15"}, "suspects": {"charges": "edited"},
    "victims": {"exploitation_type": "forced_labour"}, "prosecutions": {"charges": "edited"},
    "assistance": {"notes": "edited"}, "referrals": {"notes": "edited"},
}  # fmt: skip


def _csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> dict[str, dict[str, str]]:
    """One linked record of every kind per agency, made by the data officer: agency -> kind -> external id."""
    officer = sign_in(live_server.url, "officer")
    out: dict[str, dict[str, str]] = {}
    for agency in sorted({agency_of(u) for u in USERS} | {FOREIGN}):
        chain = {"agencies": agency}
        for kind in KINDS[1:]:
            body = payload(kind, agency, chain, f"w-{agency}")
            r = officer.post(f"/api/v1/{kind}", json=body, headers=_csrf(officer))
            assert r.status_code == 201, (kind, r.text)
            chain[kind] = body["external_id"]
        out[agency] = chain
    return out


def _expect(allowed: bool, ok: int) -> int:
    return ok if allowed else 403


@pytest.mark.parametrize("username", USERS)
def test_permission_matrix_through_the_api(
    live_server: LiveServer, world: dict[str, dict[str, str]], username: str
) -> None:
    """List, read, create and update every kind: allowed exactly when the role holds the permission."""
    actor = actor_of(username)
    client = sign_in(live_server.url, username)
    mine = world[agency_of(username)]
    wrong = []
    for kind in KINDS:
        may_read, may_write = can(actor, READ[kind]), can(actor, WRITE[kind])
        target = mine[kind]
        checks = [
            ("list", client.get(f"/api/v1/{kind}", params={"per_page": 5}), _expect(may_read, 200)),
            ("get", client.get(f"/api/v1/{kind}/{target}"), _expect(may_read, 200)),
        ]
        body = payload(kind, agency_of(username), mine, f"m-{username}")
        created = client.post(f"/api/v1/{kind}", json=body, headers=_csrf(client))
        checks.append(("create", created, _expect(may_write, 201)))
        version = 1
        if created.status_code == 201:
            target, version = body["external_id"], created.json()["version"]
        change = {"version": version, **CHANGE[kind]}
        updated = client.patch(f"/api/v1/{kind}/{target}", json=change, headers=_csrf(client))
        checks.append(("update", updated, _expect(may_write, 200)))
        for action, r, status in checks:
            if r.status_code != status:
                wrong.append(f"{kind} {action}: expected {status}, got {r.status_code} {r.text[:150]}")
            elif status == 403:
                assert READ[kind].value in r.json()["detail"] or WRITE[kind].value in r.json()["detail"]
        if updated.status_code == 200:
            assert all(updated.json()[k] == v for k, v in CHANGE[kind].items())
    assert not wrong, f"{username} ({actor.role}):\n" + "\n".join(wrong)


def visible(engine: Engine, kind: str, agency: str) -> set[str]:
    """External ids of ``kind`` an own-scope user of ``agency`` may see, by the documented rule."""
    with Session(engine) as session:
        a = session.scalar(select(Agency.id).where(Agency.external_id == agency))
        model: Any = MODELS[kind]
        if kind == "operations":
            rule = model.lead_agency_id == a
        elif kind == "prosecutions":
            rule = model.suspect_id.in_(select(Suspect.id).where(Suspect.agency_id == a))
        elif kind == "victims":  # also those it assists or that were referred to it
            rule = or_(
                model.agency_id == a,
                model.id.in_(select(Assistance.victim_id).where(Assistance.agency_id == a)),
                model.id.in_(select(Referral.victim_id).where(Referral.to_agency_id == a)),
            )
        elif kind == "referrals":  # to it, or of its victims
            of_its_victims = model.victim_id.in_(select(Victim.id).where(Victim.agency_id == a))
            rule = or_(model.to_agency_id == a, of_its_victims)
        else:
            rule = model.agency_id == a
        return set(session.scalars(select(model.external_id).where(rule)))


def _list_all(client: httpx.Client, kind: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        r = client.get(f"/api/v1/{kind}", params={"per_page": 200, "page": page, **params})
        assert r.status_code == 200, r.text
        data = r.json()
        items += data["items"]
        if page >= data["pages"]:
            return items
        page += 1


@pytest.mark.parametrize("username", OWN_SCOPE)
def test_own_scope_users_list_only_their_agencys_records(
    live_server: LiveServer, web_engine: Engine, world: dict[str, dict[str, str]], username: str
) -> None:
    actor, agency = actor_of(username), agency_of(username)
    client = sign_in(live_server.url, username)
    everyone = sign_in(live_server.url, "admin")
    readable = [k for k in KINDS if k != "agencies" and can(actor, READ[k])]
    assert readable
    for kind in readable:
        items = _list_all(client, kind)
        listed = {i["external_id"] for i in items}
        assert listed == visible(web_engine, kind, agency), kind
        assert world[agency][kind] in listed and world[FOREIGN][kind] not in listed
        assert len(listed) < everyone.get(f"/api/v1/{kind}", params={"per_page": 1}).json()["total"]
        field = {
            "operations": "lead_agency",
            "cases": "agency",
            "suspects": "agency",
            "assistance": "agency",
        }.get(kind)
        if field:
            assert {i[field] for i in items} == {agency}, kind
        # the agency filter narrows the scope, it never widens it
        if kind in {"operations", "cases", "suspects", "victims", "assistance"}:
            r = client.get(f"/api/v1/{kind}", params={"agency": FOREIGN, "per_page": 200})
            assert not {i["external_id"] for i in r.json()["items"]} - listed, kind


@pytest.mark.parametrize("username", OWN_SCOPE)
def test_own_scope_users_cannot_reach_or_file_under_another_agency(
    live_server: LiveServer, world: dict[str, dict[str, str]], username: str
) -> None:
    actor, agency = actor_of(username), agency_of(username)
    client = sign_in(live_server.url, username)
    h = _csrf(client)
    foreign, mine = world[FOREIGN], world[agency]
    wrong = []

    def expect(what: str, r: httpx.Response, status: int) -> None:
        if r.status_code != status:
            wrong.append(f"{what}: expected {status}, got {r.status_code} {r.text[:150]}")

    for kind in KINDS[1:]:
        may_read, may_write = can(actor, READ[kind]), can(actor, WRITE[kind])
        expect(f"get foreign {kind}", client.get(f"/api/v1/{kind}/{foreign[kind]}"), 404 if may_read else 403)
        patch = {"version": 1, **CHANGE[kind]}
        r = client.patch(f"/api/v1/{kind}/{foreign[kind]}", json=patch, headers=h)
        expect(f"update foreign {kind}", r, 404 if may_write else 403)
        if not may_write:
            continue
        column = "lead_agency" if kind == "operations" else "agency"  # referrals, prosecutions have none
        body = payload(kind, FOREIGN, mine, f"x-{username}")
        if column in body:  # filed under another agency
            expect(f"create {kind} for {FOREIGN}", client.post(f"/api/v1/{kind}", json=body, headers=h), 403)
        # moving one of mine to another agency
        own = payload(kind, agency, mine, f"mv-{username}")
        made = client.post(f"/api/v1/{kind}", json=own, headers=h)
        expect(f"create {kind}", made, 201)
        if column in own and made.status_code == 201:
            move = {"version": made.json()["version"], column: FOREIGN}
            expect(
                f"move {kind}",
                client.patch(f"/api/v1/{kind}/{own['external_id']}", json=move, headers=h),
                403,
            )
        # linking a record of mine to another agency's records (which would make them visible to me)
        links = {
            name: foreign[ref]
            for name, ref in (("case", "cases"), ("suspect", "suspects"), ("victim", "victims"))
        }
        for name, value in links.items():
            if name in own:
                body = {**payload(kind, agency, mine, f"ln-{name}-{username}"), name: value}
                r = client.post(f"/api/v1/{kind}", json=body, headers=h)
                expect(f"create {kind} linked to a foreign {name}", r, 422)
                if r.status_code == 422:  # the same answer as for a record that does not exist
                    assert "no " in r.json()["errors"][name] and value in r.json()["errors"][name]
        if "operations" in own:
            body = {**payload(kind, agency, mine, f"lo-{username}"), "operations": [foreign["operations"]]}
            expect(
                f"create {kind} linked to a foreign operation",
                client.post(f"/api/v1/{kind}", json=body, headers=h),
                422,
            )
    # and what they could not link stays out of sight
    for kind in ("victims", "suspects", "cases"):
        if can(actor, READ[kind]):
            expect(f"get foreign {kind} afterwards", client.get(f"/api/v1/{kind}/{foreign[kind]}"), 404)
    assert not wrong, f"{username}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("username", [u for u in USERS if u not in OWN_SCOPE])
def test_all_agency_users_reach_every_agencys_records(
    live_server: LiveServer, world: dict[str, dict[str, str]], username: str
) -> None:
    actor = actor_of(username)
    client = sign_in(live_server.url, username)
    for kind in KINDS[1:]:
        r = client.get(f"/api/v1/{kind}/{world[FOREIGN][kind]}")
        assert r.status_code == _expect(can(actor, READ[kind]), 200), (kind, r.text)


# -- 4. identifying fields never reach those who may not see them -----------------------------------

VICTIM_MARK = f"Zzqx{RUN}v"
SUSPECT_MARK = f"Zzqx{RUN}s"
VICTIM_BIRTH = "2001-02-03"
MARKS = {"victims": VICTIM_MARK, "suspects": SUSPECT_MARK}


def _identity(mark: str) -> dict[str, str]:
    return {
        "name_latin": f"{mark} Sokha",
        "name_khmer": f"{mark} សុខា",
        "phone": f"+855 {mark}",
        "address": f"{mark} street",
    }


@pytest.fixture(scope="module")
def people(live_server: LiveServer) -> dict[str, list[str]]:
    """A victim every own-scope account can see (their agency, assisted by, referred to), and one
    suspect per agency; all with distinctive identifying fields: kind -> external ids."""
    officer = sign_in(live_server.url, "officer")
    h = _csrf(officer)
    victim = {
        "external_id": f"VIC-{RUN}-named", "rescue_date": "2019-05-01", "sex": "female", "age": 18,
        "date_of_birth": VICTIM_BIRTH, "agency": "AG-AHTJP", "nationality": "KHM", **_identity(VICTIM_MARK),
    }  # fmt: skip
    assert officer.post("/api/v1/victims", json=victim, headers=h).status_code == 201
    help_ = {"external_id": f"ASS-{RUN}-named", "victim": victim["external_id"], "assistance_type": "medical",
             "start_date": "2019-05-02", "agency": "AG-NGO-LOTUS"}  # fmt: skip
    assert officer.post("/api/v1/assistance", json=help_, headers=h).status_code == 201
    referral = {"external_id": f"REF-{RUN}-named", "victim": victim["external_id"], "to_agency": "AG-PS-POL",
                "referred_on": "2019-05-03", "consent": False}  # fmt: skip
    assert officer.post("/api/v1/referrals", json=referral, headers=h).status_code == 201
    suspects = []
    for agency in ("AG-AHTJP", "AG-PS-POL", "AG-NCCT"):
        suspect = {"external_id": f"SUS-{RUN}-named-{agency}", "arrest_date": "2019-05-01", "sex": "male",
                   "date_of_birth": "1970-01-01", "agency": agency, **_identity(SUSPECT_MARK)}  # fmt: skip
        assert officer.post("/api/v1/suspects", json=suspect, headers=h).status_code == 201
        suspects.append(suspect["external_id"])
    return {"victims": [victim["external_id"]], "suspects": suspects}


def _texts(r: httpx.Response) -> str:
    """A response body as text; a workbook's XML parts unzipped."""
    if r.content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(r.content)) as book:
            return "\n".join(book.read(n).decode("utf-8") for n in book.namelist() if n.endswith(".xml"))
    return r.text


def _everything(client: httpx.Client, people: dict[str, list[str]]) -> Iterator[tuple[str, httpx.Response]]:
    """Every answer of the API that carries victims or suspects, or figures about them."""
    for kind, ids in people.items():
        yield f"list {kind}", client.get(f"/api/v1/{kind}", params={"per_page": 200, "sort": "-id"})
        yield (
            f"list {kind} by date",
            client.get(f"/api/v1/{kind}", params={"date_from": "2019-01-01", "date_to": "2019-12-31"}),
        )
        for external_id in ids:
            yield f"search {kind} by id", client.get(f"/api/v1/{kind}", params={"q": external_id})
            yield f"get {kind}", client.get(f"/api/v1/{kind}/{external_id}")
        yield f"search {kind} by name", client.get(f"/api/v1/{kind}", params={"q": MARKS[kind]})
    for key in METRICS:
        yield f"drill {key}", client.get(f"/api/v1/metrics/{key}/records", params={"period": "2019"})
    for dimension in DIMENSIONS:
        params = {"period": "2019", "dimension": dimension}
        yield (
            f"drill victims by {dimension}",
            client.get("/api/v1/metrics/victims_rescued/records", params=params),
        )
    for fmt in ("json", "csv", "xlsx"):
        yield (
            f"report {fmt}",
            client.get("/api/v1/reports", params={"period": "2019", "by": "all", "format": fmt}),
        )


@pytest.mark.parametrize("username", USERS)
def test_identifying_fields_reach_only_those_who_may_see_them(
    live_server: LiveServer, people: dict[str, list[str]], username: str
) -> None:
    actor = actor_of(username)
    client = sign_in(live_server.url, username)
    hidden = [kind for kind in MARKS if not may_identify(actor, kind)]
    if actor.role == "viewer":
        assert hidden == list(MARKS)
    leaks, seen = [], 0
    for what, r in _everything(client, people):
        assert r.status_code < 500, (what, r.text[:300])
        body = _texts(r)
        seen += r.status_code == 200
        leaks += [f"{what}: {MARKS[kind]}" for kind in hidden if MARKS[kind] in body]
        if "victims" in hidden and VICTIM_BIRTH in body:
            leaks.append(f"{what}: the victim's date of birth")
    assert seen > 10
    assert not leaks, f"{username} ({actor.role}) received identifying fields:\n" + "\n".join(leaks)
    for kind, mark in MARKS.items():
        shown = [client.get(f"/api/v1/{kind}/{x}") for x in people[kind]]
        found = [r.json() for r in shown if r.status_code == 200]
        if kind in hidden:
            # masked, and marked as masked
            assert all(
                v["name_latin"] is None and v["date_of_birth"] is None and v["phone"] is None for v in found
            )
            assert all(
                set(v["masked"]) >= {"name_latin", "name_khmer", "date_of_birth", "phone", "address"}
                for v in found
            )
            # a name search must not tell which record a name belongs to
            assert client.get(f"/api/v1/{kind}", params={"q": f"{mark} Sokha"}).json().get("total", 0) == 0
        elif found:  # the control: those who may see names do get them
            assert all(v["name_latin"] == f"{mark} Sokha" and v["masked"] == [] for v in found), kind
            assert client.get(f"/api/v1/{kind}", params={"q": f"{mark} Sokha"}).json()["total"] == len(found)
    if can(actor, READ["victims"]):
        # every account sees the victim (own agency, assisted by or referred to)
        assert client.get(f"/api/v1/victims/{people['victims'][0]}").status_code == 200


def test_errors_do_not_quote_identifying_fields(
    live_server: LiveServer, people: dict[str, list[str]]
) -> None:
    """An investigator may correct a victim's facts without seeing who they are: neither a stale
    edit (409 with the current record) nor a rule broken against the hidden date of birth (422)
    may quote an identifying field."""
    police = sign_in(live_server.url, "police")
    officer = sign_in(live_server.url, "officer")
    h = _csrf(police)
    victim = f"VIC-{RUN}-police-edit"
    body = {"external_id": victim, "rescue_date": "2019-05-01", "date_of_birth": VICTIM_BIRTH, "age": 18,
            "agency": "AG-PS-POL", **_identity(VICTIM_MARK + "e")}  # fmt: skip
    assert officer.post("/api/v1/victims", json=body, headers=_csrf(officer)).status_code == 201
    current = police.get(f"/api/v1/victims/{victim}").json()
    assert current["name_latin"] is None and current["age_at_rescue"] == 18
    answers = [
        police.patch(f"/api/v1/victims/{victim}", json={"version": current["version"], "age": 40}, headers=h),
        police.patch(
            f"/api/v1/victims/{victim}",
            json={"version": current["version"], "rescue_date": "2000-01-01"},
            headers=h,
        ),
        police.patch(
            f"/api/v1/victims/{victim}", json={"version": current["version"] + 5, "sex": "female"}, headers=h
        ),
        police.patch(
            f"/api/v1/victims/{victim}", json={"version": current["version"], "name_latin": "x"}, headers=h
        ),
    ]
    assert [r.status_code for r in answers] == [422, 422, 409, 403], [r.text for r in answers]
    assert "date of birth" in answers[0].json()["errors"]["age"]
    for r in answers:
        assert VICTIM_BIRTH not in r.text and VICTIM_MARK not in r.text, r.text
    # the facts they may change still save, and the identity survives the merge
    ok = police.patch(
        f"/api/v1/victims/{victim}", json={"version": current["version"], "sex": "female"}, headers=h
    )
    assert ok.status_code == 200 and VICTIM_MARK not in ok.text
    full = officer.get(f"/api/v1/victims/{victim}").json()
    assert full["sex"] == "female" and full["name_latin"] == f"{VICTIM_MARK}e Sokha"
    assert full["date_of_birth"] == VICTIM_BIRTH


def test_links_already_made_survive_an_own_scope_edit(
    live_server: LiveServer, world: dict[str, dict[str, str]]
) -> None:
    """Records the data officer linked across agencies stay linked when an own-scope user edits
    the fields they may change: only new links must point at records they can see."""
    officer, police = sign_in(live_server.url, "officer"), sign_in(live_server.url, "police")
    foreign = world[FOREIGN]
    body = {**payload("victims", "AG-PS-POL", foreign, "linked-across"), "age": 30}
    assert officer.post("/api/v1/victims", json=body, headers=_csrf(officer)).status_code == 201
    url = f"/api/v1/victims/{body['external_id']}"
    version = police.get(url).json()["version"]
    r = police.patch(url, json={"version": version, "age": 31}, headers=_csrf(police))
    assert r.status_code == 200, r.text
    assert r.json()["case"] == foreign["cases"] and r.json()["operations"] == [foreign["operations"]]


# -- audit of what leaves through the web: drill-downs, sign-out, failed sign-ins --------------------


def _entries_since(engine: Engine, first: int) -> list[Any]:
    from ctis.storage.models import AuditEntry

    with Session(engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.id > first).order_by(AuditEntry.id)))


def _last_id(engine: Engine) -> int:
    from sqlalchemy import func

    from ctis.storage.models import AuditEntry

    with Session(engine) as s:
        return int(s.scalar(select(func.max(AuditEntry.id))) or 0)


def _try_sign_in(base_url: str, username: str, password: str) -> httpx.Response:
    """Post the sign-in form as a browser does (with the form's CSRF token when the page has one)."""
    client = http_client(base_url)
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    data = {"username": username, "password": password, "next": "/dashboard"}
    if found:
        data["csrf_token"] = found.group(1)
    return client.post("/login", data=data)


def test_drill_downs_and_sign_out_are_audited(live_server: LiveServer, web_engine: Engine) -> None:
    analyst = sign_in(live_server.url, "analyst")
    start = _last_id(web_engine)
    page = analyst.get("/drill", params={"metric": "victims_rescued", "period": "2024-H1"})
    api = analyst.get("/api/v1/metrics/victims_rescued/records", params={"period": "2024-H1"})
    assert page.status_code == 200 and api.status_code == 200
    drills = [e for e in _entries_since(web_engine, start) if e.action == "drill"]
    assert [(e.actor, e.kind) for e in drills] == [("analyst", "victims"), ("analyst", "victims")]
    shown = len(api.json()["records"])
    details = [json.loads(e.detail) for e in drills]
    assert [(d["metric"], d["records"]) for d in details] == [("victims_rescued", shown)] * 2
    assert not any(ext in (e.detail or "") for e in drills for ext in api.json()["records"][:5])
    start = _last_id(web_engine)
    assert analyst.post("/logout", data={"csrf_token": analyst.csrf}).status_code == 303  # type: ignore[attr-defined]
    assert [(e.actor, e.action) for e in _entries_since(web_engine, start)] == [("analyst", "sign_out")]


def test_a_failed_sign_in_does_not_store_a_name_that_is_no_account(
    live_server: LiveServer, web_engine: Engine
) -> None:
    typed = f"Pasted-Password-{RUN}!"  # a password typed into the user name field
    start = _last_id(web_engine)
    assert _try_sign_in(live_server.url, typed, "whatever it was").status_code == 401
    assert _try_sign_in(live_server.url, "viewer", f"wrong-{RUN}").status_code == 401
    failed = [e for e in _entries_since(web_engine, start) if e.action == "sign_in.failed"]
    assert [e.actor for e in failed] == ["unknown user", "viewer"]
    assert not any(typed in f"{e.actor} {e.detail}" for e in _entries_since(web_engine, start))
