"""Limits: the body limit holds for chunked bodies and before sign-in; periods have a longest length;
ids, dates and text out of range get a 4xx with a message on every route, never a 500.

The route tests walk the application's own routes (API and pages), so a route added later is
covered without being named here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from typer.testing import CliRunner

from ctis.cli.main import app as cli
from ctis.domain.periods import MAX_PERIOD_YEARS, check_length, parse_period, report_period
from ctis.domain.records import SCHEMAS, columns
from ctis.web.app import MAX_BODY, create_app
from tests.conftest import LiveServer, add_role_users, sign_in
from tests.factories import Fixture

# -- the body limit -------------------------------------------------------------------------------------

CHUNK = 64 * 1024


def _call(app: Any, method: str, path: str, content_type: str, chunks: int) -> tuple[int, int, bytes]:
    """Send ``chunks`` chunks of a chunked body (no Content-Length) straight to the ASGI app.

    Returns the status, how many bytes the application pulled from the client, and the answer's body.
    """
    pulled = 0
    given = 0
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal pulled, given
        if given >= chunks:
            await asyncio.sleep(3600)  # a client that keeps the connection open
        given += 1
        pulled += CHUNK
        body = b'{"name": "' + b"x" * (CHUNK - 10) + b'",' if content_type.endswith("json") else b"a" * CHUNK
        return {"type": "http.request", "body": body, "more_body": given < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", content_type.encode()),
                    (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=60)

    asyncio.run(run())
    return answer["status"], pulled, answer["body"]


@pytest.mark.parametrize(
    "method, path, content_type",
    [
        ("POST", "/api/v1/victims", "application/json"),  # JSON body, parsed before authentication
        ("POST", "/login", "application/x-www-form-urlencoded"),  # a form, before any session
        ("POST", "/claims", "application/x-www-form-urlencoded"),
        ("PATCH", "/api/v1/victims/V-1", "application/json"),
    ],
)
def test_a_chunked_body_past_the_limit_is_refused_413_as_it_arrives(
    engine: Engine, method: str, path: str, content_type: str
) -> None:
    """200 MB sent chunked (no Content-Length), unauthenticated: 413 after the first megabyte."""
    app = create_app(engine)
    chunks = 200 * 1024 * 1024 // CHUNK
    status, pulled, body = _call(app, method, path, content_type, chunks)
    assert status == 413, body[:300]
    assert b"larger than" in body
    assert pulled <= MAX_BODY + CHUNK  # read no further than the chunk that crossed the limit


def test_a_chunked_body_within_the_limit_still_reaches_the_application(engine: Engine) -> None:
    app = create_app(engine)
    status, _, body = _call(app, "POST", "/api/v1/victims", "application/json", 4)  # 256 KB, bad JSON
    assert status in {401, 403, 422}, body[:300]


# -- periods --------------------------------------------------------------------------------------------

TOO_LONG = "2000-01-01..2030-12-31"
HUGE = "0001-01-01..9999-12-31"


def test_report_periods_have_a_longest_length_and_a_calendar_window() -> None:
    assert report_period("2005-01-01..2024-12-31").days > 7000  # exactly 20 years is allowed
    for text in (TOO_LONG, HUGE, "2004-02-29..2024-02-29"):
        with pytest.raises(ValueError, match=f"longer than {MAX_PERIOD_YEARS} years"):
            report_period(text)
    for text in ("9999", "9999-12", "1066", "9990-01-01..9999-12-31"):
        with pytest.raises(ValueError, match="outside the years"):
            report_period(text)
    for text in ("0000", "TIP0001", "0000-01-01..2024-01-01"):
        with pytest.raises(ValueError, match="invalid period"):
            report_period(text)
    assert check_length(parse_period("2024")).label == "2024"


@pytest.mark.parametrize("period", [TOO_LONG, HUGE, "9999"])
def test_the_cli_refuses_a_period_too_long_with_a_message(sqlite_env: Path, period: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    for args in (["report", "--period", period], ["drill", "victims_rescued", "--period", period]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "period" in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.output


# -- every route, with values out of range ------------------------------------------------------------

SURROGATE = "\ud800"
#: (name, value in a path or query string, value in a JSON body)
BAD: list[tuple[str, str, Any]] = [
    ("huge id", str(2**70), 2**70),
    ("far date", "9999-12-31", "9999-12-31"),
    ("year 0", "0000-01-01", "0000-01-01"),
    ("long period", HUGE, HUGE),
    ("lone surrogate", quote(SURROGATE.encode("utf-8", "surrogatepass")), SURROGATE),
]


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API and page route of the application, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        elif hasattr(route, "routes") and not hasattr(route, "app"):
            yield from _routes(route.routes)


def _form_fields() -> set[str]:
    """Field names the page forms read (every record column, and the other forms' own fields)."""
    names = {c for kind in SCHEMAS for c in columns(kind)}
    return names | {"q", "period", "by", "name", "text", "username", "password", "new_password", "next",
                    "version", "reason", "expires_days", "lang", "metric", "dimension", "value"}  # fmt: skip


#: One record of each kind, so that routes with a record in their path reach their forms and bodies.
IDS = {"agencies": "AG-L", "operations": "OP-L", "cases": "CASE-L", "suspects": "SUS-L", "victims": "VIC-L",
       "prosecutions": "PRO-L", "assistance": "AST-L", "referrals": "REF-L"}  # fmt: skip


def _records(engine: Engine) -> None:
    f = Fixture()
    ag = f.agency(external_id=IDS["agencies"])
    op = f.operation("2024-01-01", external_id=IDS["operations"])
    case = f.case(op, external_id=IDS["cases"])
    sus = f.suspect(external_id=IDS["suspects"], case=case.external_id)
    vic = f.victim(
        "2024-02-01", op, external_id=IDS["victims"], case=case.external_id, date_of_birth="2000-01-01"
    )
    f.prosecution(sus, external_id=IDS["prosecutions"], charged_on="2024-03-01")
    f.assistance(vic, external_id=IDS["assistance"], assistance_type="shelter", start_date="2024-02-02")
    f.referral(vic, ag, external_id=IDS["referrals"], referred_on="2024-02-02", consent=False)
    f.save(engine)


def _good_paths(route: APIRoute) -> list[str]:
    """The route's path with real values in it: each record kind, and that kind's record."""
    names = re.findall(r"\{([^}:]+)", route.path)
    if not names:
        return []
    kinds = list(IDS) if "kind" in names else [next((k for k in IDS if f"/{k}/" in route.path), "victims")]
    out = []
    for kind in kinds:
        values = {"kind": kind, "external_id": IDS[kind]}
        out.append(re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m, v=values: v.get(m[1], "1"), route.path))
    return out


@pytest.fixture
def admin(engine: Engine) -> Iterator[tuple[LiveServer, httpx.Client]]:
    add_role_users(engine)
    _records(engine)
    server = LiveServer(engine)
    try:
        yield server, sign_in(server.url, "admin")
    finally:
        server.stop()


def _params(route: APIRoute, where: str) -> set[str]:
    """The names of a route's query or body parameters, its dependencies' included."""
    names: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        names.update(p.alias for p in getattr(dependant, where))
        stack.extend(dependant.dependencies)
    return names


def _request(
    client: httpx.Client,
    route: APIRoute,
    method: str,
    path_value: str,
    body_value: Any,
    path: str | None = None,
) -> httpx.Response:
    """``route`` with the bad value in every path parameter (or in ``path``), query parameter and field."""
    path = path or re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda _m: path_value, route.path)
    query = "&".join(f"{name}={path_value}" for name in sorted(_params(route, "query_params")))
    url = path + (f"?{query}" if query else "")
    headers = {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    if method in {"GET", "HEAD", "DELETE"}:
        return client.request(method, url, headers=headers)
    if route.path.startswith("/api/"):
        kind = next((k for k in IDS if route.path.startswith(f"/api/v1/{k}")), None)
        # a record kind gets its own columns only (others would stop at "unknown field" first), so
        # that every field's validator sees the value; a PATCH also sends the record's version
        fields = set(columns(kind)) if kind else {c for k in SCHEMAS for c in columns(k)}
        payload = {name: body_value for name in sorted(fields | _params(route, "body_params"))}
        if kind and method == "PATCH" and path and path.endswith(IDS[kind]):
            payload["version"] = client.get(path).json().get("version")
            del payload["external_id"]  # "cannot be changed" would be the only answer
        if route.path in {"/api/v1/claims/check"}:
            payload = {"text": body_value, "period": body_value}
        # ensure_ascii keeps a lone surrogate as the escape "\ud800", as a client would send it
        content = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
        return client.request(method, url, content=content, headers=headers)
    form_value = path_value.replace("+", "%2B")
    data = "&".join(f"{name}={form_value}" for name in sorted(_form_fields()))
    data += f"&csrf_token={client.csrf}"  # type: ignore[attr-defined]
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return client.request(method, url, content=data.encode(), headers=headers)


def _json(r: httpx.Response) -> dict[str, Any] | None:
    return r.json() if "json" in r.headers.get("content-type", "") else None


def test_out_of_range_ids_dates_periods_and_surrogates_get_a_4xx_on_every_route(
    admin: tuple[LiveServer, httpx.Client],
) -> None:
    server, client = admin
    routes = list(_routes(server.app.router.routes))
    assert len(routes) > 60  # the walk found the API and the pages
    failures = []
    for route in routes:
        for method in sorted(route.methods - {"HEAD"}):
            if route.path in {"/logout"}:
                continue  # would end the test's session; it takes no input
            for (name, path_value, body_value), path in itertools.product(BAD, [None, *_good_paths(route)]):
                where = f"{method} {path or route.path} [{name}]"
                try:
                    r = _request(client, route, method, path_value, body_value, path)
                except httpx.TransportError as exc:
                    failures.append(f"{where}: no answer ({exc!r})")
                    continue
                if r.status_code >= 500:
                    failures.append(f"{where}: {r.status_code} {r.text[:120]!r}")
                elif r.status_code >= 400 and _json(r) is not None and not _json(r).get("detail"):
                    failures.append(f"{where}: {r.status_code} without a message")
    assert failures == [], "\n".join(failures)


def test_a_lone_surrogate_in_json_is_refused_with_a_message_and_changes_nothing(
    admin: tuple[LiveServer, httpx.Client],
) -> None:
    _, client = admin
    headers = {"X-CSRF-Token": client.csrf, "Content-Type": "application/json"}  # type: ignore[attr-defined]
    body = json.dumps({"name_en": "NGO " + SURROGATE, "external_id": "AG-SURR"}).encode()
    r = client.post("/api/v1/agencies", content=body, headers=headers)
    assert r.status_code == 422 and "surrogate" in r.json()["errors"]["body"]
    assert client.get("/api/v1/agencies/AG-SURR").status_code == 404
    paired = json.dumps({"name_en": "NGO \U0001f600", "external_id": "AG-PAIR"}).encode()  # a valid pair
    assert client.post("/api/v1/agencies", content=paired, headers=headers).status_code == 201


@pytest.mark.parametrize("path", ["/api/v1/reports", "/dashboard", "/reports", "/drill"])
def test_a_period_too_long_is_refused_with_a_message_on_the_api_and_pages(
    admin: tuple[LiveServer, httpx.Client], path: str
) -> None:
    _, client = admin
    extra = "&metric=victims_rescued" if path == "/drill" else ""
    r = client.get(f"{path}?period={TOO_LONG}{extra}")
    assert r.status_code == 422, r.text[:300]
    assert f"longer than {MAX_PERIOD_YEARS} years" in r.text
