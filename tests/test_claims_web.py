"""The claim-checking page and API endpoint, against a real server on the demo data."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer, http_client, sign_in

pytestmark = pytest.mark.web

TEXT = (
    "Phnom Penh, 2 July 2024. In the first half of 2024 the police rescued 290 victims, "
    "241 of whom were women, and arrested 150 suspects."
)


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def test_page_checks_pasted_text_and_links_each_figure_to_its_records(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "viewer")
    form = client.get("/claims")
    assert form.status_code == 200 and 'name="text"' in form.text
    page = client.post("/claims", data={"text": TEXT, "csrf_token": _csrf(form.text)})
    assert page.status_code == 200
    rows = page.text.split('data-testid="claims-results"')[1]
    verdicts = [chunk.split("<")[0] for chunk in rows.split('data-testid="verdict">')[1:]]
    assert verdicts == ["supported", "supported", "contradicted"]
    assert "/drill?metric=victims_rescued&amp;period=2024-H1" in page.text
    assert "/drill?metric=suspects_arrested&amp;period=2024-H1" in page.text
    assert '<mark class="verdict-contradicted"' in page.text
    # the page shows what the records say: 134 suspects arrested (demo 2024-H1)
    assert ">134</a>" in page.text


def test_page_says_when_there_is_nothing_to_check_and_rejects_a_bad_date(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "viewer")
    csrf = _csrf(client.get("/claims").text)
    none = client.post("/claims", data={"text": "The committee met on Tuesday.", "csrf_token": csrf})
    assert none.status_code == 200 and 'data-testid="claims-none"' in none.text
    bad = client.post("/claims", data={"text": TEXT, "as_of": "last week", "csrf_token": csrf})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert client.post("/claims", data={"text": TEXT}).status_code == 403  # no CSRF token


def test_api_answers_one_object_per_claim(live_server: LiveServer) -> None:
    client = sign_in(live_server.url, "analyst")
    csrf = _csrf(client.get("/claims").text)
    r = client.post(
        "/api/v1/claims/check",
        json={"text": "Last year 290 victims were rescued in the first half.", "as_of": "2025-03-01"},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 200, r.text
    (claim,) = r.json()["claims"]
    assert {k: claim[k] for k in ("metric", "period", "claimed", "actual", "verdict")} == {
        "metric": "victims_rescued",
        "period": "2024-H1",
        "claimed": 290,
        "actual": 290,
        "verdict": "supported",
    }
    assert claim["records"] == "/drill?metric=victims_rescued&period=2024-H1"
    empty = client.post(
        "/api/v1/claims/check", json={"text": "Nothing here."}, headers={"x-csrf-token": csrf}
    )
    assert empty.json() == {"claims": [], "message": "no statistical claims found in the text"}
    assert http_client(live_server.url).post("/api/v1/claims/check", json={"text": "x"}).status_code == 401
    too_long = client.post(
        "/api/v1/claims/check", json={"text": "x" * 60_000}, headers={"x-csrf-token": csrf}
    )
    assert too_long.status_code == 422
