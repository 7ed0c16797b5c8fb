"""No identity oracles, and agency scope that holds (issue 12, items 3 and 4).

An investigator may change a victim's facts without seeing who the victim is;
these tests play the attacks that turned that into a way of learning the
hidden date of birth (binary search over validation messages), the owner of a
guessed phone number (a screened post and the network's matches) and another
agency's records (moving a record's agency; an evidence sheet naming case ids).
All data is synthetic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ctis import accounts, records
from ctis import allegations as al
from ctis.records import HiddenRuleRefused, Invalid, ScopeRefused
from ctis.screening import service as screening
from ctis.security import audit, probing
from ctis.security.permissions import Actor
from ctis.storage.models import Agency, AuditEntry, Victim
from tests.conftest import LiveServer, http_client, sign_in
from tests.factories import Fixture

PASSWORD = "pw-oracles-" + "x" * 12
#: Two hidden birth dates, a rescue date and ages that agree with each.
BIRTHS = {"VIC-A": "2000-03-10", "VIC-B": "2001-08-20"}
AGES = {"VIC-A": 19, "VIC-B": 17}
RESCUE = "2019-05-01"
#: What an attacker sends: rescue dates around both births, and ages.
PROBES: list[dict[str, Any]] = [
    {"rescue_date": "1999-06-01"},  # before both births
    {"rescue_date": "2000-12-01"},  # after A's birth, before B's
    {"rescue_date": "2018-06-01"},  # after both: an age is computed, and contradicts the recorded one
    {"age": 40},
]
GUESSED_PHONE = "012 345 678"
GUESSED_E164 = "+85512345678"


def _world(engine: Engine) -> dict[str, int]:
    f = Fixture()
    f.agency(external_id="AG-POL", name_en="Police")
    f.agency(external_id="AG-NGO", name_en="Shelter")
    f.agency(external_id="AG-HQ", name_en="Secretariat")
    op_pol = f.operation("2019-04-30", lead_agency="AG-POL", external_id="OP-POL")
    f.operation("2019-04-29", lead_agency="AG-NGO", external_id="OP-NGO")
    f.case(op_pol, agency="AG-POL", external_id="CASE-POL")
    f.case(agency="AG-NGO", external_id="CASE-NGO")
    for xid, birth in BIRTHS.items():
        f.victim(RESCUE, external_id=xid, agency="AG-POL", date_of_birth=birth, age=AGES[xid],
                 name_latin=f"{xid} Sokha")  # fmt: skip
    f.victim(RESCUE, external_id="VIC-C", agency="AG-POL", date_of_birth="1995-01-02")  # no recorded age
    f.victim(RESCUE, external_id="VIC-NGO", agency="AG-NGO")
    referred = f.victim(RESCUE, external_id="VIC-REF", agency="AG-POL", phone=GUESSED_PHONE)
    ngo = next(r for r in f.records if r.external_id == "AG-NGO")
    f.referral(referred, ngo, referred_on="2019-05-02", consent=True, consent_date="2019-05-02")
    f.save(engine)
    with Session(engine) as s:
        return dict(s.execute(select(Agency.external_id, Agency.id)).all())  # type: ignore[arg-type]


@pytest.fixture
def agencies(engine: Engine) -> dict[str, int]:
    return _world(engine)


def _police(agencies: dict[str, int]) -> Actor:
    return Actor(id=2, username="ivan", role="investigator", agency_id=agencies["AG-POL"], scope="own")


def _attempt(engine: Engine, actor: Actor, xid: str, change: dict[str, Any]) -> Exception | dict[str, Any]:
    """One PATCH as the web layer makes it: one unit of work, refusals audited after the rollback."""
    try:
        with Session(engine) as s, s.begin():
            return records.save_record(s, actor, "victims", dict(change), external_id=xid)[0]
    except HiddenRuleRefused as exc:
        probing.record_after_rollback(engine, exc.actor, exc.events)
        return exc
    except (Invalid, ScopeRefused) as exc:
        if isinstance(exc, ScopeRefused):
            probing.record_after_rollback(engine, exc.actor, exc.events)
        return exc


def _answer(outcome: Exception | dict[str, Any]) -> tuple[str, int, dict[str, str]] | str:
    if isinstance(outcome, HiddenRuleRefused):
        return ("refused", outcome.status, outcome.errors)
    if isinstance(outcome, Invalid):
        return ("invalid", 422, outcome.errors)
    return "saved"


def _audit(engine: Engine, action: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _version(engine: Engine, xid: str) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(Victim.version).where(Victim.external_id == xid)) or 0)


# -- the hidden date of birth ----------------------------------------------------------------------------


def test_probing_the_hidden_birth_date_gets_the_same_answer_whatever_it_is(
    engine: Engine, agencies: dict[str, int]
) -> None:
    """The attack: change the rescue date (or the age) and read the error.  Two victims with
    different hidden birth dates must answer every probe identically, and no answer may hold the
    birth date, a computed age or which of the rules broke."""
    police = _police(agencies)
    answers = {xid: [_answer(_attempt(engine, police, xid, p)) for p in PROBES] for xid in BIRTHS}
    assert answers["VIC-A"] == answers["VIC-B"], answers
    for answer, probe in zip(answers["VIC-A"], PROBES, strict=True):
        assert answer == ("refused", 422, {f: probing.MESSAGE for f in probe}), answer
    text = repr(answers)
    assert not re.search(r"\baged?\b \d", text) and "2000" not in text.replace("2000-12-01", "")
    for birth in BIRTHS.values():
        assert birth not in text and birth[:4] not in text
    assert _version(engine, "VIC-A") == 1 and _version(engine, "VIC-B") == 1  # nothing changed
    # mistakes of the reader's own are still told as usual, and are no probe
    own = _answer(_attempt(engine, police, "VIC-A", {"rescue_date": "31/02/2019"}))
    assert own[0] == "invalid" and "rescue_date" in own[2]  # type: ignore[index]
    # someone who may see the date of birth is told exactly what is wrong
    officer = Actor(id=1, username="olga", role="data_officer", agency_id=None, scope="all")
    told = _attempt(engine, officer, "VIC-A", {"age": 40})
    assert isinstance(told, Invalid) and not isinstance(told, HiddenRuleRefused)
    assert BIRTHS["VIC-A"] in told.errors["age"]


def test_probes_are_limited_per_user_and_record_and_every_refusal_is_audited(
    engine: Engine, agencies: dict[str, int]
) -> None:
    police = _police(agencies)
    for i in range(probing.ATTEMPTS):
        outcome = _attempt(engine, police, "VIC-A", {"rescue_date": f"1999-0{i + 1}-01"})
        assert isinstance(outcome, HiddenRuleRefused) and outcome.status == 422
    limited = _attempt(engine, police, "VIC-A", {"rescue_date": "2019-05-02"})  # valid or not: not told
    assert isinstance(limited, HiddenRuleRefused) and limited.status == 429
    assert limited.retry_after and 0 < limited.retry_after <= probing.WINDOW.total_seconds()
    assert set(limited.errors) == {"rescue_date"} and probing.LIMITED in limited.errors["rescue_date"]
    # another record, and another user, have limits of their own
    assert _answer(_attempt(engine, police, "VIC-B", {"age": 40}))[1] == 422  # type: ignore[index]
    refused, over = _audit(engine, probing.REFUSED_ACTION), _audit(engine, probing.LIMITED_ACTION)
    assert [(e.actor, e.kind) for e in refused] == [("ivan", "victims")] * (probing.ATTEMPTS + 1)
    assert [(e.actor, e.record_id) for e in over] == [("ivan", refused[0].record_id)]
    for entry in refused + over:  # fields are named, values never
        assert '"fields"' in str(entry.detail) and not re.search(r"\d{4}-\d{2}", str(entry.detail))
    assert audit.verify(engine).ok
    assert _version(engine, "VIC-A") == 1


def test_accepted_changes_of_a_checked_field_count_as_probes_too(
    engine: Engine, agencies: dict[str, int]
) -> None:
    """Without a recorded age the rescue date may move freely, and each accepted change shows the
    age on the new date: the same bits, one a request.  They count against the same limit."""
    police = _police(agencies)
    for day in range(2, probing.ATTEMPTS + 2):  # 2019-05-01 is the rescue date already
        assert _answer(_attempt(engine, police, "VIC-C", {"rescue_date": f"2019-05-0{day}"})) == "saved"
    outcome = _attempt(engine, police, "VIC-C", {"rescue_date": "2019-06-01"})
    assert isinstance(outcome, HiddenRuleRefused) and outcome.status == 429
    # a change of a field no such rule reads is never limited
    assert _answer(_attempt(engine, police, "VIC-C", {"sex": "male"})) == "saved"


# -- agency scope ----------------------------------------------------------------------------------------


def test_an_own_scope_user_cannot_take_or_give_away_a_record(
    engine: Engine, agencies: dict[str, int]
) -> None:
    """The attack: a shelter worker who sees a police victim (referred to her) files it under her
    own NGO, and the police lose it.  Refused (403), audited, nothing changed; a data officer
    (scope all) may reassign, and that is audited as an update of the agency."""
    social = Actor(id=3, username="sara", role="social_worker", agency_id=agencies["AG-NGO"], scope="own")
    taken = _attempt(engine, social, "VIC-REF", {"agency": "AG-NGO"})
    assert isinstance(taken, ScopeRefused) and "may not move" in str(taken)
    given = _attempt(engine, social, "VIC-NGO", {"agency": "AG-POL"})
    assert isinstance(given, ScopeRefused)
    police = _police(agencies)
    with pytest.raises(ScopeRefused), Session(engine) as s, s.begin():
        records.save_record(s, police, "operations", {"lead_agency": "AG-NGO"}, external_id="OP-POL")
    assert isinstance(_attempt(engine, police, "VIC-REF", {"agency": " AG-HQ "}), ScopeRefused)
    assert _version(engine, "VIC-REF") == 1 and _version(engine, "VIC-NGO") == 1
    refused = _audit(engine, "scope_refused")
    assert [(e.actor, e.kind) for e in refused] == [
        ("sara", "victims"),
        ("sara", "victims"),
        ("ivan", "victims"),
    ]
    assert all(e.detail == '{"fields": ["agency"]}' for e in refused)
    # the police still see their victim; an edit that leaves the agency as it is still saves
    with Session(engine) as s:
        assert records.get_record(s, police, "victims", "VIC-REF")["agency"] == "AG-POL"
    assert _answer(_attempt(engine, police, "VIC-REF", {"agency": "AG-POL", "sex": "female"})) == "saved"
    officer = Actor(id=1, username="olga", role="data_officer", agency_id=agencies["AG-HQ"], scope="all")
    assert _answer(_attempt(engine, officer, "VIC-REF", {"agency": "AG-NGO"})) == "saved"
    [moved] = [e for e in _audit(engine, "update") if e.actor == "olga"]
    assert moved.detail == '{"fields": ["agency_id"]}'


# -- the evidence sheet ----------------------------------------------------------------------------------


def test_an_evidence_sheet_names_only_the_cases_its_reader_may_see(
    engine: Engine, agencies: dict[str, int]
) -> None:
    admin = Actor(id=9, username="root", role="administrator", agency_id=None, scope="all")
    viewer = Actor(id=4, username="vera", role="viewer", agency_id=agencies["AG-NGO"], scope="own")
    with Session(engine) as s, s.begin():
        al.save_allegation(s, admin, {"external_id": "AL-X", "source": "media", "alleged_on": "2019-06-01",
                                      "text": "A claim.", "agency": "AG-NGO"})  # fmt: skip
        for kind, xid in (("cases", "CASE-NGO"), ("cases", "CASE-POL"), ("operations", "OP-POL")):
            al.add_evidence(s, admin, "AL-X", {"kind": kind, "external_id": xid})
        full = al.evidence_sheet(s, admin, "AL-X")
        narrow = al.evidence_sheet(s, viewer, "AL-X")
    assert full.references == {"cases": ["CASE-NGO", "CASE-POL"], "operations": ["OP-POL"]}
    assert full.withheld == {}
    assert narrow.references == {"cases": ["CASE-NGO"]} and narrow.withheld == {"cases": 1, "operations": 1}
    assert "CASE-POL" not in repr(narrow) and "OP-POL" not in repr(narrow)
    assert narrow.record_counts == {"cases": 2, "operations": 1}


# -- over HTTP: the API, the form, the screening pages -------------------------------------------------


@dataclass
class Site:
    live: LiveServer
    tokens: dict[str, str]
    agencies: dict[str, int]

    def api(self, name: str) -> httpx.Client:
        return http_client(self.live.url, headers={"Authorization": f"Bearer {self.tokens[name]}"})


@pytest.fixture
def site(engine: Engine, agencies: dict[str, int]) -> Iterator[Site]:
    tokens = {}
    with Session(engine) as s, s.begin():
        for name, role, agency, scope in (
            ("ivan", "investigator", "AG-POL", "own"),
            ("sara", "social_worker", "AG-NGO", "own"),
            ("ana", "analyst", "AG-HQ", "all"),
            ("vera", "viewer", "AG-NGO", "own"),
            ("root", "administrator", None, "all"),
        ):
            user = accounts.create_user(s, name, PASSWORD, role, agency_id=agencies.get(agency or ""),
                                        scope=scope)  # fmt: skip
            tokens[name] = accounts.create_token(s, user, "test")[1]
    live = LiveServer(engine)
    yield Site(live, tokens, agencies)
    live.stop()


def _form_errors(html: str) -> dict[str, str]:
    return {k: v for k, v in re.findall(r'data-testid="error-([a-z_]+)">([^<]*)<', html) if v.strip()}


@pytest.mark.web
def test_probing_over_the_api_and_the_edit_form(engine: Engine, site: Site) -> None:
    """The same answers through HTTP: 422 with the fixed message, then 429 with Retry-After; each
    refusal is in the audit chain although its request was rolled back."""
    ivan = site.api("ivan")
    bodies = {}
    for xid in BIRTHS:
        r = ivan.patch(f"/api/v1/victims/{xid}", json={"version": 1, "rescue_date": "2018-06-01"})
        assert r.status_code == 422, r.text
        bodies[xid] = r.json()
    assert bodies["VIC-A"] == bodies["VIC-B"] and bodies["VIC-A"]["errors"] == {
        "rescue_date": probing.MESSAGE
    }
    browser = sign_in(site.live.url, "ivan", PASSWORD)
    pages = {}
    for xid in BIRTHS:
        form = browser.get(f"/records/victims/{xid}/edit")
        assert form.status_code == 200
        fields = dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', form.text))
        fields.update({"rescue_date": "1999-06-01", "csrf_token": browser.csrf})  # type: ignore[attr-defined]
        r = browser.post(f"/records/victims/{xid}/edit", data=fields)
        assert r.status_code == 422, r.text[:300]
        pages[xid] = _form_errors(r.text)
        assert BIRTHS[xid] not in r.text
    assert pages["VIC-A"] == pages["VIC-B"] == {"rescue_date": probing.MESSAGE.replace("'", "&#39;")}
    assert len(_audit(engine, probing.REFUSED_ACTION)) == 4
    for n in range(probing.ATTEMPTS - 2):
        r = ivan.patch("/api/v1/victims/VIC-A", json={"version": 1, "rescue_date": f"1999-0{n + 1}-01"})
        assert r.status_code == 422
    r = ivan.patch("/api/v1/victims/VIC-A", json={"version": 1, "rescue_date": "2019-05-02"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
    assert len(_audit(engine, probing.LIMITED_ACTION)) == 1 and _version(engine, "VIC-A") == 1
    # the agency move over the API: 403 with a message, audited, nothing changed
    r = site.api("sara").patch("/api/v1/victims/VIC-REF", json={"version": 1, "agency": "AG-NGO"})
    assert r.status_code == 403 and "may not move" in r.json()["detail"]
    assert len(_audit(engine, "scope_refused")) == 1 and _version(engine, "VIC-REF") == 1
    assert ivan.get("/api/v1/victims/VIC-REF").status_code == 200
    assert audit.verify(engine).ok


@pytest.mark.web
def test_a_guessed_phone_is_not_confirmed_by_a_network(engine: Engine, site: Site) -> None:
    """The attack: an analyst posts two recruitment posts with a guessed number (a network of
    their own) and reads the network's matches, on the API and on the page, and the victim's
    record page.  Nothing there may depend on whether the number is a victim's."""
    ana = site.api("ana")
    text = "Easy job in Sihanoukville, high salary, no experience needed. Call {} on Telegram {}"
    posts = [
        {"id": f"guess-{i}", "text": text.format(GUESSED_PHONE, day)}
        for i, day in enumerate(("now", "today"))
    ]
    r = ana.post("/api/v1/posts", json={"posts": posts})
    assert r.status_code == 200, r.text
    [network] = r.json()["networks"]
    matches = ana.get(f"/api/v1/networks/{network}/matches").json()
    assert (
        matches["matches"] == [] and matches["hidden"] == 0 and matches["withheld"] == ["victims", "suspects"]
    )
    shown = ana.get(f"/api/v1/networks/{network}").json()
    assert GUESSED_E164 not in str(shown) and shown["contacts"] == {"phone:#1": 2}
    browser = sign_in(site.live.url, "ana", PASSWORD)
    page = browser.get(f"/screening/networks/{network}").text
    assert "VIC-REF" not in page and GUESSED_E164 not in page and 'data-testid="matches-withheld"' in page
    record = browser.get("/records/victims/VIC-REF").text
    assert network not in record and 'data-testid="record-networks"' not in record
    # an administrator, who may identify, is shown the match
    root = site.api("root").get(f"/api/v1/networks/{network}/matches").json()
    assert [m["external_id"] for m in root["matches"]] == ["VIC-REF"] and root["withheld"] == []
    # the post itself shows what was posted, to everyone alike
    with Session(engine) as s:
        assert screening.get_post(s, Actor(1, "ana", "analyst", None, "all"), "guess-0")["id"] == "guess-0"


@pytest.mark.web
def test_the_evidence_sheet_page_names_only_visible_cases(engine: Engine, site: Site) -> None:
    admin = Actor(id=9, username="root", role="administrator", agency_id=None, scope="all")
    with Session(engine) as s, s.begin():
        al.save_allegation(s, admin, {"external_id": "AL-W", "source": "media", "alleged_on": "2019-06-01",
                                      "text": "A claim.", "agency": "AG-NGO"})  # fmt: skip
        for xid in ("CASE-NGO", "CASE-POL"):
            al.add_evidence(s, admin, "AL-W", {"kind": "cases", "external_id": xid})
    vera, root = sign_in(site.live.url, "vera", PASSWORD), sign_in(site.live.url, "root", PASSWORD)
    narrow, full = vera.get("/allegations/AL-W/sheet"), root.get("/allegations/AL-W/sheet")
    assert narrow.status_code == 200 and full.status_code == 200
    assert "CASE-NGO" in narrow.text and "CASE-POL" not in narrow.text
    assert re.search(r'data-testid="withheld-cases">[^<]*1\)', narrow.text), narrow.text[-2000:]
    assert "CASE-POL" in full.text and 'data-testid="withheld-cases"' not in full.text
