"""The person-linkage engine: normalisation, known clusters on hand-made records,
decisions, unlinkable records, model round trip, and Spark giving DuckDB's clusters."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from ctis.linkage import INPUT_COLUMNS, Decision, LinkModel, link
from ctis.linkage import normalise as nz
from ctis.linkage.engine import constrained_clusters
from ctis.linkage.synthetic import synthetic_people

pytestmark = [
    # Splink and pyspark warn about their own internals (deprecations in dependencies)
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


# ----------------------------------------------------------------------------- normalise


def test_zero_width_and_nfc_are_removed():
    assert nz.normalise_khmer("សុ\u200bខ\u200c") == "សុខ"
    assert nz.clean_latin("Sok\u200b Da\u00adra") == "sok dara"
    assert nz.clean_latin("Só̈k") == nz.clean_latin("Sok")


def test_subscript_da_and_ta_are_one():
    with_ta = "ចិ\u17d2\u178fា"
    with_da = "ចិ\u17d2\u178aា"
    assert nz.normalise_khmer(with_da) == nz.normalise_khmer(with_ta)


def test_vowel_sign_typed_before_subscript_is_reordered():
    canonical = "ចន្ធូ"  # CA, NO, COENG THO, UU
    typed = "ចនូ\u17d2ធ"  # the vowel sign typed before the subscript
    assert nz.normalise_khmer(typed) == nz.normalise_khmer(canonical)
    assert nz.normalise_khmer("សុុខ") == "សុខ"  # a sign typed twice renders once


def test_split_vowel_is_composed():
    assert nz.normalise_khmer("\u1780\u17c1\u17b8") == "\u1780\u17be"


@pytest.mark.parametrize("spelling", ["Sok Dara", "Sok Darah", "Sokh Dara", "SOK  DARA", "sok dara"])
def test_romanisations_converge(spelling):
    ref = nz.keys_of_latin("Sok Dara")
    k = nz.keys_of_latin(spelling)
    assert (k.family_key, k.given_key) == (ref.family_key, ref.given_key)


def test_khmer_name_and_its_romanisation_share_keys():
    km = nz.keys_of_khmer("សុខ ដារា")
    lat = nz.keys_of_latin("Sok Dara")
    assert (km.family_key, km.given_key) == (lat.family_key, lat.given_key)
    # script omits the inherent vowel; the consonant skeleton still meets
    assert nz.keys_of_khmer("ពៅ ចន្ធូ").full_skel == nz.keys_of_latin("Pov Chanthou").full_skel
    assert nz.romanise_khmer("ចាន់") == "chan"


def test_different_names_have_different_keys():
    assert nz.keys_of_latin("Sok Dara").given_skel != nz.keys_of_latin("Sok Sophea").given_skel
    assert nz.keys_of_latin("Sok Dara").family_skel != nz.keys_of_latin("Chan Dara").family_skel


def test_dates_ages_phones():
    assert nz.parse_date("2001-02-30") is None
    assert nz.parse_date("12/03/2001") is None
    assert str(nz.swap_day_month(nz.parse_date("2001-03-12"))) == "2001-12-03"
    assert nz.swap_day_month(nz.parse_date("2001-03-25")) is None
    assert nz.birth_year_window(24, "2024-06-01") == (1999, 2000)
    assert nz.birth_year_window(24, None) is None
    assert nz.birth_year_window("x", "2024-06-01") is None
    assert nz.normalise_phone("012 345 678") == "+85512345678"
    assert nz.normalise_phone("+855 12-345-678") == "+85512345678"
    assert nz.normalise_phone("hello") is None


def test_phone_fast_path_agrees_with_phonenumbers():
    import random

    import phonenumbers

    rng = random.Random(4)
    for _ in range(3000):
        head = rng.choice(["0", "+855", "+855 ", "0 ", "855", "+66 "])
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice((7, 8, 9, 10))))
        text = head + digits[:3] + rng.choice(["", " ", "-"]) + digits[3:]
        try:
            num = phonenumbers.parse(text, "KH")
            slow = (phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_possible_number(num) else None)
        except phonenumbers.NumberParseException:
            slow = None
        assert nz.normalise_phone(text) == slow, text


def test_birth_date_window_is_one_year():
    lo, hi = nz.birth_date_window(24, "2024-06-01")
    assert (str(lo), str(hi)) == ("1999-06-02", "2000-06-01")
    lo, hi = nz.birth_date_window(3, "2024-02-29")  # no 29 February in 2020 - 3 years back is 2021
    assert (str(lo), str(hi)) == ("2020-03-01", "2021-02-28")
    assert nz.birth_date_window(None, "2024-06-01") is None


def test_khmer_silent_letters_meet_romanisations():
    assert nz.keys_of_khmer("ពេជ្រ ធូ").family_skel == nz.keys_of_latin("Pich Thou").family_skel
    assert nz.keys_of_khmer("តាំង ធូ").family_key == nz.keys_of_latin("Taing Thou").family_key
    assert nz.keys_of_latin("Hangh Sokhar").family_key == nz.keys_of_latin("Hang Sokha").family_key
    assert nz.keys_of_latin("Hangh Sokhar").given_key == nz.keys_of_latin("Hang Sokha").given_key
    # per-word caching gives the whole-string result, noise included
    assert nz.normalise_khmer("សុ\u200bខ  ដា\u200bរា") == "សុខ ដារា"


# ----------------------------------------------------------------------------- engine


@pytest.fixture(scope="module")
def model() -> LinkModel:
    """Trained once on synthetic people (a few seconds): the hand-made sets are
    far too small to train on."""
    return LinkModel.train(synthetic_people(1500, seed=11), seed=1)


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    full = [{c: r.get(c) for c in INPUT_COLUMNS} for r in rows]
    return pd.DataFrame(full, columns=list(INPUT_COLUMNS))


def same(result, a: str, b: str) -> bool:
    return result.clusters[a] == result.clusters[b]


def test_khmer_script_links_with_latin_spelling(model):
    df = frame(
        {"record_id": "a", "name_khmer": "សុខ ដារា", "date_of_birth": "1995-04-17", "sex": "female",
         "province": "KH-12", "nationality": "KHM"},
        {"record_id": "b", "name_latin": "Sokh Darah", "date_of_birth": "1995-04-17", "sex": "female",
         "province": "KH-12", "nationality": "KHM"},
        {"record_id": "c", "name_latin": "Chan Sophea", "date_of_birth": "1988-01-02", "sex": "female",
         "province": "KH-3", "nationality": "KHM"},
    )
    r = link(df, model=model)
    assert same(r, "a", "b")
    assert not same(r, "a", "c")
    assert r.clusters["b"] == "a"  # cluster id: the smallest record id
    assert r.pairs_scored >= 1


def test_twins_do_not_merge(model):
    twins = {"date_of_birth": "2003-05-09", "sex": "female", "province": "KH-18", "phone": "012 888 111",
             "nationality": "KHM"}
    df = frame(
        {"record_id": "t1", "name_latin": "Sok Sreymom", **twins},
        {"record_id": "t2", "name_latin": "Sok Bopha", **twins},
        {"record_id": "t3", "name_khmer": "សុខ បុប្ផា", **twins},
    )
    r = link(df, model=model)
    assert not same(r, "t1", "t2")
    assert same(r, "t2", "t3")


def test_day_month_swap_links(model):
    df = frame(
        {"record_id": "a", "name_latin": "Meas Vanna", "date_of_birth": "1990-03-07", "sex": "male",
         "province": "KH-2"},
        {"record_id": "b", "name_latin": "Meas Vana", "date_of_birth": "1990-07-03", "sex": "male",
         "province": "KH-2"},
    )
    assert same(link(df, model=model), "a", "b")


def test_age_only_record_links_to_date_of_birth(model):
    df = frame(
        {"record_id": "a", "name_latin": "Heng Sophal", "date_of_birth": "1999-08-20", "sex": "female",
         "province": "KH-17", "nationality": "KHM", "phone": "097 123 4567"},
        {"record_id": "b", "name_khmer": "ហេង សុផល", "age": 24, "age_on": "2024-03-01", "sex": "female",
         "province": "KH-17", "nationality": "KHM", "phone": "+855971234567"},
        {"record_id": "c", "name_latin": "Heng Sophal", "age": 60, "age_on": "2024-03-01", "sex": "female",
         "province": "KH-17", "nationality": "KHM"},
    )
    r = link(df, model=model)
    assert same(r, "a", "b")
    assert not same(r, "a", "c")  # the age says born about 1963


def test_decisions_split_and_join(model):
    base = {"date_of_birth": "1985-11-30", "sex": "male", "province": "KH-8", "nationality": "KHM"}
    df = frame(
        {"record_id": "a", "name_latin": "Keo Vibol", **base},
        {"record_id": "b", "name_khmer": "កែវ វិបុល", **base},
        {"record_id": "c", "name_latin": "Keo Vibol", **base, "phone": "011 222 333"},
        {"record_id": "d", "name_latin": "Touch Kosal", "date_of_birth": "1970-01-15", "sex": "male"},
    )
    first = link(df, model=model)
    assert same(first, "a", "b") and same(first, "b", "c")
    assert not same(first, "a", "d")
    # a rejection holds even though a-c and c-b would chain a to b
    second = link(df, model=model, decisions=[Decision("b", "a", same=False), Decision("a", "d", same=True)])
    assert not same(second, "a", "b")
    assert same(second, "a", "d")
    decided = {frozenset(p[:2]) for p in second.review}
    assert frozenset(("a", "b")) not in decided and frozenset(("a", "d")) not in decided


def test_unusable_records_are_listed_not_clustered(model):
    df = frame(
        {"record_id": "u1", "name_latin": "  ", "name_khmer": "?", "sex": "female", "province": "KH-1"},
        {"record_id": "u2", "name_latin": None, "date_of_birth": "not a date", "age": 30, "sex": "female",
         "province": "KH-1"},
        {"record_id": "k1", "name_latin": "Ly Dara", "sex": "female"},
        {"record_id": "k2", "date_of_birth": "2000-01-01", "sex": "female"},
    )
    r = link(df, model=model)
    assert r.unlinkable == ["u1", "u2"]
    assert set(r.clusters) == {"k1", "k2"}
    assert r.n_persons == 4


def test_an_undated_record_meets_its_name_in_another_province(model):
    """In a batch under SMALL_BATCH_RECORDS a record without any date is compared
    with every record of the same name, whatever the province."""
    df = frame(
        {"record_id": "a", "name_latin": "Ly Dara", "sex": "female", "province": "KH-1"},
        {"record_id": "b", "name_khmer": "លី ដារា", "date_of_birth": "1990-01-02", "sex": "female",
         "province": "KH-9"},
    )
    assert link(df, model=model).pairs_scored == 1


def test_bad_input_is_refused(model):
    with pytest.raises(ValueError, match="lacks columns"):
        link(pd.DataFrame({"record_id": ["a"]}), model=model)
    dup = frame({"record_id": "a", "name_latin": "Ly Dara"}, {"record_id": "a", "name_latin": "Ly Dara"})
    with pytest.raises(ValueError, match="unique"):
        link(dup, model=model)
    with pytest.raises(ValueError, match="engine"):
        link(dup, model=model, engine="oracle")


def test_model_round_trip_is_exact(model):
    again = LinkModel.from_json(model.to_json())
    assert again.parameters == model.parameters
    assert again.probability_two_random_records_match == model.probability_two_random_records_match
    with pytest.raises(ValueError):
        LinkModel.from_json('{"format": "something else"}')


def test_small_batch_uses_the_models_name_frequencies(model):
    """A batch under TF_MIN_RECORDS is adjusted by how common a name is in the
    training data (kept in the model), not left unadjusted: the same evidence on
    a common name weighs less than on a rarer one."""
    from ctis.linkage.engine import prepare_people, score_pairs

    tf = model.term_frequencies["giv_key"]
    assert tf and LinkModel.from_json(model.to_json()).term_frequencies == model.term_frequencies
    fam = model.term_frequencies["fam_key"]
    common_fam = max(fam, key=fam.get)
    giv_common, giv_rare = max(tf, key=tf.get), min(tf, key=tf.get)
    assert tf[giv_common] > 3 * tf[giv_rare]

    def rec(rid: str, giv: str) -> dict[str, object]:
        # the keys are already romanised keys, so a Latin spelling of them gives them back
        return {"record_id": rid, "name_latin": f"{common_fam} {giv}", "sex": "female", "province": "KH-4"}

    df = frame(rec("a1", giv_common), rec("a2", giv_common), rec("b1", giv_rare), rec("b2", giv_rare))
    feats = prepare_people(df)
    assert feats["giv_key"].tolist() == [giv_common, giv_common, giv_rare, giv_rare]
    pairs, _ = score_pairs([feats], model, engine="duckdb", min_probability=0.0)
    p = {(a, b): q for a, b, q in pairs.itertuples(index=False)}
    assert p[("a1", "a2")] < p[("b1", "b2")]


def test_training_on_few_records_keeps_a_model_that_fits():
    """On 200 records an EM step can fail (a level with no pairs); the model then
    keeps the starting values of what it could not estimate, and still links."""
    df = synthetic_people(120, seed=7)
    m = LinkModel.train(df, seed=1)
    assert set(m.parameters) == set(LinkModel.prior().parameters)
    m.settings("duckdb")  # fits its own comparisons
    assert m.probability_two_random_records_match < 0.05  # a failed EM step once left 0.44
    assert LinkModel.from_json(m.to_json()).parameters == m.parameters
    assert link(df, model=m).n_persons <= df["record_id"].nunique()


def test_training_is_deterministic():
    df = synthetic_people(400, seed=5)
    assert LinkModel.train(df, seed=3).to_json() == LinkModel.train(df, seed=3).to_json()


def test_synthetic_links_most_people(model):
    df = synthetic_people(600, seed=21)
    r = link(df, model=model)
    truth = dict(zip(df["record_id"], df["person_id"], strict=True))
    clusters: dict[str, set[str]] = {}
    for rid, c in r.clusters.items():
        clusters.setdefault(c, set()).add(truth[rid])
    impure = sum(1 for people in clusters.values() if len(people) > 1)
    assert impure <= 0.03 * len(clusters)
    assert abs(r.n_persons - df["person_id"].nunique()) <= 0.12 * df["person_id"].nunique()


def test_uncertain_links_are_made_and_listed_for_confirmation(model):
    """Pairs from 0.5 link (more likely than not); those under 0.95, linked or not, go to review."""
    df = synthetic_people(600, seed=21)
    r = link(df, model=model)
    assert r.review
    linked = [p for a, b, p in r.review if same(r, a, b)]
    apart = [p for a, b, p in r.review if not same(r, a, b)]
    assert all(0.2 <= p < 0.95 for _a, _b, p in r.review)
    assert linked and apart and min(p for _a, _b, p in r.review if p >= 0.5) >= 0.5
    assert all(same(r, a, b) for a, b, p in r.review if p >= 0.5)
    stricter = link(df, model=model, match_threshold=0.95, review_threshold=0.5)
    assert stricter.n_persons > r.n_persons
    assert {(a, b) for a, b, p in stricter.review} == {(a, b) for a, b, p in r.review if p >= 0.5}


def test_constrained_clusters_drop_the_weaker_link():
    clusters = constrained_clusters(["a", "b", "c"], [("a", "b"), ("b", "c")], [("a", "c")])
    assert clusters == {"a": "a", "b": "a", "c": "c"}


# ----------------------------------------------------------------------------- spark


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    if shutil.which("java") is None and os.environ.get("CTIS_REQUIRE_JAVA") != "1":
        pytest.skip("pyspark needs a Java runtime (CI installs one)")
    from ctis.linkage.engine import spark_session

    session = spark_session()
    yield session
    session.stop()
    import ctis.linkage.engine as eng

    eng._SPARK = None


@pytest.mark.slow
def test_spark_gives_duckdb_clusters(spark, model):
    df = synthetic_people(150, seed=8)
    on_duckdb = link(df, model=model)
    on_spark = link(df, model=model, engine="spark")
    assert on_spark.clusters == on_duckdb.clusters
    assert on_spark.unlinkable == on_duckdb.unlinkable
    assert on_spark.pairs_scored == on_duckdb.pairs_scored
