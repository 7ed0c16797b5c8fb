"""Person linkage in storage: identities, review decisions, failed runs, and reports counting persons.

Most tests drive the service with a stand-in engine whose clusters are given,
so that what is tested is the storage and counting, on both database engines;
the real engine (Splink) runs in the tests that check decisions are honoured
through it and that unusable records are left alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ctis.domain.periods import parse_period
from ctis.linkage import Decision, LinkModel, LinkResult
from ctis.linkage import service as ls
from ctis.metrics import compute_report, drill_down
from ctis.records import Invalid, NotFound, save_record
from ctis.security.permissions import SYSTEM, Actor, Forbidden
from ctis.storage.db import session_scope
from ctis.storage.models import Agency, AuditEntry, LinkDecision, LinkRun, Suspect, Victim
from tests.factories import Fixture

OFFICER = Actor(id=1, username="officer-t", role="data_officer", agency_id=None, scope="all")
ANALYST = Actor(id=2, username="analyst-t", role="analyst", agency_id=None, scope="all")
VIEWER = Actor(id=3, username="viewer-t", role="viewer", agency_id=None)
INVESTIGATOR = Actor(id=4, username="police-t", role="investigator", agency_id=None, scope="all")


class StandIn:
    """An engine whose answer is given: clusters by the records' ``phone`` (a test label),
    review pairs by external id; it honours decisions as the real engine does, and keeps
    the decisions it was given."""

    def __init__(self, review: Iterable[tuple[str, str]] = ()):
        self.review = list(review)
        self.decisions: list[Decision] = []
        self.calls = 0
        self.ext_to_id: dict[str, str] = {}

    def __call__(self, frame: pd.DataFrame, **kw: Any) -> LinkResult:
        self.calls += 1
        self.decisions = list(kw["decisions"])
        rows = frame.to_dict("records")
        by_label: dict[str, list[str]] = {}
        for r in rows:
            by_label.setdefault(r["phone"] or f"own-{r['record_id']}", []).append(r["record_id"])
        parent = {r["record_id"]: r["record_id"] for r in rows}

        def find(x: str) -> str:
            while parent[x] != x:
                x = parent[x]
            return x

        def join(a: str, b: str) -> None:
            parent[find(a)] = find(b)

        for ids in by_label.values():
            for other in ids[1:]:
                join(ids[0], other)
        for d in self.decisions:
            if d.same:
                join(d.record_id_l, d.record_id_r)
        clusters: dict[str, list[str]] = {}
        for rid in parent:
            clusters.setdefault(find(rid), []).append(rid)
        cluster_of = {rid: min(ids, key=int) for ids in clusters.values() for rid in ids}
        decided = {frozenset((d.record_id_l, d.record_id_r)) for d in self.decisions}
        ext = self.ext_to_id
        review = [(ext[a], ext[b], 0.7) for a, b in self.review if frozenset((ext[a], ext[b])) not in decided]
        return LinkResult(
            clusters=cluster_of, review=review, unlinkable=[], model=LinkModel.prior(),
            pairs_scored=len(rows) * (len(rows) - 1) // 2, seconds=0.01,
        )  # fmt: skip


def broken(frame: pd.DataFrame, **kw: Any) -> LinkResult:
    raise RuntimeError("the engine ran out of memory")


def _ids(engine: Engine, model: Any = Victim) -> dict[str, int]:
    with Session(engine) as s:
        return {str(e): int(i) for e, i in s.execute(select(model.external_id, model.id))}


def _persons(engine: Engine, model: Any = Victim) -> dict[str, int | None]:
    with Session(engine) as s:
        return {str(e): p for e, p in s.execute(select(model.external_id, model.person_id))}


def _run(engine: Engine, kind: str = "victims", linker: Any = None, **kw: Any) -> ls.RunSummary:
    if isinstance(linker, StandIn):
        model = Victim if kind == "victims" else Suspect
        linker.ext_to_id = {k: str(v) for k, v in _ids(engine, model).items()}
    with session_scope(engine) as s:
        return ls.run_linkage(s, OFFICER, kind, **({"linker": linker} if linker else {}), **kw)


def _three_victims(engine: Engine) -> None:
    """v1 (police) and v2 (shelter) are one person, both rescued in 2024-H1; v3 another person."""
    f = Fixture()
    police = f.agency(external_id="AG-POL", agency_kind="police")
    shelter = f.agency(external_id="AG-SHE", agency_kind="ngo")
    f.victim("2024-02-01", external_id="v1", name_latin="Sok Dara", phone="same-1", agency=police.external_id,
             age=15, province="KH-12")  # fmt: skip
    f.victim("2024-02-03", external_id="v2", name_khmer="សុខ ដារ៉ា", phone="same-1", agency=shelter.external_id,
             age=15, province="KH-12")  # fmt: skip
    f.victim("2024-03-01", external_id="v3", name_latin="Chan Nary", agency=police.external_id, age=30,
             province="KH-18")  # fmt: skip
    f.save(engine)


# -- counting persons -----------------------------------------------------------------------------


def test_linked_records_in_a_period_count_once_in_totals_and_in_each_breakdown_cell(engine: Engine) -> None:
    _three_victims(engine)
    period = parse_period("2024-H1")
    with Session(engine) as s:
        before = compute_report(s, period, ["victims_rescued", "victims_rescued_minor"], ["agency"])
    assert before.metrics == {"victims_rescued": 3, "victims_rescued_minor": 2}
    assert before.deduplicated is False and before.as_dict()["counts"] == "records"

    run = _run(engine, linker=StandIn())
    assert (run.status, run.records, run.persons, run.linked_records) == ("succeeded", 3, 2, 2)
    ids = _ids(engine)
    assert _persons(engine) == {"v1": ids["v1"], "v2": ids["v1"], "v3": ids["v3"]}
    with Session(engine) as s:
        keys = ["victims_rescued", "victims_rescued_minor"]
        after = compute_report(s, period, keys, ["agency", "province"])
        unit, rows = drill_down(s, "victims_rescued", period)
        _, minors = drill_down(s, "victims_rescued_minor", period)
    assert after.metrics == {"victims_rescued": 2, "victims_rescued_minor": 1}
    assert after.deduplicated is True and after.as_dict()["counts"] == "persons"
    agencies = after.by["agency"]["victims_rescued"]
    assert sorted(agencies.values()) == [1, 2]  # the person counts under the police and the shelter
    assert sum(agencies.values()) == 3 > after.metrics["victims_rescued"]
    assert after.by["province"]["victims_rescued"] == {"KH-12": 1, "KH-18": 1}
    # drill-down: one row per person, listing the person's records
    assert unit == "victims" and len(rows) == 2
    assert [r.external_id for r in rows] == ["v1", "v3"]
    assert [ext for _, ext in rows[0].records] == ["v1", "v2"]
    assert len(minors) == 1


def test_publication_tables_count_each_person_in_one_cell(engine: Engine) -> None:
    """A person whose records disagree falls in one cell of a published table, so tables add up."""
    from ctis.metrics.report import cross_tab

    _three_victims(engine)
    _run(engine, linker=StandIn())
    period = parse_period("2024-H1")
    with Session(engine) as s:
        agencies = dict(s.execute(select(Agency.external_id, Agency.id)).all())
        by_agency = cross_tab(s, period, "victims_rescued", ["agency"])
        by_agency_and_province = cross_tab(s, period, "victims_rescued", ["agency", "province"])
        report = compute_report(s, period, ["victims_rescued"], ["agency"])
    # the breakdown report shows the person under both agencies; the table counts them once,
    # under the agency of their first record (the police's v1)
    assert sum(report.by["agency"]["victims_rescued"].values()) == 3
    assert by_agency == {(str(agencies["AG-POL"]),): 2}
    assert sum(by_agency.values()) == report.metrics["victims_rescued"] == 2
    assert sum(by_agency_and_province.values()) == 2


def test_unlinked_and_new_records_count_as_their_own_person(engine: Engine) -> None:
    _three_victims(engine)
    _run(engine, linker=StandIn())
    f = Fixture()
    f.victim("2024-04-01", external_id="v4", name_latin="Sok Dara", phone="same-1", age=15)  # not linked yet
    f.save(engine)
    with Session(engine) as s:
        rep = compute_report(s, parse_period("2024-H1"), ["victims_rescued"])
    assert rep.metrics["victims_rescued"] == 3  # v1+v2, v3, and v4 on its own
    assert rep.deduplicated is False  # the latest run does not cover v4
    run = _run(engine, linker=StandIn(), retrain=False)
    assert run.trained is False and run.persons == 2
    with Session(engine) as s:
        assert compute_report(s, parse_period("2024-H1"), ["victims_rescued"]).metrics["victims_rescued"] == 2


def test_suspects_count_persons_through_prosecutions_too(engine: Engine) -> None:
    f = Fixture()
    a = f.suspect(external_id="s1", name_latin="Heng Vibol", arrest_date="2024-01-10", phone="p", age=40)
    b = f.suspect(external_id="s2", name_latin="Hieng Viboll", arrest_date="2024-01-10", phone="p", age=40)
    f.suspect(external_id="s3", name_latin="Ly Kosal", arrest_date="2024-01-12", age=33, nationality="CHN")
    f.prosecution(a, charged_on="2024-02-01", outcome="pending")
    f.prosecution(b, charged_on="2024-02-02", outcome="pending")
    f.save(engine)
    period = parse_period("2024-H1")
    with Session(engine) as s:
        assert compute_report(s, period, ["suspects_prosecuted"]).metrics["suspects_prosecuted"] == 2
    run = _run(engine, "suspects", StandIn())
    assert (run.records, run.persons) == (3, 2)
    with Session(engine) as s:
        keys = ["suspects_arrested", "suspects_prosecuted", "suspects_arrested_foreign"]
        m = compute_report(s, period, keys)
    assert m.metrics == {"suspects_arrested": 2, "suspects_prosecuted": 1, "suspects_arrested_foreign": 1}
    assert m.deduplicated is True


# -- runs -----------------------------------------------------------------------------------------


def test_a_failed_run_leaves_the_previous_identities_and_queue_intact(engine: Engine) -> None:
    _three_victims(engine)
    first = _run(engine, linker=StandIn(review=[("v1", "v3")]))
    persons = _persons(engine)
    with Session(engine) as s:
        queue = ls.review_queue(s, OFFICER, "victims")
    assert first.review_pairs == 1 and queue.total == 1
    failed = _run(engine, linker=broken)
    assert failed.status == "failed" and "out of memory" in (failed.error or "")
    assert _persons(engine) == persons
    with Session(engine) as s:
        assert ls.review_queue(s, OFFICER, "victims").total == 1
        runs = list(s.scalars(select(LinkRun).order_by(LinkRun.id)))
        assert [r.status for r in runs] == ["succeeded", "failed"]
        assert runs[1].model is None
        # the report still counts the persons of the last successful run
        rep = compute_report(s, parse_period("2024-H1"), ["victims_rescued"])
        assert rep.metrics["victims_rescued"] == 2 and rep.deduplicated is True
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "link")))
    # one audit entry per run, none per record read
    assert [json.loads(e.detail or "{}")["status"] for e in entries] == ["succeeded", "failed"]


def test_a_run_stores_its_trained_model_and_thresholds(engine: Engine) -> None:
    _three_victims(engine)
    run = _run(engine, linker=StandIn(), match_threshold=0.9, review_threshold=0.4)
    with Session(engine) as s:
        stored = s.get(LinkRun, run.id)
        assert stored is not None and stored.started_by == OFFICER.username and stored.finished_at
        assert (stored.match_threshold, stored.review_threshold) == (0.9, 0.4)
        assert LinkModel.from_json(stored.model or "").kind == "people"
    with session_scope(engine) as s, pytest.raises(Invalid):
        ls.run_linkage(s, OFFICER, "victims", match_threshold=0.3, review_threshold=0.6)
    with session_scope(engine) as s, pytest.raises(Invalid):
        ls.run_linkage(s, OFFICER, "cases")


def test_a_model_of_an_older_format_is_replaced_not_a_crash(engine: Engine) -> None:
    _people(engine)
    first = _run(engine)
    assert first.status == "succeeded" and not first.trained  # 7 records: the starting values
    with session_scope(engine) as s:
        stored = s.get(LinkRun, first.id)
        assert stored is not None
        stored.model = '{"format": "ctis-linkage/0"}'
    again = _run(engine, retrain=False)
    assert again.status == "succeeded", again.error
    assert again.persons == first.persons


def test_only_administrators_and_data_officers_run_and_review(engine: Engine) -> None:
    _three_victims(engine)
    for actor in (ANALYST, VIEWER, INVESTIGATOR):
        with Session(engine) as s:
            with pytest.raises(Forbidden):
                ls.run_linkage(s, actor, "victims", linker=StandIn())
            with pytest.raises(Forbidden):
                ls.review_queue(s, actor, "victims")
            with pytest.raises(Forbidden):
                ls.decide(s, actor, "victims", 1, 2, True)
    with session_scope(engine) as s:
        assert ls.run_linkage(s, SYSTEM, "victims", linker=StandIn()).status == "succeeded"


# -- review decisions -----------------------------------------------------------------------------


def test_a_confirmation_merges_at_once_and_survives_every_later_run(engine: Engine) -> None:
    _three_victims(engine)
    ids = _ids(engine)
    engine_ = StandIn(review=[("v1", "v3")])
    _run(engine, linker=engine_)
    with session_scope(engine) as s:
        page = ls.review_queue(s, OFFICER, "victims")
        [item] = page.items
        assert (item.reason, item.probability) == ("uncertain", 0.7)
        assert item.left["name_latin"] == "Sok Dara" and item.right["name_latin"] == "Chan Nary"
        decision = ls.decide(s, OFFICER, "victims", item.record_id_r, item.record_id_l, True)
    assert decision.merged and (decision.record_id_l, decision.record_id_r) == (ids["v1"], ids["v3"])
    assert set(_persons(engine).values()) == {ids["v1"]}
    for _ in range(2):  # re-linking, trained again or not, keeps the verdict
        _run(engine, linker=engine_, retrain=False)
        assert engine_.decisions == [Decision(str(ids["v1"]), str(ids["v3"]), True)]
        assert set(_persons(engine).values()) == {ids["v1"]}
        with Session(engine) as s:
            assert ls.review_queue(s, OFFICER, "victims").total == 0


def test_rejecting_a_link_parts_the_records_at_once_and_for_good(engine: Engine) -> None:
    """Links are made from 0.5, so a reviewer may reject two records that are one person now."""
    _three_victims(engine)
    ids = _ids(engine)
    _run(engine)  # the real engine: Sok Dara and សុខ ដារ៉ា, same phone, age and province, link
    assert _persons(engine)["v1"] == _persons(engine)["v2"] == ids["v1"]
    with session_scope(engine) as s:
        decision = ls.decide(s, OFFICER, "victims", ids["v2"], ids["v1"], False)
    assert decision.split and not decision.merged
    persons = _persons(engine)
    assert persons["v1"] == ids["v1"] and persons["v2"] == ids["v2"] and persons["v3"] == ids["v3"]
    with Session(engine) as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "link-decide"))
        assert json.loads(entry.detail or "{}")["split"] is True
    for retrain in (True, False):  # every later run keeps them apart
        _run(engine, retrain=retrain)
        assert _persons(engine)["v1"] != _persons(engine)["v2"]
    with session_scope(engine) as s:  # rejecting records already apart parts nothing
        assert not ls.decide(s, OFFICER, "victims", ids["v1"], ids["v3"], False).split


def test_a_rejection_is_kept_when_parting_the_records_fails(engine: Engine, monkeypatch: Any) -> None:
    _three_victims(engine)
    ids = _ids(engine)
    _run(engine)

    def broken(*_a: Any, **_kw: Any) -> LinkResult:
        raise RuntimeError("engine down")

    monkeypatch.setattr(ls, "link", broken)
    with session_scope(engine) as s:
        assert not ls.decide(s, OFFICER, "victims", ids["v1"], ids["v2"], False).split
    assert _persons(engine)["v1"] == _persons(engine)["v2"]  # parted by the next run instead
    with Session(engine) as s:
        assert [d.same for d in s.scalars(select(LinkDecision))] == [False]


def test_a_changed_record_flags_its_decision_for_review_again(engine: Engine) -> None:
    _three_victims(engine)
    ids = _ids(engine)
    engine_ = StandIn(review=[("v1", "v3")])
    _run(engine, linker=engine_)
    with session_scope(engine) as s:
        ls.decide(s, OFFICER, "victims", ids["v1"], ids["v3"], False)
    _run(engine, linker=engine_)
    assert engine_.decisions == [Decision(str(ids["v1"]), str(ids["v3"]), False)]
    # a change that is not a linkage field keeps the decision
    with session_scope(engine) as s:
        save_record(s, OFFICER, "victims", {"status": "possible"}, external_id="v3")
    _run(engine, linker=engine_)
    assert len(engine_.decisions) == 1
    # a new date of birth for v3 makes the verdict stale: no longer honoured, back in the queue
    with session_scope(engine) as s:
        save_record(s, OFFICER, "victims", {"age": None, "date_of_birth": "1994-01-02"}, external_id="v3")
    run = _run(engine, linker=engine_)
    assert engine_.decisions == [] and run.stale_decisions == 1
    with Session(engine) as s:
        assert s.scalars(select(LinkDecision.stale)).all() == [True]
        page = ls.review_queue(s, OFFICER, "victims")
    assert [(i.reason, i.previous, i.probability) for i in page.items] == [("changed", False, 0.7)]
    # deciding again clears the flag
    with session_scope(engine) as s:
        ls.decide(s, OFFICER, "victims", ids["v3"], ids["v1"], False)
    _run(engine, linker=engine_)
    assert engine_.decisions == [Decision(str(ids["v1"]), str(ids["v3"]), False)]
    with Session(engine) as s:
        assert ls.review_queue(s, OFFICER, "victims").total == 0


def test_bad_decisions_are_refused_with_a_clear_error(engine: Engine) -> None:
    _three_victims(engine)
    ids = _ids(engine)
    with Session(engine) as s:
        with pytest.raises(Invalid):
            ls.decide(s, OFFICER, "victims", ids["v1"], ids["v1"], True)
        with pytest.raises(NotFound):
            ls.decide(s, OFFICER, "victims", ids["v1"], 10**6, True)
        with pytest.raises(Invalid):
            ls.review_queue(s, OFFICER, "victims", per_page=0)
        with pytest.raises(Invalid):
            ls.review_queue(s, OFFICER, "operations")


def test_person_records_lists_the_persons_records_within_scope_and_audits(engine: Engine) -> None:
    _three_victims(engine)
    _run(engine, linker=StandIn())
    with session_scope(engine) as s:
        shown = ls.person_records(s, OFFICER, "victims", "v2")
        masked = ls.person_records(s, ANALYST, "victims", "v1")
    assert [r["external_id"] for r in shown] == ["v1", "v2"]
    assert shown[1]["name_khmer"] == "សុខ ដារ៉ា" and not shown[1]["masked"]
    assert masked[0]["name_latin"] is None and masked[0]["masked"]
    with Session(engine) as s:
        police = s.scalar(select(Victim.agency_id).where(Victim.external_id == "v1"))
        mine = Actor(id=5, username="police-own", role="investigator", agency_id=police, scope="own")
        assert [r["external_id"] for r in ls.person_records(s, mine, "victims", "v1")] == ["v1"]
        with pytest.raises(NotFound):
            ls.person_records(s, mine, "victims", "v2")  # the shelter's record is out of their scope
        details = [json.loads(e.detail or "{}") for e in s.scalars(select(AuditEntry))]
    assert sum(d.get("purpose") == "person records" for d in details) == 3  # the last one uncommitted


# -- the real engine --------------------------------------------------------------------------------


def _people(engine: Engine) -> None:
    f = Fixture()
    rows = [
        ("p1", "Sok Dara", None, "2008-03-05", "012 345 678"),
        ("p2", None, "សុខ ដារ៉ា", "2008-03-05", "+855 12 345 678"),
        ("p3", "Chan Nary", "ចាន់ ណារី", "1995-07-21", None),
        ("p4", "Keo Sophea", None, "2001-11-02", None),
        ("p5", "Meas Vanna", "មាស វណ្ណា", "1999-01-30", "097 111 2222"),
        ("p6", "Touch Bopha", None, "2003-06-14", None),
    ]
    for ext, latin, khmer, dob, phone in rows:
        f.victim("2024-02-01", external_id=ext, name_latin=latin, name_khmer=khmer, date_of_birth=dob,
                 phone=phone, province="KH-12")  # fmt: skip
    f.victim("2024-02-02", external_id="nobody", province="KH-12")  # neither name nor date: unlinkable
    f.save(engine)


@pytest.mark.slow
def test_the_engine_honours_a_confirmation_and_leaves_unusable_records_alone(engine: Engine) -> None:
    _people(engine)
    ids = _ids(engine)
    run = _run(engine)
    assert run.status == "succeeded", run.error
    assert run.unlinkable == ["nobody"]
    with Session(engine) as s:
        [listed] = ls.link_runs(s, OFFICER, "victims")
    assert (listed.id, listed.unlinkable, listed.persons) == (run.id, ["nobody"], run.persons)
    persons = _persons(engine)
    assert persons["nobody"] == ids["nobody"]
    assert persons["p1"] == persons["p2"] == ids["p1"]  # Latin and Khmer script, the same phone
    assert persons["p3"] != persons["p4"]
    with session_scope(engine) as s:  # a reviewer knows p3 and p4 are one person (a name changed at marriage)
        ls.decide(s, OFFICER, "victims", ids["p3"], ids["p4"], True)
        ls.decide(s, OFFICER, "victims", ids["p1"], ids["p2"], False)  # and that p1 and p2 are not
    again = _run(engine, retrain=False)
    assert again.status == "succeeded" and again.trained is False
    persons = _persons(engine)
    assert persons["p3"] == persons["p4"] == ids["p3"]
    assert persons["p1"] != persons["p2"]
    with Session(engine) as s:
        rep = compute_report(s, parse_period("2024-H1"), ["victims_rescued"])
    assert rep.metrics["victims_rescued"] == 6 and rep.deduplicated  # 7 records, p3 = p4


@pytest.mark.slow
def test_ctis_link_reports_persons_and_lists_unlinked_records(sqlite_env: Any) -> None:
    from typer.testing import CliRunner

    from ctis import services
    from ctis.cli.main import app

    services.init_database()
    _people(services.engine())
    runner = CliRunner()
    result = runner.invoke(app, ["link", "victims"])
    assert result.exit_code == 0, result.output
    assert "victims: 7 records are 6 persons" in result.output
    assert "unlinked: nobody" in result.output
    again = runner.invoke(app, ["link", "all", "--incremental"])
    assert again.exit_code == 0 and "saved model" in again.output, again.output
    assert runner.invoke(app, ["link", "cases"]).exit_code == 2


def test_an_import_of_victims_is_linked_with_the_saved_model(sqlite_env: Any) -> None:
    from typer.testing import CliRunner

    from ctis import services
    from ctis.cli.main import app

    services.init_database()
    _people(services.engine())
    runner = CliRunner()
    header = (
        "external_id,name_latin,name_khmer,sex,date_of_birth,age,nationality,province,case,agency,phone,"
        "address,rescue_date,status,country_of_exploitation,exploitation_type,labour_sector,"
        "means_of_control,recruiter_relation,operations\n"
    )
    rows = "p7,Chan Nary,,female,1995-07-21,,KHM,KH-12,,,,,2024-03-01,confirmed,,,,,,\n"
    csv_file = sqlite_env / "v.csv"
    csv_file.write_text(header + rows, encoding="utf-8")
    never = runner.invoke(app, ["import", str(csv_file), "--kind", "victims"])
    assert never.exit_code == 0 and "were never linked" in never.output, never.output
    assert _persons(services.engine())["p7"] is None

    assert runner.invoke(app, ["link", "victims"]).exit_code == 0
    assert _persons(services.engine())["p7"] is not None
    csv_file.write_text(header + rows.replace("p7", "p8"), encoding="utf-8")
    imported = runner.invoke(app, ["import", str(csv_file), "--kind", "victims"])
    assert imported.exit_code == 0, imported.output
    assert "Linked victims with the saved model" in imported.output
    persons = _persons(services.engine())
    assert persons["p8"] is not None and persons["p8"] == persons["p7"]  # the same record twice
    skipped = runner.invoke(
        app, ["import", str(csv_file), "--kind", "victims", "--no-link"]
    )
    assert skipped.exit_code == 0 and "Linked" not in skipped.output
