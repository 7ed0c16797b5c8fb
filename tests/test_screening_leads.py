"""Screening into the case system: leads linked to cases, record phones matched against networks,
and the trend of flagged posts (the registry's ``posts_flagged``).

Posts are stored directly as rows here (their screening is tested in
``test_screening.py``), so each test states exactly which posts, dates,
languages and contact points it counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis import accounts
from ctis.domain.periods import parse_period
from ctis.metrics import compute_report, drill_down
from ctis.records import Invalid, NotFound
from ctis.screening import leads, matching, trend
from ctis.screening.matching import phone_contacts
from ctis.security.permissions import Actor, Forbidden
from ctis.storage.models import (
    Agency,
    AuditEntry,
    Case,
    ScreenedPost,
    ScreeningContact,
    ScreeningLead,
    ScreeningNetwork,
)
from tests.conftest import LiveServer, http_client, sign_in
from tests.factories import Fixture

ADMIN = Actor(9, "root", "administrator", agency_id=None, scope="all")
ANALYST = Actor(1, "ana", "analyst", agency_id=None, scope="all")
VIEWER = Actor(3, "vera", "viewer", agency_id=None, scope="own")

PHONE = "+855 12 345 678"  # as a recruiter's number is written in a post
PHONE_E164 = "phone:+85512345678"


def _post(
    session: Session,
    post_id: str,
    posted_at: datetime | None,
    *,
    flagged: bool = True,
    language: str = "en",
    network: str | None = None,
    contacts: tuple[str, ...] = (),
) -> None:
    session.add(ScreenedPost(
        id=post_id, text=f"post {post_id}", posted_at=posted_at, language=language,
        score=0.9 if flagged else 0.1, flagged=flagged, indicators="[]", entities="{}", features="[]",
        network_id=network, status="new", signature=b"", ingested_by="test",
    ))  # fmt: skip
    session.flush()
    session.add_all(ScreeningContact(post_id=post_id, contact=c) for c in contacts)


def _network(
    session: Session, network_id: str, contacts: dict[str, int], merged_into: str | None = None
) -> None:
    session.add(ScreeningNetwork(
        id=network_id, status="new", size=2, languages='["en"]', contacts=json.dumps(contacts),
        merged_into=merged_into,
    ))  # fmt: skip


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    """Two agencies, a case of each, a victim with the recruiter's number and one with another number,
    and a network of two posts that carry the recruiter's number."""
    f = Fixture()
    f.agency(external_id="AG-POL", name_en="Police")
    f.agency(external_id="AG-OTHER", name_en="Other police")
    f.case(external_id="CASE-POL", agency="AG-POL")
    f.case(external_id="CASE-OTHER", agency="AG-OTHER")
    f.victim("2024-05-01", external_id="VIC-MATCH", name_latin="Sokha Test", phone="012 345 678",
             case="CASE-POL", agency="AG-POL")  # fmt: skip
    f.victim("2024-05-01", external_id="VIC-OTHER", name_latin="Dara Test", phone="012 345 679",
             case="CASE-POL", agency="AG-POL")  # fmt: skip
    f.save(engine)
    with Session(engine) as s, s.begin():
        _network(s, "NW-1", {PHONE_E164: 2, "telegram:jobs_kh": 1})
        _post(s, "p1", datetime(2025, 2, 3), network="NW-1", contacts=(PHONE_E164, "telegram:jobs_kh"))
        _post(s, "p2", datetime(2025, 2, 4), network="NW-1", contacts=(PHONE_E164,))
        _post(s, "lonely", datetime(2025, 2, 5), contacts=("phone:+66812345678",))
        agencies = {ext: i for ext, i in s.execute(select(Agency.external_id, Agency.id)).all()}
    police = Actor(2, "ivan", "investigator", agency_id=agencies["AG-POL"], scope="own")
    return {"agencies": agencies, "police": police}


def _leads(engine: Engine) -> list[ScreeningLead]:
    with Session(engine) as s:
        return list(s.scalars(select(ScreeningLead).order_by(ScreeningLead.id)))


def _audit(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# -- leads -------------------------------------------------------------------------------------------------


def test_refer_a_post_to_an_existing_case_and_to_a_new_case(engine: Engine, world: dict[str, Any]) -> None:
    with Session(engine) as s, s.begin():
        lead = leads.refer(
            s, ANALYST, "post", "p1", case="CASE-OTHER", note="same number as a rescued victim"
        )
    assert lead["case"] == "CASE-OTHER" and lead["subject"] == "post" and not lead["case_created"]
    assert lead["contacts"] == ["phone:#1", "telegram:jobs_kh"] and lead["network"] == "NW-1"
    assert PHONE_E164 in str(_leads(engine)[0].contacts)  # kept as found; aliased for this reader only
    with Session(engine) as s, s.begin():
        new_case = {"offence_type": "forced_criminality", "opened_on": "2025-02-10"}
        opened = leads.refer(s, world["police"], "post", "p2", new_case=new_case)
        case = s.scalars(select(Case).where(Case.external_id == opened["case"])).one()
        assert case.offence_type == "forced_criminality" and case.created_by == "ivan"
        assert case.agency_id == world["agencies"]["AG-POL"]  # filed under the referrer's agency
        assert s.get(ScreenedPost, "p1").status == "referred"  # type: ignore[union-attr]
    assert opened["case_created"]
    assert [(x.post_id, x.created_by) for x in _leads(engine)] == [("p1", "ana"), ("p2", "ivan")]
    assert _audit(engine).count("screening.refer") == 2
    with Session(engine) as s, s.begin():
        on_case = leads.leads_of_case(s, ADMIN, "CASE-OTHER")
        on_post = leads.leads_of(s, ANALYST, "post", "p1")
        on_network = leads.leads_of(s, ANALYST, "network", "NW-1")
        assert leads.leads_of_case(s, VIEWER, "CASE-OTHER") == []  # no screening:read
    assert [x["post"] for x in on_case] == ["p1"] and on_case[0]["note"] == "same number as a rescued victim"
    assert on_post[0]["case"] == "CASE-OTHER"
    assert {x["post"] for x in on_network} == {"p1", "p2"}  # a post's lead is its network's too


def test_a_case_outside_the_referrers_agency_and_bad_input_make_no_lead(
    engine: Engine, world: dict[str, Any]
) -> None:
    police = world["police"]
    attempts: list[tuple[Actor, dict[str, Any], type[Exception]]] = [
        (police, {"subject_id": "p1", "case": "CASE-OTHER"}, NotFound),  # another agency's case
        (police, {"subject_id": "p1", "case": "CASE-NONE"}, NotFound),
        (police, {"subject_id": "nope", "case": "CASE-POL"}, NotFound),  # unknown post
        (police, {"subject_id": "p1"}, Invalid),  # neither a case nor a new case
        (police, {"subject_id": "p1", "case": "CASE-POL", "new_case": {"offence_type": "other"}}, Invalid),
        (police, {"subject_id": "p1", "new_case": {"offence_type": "no_such_offence"}}, Invalid),
        (
            police,
            {"subject_id": "p1", "new_case": {"offence_type": "other", "agency": "AG-OTHER"}},
            Forbidden,
        ),
        (police, {"subject_id": "p1", "case": "CASE-POL", "note": "x" * 2001}, Invalid),
        (ANALYST, {"subject_id": "p1", "new_case": {"offence_type": "other"}}, Forbidden),  # no cases:write
        (VIEWER, {"subject_id": "p1", "case": "CASE-POL"}, Forbidden),
    ]
    for actor, kwargs, error in attempts:
        subject_id = kwargs.pop("subject_id")
        with pytest.raises(error), Session(engine) as s, s.begin():
            leads.refer(s, actor, "post", subject_id, **kwargs)
    assert _leads(engine) == []
    with Session(engine) as s:
        assert s.get(ScreenedPost, "p1").status == "new"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Case)) == 2  # no half-made case either
    with pytest.raises(NotFound, match="outside your agency"), Session(engine) as s, s.begin():
        leads.refer(s, police, "post", "p1", case="CASE-OTHER")


def test_refer_a_network_and_mark_networks(engine: Engine, world: dict[str, Any]) -> None:
    with Session(engine) as s, s.begin():
        _network(s, "NW-OLD", {"telegram:old_kh": 1}, merged_into="NW-1")
    with Session(engine) as s, s.begin():
        lead = leads.refer(s, world["police"], "network", "NW-OLD", case="CASE-POL")  # merged: the survivor
        assert leads.set_network_status(s, ANALYST, "NW-1", "watch") == {"id": "NW-1", "status": "watch"}
        with pytest.raises(Invalid):
            leads.set_network_status(s, ANALYST, "NW-1", "referred")
        with pytest.raises(Forbidden):
            leads.set_network_status(s, world["police"], "NW-1", "benign")  # no screening:write
        with pytest.raises(NotFound):
            leads.set_network_status(s, ANALYST, "NW-NONE", "benign")
    assert lead["network"] == "NW-1" and lead["post"] is None and lead["subject"] == "network"
    assert lead["contacts"] == ["phone:#1", "telegram:jobs_kh"]  # most used first; numbers aliased
    with Session(engine) as s:
        assert [x.network_id for x in s.scalars(select(ScreeningLead))] == ["NW-1"]
    assert {"screening.refer", "screening.network_status"} <= set(_audit(engine))


# -- contact matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "contact"),
    [("012 345 678", PHONE_E164), ("+855 12 345 678", PHONE_E164), ("០១២ ៣៤៥ ៦៧៨", PHONE_E164),
     ("(+855) 12-345-678", PHONE_E164), ("not a phone", None), ("", None)],
)  # fmt: skip
def test_record_phones_are_normalised_as_posts_are(written: str, contact: str | None) -> None:
    assert phone_contacts(written) == ([contact] if contact else [])


def test_a_victim_whose_phone_is_in_a_network_is_matched_only_for_roles_that_identify_victims(
    engine: Engine, world: dict[str, Any]
) -> None:
    """A match says whose number it is: analysts and investigators (who may not identify victims)
    get neither the victim's record nor a count of it, on the network or on the record."""
    with Session(engine) as s, s.begin():
        seen_by_admin = matching.network_matches(s, ADMIN, "NW-1")
        seen_by_analyst = matching.network_matches(s, ANALYST, "NW-1")
        seen_by_police = matching.network_matches(s, world["police"], "NW-1")
        on_victim = matching.record_networks(s, ANALYST, "victims", "VIC-MATCH")
        on_other = matching.record_networks(s, ADMIN, "victims", "VIC-OTHER")
        on_case = matching.record_networks(s, ADMIN, "cases", "CASE-POL")
        assert matching.record_networks(s, VIEWER, "victims", "VIC-MATCH") == []
        with pytest.raises(Forbidden):
            matching.network_matches(s, VIEWER, "NW-1")
        with pytest.raises(NotFound):
            matching.network_matches(s, ADMIN, "NW-NONE")
    [match] = seen_by_admin["matches"]  # VIC-OTHER's number differs by one digit: not matched
    assert (match["kind"], match["external_id"], match["case"]) == ("victims", "VIC-MATCH", "CASE-POL")
    assert match["name_latin"] == "Sokha Test" and match["contacts"] == [PHONE_E164] and match["masked"] == []
    for seen in (seen_by_analyst, seen_by_police):  # investigators do not identify victims either
        assert seen["matches"] == [] and seen["hidden"] == 0 and "victims" in seen["withheld"]
    assert seen_by_admin["withheld"] == [] and seen_by_analyst["withheld"] == ["victims", "suspects"]
    assert seen_by_police["withheld"] == ["victims"]
    assert on_victim == []
    assert on_other == []
    assert [(m["external_id"], m["contacts"]) for m in on_case] == [("VIC-MATCH", [PHONE_E164])]
    with Session(engine) as s:
        reads = s.execute(select(AuditEntry.kind, AuditEntry.detail).where(
            AuditEntry.action == "screening.match_read")).all()  # fmt: skip
    assert len(reads) >= 2 and all(PHONE_E164[6:] not in (detail or "") for _k, detail in reads)


def test_a_match_outside_the_readers_agency_is_counted_not_listed(
    engine: Engine, world: dict[str, Any]
) -> None:
    f = Fixture()
    f.suspect(external_id="SUS-HOME", phone="+85512345678", agency="AG-POL")
    f.suspect(external_id="SUS-AWAY", phone="+85512345678", agency="AG-OTHER")
    f.save(engine)
    with Session(engine) as s, s.begin():
        police = matching.network_matches(s, world["police"], "NW-1")
        admin = matching.network_matches(s, ADMIN, "NW-1")
    # investigators identify suspects: theirs listed, the other agency's counted; the victim withheld
    assert [m["external_id"] for m in police["matches"]] == ["SUS-HOME"] and police["hidden"] == 1
    assert police["matches"][0]["contacts"] == [PHONE_E164]
    assert {m["external_id"] for m in admin["matches"]} == {"VIC-MATCH", "SUS-HOME", "SUS-AWAY"}
    assert admin["hidden"] == 0


# -- the trend -------------------------------------------------------------------------------------------


def test_the_trend_counts_flagged_posts_per_period_through_the_registry(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        _post(s, "jan-last", datetime(2025, 1, 31, 23, 30))
        _post(s, "feb-first", datetime(2025, 2, 1, 0, 0), language="km")
        _post(s, "feb-mid", datetime(2025, 2, 14, 9, 0))
        _post(s, "feb-unflagged", datetime(2025, 2, 10), flagged=False)
        _post(s, "undated", None)
        _post(s, "apr", datetime(2025, 4, 2), language="km")
    with Session(engine) as s, s.begin():
        months = trend.trend(s, ANALYST, "month", date(2025, 1, 1), date(2025, 3, 31))
        km = trend.trend(s, ANALYST, "month", date(2025, 1, 1), date(2025, 3, 31), language="km")
        weeks = trend.trend(s, ANALYST, "week", date(2025, 1, 27), date(2025, 2, 16))
        default = trend.trend(s, ANALYST)
        cut = trend.trend(s, ANALYST, "month", date(2025, 1, 15), date(2025, 2, 28))
        with pytest.raises(Invalid):
            trend.trend(s, ANALYST, "day")
        with pytest.raises(Invalid):
            trend.trend(s, ANALYST, "month", date(2025, 3, 1), date(2025, 1, 1))
        with pytest.raises(Invalid):
            trend.trend(s, ANALYST, "week", date(2000, 1, 1), date(2025, 1, 1))
        with pytest.raises(Forbidden):
            trend.trend(s, VIEWER)
        report = compute_report(s, parse_period("2025-02"), ["posts_flagged"], ["language", "post_status"])
        _unit, rows = drill_down(s, "posts_flagged", parse_period("2025-02"), "language", "km")
    assert [(p["label"], p["count"]) for p in months["periods"]] == [
        ("2025-01", 1),
        ("2025-02", 2),
        ("2025-03", 0),
    ]
    assert months["total"] == 3 and months["undated"] == 1 and months["languages"] == ["en", "km"]
    assert [p["count"] for p in km["periods"]] == [0, 1, 0]
    assert [(p["label"], p["count"]) for p in weeks["periods"]] == [
        ("2025-01-27..2025-02-02", 2),
        ("2025-02-03..2025-02-09", 0),
        ("2025-02-10..2025-02-16", 1),
    ]
    assert default["end"] == date(2025, 4, 30) and default["periods"][-1]["count"] == 1
    assert len(default["periods"]) == 12 and default["periods"][0]["label"] == "2024-05"
    # a month cut by the range is labelled as the days it covers, so its drill-down link means the same
    assert [(p["label"], p["count"]) for p in cut["periods"]] == [
        ("2025-01-15..2025-01-31", 1),
        ("2025-02", 2),
    ]
    assert report.metrics["posts_flagged"] == 2
    assert report.by["language"]["posts_flagged"] == {"en": 1, "km": 1}
    assert report.by["post_status"]["posts_flagged"] == {"new": 2}
    assert [r.external_id for r in rows] == ["feb-first"]


# -- API and pages ---------------------------------------------------------------------------------------

PASSWORD = "pw-leads-" + "x" * 12


@pytest.fixture
def server(engine: Engine, world: dict[str, Any]) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tokens = {}
    with Session(engine) as s, s.begin():
        for name, role, agency, scope in (
            ("ana", "analyst", None, "all"),
            ("ivan", "investigator", "AG-POL", "own"),
            ("vera", "viewer", "AG-POL", "own"),
            ("root", "administrator", None, "all"),
        ):
            agency_id = world["agencies"].get(agency or "")
            user = accounts.create_user(s, name, PASSWORD, role, agency_id=agency_id, scope=scope)
            tokens[name] = accounts.create_token(s, user, "test")[1]
    live = LiveServer(engine)
    yield live, tokens
    live.stop()


@pytest.mark.web
def test_api_refer_matches_and_trend(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server

    def client(name: str) -> Any:
        return http_client(live.url, headers={"Authorization": f"Bearer {tokens[name]}"})

    ana, ivan, vera = client("ana"), client("ivan"), client("vera")
    r = ana.post("/api/v1/posts/p1/refer", json={"case": "CASE-POL", "note": "recruiter's number"})
    assert r.status_code == 201, r.text
    assert r.json()["case"] == "CASE-POL" and r.json()["contacts"] == ["phone:#1", "telegram:jobs_kh"]
    r = ivan.post("/api/v1/networks/NW-1/refer", json={"new_case": {"offence_type": "forced_criminality"}})
    assert r.status_code == 201 and r.json()["case_created"], r.text
    bad = [
        (ivan.post("/api/v1/posts/p2/refer", json={"case": "CASE-OTHER"}), 404),
        (ana.post("/api/v1/posts/p2/refer", json={"case": "CASE-NONE"}), 404),
        (ana.post("/api/v1/posts/none/refer", json={"case": "CASE-POL"}), 404),
        (ana.post("/api/v1/posts/p2/refer", json={}), 422),
        (ana.post("/api/v1/posts/p2/refer", json={"case": 5, "colour": "red"}), 422),
        (ana.post("/api/v1/posts/p2/refer", json={"new_case": {"offence_type": "other"}}), 403),
        (vera.post("/api/v1/posts/p2/refer", json={"case": "CASE-POL"}), 403),
        (ana.put("/api/v1/networks/NW-1/status", json={"status": "referred"}), 422),
        (vera.get("/api/v1/networks/NW-1/matches"), 403),
        (ana.get("/api/v1/screening/trend", params={"interval": "day"}), 422),
        (ana.get("/api/v1/screening/trend", params={"start": "2025-03-01", "end": "2025-01-01"}), 422),
    ]
    for response, status in bad:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.json()["detail"]
    assert ana.put("/api/v1/networks/NW-1/status", json={"status": "watch"}).json()["status"] == "watch"
    masked = ana.get("/api/v1/networks/NW-1/matches").json()
    shown = client("root").get("/api/v1/networks/NW-1/matches").json()
    assert masked["matches"] == [] and masked["withheld"] == ["victims", "suspects"]
    assert "VIC-MATCH" not in json.dumps(masked) and "Sokha" not in json.dumps(masked)
    assert shown["matches"][0]["name_latin"] == "Sokha Test"
    flagged = ana.get("/api/v1/screening/trend", params={"interval": "week", "start": "2025-02-03",
                                                          "end": "2025-02-09"}).json()  # fmt: skip
    assert [p["count"] for p in flagged["periods"]] == [3] and flagged["periods"][0]["by_language"] == {
        "en": 3
    }


@pytest.mark.web
def test_pages_refer_form_leads_on_the_case_and_matches_masked(
    server: tuple[LiveServer, dict[str, str]],
) -> None:
    live, _tokens = server
    ana = sign_in(live.url, "ana", PASSWORD)
    queue = ana.get("/screening")
    assert (
        queue.status_code == 200 and 'id="chart-flagged"' in queue.text and 'id="flagged-data"' in queue.text
    )
    assert "/static/js/screening.js" in queue.text and "<script>" not in queue.text  # no inline script
    data = json.loads(queue.text.split('id="flagged-data">')[1].split("</script>")[0])
    assert data["labels"][-1] == "2025-02" and data["counts"][-1] == 3
    assert "2025-02-03..2025-02-09" in ana.get("/screening?interval=week").text
    form = {"case": "CASE-POL", "note": "same phone", "csrf_token": ana.csrf}  # type: ignore[attr-defined]
    r = ana.post("/screening/posts/p1/refer", data=form)
    assert r.status_code == 303, r.text[:300]
    assert (
        ana.post("/screening/posts/p1/refer", data={"case": "CASE-POL"}).status_code == 403
    )  # no CSRF token
    unknown = ana.post("/screening/posts/p1/refer", data={**form, "case": "CASE-NONE"})
    assert unknown.status_code == 404 and "CASE-NONE" in unknown.text
    post = ana.get("/screening/posts/p1")
    assert 'href="/records/cases/CASE-POL"' in post.text and "same phone" in post.text
    case = ana.get("/records/cases/CASE-POL")
    assert (
        case.status_code == 200
        and 'data-testid="case-leads"' in case.text
        and "/screening/posts/p1" in case.text
    )
    # its victim's phone appears in the network: said to those who may identify victims only
    assert 'data-testid="record-networks"' not in case.text
    network = ana.get("/screening/networks/NW-1")
    assert 'data-testid="matches"' not in network.text and "VIC-MATCH" not in network.text
    assert 'data-testid="matches-withheld"' in network.text and "Sokha" not in network.text
    assert "+85512345678" not in network.text and "phone:#1" in network.text  # no number on the page
    victim = ana.get("/records/victims/VIC-MATCH")
    assert 'data-testid="record-networks"' not in victim.text and "NW-1" not in victim.text
    root = sign_in(live.url, "root", PASSWORD)
    assert 'data-testid="record-networks"' in root.get("/records/cases/CASE-POL").text
    shown = root.get("/screening/networks/NW-1").text
    assert "VIC-MATCH" in shown and "+85512345678" in shown and 'data-testid="matches-withheld"' not in shown
    r = ana.post("/screening/networks/NW-1/status", data={"status": "benign", "csrf_token": ana.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 303
    vera = sign_in(live.url, "vera", PASSWORD)
    seen = vera.get("/records/victims/VIC-MATCH")
    assert seen.status_code == 200 and "NW-1" not in seen.text and "Sokha" not in seen.text
    assert vera.get("/screening/networks/NW-1").status_code == 403
    khmer = http_client(live.url, cookies={**dict(ana.cookies), "ctis_lang": "km"})
    assert "ការប្រកាសដែលត្រូវបានសម្គាល់" in khmer.get("/screening").text


def test_a_post_is_referred_only_with_a_lead(engine: Engine, world: dict[str, Any]) -> None:
    from ctis.screening import service as screening_service

    with Session(engine) as s, pytest.raises(Invalid, match="becomes referred by referring it"):
        screening_service.set_status(s, ANALYST, "p1", "referred")
    with Session(engine) as s, s.begin():
        assert screening_service.set_status(s, ANALYST, "p1", "watch")["status"] == "watch"
        assert s.get(ScreenedPost, "p1").status == "watch"  # type: ignore[union-attr]
