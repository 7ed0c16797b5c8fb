"""Person linkage in the web application and the API, against a real server on each database.

Each test builds its own world (seeded synthetic people recorded one to four
times as victims, across two agencies, and a few suspects) in the ``engine``
database, so that confirming a pair never changes the person counts the other
web tests assert on the shared demo database. Runs use the real engine.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis import accounts
from ctis.linkage import service
from ctis.linkage.synthetic import synthetic_people
from ctis.storage.models import Agency, AuditEntry, LinkDecision, LinkRun, Victim
from tests.conftest import PASSWORD, LiveServer, http_client, sign_in
from tests.factories import Fixture

pytestmark = pytest.mark.web

PEOPLE = 120  # about 230 records; seed 7 gives pairs to review
USERS = {
    "officer": ("data_officer", None, "all"),
    "admin": ("administrator", None, "all"),
    "analyst": ("analyst", None, "all"),
    "viewer": ("viewer", "AG-L1", "own"),
    "social": ("social_worker", "AG-L2", "own"),
    "police": ("investigator", "AG-L1", "own"),
}


@dataclass
class World:
    server: LiveServer
    engine: Engine
    tokens: dict[str, str]
    victims: int

    def api(self, user: str) -> httpx.Client:
        return http_client(self.server.url, headers={"Authorization": f"Bearer {self.tokens[user]}"})

    def browser_session(self, user: str) -> httpx.Client:
        return sign_in(self.server.url, user)


def build_world(engine: Engine) -> int:
    """Synthetic victims (the engine's evaluation people) filed by two agencies, and two suspects."""
    frame = synthetic_people(PEOPLE, seed=7)
    fx = Fixture()
    fx.agency(external_id="AG-L1", name_en="Police L1")
    fx.agency(external_id="AG-L2", name_en="Shelter L2")
    for i, row in enumerate(frame.to_dict("records")):
        fields = {k: row[k] for k in ("name_latin", "name_khmer", "date_of_birth", "sex", "nationality",
                                      "province", "phone") if isinstance(row[k], str)}  # fmt: skip
        if isinstance(row["age"], int):
            fields["age"] = row["age"]
        rescued = row["age_on"] if isinstance(row["age_on"], str) else "2024-03-01"
        fx.victim(rescued, external_id=f"VL-{i:04d}", agency="AG-L1" if i % 2 else "AG-L2", **fields)
    fx.victim("2024-03-01", external_id="VL-NONAME", agency="AG-L1")  # nothing to link on
    fx.suspect(
        external_id="SL-1", name_latin="Sok Dara", date_of_birth="1980-02-03", arrest_date="2024-02-01"
    )
    fx.suspect(external_id="SL-2", name_khmer="សុខ ដារា", date_of_birth="1980-02-03", arrest_date="2024-02-02")
    fx.save(engine)
    return len(frame) + 1


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    victims = build_world(engine)
    tokens = {}
    with Session(engine) as s, s.begin():
        agencies = dict(s.execute(select(Agency.external_id, Agency.id)).all())
        for name, (role, agency, scope) in USERS.items():
            user = accounts.create_user(s, name, PASSWORD, role, agency_id=agencies.get(agency), scope=scope)
            tokens[name] = accounts.create_token(s, user, "test")[1]
    server = LiveServer(engine)
    server.app.state.link_interval = 0  # runs back to back; the guard has a test of its own
    yield World(server, engine, tokens, victims)
    server.stop()


def csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


def persons(engine: Engine) -> dict[str, int]:
    """External id -> person id as stored (a record never linked is its own person)."""
    with Session(engine) as s:
        rows = s.execute(select(Victim.external_id, func.coalesce(Victim.person_id, Victim.id)))
        return {str(e): int(p) for e, p in rows}


def external(engine: Engine, pair: str) -> tuple[str, str]:
    lo, hi = (int(x) for x in pair.split("-"))
    with Session(engine) as s:
        ids = dict(s.execute(select(Victim.id, Victim.external_id).where(Victim.id.in_([lo, hi]))).all())
    return ids[lo], ids[hi]


def run(world: World, user: str = "officer", kind: str = "victims") -> dict[str, Any]:
    r = world.api(user).post(f"/api/v1/linkage/{kind}/runs")
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# -- who may ------------------------------------------------------------------------------------------


def test_only_data_officers_and_administrators_reach_linkage(world: World) -> None:
    for user in ("viewer", "analyst", "social", "police"):
        api = world.api(user)
        assert api.post("/api/v1/linkage/victims/runs").status_code == 403, user
        assert api.get("/api/v1/linkage/victims/runs/latest").status_code == 403, user
        assert api.get("/api/v1/linkage/victims/review").status_code == 403, user
        assert api.post("/api/v1/linkage/victims/review/1-2", json={"same": True}).status_code == 403, user
        page = world.browser_session(user)
        for path in ("/linkage", "/linkage/victims/review"):
            r = page.get(path)
            assert r.status_code == 403, (user, path)
        r = page.post("/linkage/victims/run", data={"csrf_token": page.csrf})  # type: ignore[attr-defined]
        assert r.status_code == 403, user
        assert 'href="/linkage"' not in page.get("/dashboard").text, user
    with Session(world.engine) as s:
        assert s.scalar(select(func.count()).select_from(LinkRun)) == 0
    for user in ("officer", "admin"):
        page = world.browser_session(user)
        assert 'href="/linkage"' in page.get("/dashboard").text
        assert page.get("/linkage").status_code == 200
        assert world.api(user).get("/api/v1/linkage/suspects/review").status_code == 200


# -- runs ---------------------------------------------------------------------------------------------


def test_link_now_reports_the_run_and_latest_shows_its_counts(world: World) -> None:
    page = world.browser_session("officer")
    before = page.get("/linkage").text
    assert 'data-testid="never-linked"' in before
    r = page.post("/linkage/victims/run", data={"csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 303 and r.headers["location"].startswith("/linkage?kind=victims&run="), r.text[
        :300
    ]
    shown = page.get(r.headers["location"]).text
    assert 'data-testid="run-result"' in shown and "linkage finished" in shown
    assert re.search(r"Took [\d,]+(\.\d)? seconds", shown)

    latest = world.api("officer").get("/api/v1/linkage/victims/runs/latest")
    assert latest.status_code == 200, latest.text
    body = latest.json()
    stored = persons(world.engine)
    assert body["status"] == "succeeded" and body["error"] is None
    assert body["records"] == world.victims == len(stored)
    assert body["persons"] == len(set(stored.values())) < body["records"]
    assert body["duplicates"] == body["records"] - body["persons"]
    assert body["review_pairs"] >= 1 and body["seconds"] >= body["engine_seconds"] > 0
    assert body["started_by"] == "officer" and body["unlinkable_count"] == len(body["unlinkable"])
    # the page shows the same figures, for the run just made
    for field in ("records", "persons", "review"):
        key = {"review": "review_pairs"}.get(field, field)
        assert re.search(rf'data-field="{field}">{body[key]:,}<', shown), field
    assert f"Review queue ({body['review_pairs']:,})" in shown
    assert body["unlinkable"] == ["VL-NONAME"] and 'href="/records/victims/VL-NONAME"' in shown
    assert stored["VL-NONAME"] not in [p for e, p in stored.items() if e != "VL-NONAME"]
    # suspects are still unlinked, and say so
    assert world.api("officer").get("/api/v1/linkage/suspects/runs/latest").status_code == 404
    report = page.get("/reports?period=2024").text
    assert "counted as records: person linkage has not yet covered every record" in report
    assert world.api("officer").post("/api/v1/linkage/suspects/runs").status_code == 201
    for path in ("/reports?period=2024", "/dashboard?period=2024"):
        shown = page.get(path).text
        assert "counted as persons: records that person linkage found to be one person count once" in shown


def test_a_failed_run_changes_nothing_and_says_so(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(world)
    before = persons(world.engine)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine fell over")

    real = service.run_linkage
    monkeypatch.setattr(service, "run_linkage", lambda *a, **k: real(*a, **k, linker=broken))
    page = world.browser_session("officer")
    r = page.post("/linkage/victims/run", data={"csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 303
    shown = page.get(r.headers["location"]).text
    assert "the run failed" in shown and "the engine fell over" in shown
    assert "Nothing was changed" in shown
    assert 'data-testid="latest-failed"' in shown
    assert persons(world.engine) == before
    latest = world.api("officer").get("/api/v1/linkage/victims/runs/latest").json()
    assert latest["status"] == "failed" and "the engine fell over" in latest["error"]
    assert latest["id"] > first["id"]
    # the overview still shows the identities in force: those of the last successful run
    assert re.search(rf'data-field="persons">{first["persons"]:,}<', page.get("/linkage").text)


def test_runs_too_close_together_are_refused(world: World) -> None:
    world.server.app.state.link_interval = 3600
    run(world)
    again = world.api("officer").post("/api/v1/linkage/victims/runs", json={"retrain": False})
    assert again.status_code == 429 and int(again.headers["retry-after"]) > 0
    assert "try again" in again.json()["detail"]
    page = world.browser_session("officer")
    r = page.post("/linkage/victims/run", data={"csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 429 and 'data-testid="run-refused"' in r.text
    with Session(world.engine) as s:
        assert s.scalar(select(func.count()).select_from(LinkRun)) == 1


# -- review -------------------------------------------------------------------------------------------


def test_decisions_are_recorded_and_honoured_by_the_next_run(world: World) -> None:
    run(world)
    api = world.api("officer")
    queue = api.get("/api/v1/linkage/victims/review", params={"per_page": 100}).json()
    items = queue["items"]
    for item in items:
        assert item["reason"] == "uncertain" and 0.2 <= item["probability"] < 0.95
        assert item["left"]["masked"] == [] and item["left"]["external_id"].startswith("VL-")
        # more likely than not the same person (the run's match threshold, 0.5): linked; a less
        # probable pair may be one person too, through links with other records
        assert item["linked"] or item["probability"] < 0.5, item
    # a linked pair: rejected, its records are parted at once and stay apart after a run; confirmed
    # again afterwards, they are merged at once
    linked = [i["pair"] for i in items if i["linked"] and i["probability"] >= 0.5]
    assert linked and len(items) >= 2, len(items)
    first = linked[0]
    a, b = external(world.engine, first)
    assert persons(world.engine)[a] == persons(world.engine)[b]
    made = api.post(f"/api/v1/linkage/victims/review/{first}", json={"same": False})
    assert made.status_code == 200 and made.json()["same"] is False and made.json()["decided_by"] == "officer"
    assert made.json()["merged"] is False and made.json()["split"] is True
    assert persons(world.engine)[a] != persons(world.engine)[b]  # parted at once
    again = run(world)  # retrained, and honouring the rejection
    assert again["status"] == "succeeded"
    assert persons(world.engine)[a] != persons(world.engine)[b]
    pending = {
        i["pair"] for i in api.get("/api/v1/linkage/victims/review", params={"per_page": 100}).json()["items"]
    }
    assert first not in pending

    page = world.browser_session("officer")
    r = page.post(f"/linkage/victims/review/{first}", data={"same": "1", "csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 303 and "done=same" in r.headers["location"]
    after = page.get(r.headers["location"]).text
    assert 'data-testid="decided"' in after and f'data-pair="{first}"' not in after
    assert persons(world.engine)[a] == persons(world.engine)[b]  # merged at once
    with Session(world.engine) as s:
        decisions = {f"{d.record_id_l}-{d.record_id_r}": d.same for d in s.scalars(select(LinkDecision))}
        actions = [e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "link-decide"))]
    assert decisions == {first: True} and len(actions) == 2  # the verdict replaced, both audited
    assert run(world)["status"] == "succeeded"
    assert persons(world.engine)[a] == persons(world.engine)[b]

    # a record changed since: the decision is flagged, shown as such, and no longer applied
    edit = world.api("admin").patch(f"/api/v1/victims/{a}", json={"version": 1, "name_latin": "Someone Else"})
    assert edit.status_code == 200, edit.text
    run(world)
    items = api.get("/api/v1/linkage/victims/review", params={"per_page": 100}).json()["items"]
    stale = [i for i in items if i["pair"] == first]
    assert stale and stale[0]["reason"] == "changed" and stale[0]["previous"] is True
    shown = page.get("/linkage/victims/review").text
    assert 'data-testid="stale"' in shown and "Changed since decided" in shown


def test_the_review_page_compares_field_by_field_and_is_audited(world: World) -> None:
    run(world)
    page = world.browser_session("officer")
    with Session(world.engine) as s:
        audited = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "list"))
    html = page.get("/linkage/victims/review").text
    pairs = re.findall(r'data-pair="(\d+-\d+)"', html)
    assert pairs
    compared = ("name_latin", "name_khmer", "date_of_birth", "age", "sex", "nationality", "province",
                "phone", "agency", "event_date")  # fmt: skip
    for field in compared:
        assert f'data-field="{field}"' in html, field
    a, b = external(world.engine, pairs[0])
    assert f'href="/records/victims/{a}"' in html and f'href="/records/victims/{b}"' in html
    assert "Same person" in html and "Different people" in html and 'data-testid="masked"' not in html
    assert 'data-testid="linked"' in html  # a link made at "more likely than not", to confirm
    with Session(world.engine) as s:
        entries = list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == "list").order_by(AuditEntry.id))
        )
    assert len(entries) == (audited or 0) + 1
    detail = json.loads(entries[-1].detail or "{}")
    assert detail["purpose"] == "linkage review" and detail["identified"] is True
    # in Khmer, with Khmer labels
    lang = {"lang": "km", "next": "/linkage/victims/review", "csrf_token": page.csrf}  # type: ignore[attr-defined]
    assert page.post("/lang", data=lang).status_code == 303
    km = page.get("/linkage/victims/review").text
    assert "មនុស្សតែម្នាក់" in km and "Same person" not in km


def test_csrf_is_required(world: World) -> None:
    run(world)
    page = world.browser_session("officer")
    pair = page.get("/api/v1/linkage/victims/review").json()["items"][0]["pair"]
    assert page.post("/linkage/victims/run", data={}).status_code == 403
    assert page.post("/linkage/victims/run", data={"csrf_token": "forged"}).status_code == 403
    assert page.post(f"/linkage/victims/review/{pair}", data={"same": "1"}).status_code == 403
    assert page.post("/api/v1/linkage/victims/runs").status_code == 403
    assert page.post(f"/api/v1/linkage/victims/review/{pair}", json={"same": True}).status_code == 403
    evil = {**csrf(page), "Origin": "https://evil.example"}
    assert (
        page.post(f"/api/v1/linkage/victims/review/{pair}", json={"same": True}, headers=evil).status_code
        == 403
    )
    with Session(world.engine) as s:
        assert s.scalar(select(func.count()).select_from(LinkDecision)) == 0
        assert s.scalar(select(func.count()).select_from(LinkRun)) == 1
    ok = page.post(f"/api/v1/linkage/victims/review/{pair}", json={"same": True}, headers=csrf(page))
    assert ok.status_code == 200, ok.text


#: (method, path, JSON body, expected status): each must answer that status with a message.
BAD_INPUT = [
    ("post", "/api/v1/linkage/cases/runs", None, 422),
    ("get", "/api/v1/linkage/nobody/runs/latest", None, 422),
    ("get", "/api/v1/linkage/victims/review?page=0", None, 422),
    ("get", "/api/v1/linkage/victims/review?per_page=1000", None, 422),
    ("get", "/api/v1/linkage/victims/review?page=999", None, 422),
    ("post", "/api/v1/linkage/victims/runs", {"retrain": "sometimes"}, 422),
    ("post", "/api/v1/linkage/victims/runs", {"engine": "spark"}, 422),
    ("post", "/api/v1/linkage/victims/review/1-x", {"same": True}, 422),
    ("post", "/api/v1/linkage/victims/review/99999-99998", {"same": True}, 404),
    ("post", "/api/v1/linkage/victims/review/7-7", {"same": True}, 404),
    ("post", "/api/v1/linkage/victims/review/1-2", {"same": "yes"}, 422),
    ("post", "/api/v1/linkage/victims/review/1-2", {}, 422),
    ("post", "/api/v1/linkage/victims/review/1-2", {"same": True, "why": "x"}, 422),
    ("post", "/api/v1/linkage/victims/review/1-2", [1], 422),
    ("get", "/api/v1/persons/victims/NO-SUCH", None, 404),
    ("get", "/api/v1/persons/cases/VL-0001", None, 422),
    ("get", "/api/v1/persons/victims/a%00b", None, 422),
]


def test_bad_input_gets_a_4xx_with_a_message(world: World) -> None:
    api = world.api("officer")
    wrong = []
    for method, path, body, status in BAD_INPUT:
        r = getattr(api, method)(path, **({"json": body} if body is not None else {}))
        if r.status_code != status or not r.json().get("detail"):
            wrong.append(f"{method} {path} {body!r}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)


def test_bad_page_input_gets_a_4xx_page(world: World) -> None:
    page = world.browser_session("officer")
    assert page.get("/linkage/cases/review").status_code == 404
    assert page.get("/persons/victims/NO-SUCH").status_code == 404
    assert page.get("/linkage?kind=victims&run=424242").status_code == 404
    r = page.post("/linkage/victims/review/1-2", data={"same": "maybe", "csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 422
    r = page.post("/linkage/victims/review/1-2", data={"same": "1", "csrf_token": page.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 404  # not in the queue: nothing was ever run


# -- persons ------------------------------------------------------------------------------------------


def _linked_person(world: World) -> list[str]:
    """External ids of a person with records filed by both agencies."""
    stored = persons(world.engine)
    groups: dict[int, list[str]] = {}
    for ext, pid in stored.items():
        groups.setdefault(pid, []).append(ext)
    for members in groups.values():
        if len(members) < 2 or "VL-NONAME" in members:
            continue
        if {int(m.split("-")[1]) % 2 for m in members} == {0, 1}:
            return sorted(members)
    pytest.fail("no person with records from both agencies")


def test_person_view_and_the_record_page_link(world: World) -> None:
    run(world)
    members = _linked_person(world)
    officer = world.browser_session("officer")
    record = officer.get(f"/records/victims/{members[0]}").text
    assert f"This person has {len(members)} records" in record
    assert f'href="/persons/victims/{members[0]}"' in record
    page = officer.get(f"/persons/victims/{members[-1]}").text
    for ext in members:
        assert f'href="/records/victims/{ext}"' in page
    body = world.api("officer").get(f"/api/v1/persons/victims/{members[0]}").json()
    assert body["count"] == len(members) and [r["external_id"] for r in body["records"]] == members
    assert any(r["name_latin"] or r["name_khmer"] for r in body["records"])
    with Session(world.engine) as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert last.action == "list" and json.loads(last.detail or "{}")["purpose"] == "person records"


def test_person_view_masks_and_keeps_to_the_agency_scope(world: World) -> None:
    run(world)
    members = _linked_person(world)
    own = [m for m in members if int(m.split("-")[1]) % 2 == 1]  # AG-L1: the viewer's agency
    viewer = world.browser_session("viewer")
    page = viewer.get(f"/persons/victims/{own[0]}")
    assert page.status_code == 200
    assert 'data-testid="masked"' in page.text
    api = world.api("viewer").get(f"/api/v1/persons/victims/{own[0]}").json()
    assert [r["external_id"] for r in api["records"]] == own  # the other agency's records stay hidden
    for r in api["records"]:
        assert r["name_latin"] is None and r["name_khmer"] is None and r["phone"] is None
        assert set(r["masked"]) >= {"name_latin", "name_khmer", "date_of_birth", "phone"}
    with Session(world.engine) as s:
        ids = list(s.scalars(select(Victim.id).where(Victim.external_id.in_(own))))
        opened = service.read_fields(s, "victims", service.load_key_ring(), ids)[0]
    shown = [v for rec in opened.values() for v in (rec["name_latin"], rec["name_khmer"], rec["phone"]) if v]
    assert shown and not [v for v in shown if v in page.text]
    other = next(m for m in members if m not in own)
    assert world.api("viewer").get(f"/api/v1/persons/victims/{other}").status_code == 404


# -- in a browser -------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.mark.browser
@pytest.mark.slow
def test_a_data_officer_confirms_a_pair_in_the_browser(world: World, backend: str) -> None:
    """The queue under the CSP in both languages (screenshots in tests/artifacts/), then a confirmation."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CTIS_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests need {CHROMIUM} (apt-get install chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import ARGS

    run(world)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        page.goto(world.server.url + "/login")
        page.fill("input[name=username]", "officer")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/dashboard"))
        page.get_by_role("link", name="Person linkage").click()
        page.get_by_test_id("review-victims").click()
        page.wait_for_url(re.compile(r"/linkage/victims/review"))
        first = page.get_by_test_id("pair").first
        expect(first).to_be_visible()
        pair = first.get_attribute("data-pair")
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("document.fonts.ready.then(() => true)")
        page.screenshot(path=str(ARTIFACTS / f"linkage_review_en_{backend}.png"), full_page=False)
        page.get_by_test_id("lang-km").click()
        expect(page.locator("h1")).to_contain_text("ជួរពិនិត្យ")
        page.evaluate("document.fonts.ready.then(() => true)")
        page.screenshot(path=str(ARTIFACTS / f"linkage_review_km_{backend}.png"), full_page=False)
        page.get_by_test_id("pair").first.get_by_test_id("same").click()
        page.wait_for_url(re.compile(r"done=same"))
        expect(page.get_by_test_id("decided")).to_contain_text("មនុស្សតែម្នាក់")
        expect(page.locator(f'[data-pair="{pair}"]')).to_have_count(0)
        page.get_by_role("link", name="ការភ្ជាប់អត្តសញ្ញាណបុគ្គល").first.click()
        expect(page.get_by_test_id("linkage-victims")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"linkage_overview_km_{backend}.png"), full_page=True)
        context.close()
        browser.close()
    assert not errors, "the browser logged errors:\n" + "\n".join(errors)
    a, b = external(world.engine, str(pair))
    assert persons(world.engine)[a] == persons(world.engine)[b]
    with Session(world.engine) as s:
        decision = s.scalars(select(LinkDecision)).one()
    assert decision.same and decision.decided_by == "officer"
