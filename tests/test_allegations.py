"""The allegation register: validation, locking, the append-only log, findings, evidence from the
registry, scope and permissions, audit, the API and pages, and the public evidence sheet.

Service tests run on SQLite and PostgreSQL with hand-made records; web tests use the shared demo
database on PostgreSQL, where every record made here carries this run's :data:`RUN` and is dated
2019, outside the demo's years, so no figure another test counts changes.
"""

from __future__ import annotations

import re
import uuid
import zlib
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis import allegations as al
from ctis.domain.periods import parse_period
from ctis.metrics import compute_report
from ctis.records import Conflict, Invalid, NotFound
from ctis.security import audit
from ctis.security.permissions import Actor, Forbidden
from ctis.storage.models import Agency, Allegation, AllegationEvidence, AuditEntry
from tests.conftest import LiveServer, sign_in
from tests.factories import Fixture

RUN = uuid.uuid4().hex[:10]
TODAY = date(2026, 1, 15)
SECRET = f"Qzxv{RUN}"  # a synthetic name that must never reach a sheet


def _actor(role: str, agency_id: int | None = None, scope: str = "all", name: str = "") -> Actor:
    return Actor(id=1, username=name or role, role=role, agency_id=agency_id, scope=scope)


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    """Two agencies, a case and operation of each, and a named victim of the first."""
    f = Fixture()
    f.agency(external_id="AG-A", name_en="Agency A")
    f.agency(external_id="AG-B", name_en="Agency B")
    op_a = f.operation("2024-02-01", lead_agency="AG-A", external_id="OP-A")
    op_b = f.operation("2024-02-02", lead_agency="AG-B", external_id="OP-B")
    f.case(op_a, agency="AG-A", external_id="CASE-A")
    f.case(op_b, agency="AG-B", external_id="CASE-B")
    f.victim(
        "2024-02-01",
        op_a,
        external_id="VIC-A",
        agency="AG-A",
        sex="female",
        age=16,
        name_latin=f"{SECRET} Sokha",
        name_khmer="សុខា",
        date_of_birth="2007-05-05",
        phone="+855 12 345 678",
        address="12 Fictional Street",
    )
    f.victim("2024-03-01", op_b, external_id="VIC-B", agency="AG-B", sex="male", age=30)
    f.save(engine)
    with Session(engine) as s:
        ids = dict(s.execute(select(Agency.external_id, Agency.id)).all())
    return {"engine": engine, "agencies": ids}


def _fields(**extra: Any) -> dict[str, Any]:
    return {
        "external_id": "AL-T-1",
        "source": "media",
        "alleged_on": "2024-05-01",
        "text": "A newspaper said a thousand victims were rescued.",
        "agency": "AG-A",
        **extra,
    }


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


ADMIN = _actor("administrator", name="admin")


def test_an_allegation_without_a_source_is_refused_with_a_message_and_nothing_written(
    world: dict[str, Any],
) -> None:
    engine = world["engine"]
    before = _count(engine, AuditEntry)
    with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
        al.save_allegation(s, ADMIN, {k: v for k, v in _fields().items() if k != "source"}, today=TODAY)
    assert set(caught.value.errors) == {"source"}
    assert "where the allegation came from" in caught.value.errors["source"]
    with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
        al.save_allegation(s, ADMIN, _fields(source="rumour mill", alleged_on="31/02/2024", text=" "))
    assert set(caught.value.errors) == {"source", "alleged_on", "text"}
    assert "unknown allegation source" in caught.value.errors["source"]
    assert _count(engine, Allegation) == 0 and _count(engine, AuditEntry) == before


def test_create_update_and_a_stale_version_conflict(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        view, created = al.save_allegation(s, ADMIN, _fields(source="Social media"), today=TODAY)
    assert created and view["version"] == 1 and view["source"] == "social_media" and view["finding"] == "open"
    with Session(engine) as s, s.begin():
        view, created = al.save_allegation(s, ADMIN, {"place": "Sihanoukville"}, "AL-T-1", 1, today=TODAY)
    assert not created and view["version"] == 2 and view["text"].startswith("A newspaper")
    with Session(engine) as s, s.begin(), pytest.raises(Conflict) as caught:
        al.save_allegation(s, ADMIN, {"place": "Kampot"}, "AL-T-1", 1, today=TODAY)
    assert caught.value.current["place"] == "Sihanoukville"
    with Session(engine) as s, s.begin(), pytest.raises(Invalid, match="cannot be changed"):
        al.save_allegation(s, ADMIN, {"external_id": "AL-OTHER"}, "AL-T-1", 2, today=TODAY)
    with Session(engine) as s, s.begin(), pytest.raises(Invalid, match="already used"):
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
    with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
        al.save_allegation(s, ADMIN, {"received_on": "2024-04-01"}, "AL-T-1", 2, today=TODAY)
    assert caught.value.errors == {"received_on": "before the date of the allegation"}


def test_the_log_only_grows(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
        al.add_log_entry(s, ADMIN, "AL-T-1", {"entry_on": "2024-05-03", "text": "Editor called."}, TODAY)
        al.add_log_entry(s, ADMIN, "AL-T-1", {"entry_on": "2024-05-02", "text": "Received."}, TODAY)
    for bad, field in (
        ({"text": ""}, "text"),
        ({"entry_on": "2024-04-01", "text": "x"}, "entry_on"),
        ({"entry_on": "2027-01-01", "text": "x"}, "entry_on"),
        ({"text": "x", "author": "someone else"}, "author"),
    ):
        with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
            al.add_log_entry(s, ADMIN, "AL-T-1", bad, TODAY)
        assert field in caught.value.errors, (bad, caught.value.errors)
    with Session(engine) as s:
        log = al.get_allegation(s, ADMIN, "AL-T-1")["log"]
    assert [(e["entry_on"].isoformat(), e["text"], e["author"]) for e in log] == [
        ("2024-05-02", "Received.", "admin"),
        ("2024-05-03", "Editor called.", "admin"),
    ]
    # the service offers no way to change or delete an entry
    assert not [n for n in dir(al) if re.match(r"(update|edit|delete|remove)_log", n)]


def test_a_finding_other_than_open_needs_its_date(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
    cases = [
        ({"finding": "substantiated"}, "finding_on", "required when the finding is substantiated"),
        ({"finding": "open", "finding_on": "2024-06-01"}, "finding_on", "still open"),
        ({"finding": "proven"}, "finding", "unknown allegation finding"),
        ({"finding": "unsubstantiated", "finding_on": "2024-04-01"}, "finding_on", "before the date"),
        ({"finding_on": "2024-06-01"}, "finding", "required"),
        ({"finding": "open", "text": "rewritten"}, "text", "unknown field"),
    ]
    for body, field, message in cases:
        with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
            al.set_finding(s, ADMIN, "AL-T-1", body, 1, TODAY)
        assert message in caught.value.errors.get(field, ""), (body, caught.value.errors)
    with Session(engine) as s, s.begin():
        view = al.set_finding(
            s, ADMIN, "AL-T-1", {"finding": "Partly substantiated", "finding_on": "01/06/2024"}, 1, TODAY
        )
    assert (view["finding"], view["finding_on"], view["version"]) == (
        "partly_substantiated",
        date(2024, 6, 1),
        2,
    )


def test_a_figure_of_the_evidence_is_the_registrys_value_computed_when_shown(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
        total = al.add_evidence(s, ADMIN, "AL-T-1", {"metric": "victims_rescued", "period": "2024-h1"})
        female = al.add_evidence(
            s,
            ADMIN,
            "AL-T-1",
            {
                "type": "figure",
                "metric": "victims_rescued",
                "period": "2024-H1",
                "dimension": "sex",
                "value": "Female",
            },
        )
    with Session(engine) as s:
        rep = compute_report(s, parse_period("2024-H1"), ["victims_rescued"], ["sex"])
    assert total["count"] == rep.metrics["victims_rescued"] == 2
    assert (female["value"], female["count"]) == ("female", rep.by["sex"]["victims_rescued"]["female"])
    assert female["definition"] and female["label_km"]
    # a new record changes the figure: the value was never stored
    f = Fixture()
    f.victim("2024-04-01", external_id="VIC-C", sex="female", agency="AG-A")
    f.save(engine)
    with Session(engine) as s:
        shown = {e["id"]: e["count"] for e in al.get_allegation(s, ADMIN, "AL-T-1")["evidence"]}
    assert shown == {total["id"]: 3, female["id"]: 2}
    bad = [
        ({"metric": "no_such_metric", "period": "2024"}, "metric"),
        ({"metric": "victims_rescued", "period": "2024-H3"}, "period"),
        ({"metric": "victims_rescued", "period": "2024", "dimension": "sex"}, "value"),
        ({"metric": "victims_rescued", "period": "2024", "dimension": "colour", "value": "x"}, "dimension"),
        ({"metric": "victims_rescued", "period": "2024", "dimension": "sex", "value": "purple"}, "value"),
        ({"kind": "agencies", "external_id": "AG-A"}, "kind"),
        ({"kind": "cases", "external_id": "CASE-NOPE"}, "external_id"),
        ({"note": "what is this?"}, "type"),
        ({"type": "figure", "metric": "victims_rescued", "period": "2024", "count": 999}, "count"),
    ]
    for body, field in bad:
        with Session(engine) as s, s.begin(), pytest.raises(Invalid) as caught:
            al.add_evidence(s, ADMIN, "AL-T-1", body)
        assert field in caught.value.errors, (body, caught.value.errors)
    assert _count(engine, AllegationEvidence) == 2


def test_linked_persons_are_masked_for_those_who_may_not_identify_them(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
        al.add_evidence(s, ADMIN, "AL-T-1", {"kind": "victims", "external_id": "VIC-A", "note": "rescued"})
        with pytest.raises(Invalid, match="already linked"):
            al.add_evidence(s, ADMIN, "AL-T-1", {"kind": "victims", "external_id": "VIC-A"})
    with Session(engine) as s, s.begin():
        analyst = al.get_allegation(s, _actor("analyst"), "AL-T-1")["evidence"][0]
        officer = al.get_allegation(s, _actor("data_officer"), "AL-T-1")["evidence"][0]
    assert analyst["external_id"] == "VIC-A" and analyst["record"]["sex"] == "female"
    assert analyst["record"]["name_latin"] is None and analyst["record"]["date_of_birth"] is None
    assert "name_latin" in analyst["record"]["masked"]
    assert officer["record"]["name_latin"] == f"{SECRET} Sokha" and officer["record"]["masked"] == []


def test_roles_and_agency_scope(world: dict[str, Any]) -> None:
    engine, ids = world["engine"], world["agencies"]
    police_a = _actor("investigator", ids["AG-A"], "own", "police-a")
    police_b = _actor("investigator", ids["AG-B"], "own", "police-b")
    viewer_a = _actor("viewer", ids["AG-A"], "own", "viewer-a")
    with Session(engine) as s, s.begin():
        view, _ = al.save_allegation(s, police_a, _fields(agency=None), today=TODAY)
    assert view["agency"] == "AG-A"  # filed under the author's agency by default
    with Session(engine) as s, s.begin():
        assert al.get_allegation(s, viewer_a, "AL-T-1")["external_id"] == "AL-T-1"
        assert al.list_allegations(s, police_b, al.AllegationQuery()).total == 0
        with pytest.raises(NotFound):
            al.get_allegation(s, police_b, "AL-T-1")
        with pytest.raises(Forbidden):
            al.save_allegation(s, viewer_a, _fields(external_id="AL-T-2"), today=TODAY)
        with pytest.raises(Forbidden):
            al.add_log_entry(s, viewer_a, "AL-T-1", {"text": "x"}, TODAY)
        with pytest.raises(Forbidden, match="own agency"):
            al.save_allegation(s, police_a, _fields(external_id="AL-T-3", agency="AG-B"), today=TODAY)
        with pytest.raises(NotFound):
            al.add_log_entry(s, police_b, "AL-T-1", {"text": "x"}, TODAY)
        # a record outside the author's scope gets the answer of a record that does not exist
        with pytest.raises(Invalid, match="no cases record"):
            al.add_evidence(s, police_a, "AL-T-1", {"kind": "cases", "external_id": "CASE-B"})
        al.add_evidence(s, police_a, "AL-T-1", {"kind": "cases", "external_id": "CASE-A"})
        with pytest.raises(Forbidden, match="assistance:read"):
            al.add_evidence(s, police_a, "AL-T-1", {"kind": "assistance", "external_id": "AST-1"})
    with Session(engine) as s, s.begin():
        # the administrator links another agency's case: the investigator sees that it exists, no more
        al.add_evidence(s, ADMIN, "AL-T-1", {"kind": "cases", "external_id": "CASE-B"})
        links = al.get_allegation(s, police_a, "AL-T-1")["evidence"]
        assert [(e["external_id"], e["visible"]) for e in links] == [("CASE-A", True), (None, False)]
        with pytest.raises(NotFound):
            al.remove_evidence(s, police_a, "AL-T-1", links[1]["id"])
        al.remove_evidence(s, police_a, "AL-T-1", links[0]["id"])
    assert _count(engine, AllegationEvidence) == 1


def test_every_change_and_every_sheet_is_in_the_audit_chain(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(), today=TODAY)
        al.save_allegation(s, ADMIN, {"place": "Kampot"}, "AL-T-1", 1, today=TODAY)
        al.add_log_entry(s, ADMIN, "AL-T-1", {"text": "Received."}, TODAY)
        al.set_finding(
            s, ADMIN, "AL-T-1", {"finding": "unsubstantiated", "finding_on": "2024-06-01"}, 2, TODAY
        )
        al.add_evidence(s, ADMIN, "AL-T-1", {"kind": "victims", "external_id": "VIC-A"})
        fig = al.add_evidence(s, ADMIN, "AL-T-1", {"metric": "victims_rescued", "period": "2024"})
        al.remove_evidence(s, ADMIN, "AL-T-1", fig["id"])
        sheet = al.evidence_sheet(s, _actor("viewer", name="spokesperson"), "AL-T-1", "pdf")
    with Session(engine) as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    mine = [(e.actor, e.action, e.kind) for e in entries if e.kind in {"allegations", "victims"}]
    assert [a for _actor_name, a, k in mine if k == "allegations"] == [
        "create",
        "update",
        "log",
        "update",
        "evidence_add",
        "evidence_add",
        "evidence_remove",
        "sheet",
    ]
    assert ("admin", "read", "victims") in mine  # the linked victim, read when shown after linking
    last = entries[-1]
    assert (last.actor, last.action) == ("spokesperson", "sheet")
    assert sheet.reference == f"AL-T-1/S{last.id}"
    assert SECRET not in "".join(str(e.detail) for e in entries)
    assert audit.verify(engine).ok


def test_the_sheet_is_built_from_public_facts_only(world: dict[str, Any]) -> None:
    engine = world["engine"]
    with Session(engine) as s, s.begin():
        al.save_allegation(s, ADMIN, _fields(people_alleged=f"{SECRET} the recruiter"), today=TODAY)
        for kind, xid in (("victims", "VIC-A"), ("cases", "CASE-A"), ("operations", "OP-A")):
            al.add_evidence(s, ADMIN, "AL-T-1", {"kind": kind, "external_id": xid})
        sheet = al.evidence_sheet(s, ADMIN, "AL-T-1")
    assert sheet.record_counts == {"cases": 1, "operations": 1, "victims": 1}
    assert sheet.references == {"cases": ["CASE-A"], "operations": ["OP-A"]}
    assert "people_alleged" not in sheet.allegation
    assert SECRET not in repr(sheet) and "2007-05-05" not in repr(sheet) and "VIC-A" not in repr(sheet)


# -- web ------------------------------------------------------------------------------------------


def _h(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


def _api_allegation(client: httpx.Client, tag: str, **extra: Any) -> dict[str, Any]:
    body = {
        "external_id": f"AL-{RUN}-{tag}",
        "source": "hotline",
        "alleged_on": "2019-06-01",
        "text": f"Workers are held in a compound ({tag}).",
        **extra,
    }
    r = client.post("/api/v1/allegations", json=body, headers=_h(client))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.web
def test_api_flow_and_4xx_for_bad_input(live_server: LiveServer) -> None:
    officer = sign_in(live_server.url, "officer")
    h = _h(officer)
    made = _api_allegation(officer, "api")
    url = f"/api/v1/allegations/{made['external_id']}"
    assert officer.get(url).json()["log"] == []
    bad = [
        ("post", "/api/v1/allegations", {"json": {"alleged_on": "2019-06-01", "text": "no source"}}, 422),
        ("post", "/api/v1/allegations", {"json": [1, 2]}, 422),
        (
            "post",
            "/api/v1/allegations",
            {"content": b"{oops", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("post", "/api/v1/allegations", {"json": {**_fields(), "text": "x" * 20_000}}, 422),
        ("post", "/api/v1/allegations", {"json": {**_fields(), "place": "nul\x00"}}, 422),
        ("patch", url, {"json": {"place": "no version"}}, 422),
        ("patch", url, {"json": {"version": 99, "place": "stale"}}, 409),
        ("put", f"{url}/finding", {"json": {"version": 1, "finding": "substantiated"}}, 422),
        ("post", f"{url}/log", {"json": {"text": ""}}, 422),
        ("post", f"{url}/evidence", {"json": {"metric": "victims_rescued", "period": "soon"}}, 422),
        ("delete", f"{url}/evidence/424242", {}, 404),
        ("get", "/api/v1/allegations/AL-NO-SUCH", {}, 404),
        ("get", "/api/v1/allegations?sort=text", {}, 422),
        ("get", "/api/v1/allegations?page=99999", {}, 422),
        ("delete", f"{url}/log/1", {}, 404),  # the log has no way to remove an entry
    ]
    for method, path, kwargs, status in bad:
        kwargs.setdefault("headers", {}).update(h)
        r = officer.request(method.upper(), path, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text[:300])
        assert r.json()["detail"]
    no_source = officer.post("/api/v1/allegations", json=bad[0][2]["json"], headers=h).json()
    assert "where the allegation came from" in no_source["errors"]["source"]
    assert officer.get(url).json()["version"] == 1  # nothing was written
    r = officer.patch(url, json={"version": 1, "place": "Poipet"}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (
        officer.post(
            f"{url}/log", json={"text": "Called back.", "entry_on": "2019-06-02"}, headers=h
        ).status_code
        == 201
    )
    r = officer.put(
        f"{url}/finding",
        json={
            "version": 2,
            "finding": "substantiated",
            "finding_on": "2019-07-01",
            "finding_summary": "Found in a raid.",
        },
        headers=h,
    )
    assert r.status_code == 200 and r.json()["finding"] == "substantiated"
    fig = officer.post(
        f"{url}/evidence", json={"metric": "cases_cracked_down", "period": "2024-H1"}, headers=h
    )
    assert fig.status_code == 201 and fig.json()["count"] == 104  # the published figure, from the records
    assert officer.delete(f"{url}/evidence/{fig.json()['id']}", headers=h).status_code == 204
    listed = officer.get(
        "/api/v1/allegations", params={"q": made["external_id"], "finding": "substantiated"}
    ).json()
    assert [i["external_id"] for i in listed["items"]] == [made["external_id"]]
    schema = officer.get("/api/openapi.json").json()
    assert "/api/v1/allegations/{external_id}/finding" in schema["paths"]
    viewer = sign_in(live_server.url, "viewer")
    assert viewer.post("/api/v1/allegations", json=_fields(), headers=_h(viewer)).status_code == 403
    assert viewer.get(url).status_code == 404  # AG-NCCT's allegation, outside the viewer's agency
    assert viewer.get("/api/v1/allegations").status_code == 200


@pytest.mark.web
def test_pages_with_field_messages_and_csrf(live_server: LiveServer) -> None:
    officer = sign_in(live_server.url, "officer")
    listing = officer.get("/allegations")
    assert listing.status_code == 200 and "AL-2024-0001" in listing.text
    assert officer.get("/allegations", params={"finding": "unsubstantiated"}).status_code == 200
    assert officer.get("/allegations", params={"date_from": "yesterday"}).status_code == 422
    form = {
        "csrf_token": officer.csrf,
        "external_id": f"AL-{RUN}-page",
        "alleged_on": "2019-06-01",  # type: ignore[attr-defined]
        "text": "A post says workers are held.",
    }
    r = officer.post("/allegations/new", data=form)
    assert r.status_code == 422 and 'data-testid="error-source"' in r.text
    assert "where the allegation came from" in r.text and "A post says workers are held." in r.text
    assert officer.get(f"/api/v1/allegations/AL-{RUN}-page").status_code == 404  # nothing written
    assert (
        officer.post(
            "/allegations/new", data={**form, "source": "social_media", "csrf_token": "forged"}
        ).status_code
        == 403
    )
    r = officer.post("/allegations/new", data={**form, "source": "social_media"})
    assert r.status_code == 303 and r.headers["location"] == f"/allegations/AL-{RUN}-page"
    page_url = r.headers["location"]
    detail = officer.get(page_url)
    assert detail.status_code == 200 and "A post says workers are held." in detail.text
    csrf = {"csrf_token": officer.csrf}  # type: ignore[attr-defined]
    r = officer.post(f"{page_url}/finding", data={**csrf, "version": "1", "finding": "unsubstantiated"})
    assert r.status_code == 422 and "required when the finding is unsubstantiated" in r.text
    r = officer.post(
        f"{page_url}/finding",
        data={**csrf, "version": "1", "finding": "unsubstantiated", "finding_on": "2019-06-10"},
    )
    assert r.status_code == 303
    assert (
        officer.post(
            f"{page_url}/log", data={**csrf, "entry_on": "2019-06-02", "text": "Checked."}
        ).status_code
        == 303
    )
    r = officer.post(
        f"{page_url}/evidence", data={**csrf, "type": "record", "kind": "cases", "external_id": "NOPE"}
    )
    assert r.status_code == 422 and "no cases record" in r.text
    r = officer.post(
        f"{page_url}/evidence",
        data={
            **csrf,
            "type": "figure",
            "metric": "victims_rescued",
            "period": "2024-H1",
            "dimension": "",
            "value": "",
        },
    )
    assert r.status_code == 303
    detail = officer.get(page_url).text
    assert "Checked." in detail and ">290<" in detail
    stale = officer.post(
        f"{page_url}/edit",
        data={
            **csrf,
            "version": "1",
            "source": "media",
            "alleged_on": "2019-06-01",
            "text": "edited from a stale form",
        },
    )
    assert stale.status_code == 409 and 'data-testid="conflict"' in stale.text
    edit = officer.get(f"{page_url}/edit")
    assert edit.status_code == 200 and 'name="version" value="2"' in edit.text
    viewer = sign_in(live_server.url, "viewer")
    assert viewer.get("/allegations/new").status_code == 403
    assert "/allegations" in viewer.get("/dashboard").text  # the navigation link


def _pdf_texts(pdf: bytes) -> tuple[set[str], list[str]]:
    """Embedded font names, and the text of every TJ array decoded with each font's ToUnicode map."""
    streams = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            streams.append(zlib.decompress(m.group(1)))
        except zlib.error:
            continue
    blob = b"\n".join(streams)
    fonts = {f.decode() for f in re.findall(rb"/BaseFont\s*/([A-Za-z0-9+_-]+)", blob)}
    maps = []
    for s in streams:
        if b"beginbfchar" in s:
            pairs = re.findall(rb"<([0-9a-f]+)>\s*<([0-9a-f]*)>", s.split(b"beginbfchar", 1)[1])
            maps.append({int(a, 16): bytes.fromhex(b.decode()).decode("utf-16-be") for a, b in pairs})
    texts = []
    for s in streams:
        for array in re.findall(rb"\[(.*?)\]\s*TJ", s, re.S):
            codes = [
                int(h, 16)
                for chunk in re.findall(rb"<([0-9a-f]+)>", array)
                for h in re.findall(rb"....", chunk)
            ]
            texts += ["".join(m.get(c, "\ufffd") for c in codes) for m in maps]
    return fonts, texts


@pytest.mark.web
def test_evidence_sheet_in_both_languages_never_names_a_linked_victim(live_server: LiveServer) -> None:
    officer = sign_in(live_server.url, "officer")
    h = _h(officer)
    victim = {
        "external_id": f"VIC-{RUN}-sheet",
        "rescue_date": "2019-05-01",
        "sex": "female",
        "age": 17,
        "date_of_birth": "2002-02-02",
        "name_latin": f"{SECRET} Sokha",
        "name_khmer": "សុខា ស៊ីក្រែត",
        "phone": "+855 99 123 456",
        "address": f"{SECRET} lane",
        "agency": "AG-NCCT",
    }
    assert officer.post("/api/v1/victims", json=victim, headers=h).status_code == 201
    made = _api_allegation(
        officer,
        "sheet",
        people_alleged=f"{SECRET} the broker",
        finding="unsubstantiated",
        finding_on="2019-07-01",
        finding_summary="No such events in the records.",
    )
    url = f"/api/v1/allegations/{made['external_id']}"
    for body in (
        {"kind": "victims", "external_id": victim["external_id"]},
        {"kind": "cases", "external_id": "CASE-00001"},
        {"metric": "victims_rescued", "period": "2024-H1", "dimension": "sex", "value": "female"},
    ):
        assert officer.post(f"{url}/evidence", json=body, headers=h).status_code == 201, body
    shown = officer.get(url).json()["evidence"][0]["record"]
    assert shown["name_latin"] == f"{SECRET} Sokha"  # the data officer may identify her; the sheet never does
    forbidden = [SECRET, "សុខា ស៊ីក្រែត", "2002-02-02", "+855 99 123 456", victim["external_id"]]
    page = f"/allegations/{made['external_id']}"
    for lang, heading in (("en", "Evidence sheet"), ("km", "សន្លឹកភស្តុតាង")):
        html = officer.get(f"{page}/sheet", params={"lang": lang})
        assert html.status_code == 200, html.text[:300]
        assert heading in html.text and "CASE-00001" in html.text and ">241<" in html.text
        assert not [f for f in forbidden if f in html.text], lang
        pdf = officer.get(f"{page}/sheet.pdf", params={"lang": lang})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        fonts, texts = _pdf_texts(pdf.content)
        assert any("Noto-Sans-Khmer" in f for f in fonts), fonts
        assert any(re.search(rf"AL-{RUN}-sheet/S\d+", t) for t in texts), (lang, texts[:20])
        assert any("241" in t for t in texts)
        if lang == "km":
            assert any(re.search("[\u1780-\u17ff]", t) for t in texts)
        else:
            assert any(heading in t for t in texts)
        assert not [f for f in forbidden for t in texts if f in t], lang
        assert not [f for f in forbidden if f.encode() in pdf.content], lang
    assert officer.get(f"{page}/sheet", params={"lang": "fr"}).status_code == 422
    assert officer.get("/allegations/AL-NO-SUCH/sheet.pdf").status_code == 404
