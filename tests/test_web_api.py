"""The API and sign-in against a real server on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.conftest import PASSWORD, REDIS_URL, LiveServer, form_token, http_client, post_login, sign_in

pytestmark = pytest.mark.web


def test_sign_in_rotates_session_and_sign_out_kills_it(live_server: LiveServer) -> None:
    client = http_client(live_server.url)
    client.cookies.set("ctis_session", "planted-by-an-attacker", domain="127.0.0.1")
    r = post_login(client, "analyst", PASSWORD)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    session_id = client.cookies.get("ctis_session")
    assert session_id and session_id != "planted-by-an-attacker"
    assert client.get("/dashboard").status_code == 200
    page = client.get("/account").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    stale = http_client(live_server.url, cookies={"ctis_session": session_id})
    assert stale.get("/dashboard").status_code == 303  # back to sign-in
    assert stale.get("/api/v1/me").status_code == 401


def test_unknown_account_and_wrong_password_get_the_same_answer(live_server: LiveServer) -> None:
    answers = []
    for username in ("viewer", "nobody-by-this-name"):
        client = http_client(live_server.url)
        started = time.perf_counter()
        r = post_login(client, username, "wrong password!!")
        page = r.text.replace(username, "X").replace(client.cookies["ctis_csrf"], "T")  # each its own token
        answers.append((r.status_code, page, time.perf_counter() - started))
    assert answers[0][:2] == answers[1][:2]
    assert answers[0][0] == 401


def test_sign_in_rate_limit_answers_429_with_retry_after(live_server: LiveServer) -> None:
    client = http_client(live_server.url)
    codes = [post_login(client, "ratelimited", "x" * 12).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    r = post_login(client, "ratelimited", "x" * 12)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


@pytest.fixture(params=["memory", "redis"])
def guarded_server(request: pytest.FixtureRequest, web_engine: Engine) -> Iterator[LiveServer]:
    """A server of its own (fresh sign-in windows), limited in process or through Redis."""
    server = LiveServer(web_engine)
    if request.param == "redis":
        from ctis.security.ratelimit import SIGN_IN_LIMITS, RedisRateLimiter

        server.app.state.limiter = RedisRateLimiter(
            SIGN_IN_LIMITS, REDIS_URL, prefix=request.getfixturevalue("prefix")
        )
    yield server
    server.stop()
    server.app.state.limiter.close()


def test_parallel_guesses_cannot_beat_the_account_limit(
    guarded_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16 browsers guess viewer's password at the same moment; the account allows 5 failures.
    from ctis import accounts

    verified: list[str] = []
    real_verify = accounts.verify_password

    def slow_verify(stored: str | None, password: str) -> tuple[bool, bool]:
        verified.append(password)
        time.sleep(0.2)  # argon2 at full cost takes this long; here it is cheap
        return real_verify(stored, password)

    monkeypatch.setattr(accounts, "verify_password", slow_verify)
    clients = [http_client(guarded_server.url) for _ in range(16)]
    tokens = [form_token(client) for client in clients]
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def guess(i: int) -> None:
        start.wait()
        data = {"username": "viewer", "password": f"wrong guess {i:02}!!", "csrf_token": tokens[i]}
        codes.append(clients[i].post("/login", data=data).status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(verified) == 5, f"{len(verified)} guesses reached the password check"
    assert sorted(codes) == [401] * 5 + [429] * 11
    # Another account from the same address still signs in, and a success is not a failure.
    for _ in range(3):
        assert post_login(http_client(guarded_server.url), "analyst", PASSWORD).status_code == 303
    assert len(verified) == 8


def test_sign_in_and_language_forms_need_their_csrf_token(live_server: LiveServer) -> None:
    # Login CSRF: a page elsewhere posts the attacker's credentials from the victim's browser.
    victim, other = http_client(live_server.url), http_client(live_server.url)
    token, foreign = form_token(victim), form_token(other)
    assert token != foreign
    form = {"username": "analyst", "password": PASSWORD, "next": "/dashboard"}
    forged = [
        victim.post("/login", data=form),  # no token at all
        victim.post("/login", data={**form, "csrf_token": foreign}),  # another browser's
        victim.post("/login", data={**form, "csrf_token": "ä" * 43}),  # not even ASCII
        victim.post("/login", data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"}),
        victim.post("/login", data={**form, "csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}),
        http_client(live_server.url).post("/login", data={**form, "csrf_token": token}),  # no cookie
    ]
    assert [r.status_code for r in forged] == [403] * len(forged), [r.text[:200] for r in forged]
    assert all("ctis_session" not in r.headers.get("set-cookie", "") for r in forged)
    assert "reload the page" in forged[0].text
    assert victim.post("/lang", data={"lang": "km"}).status_code == 403
    assert victim.post("/lang", data={"lang": "km", "csrf_token": foreign}).status_code == 403
    assert "ctis_lang" not in victim.cookies
    assert victim.post("/lang", data={"lang": "km", "csrf_token": token}).status_code == 303
    assert victim.cookies["ctis_lang"] == "km"
    # The real form signs in, and the language forms of signed-in pages carry the session's token.
    assert victim.post("/login", data={**form, "csrf_token": token}).status_code == 303
    session_token = form_token(victim, "/account")
    assert session_token != token
    assert victim.post("/lang", data={"lang": "en", "csrf_token": session_token}).status_code == 303
    assert victim.post("/lang", data={"lang": "km", "csrf_token": foreign}).status_code == 403


def test_forwarded_for_counts_only_from_a_trusted_proxy(
    web_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Believed blindly, X-Forwarded-For gives every guess a fresh address and beats the address limit.
    monkeypatch.delenv("CTIS_TRUSTED_PROXIES", raising=False)
    server = LiveServer(web_engine)  # fresh sign-in windows, not the shared server's
    try:
        client = http_client(server.url)

        def guess(i: int, forwarded: str) -> int:
            r = post_login(client, f"nobody-{i}", "wrong password!!", headers={"X-Forwarded-For": forwarded})
            return r.status_code

        codes = [guess(i, f"203.0.113.{i}") for i in range(21)]
        assert codes == [401] * 20 + [429]  # 20 failures from one address (127.0.0.1), whatever it claims
        monkeypatch.setenv("CTIS_TRUSTED_PROXIES", "127.0.0.1")
        assert guess(21, "203.0.113.21") == 401  # our proxy's word: another client
        assert guess(22, "203.0.113.22, 127.0.0.1") == 401
        assert guess(23, "203.0.113.21") == 401  # that client's second failure
    finally:
        server.stop()


def test_security_headers(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "social")
    r = client.get("/records/victims")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


def test_csrf_is_required_for_state_changes(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "officer")
    body = {"external_id": "AG-CSRF", "name_en": "CSRF test agency"}
    assert client.post("/api/v1/agencies", json=body).status_code == 403
    assert client.post("/api/v1/agencies", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    evil = {"X-CSRF-Token": client.csrf, "Origin": "https://evil.example"}  # type: ignore[attr-defined]
    assert client.post("/api/v1/agencies", json=body, headers=evil).status_code == 403
    ok = client.post("/api/v1/agencies", json=body, headers={"X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert ok.status_code == 201, ok.text


def test_report_and_drill_down_through_the_api(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "analyst")
    r = client.get("/api/v1/reports", params={"period": "2024-H1", "by": "sex"})
    data = r.json()
    assert data["metrics"]["cases_cracked_down"] == 104
    assert data["by"]["sex"]["victims_rescued"]["female"] == 241
    drill = client.get("/api/v1/metrics/victims_rescued_minor/records", params={"period": "2024-H1"}).json()
    assert drill["count"] == 134 and len(drill["records"]) == 134
    csv = client.get("/api/v1/reports", params={"period": "2024-H1", "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and "victims_rescued,total,,,290" in csv.text
    assert client.get("/api/v1/reports", params={"period": "2024-H7"}).status_code == 422
    assert client.get("/api/v1/metrics").status_code == 200


def test_viewer_never_receives_a_name(live_server: LiveServer) -> None:
    viewer = sign_in(live_server.url, "viewer")
    page = viewer.get("/api/v1/victims", params={"per_page": 200}).json()
    for item in page["items"]:
        assert item["name_latin"] is None and item["name_khmer"] is None and item["date_of_birth"] is None
        assert "name_latin" in item["masked"]
    social = sign_in(live_server.url, "social")
    named = social.get("/api/v1/victims", params={"per_page": 50}).json()["items"]
    assert any(i["name_latin"] or i["name_khmer"] for i in named)


def test_concurrent_edit_gets_409_and_loses_nothing(live_server: LiveServer) -> None:
    a = sign_in(live_server.url, "officer")
    b = sign_in(live_server.url, "admin")
    h = {"X-CSRF-Token": a.csrf}  # type: ignore[attr-defined]
    created = a.post(
        "/api/v1/operations",
        headers=h,
        json={
            "external_id": "OP-CONFLICT",
            "operation_date": "2024-05-01",
            "province": "KH-12",
            "operation_kind": "raid",
        },
    )
    assert created.status_code == 201, created.text
    v = created.json()["version"]
    first = b.patch(
        "/api/v1/operations/OP-CONFLICT",
        headers={"X-CSRF-Token": b.csrf},  # type: ignore[attr-defined]
        json={"version": v, "description": "edited by admin"},
    )
    assert first.status_code == 200 and first.json()["version"] == v + 1
    second = a.patch("/api/v1/operations/OP-CONFLICT", headers=h, json={"version": v, "description": "mine"})
    assert second.status_code == 409
    assert second.json()["current"]["description"] == "edited by admin"


def test_api_tokens_work_and_die_when_revoked(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "analyst")
    made = client.post("/api/v1/tokens", json={"name": "script"}, headers={"X-CSRF-Token": client.csrf})  # type: ignore[attr-defined]
    assert made.status_code == 201
    secret, token_id = made.json()["secret"], made.json()["id"]
    bot = http_client(live_server.url, headers={"Authorization": f"Bearer {secret}"})
    assert bot.get("/api/v1/me").json()["role"] == "analyst"
    assert bot.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    assert bot.get("/api/v1/me").status_code == 401


def test_a_token_cannot_mint_tokens_and_a_new_password_ends_them(
    live_server: LiveServer, web_engine: Engine
) -> None:
    import uuid

    from sqlalchemy.orm import Session

    from ctis import accounts

    username = f"tokens-{uuid.uuid4().hex[:8]}"  # an account of its own: its password changes
    with Session(web_engine) as session, session.begin():
        accounts.create_user(session, username, PASSWORD, "analyst")
    client = sign_in(live_server.url, username)
    headers = {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    secret = client.post("/api/v1/tokens", json={"name": "script"}, headers=headers).json()["secret"]
    bot = http_client(live_server.url, headers={"Authorization": f"Bearer {secret}"})
    # A stolen token must not make heirs that outlive its revocation.
    minted = bot.post("/api/v1/tokens", json={"name": "heir"})
    assert minted.status_code == 403 and "cannot create tokens" in minted.json()["detail"]
    assert bot.post("/account/tokens", data={"name": "heir"}).status_code == 403
    assert len(bot.get("/api/v1/tokens").json()) == 1
    # The password changes: the sessions and the tokens made with the old one stop.
    new = {"current": PASSWORD, "new": "another-" + PASSWORD, "csrf_token": client.csrf}  # type: ignore[attr-defined]
    assert client.post("/account/password", data=new).status_code == 303
    assert bot.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        (
            "post",
            "/api/v1/victims",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("post", "/api/v1/victims", {"json": {"external_id": "V-BAD", "rescue_date": "soon"}}, 422),
        (
            "post",
            "/api/v1/victims",
            {"json": {"external_id": "V-BAD2", "rescue_date": "2024-01-01", "colour": "red"}},
            422,
        ),
        ("post", "/api/v1/victims", {"json": [1, 2, 3]}, 422),
        (
            "post",
            "/api/v1/victims",
            {"content": b"x" * 2_000_000, "headers": {"content-type": "application/json"}},
            413,
        ),
        ("get", "/api/v1/victims?page=999999", {}, 422),
        ("get", "/api/v1/victims?per_page=100000", {}, 422),
        ("get", "/api/v1/victims?sort=name_latin", {}, 422),
        ("get", "/api/v1/victims/NO-SUCH-ID", {}, 404),
        ("patch", "/api/v1/victims/VIC-00001", {"json": {"sex": "female"}}, 422),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(
    live_server: LiveServer, method: str, path: str, kwargs: dict, status: int
) -> None:
    client = sign_in(live_server.url, "officer")
    kwargs.setdefault("headers", {})["X-CSRF-Token"] = client.csrf  # type: ignore[attr-defined]
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text[:300]
    assert r.json()["detail"]


def test_the_khmer_dashboard_names_countries_in_khmer(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "analyst")
    client.cookies.set("ctis_lang", "en", domain="127.0.0.1")
    english = client.get("/dashboard?period=2024").text
    client.cookies.set("ctis_lang", "km", domain="127.0.0.1")
    khmer = client.get("/dashboard?period=2024").text
    assert "Thailand" in english and "ថៃ" not in english
    assert "ថៃ" in khmer and "Thailand" not in khmer
