"""Probabilistic person linkage: which records of victims and suspects are one person.

The model is Fellegi-Sunter as implemented by Splink 5: each compared field
contributes a likelihood ratio m/u per level of agreement, m (how often true
matches agree at that level) learnt by expectation maximisation on the data
itself, u (how often non-matches agree by chance) by random sampling with a
fixed seed, so training needs no labelled pairs and gives the same model for
the same data. Names are compared on the keys of :mod:`ctis.linkage.normalise`
so that Khmer script and its romanisations meet; exact name agreement is
weighted by how common the name is (term-frequency adjustment).

Around Splink, this module adds what a register of people needs and a pairwise
model does not give:

* records with no usable name and no usable date or age are set aside as
  ``unlinkable`` (a pair of them would only agree on sex and province);
* a pair whose given names clearly differ never links, whatever else agrees:
  twins share family name, date of birth, province and often a phone;
* reviewers' decisions are constraints: a confirmed pair always links, a
  rejected pair never ends in one cluster, even through a chain of links —
  clustering merges the most probable links first and refuses a merge that
  would join a rejected pair.

The engine is data in, data out: it knows nothing of storage, crypto or the web.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ctis.linkage import normalise as nz

INPUT_COLUMNS = ("record_id", "name_latin", "name_khmer", "date_of_birth", "age", "age_on",
                 "sex", "nationality", "province", "phone")
# 2: levels by shared script, age intervals, stored term frequencies; 3: Khmer spellings that differ
MODEL_FORMAT = "ctis-linkage/3"
ENGINES = ("duckdb", "spark")
DUCKDB_THREADS = 2
DUCKDB_MEMORY = "4GB"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """A reviewer's verdict on a pair; honoured by every run."""

    record_id_l: str
    record_id_r: str
    same: bool  # True: confirmed same person (must link); False: rejected (must not link)


# --------------------------------------------------------------------------- Splink plumbing


@contextmanager
def quiet_splink() -> Iterator[None]:
    """Splink logs every step at INFO and warns about its defaults; the engine
    reports through its own result, so both are silenced while it runs."""
    loggers = [logging.getLogger(n) for n in ("splink", "py4j", "pyspark")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


_SPARK: Any = None


def spark_session() -> Any:
    """One local Spark session per process (start-up costs seconds): two
    cores, no UI, few shuffle partitions, Splink's similarity UDF jar (shipped in
    the splink wheel) on the class path so jaro_winkler exists on Spark too."""
    global _SPARK
    if _SPARK is None:
        from pyspark.sql import SparkSession
        from splink.backends.spark import similarity_jar_location

        _SPARK = (
            SparkSession.builder.master("local[2]")
            .appName("ctis-linkage")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.default.parallelism", "4")
            .config("spark.jars", similarity_jar_location())
            .config("spark.driver.memory", "2g")
            .getOrCreate()
        )
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


def _db_api(engine: str) -> Any:
    if engine == "duckdb":
        import duckdb
        from splink import DuckDBAPI

        # the engine shares the machine with the web process: two threads and a
        # memory cap keep a million-record run from taking it over
        con = duckdb.connect(config={"threads": DUCKDB_THREADS, "memory_limit": DUCKDB_MEMORY})
        return DuckDBAPI(connection=con)
    if engine == "spark":
        from splink import SparkAPI

        spark = spark_session()
        # a checkpoint directory is Splink's default way to break long lineages on Spark
        return SparkAPI(spark_session=spark, break_lineage_method="persist")
    raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")


def jw(a: str, b: str, dialect: str) -> str:
    """Jaro-Winkler similarity in the backend's SQL (DuckDB built-in; Spark UDF)."""
    fn = "jaro_winkler_similarity" if dialect == "duckdb" else "jaro_winkler"
    return f"{fn}({a}, {b})"


def _either(col: str, alt: str, test: Callable[[str, str], str]) -> str:
    """A condition true when any spelling of the left record (primary or alternative
    script) passes ``test`` against any spelling of the right one."""
    combos = [(f"{col}_l", f"{col}_r"), (f"{col}_l", f"{alt}_r"), (f"{alt}_l", f"{col}_r"),
              (f"{alt}_l", f"{alt}_r")]
    return "(" + " OR ".join(f"({test(a, b)})" for a, b in combos) + ")"


def _level(sql: str, label: str, m: float, u: float, **extra: Any) -> dict[str, Any]:
    if extra.get("is_null_level"):
        return {"sql_condition": sql, "label_for_charts": label, **extra}
    return {"sql_condition": sql, "label_for_charts": label, "m_probability": m, "u_probability": u,
            **extra}


@dataclass(frozen=True)
class ModelSpec:
    """What a kind of records needs: its features, Splink settings for a dialect
    (with starting m and u values), and the blocking used to train and predict."""

    kind: str
    prepare: Callable[[pd.DataFrame], pd.DataFrame]
    settings: Callable[[str], dict[str, Any]]
    em_blocking: tuple[str, ...]
    deterministic_rules: tuple[str, ...]
    deterministic_recall: float
    prior_match: float
    # extra prediction blocking for batches under SMALL_BATCH_RECORDS: rules
    # whose pairs grow with the square of a common value's records
    small_batch_blocking: tuple[str, ...] = ()


# --------------------------------------------------------------------------- CTIS person records


def _per_distinct(columns: Sequence[pd.Series], fn: Callable[..., dict[str, Any]],
                  index: pd.Index) -> pd.DataFrame:
    """``fn`` applied once per distinct combination of the columns' values and
    spread back to every row. Names, dates and phones repeat massively across
    records (a million records hold a few hundred thousand distinct names), and
    the normalisation is plain Python, so this is most of preparation's speed."""
    keys = pd.Series(list(zip(*(c.map(_plain).to_numpy() for c in columns), strict=True)), dtype=object)
    codes, uniques = pd.factorize(keys)
    names = list(fn(*[None] * len(columns)))
    table = pd.DataFrame([fn(*u) for u in uniques], columns=names)
    out = table.take(codes)
    out.index = index
    return out


def _plain(v: object) -> object:
    """A hashable, comparable stand-in: None for every kind of missing value."""
    return None if _missing(v) else v


def _name_row(lat: object, km: object) -> dict[str, Any]:
    lat_s = lat if isinstance(lat, str) else ""
    km_s = km if isinstance(km, str) else ""
    # A "Latin" field typed in Khmer script is read as Khmer.
    if nz.has_khmer(lat_s) and not km_s:
        lat_s, km_s = "", lat_s
    kl = nz.keys_of_latin(lat_s) if not nz.has_khmer(lat_s) else nz.keys_of_khmer(lat_s)
    kk = nz.keys_of_khmer(km_s) if nz.has_khmer(km_s) else None
    kmn = nz.normalise_khmer(km_s).split() if kk else []
    prim, alt = (kl, kk) if kl.usable else (kk, None)
    return {
        "fam_raw": kl.family_raw or None,
        "giv_raw": kl.given_raw or None,
        "fam_km": kmn[0] if kmn else None,
        "giv_km": "".join(kmn[1:]) or None,
        "fam_key": prim.family_key or None if prim else None,
        "giv_key": prim.given_key or None if prim else None,
        "fam_skel": prim.family_skel or None if prim else None,
        "giv_skel": prim.given_skel or None if prim else None,
        "fam_key_alt": alt.family_key or None if alt else None,
        "giv_key_alt": alt.given_key or None if alt else None,
        "fam_skel_alt": alt.family_skel or None if alt else None,
        "giv_skel_alt": alt.given_skel or None if alt else None,
        "name_skel": prim.full_skel or None if prim else None,
        "name_usable": bool(prim and prim.usable),
    }


def _name_features(df: pd.DataFrame) -> pd.DataFrame:
    return _per_distinct([df["name_latin"], df["name_khmer"]], _name_row, df.index)


def _date_row(dob_v: object, age: object, on: object) -> dict[str, Any]:
    d = nz.parse_date(dob_v) if isinstance(dob_v, str) else None
    on_s = on if isinstance(on, str) else None
    win = None if d else nz.birth_year_window(age, on_s)
    bwin = None if d else nz.birth_date_window(age, on_s)
    sw = nz.swap_day_month(d) if d else None
    lo, hi = (d.year, d.year) if d else (win if win else (None, None))
    return {
        "dob": d.isoformat() if d else None,
        "dob_swap": sw.isoformat() if sw else None,
        "byear_lo": lo,
        "byear_hi": hi,
        "bdate_lo": bwin[0].isoformat() if bwin else None,
        "bdate_hi": bwin[1].isoformat() if bwin else None,
        "date_usable": lo is not None,
    }


def _date_features(df: pd.DataFrame) -> pd.DataFrame:
    out = _per_distinct([df["date_of_birth"], df["age"], df["age_on"]], _date_row, df.index)
    for c in ("byear_lo", "byear_hi"):
        out[c] = out[c].astype("Int64")
    out["date_usable"] = out["date_usable"].astype(bool)
    return out


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _code(v: object) -> str | None:
    if _missing(v):
        return None
    s = str(v).strip()
    return s.upper() if s and s.lower() not in ("nan", "none", "unknown") else None


def prepare_people(df: pd.DataFrame) -> pd.DataFrame:
    """Features of CTIS person records (INPUT_COLUMNS) for the Splink model."""
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"linkage input lacks columns: {', '.join(missing)}")
    ids = df["record_id"].astype(str)
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise ValueError(f"record_id must be unique; {dup!r} appears more than once")
    base = df.reset_index(drop=True)
    out = pd.concat([_name_features(base), _date_features(base)], axis=1)
    out.insert(0, "unique_id", ids.to_numpy())
    out["name_nodate"] = out["name_skel"].where(~out["date_usable"], None)
    alt = (out["fam_skel_alt"].fillna("") + " " + out["giv_skel_alt"].fillna("")).str.strip()
    out["name_skel_alt"] = alt.where(alt != "", None)
    fields = pd.DataFrame({
        "sex": base["sex"], "nationality": base["nationality"], "province": base["province"],
        "phone": base["phone"],
    })
    for col, fn in (("sex", _sex), ("nationality", _code), ("province", _code), ("phone", _phone)):
        out[col] = _per_distinct([fields[col]], lambda v, f=fn: {"v": f(v)}, out.index)["v"].to_numpy()
    return out


def _sex(v: object) -> str | None:
    return (_code(v) or "").lower() or None


def _phone(v: object) -> str | None:
    return None if _missing(v) else nz.normalise_phone(v)


PEOPLE_BLOCKING = (
    # an age gives a two-year window: a date of birth's year is one end or the other
    "l.name_skel = r.name_skel AND l.byear_lo = r.byear_lo",
    "l.name_skel = r.name_skel AND l.byear_hi = r.byear_hi",
    # two ages on different dates: windows that overlap by one year
    "l.name_skel = r.name_skel AND l.byear_lo = r.byear_hi",
    "l.name_skel = r.name_skel AND l.byear_hi = r.byear_lo",
    "l.name_skel = r.name_skel AND l.province = r.province",
    # (a record without any date meets same-named records of its province here;
    # across provinces only in a batch under SMALL_BATCH_RECORDS, see
    # ModelSpec.small_batch_blocking: such a pair has its name alone, which
    # reached review at best (no link changed without them in the synthetic
    # evaluation), and a common name held by a thousand records makes a
    # million pairs)
    "l.fam_skel = r.fam_skel AND l.dob = r.dob",
    "l.giv_skel = r.giv_skel AND l.dob = r.dob",
    # a slip in one name with an age on one side: the other name, the province
    # and one end of the birth-year window (three weak keys together, so a block
    # stays small: about 20 records at a million)
    "l.fam_skel = r.fam_skel AND l.province = r.province AND l.byear_lo = r.byear_lo",
    "l.fam_skel = r.fam_skel AND l.province = r.province AND l.byear_hi = r.byear_hi",
    "l.giv_skel = r.giv_skel AND l.province = r.province AND l.byear_lo = r.byear_lo",
    "l.fam_skel = r.fam_skel AND l.dob = r.dob_swap",
    "l.phone = r.phone",
    # a Latin spelling against the other record's Khmer script, when the two
    # skeletons differ (a romanisation the keys do not bridge): with the same
    # birth year or province, so that a common name does not pair every record
    # holding it (quadratic at a million records)
    "l.name_skel = r.name_skel_alt AND l.byear_lo = r.byear_lo",
    "l.name_skel_alt = r.name_skel AND l.byear_lo = r.byear_lo",
    "l.name_skel = r.name_skel_alt AND l.province = r.province",
    "l.name_skel_alt = r.name_skel AND l.province = r.province",
)


# Which scripts a pair can be compared in: a record typed only in Latin and one
# typed only in Khmer script can never agree on spelling, so their best evidence
# is a shared phonetic key or consonant skeleton. Splitting the key and skeleton
# levels by "the records share a script" or not gives each its own m and u:
# otherwise the m of "same key" is diluted by the many same-script matches that
# reach "exact spelling" instead, and a Khmer-only record never gathers enough
# evidence to link to its romanisation.
_CROSS_SCRIPT = "(fam_raw_l IS NULL OR fam_raw_r IS NULL) AND (fam_km_l IS NULL OR fam_km_r IS NULL)"
GIVEN_CLOSE_JW = 0.88
CLASH_LABEL = "different given names (never the same person)"
CLASH_M = 1e-12  # about -40 bits: outweighs every agreement a pair can have
CLASH_EM_START = 0.02
FAMILY_CLOSE_JW = 0.9
KEY_ACROSS_SCRIPTS = "same phonetic key across scripts"
KEY_SAME_SCRIPT = "same phonetic key"
KHMER_DIFFERS = "sounds alike, Khmer spellings differ"
#: Levels that are one part of "the phonetic keys agree", adjusted by how common
#: the key is through :func:`_key_level_frequency` rather than Splink's own form.
KEY_LEVELS = frozenset({KEY_ACROSS_SCRIPTS, KEY_SAME_SCRIPT})


def _name_levels(part: str, m_else: float, close_jw: float, dialect: str) -> list[dict[str, Any]]:
    key, skel = f"{part}_key", f"{part}_skel"
    same_key = _either(key, f"{key}_alt", lambda a, b: f"{a} = {b}")
    same_skel = _either(skel, f"{skel}_alt", lambda a, b: f"{a} = {b}")
    # a slip of one or two letters, not a different short name: "para"/"tata"
    # (Bora/Thida) are two edits apart but nothing alike
    close = _either(key, f"{key}_alt",
                    lambda a, b: f"{jw(a, b, dialect)} >= {close_jw} AND levenshtein({a}, {b}) <= 2")
    # one consonant apart on skeletons of three or more (a typo in a script
    # romanisation, whose vowels differ anyway)
    close_skel = _either(skel, f"{skel}_alt",
                         lambda a, b: f"levenshtein({a}, {b}) <= 1 AND length({a}) >= 3 AND length({b}) >= 3")
    # one keystroke apart as typed (ThiHuong / ThipHuong: the slip lands on a
    # digraph and moves the keys further apart than the typing did)
    close_raw = (f"levenshtein({part}_raw_l, {part}_raw_r) <= 1"
                 f" AND length({part}_raw_l) >= 4 AND length({part}_raw_r) >= 4")
    close = f"{close} OR {close_skel} OR ({close_raw})"
    tf = {"tf_adjustment_column": key, "disable_tf_exact_match_detection": True}
    levels = [
        _level(f"{skel}_l IS NULL OR {skel}_r IS NULL", "null", 0.5, 0.5, is_null_level=True),
        _level(f"{part}_raw_l = {part}_raw_r OR {part}_km_l = {part}_km_r", "exact spelling",
               0.5, 0.006, **tf),
        _level(f"({_CROSS_SCRIPT}) AND {same_key}", KEY_ACROSS_SCRIPTS, 0.15, 0.003, **tf),
        # both written in Khmer script, differently, while the romanisations sound
        # alike (ជា Chea / ឆាយ Chhay share a key): the script is how the name is
        # spelt, so its own level lets EM learn whether that is a slip or two names
        # (where the data hold no such slip EM leaves the starting m, a rare one)
        _level(f"{part}_km_l IS NOT NULL AND {part}_km_r IS NOT NULL AND {part}_km_l <> {part}_km_r"
               f" AND ({same_key} OR {same_skel})", KHMER_DIFFERS, 0.004, 0.003),
        _level(same_key, KEY_SAME_SCRIPT, 0.12, 0.004, **tf),
        _level(f"({_CROSS_SCRIPT}) AND {same_skel}", "same consonants across scripts", 0.06, 0.002),
        _level(same_skel, "same consonants", 0.04, 0.003),
        _level(close, "close spelling", 0.08 - m_else, 0.02),
    ]
    if part == "giv":
        # one given name is the other plus more parts (Visal / Visal Rathana): its
        # own level so that EM learns whether that is a short form or another
        # person (a sibling's compound name)
        contains = (f"length({skel}_l) >= 2 AND length({skel}_r) >= 2 AND "
                    f"(substr({skel}_r, 1, length({skel}_l)) = {skel}_l"
                    f" OR substr({skel}_l, 1, length({skel}_r)) = {skel}_r)")
        levels.append(_level(contains, "one name extends the other", 0.01, 0.01))
        # given names that both exist and agree at no level above clash: twins
        # share family name, birth date, province and often a phone, so such a
        # pair must never link nor reach review, whatever else agrees. Its m is
        # fixed near zero by rule (LinkModel.settings), not learnt.
        levels.append(_level("ELSE", CLASH_LABEL, CLASH_M, 0.95))
    else:
        levels.append(_level("ELSE", "different", m_else, 0.95))
    return levels


def _people_settings(dialect: str) -> dict[str, Any]:
    def name_comparison(part: str, m_else: float, close_jw: float) -> dict[str, Any]:
        return {"output_column_name": part,
                "comparison_levels": _name_levels(part, m_else, close_jw, dialect)}

    def exact(col: str, m: float, u: float) -> dict[str, Any]:
        return {
            "output_column_name": col,
            "comparison_levels": [
                _level(f"{col}_l IS NULL OR {col}_r IS NULL", "null", 0.5, 0.5, is_null_level=True),
                _level(f"{col}_l = {col}_r", "same", m, u),
                _level("ELSE", "different", 1 - m, 1 - u),
            ],
        }

    dob = {
        "output_column_name": "birth",
        "comparison_levels": [
            _level("byear_lo_l IS NULL OR byear_lo_r IS NULL", "null", 0.5, 0.5, is_null_level=True),
            _level("dob_l = dob_r", "same date of birth", 0.7, 0.0001),
            _level("dob_l = dob_swap_r", "day and month swapped", 0.06, 0.00005),
            _level("levenshtein(dob_l, dob_r) <= 1", "one digit apart", 0.05, 0.002),
            # an age on a date gives a one-year interval of birth dates (age records only)
            _level("(dob_l >= bdate_lo_r AND dob_l <= bdate_hi_r)"
                   " OR (dob_r >= bdate_lo_l AND dob_r <= bdate_hi_l)",
                   "age fits date of birth", 0.12, 0.015),
            _level("bdate_lo_l <= bdate_hi_r AND bdate_lo_r <= bdate_hi_l", "ages agree", 0.03, 0.01),
            _level("(dob_l IS NULL OR dob_r IS NULL)"
                   " AND byear_lo_l <= byear_hi_r AND byear_lo_r <= byear_hi_l",
                   "age near birth year", 0.02, 0.03),
            _level("byear_lo_l = byear_lo_r", "same birth year", 0.02, 0.02),
            _level("ELSE", "different", 0.02, 0.94),
        ],
    }
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 0.0002,
        "blocking_rules_to_generate_predictions": list(PEOPLE_BLOCKING),
        "comparisons": [
            name_comparison("fam", 0.02, FAMILY_CLOSE_JW),
            name_comparison("giv", 0.02, GIVEN_CLOSE_JW),
            dob,
            exact("sex", 0.97, 0.55),
            exact("nationality", 0.97, 0.75),
            exact("province", 0.8, 0.06),
            exact("phone", 0.8, 0.0001),
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "max_iterations": 20,
        "em_convergence": 0.0001,
    }


PEOPLE = ModelSpec(
    kind="people",
    prepare=prepare_people,
    settings=_people_settings,
    em_blocking=(
        "l.dob = r.dob",
        "l.fam_skel = r.fam_skel AND l.giv_skel = r.giv_skel",
    ),
    deterministic_rules=("l.name_skel = r.name_skel AND l.dob = r.dob",),
    deterministic_recall=0.6,
    prior_match=0.0002,
    small_batch_blocking=(
        # a record without any date meets every same-named record, in any province
        "l.name_nodate = r.name_skel",
        "l.name_skel = r.name_nodate",
    ),
)
SPECS: dict[str, ModelSpec] = {"people": PEOPLE}


# --------------------------------------------------------------------------- the model


def _parameters(settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        c["output_column_name"]: [
            {"label": lv.get("label_for_charts"), "m": lv.get("m_probability"), "u": lv.get("u_probability")}
            for lv in c["comparison_levels"] if not lv.get("is_null_level")
        ]
        for c in settings["comparisons"]
    }


TRAIN_MAX_RECORDS = 100_000
M_FLOOR = 0.002  # no agreement level is impossible among true matches (phones change, fields are miskeyed)
U_FLOOR = 1e-6


def _sig(x: float, digits: int = 10) -> float:
    """``x`` to ``digits`` significant figures: DuckDB sums in parallel, so EM's
    last bits vary between runs; rounding makes the same data give the same JSON."""
    return float(f"{x:.{digits}g}")


def _clean_prob(v: object, fallback: float, floor: float = 1e-9) -> float:
    """A probability from training, or ``fallback`` where EM left none; kept
    above ``floor`` so that one disagreeing field cannot veto a link alone."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return fallback
    if math.isnan(f):
        return fallback
    return min(max(f, floor), 1.0)


class LinkModel:
    """A trained linkage model: the m and u values of each comparison level and
    the prior probability that two records match, for one kind of records.

    The SQL of comparisons is rebuilt from the code for each backend, so a model
    trained on DuckDB runs unchanged on Spark; only the numbers are stored."""

    def __init__(self, kind: str, parameters: dict[str, list[dict[str, Any]]],
                 probability_two_random_records_match: float, trained: bool = True,
                 notes: Sequence[str] = (),
                 term_frequencies: dict[str, dict[str, float]] | None = None):
        if kind not in SPECS:
            raise ValueError(f"unknown model kind {kind!r}")
        self.kind = kind
        self.parameters = parameters
        self.probability_two_random_records_match = probability_two_random_records_match
        self.trained = trained
        self.notes = list(notes)
        # value -> share of records, per term-frequency column, from training:
        # how common a name is in the population, for batches too small to say
        self.term_frequencies = term_frequencies or {}

    @property
    def spec(self) -> ModelSpec:
        return SPECS[self.kind]

    @classmethod
    def prior(cls, kind: str = "people") -> LinkModel:
        """The untrained starting values (sensible guesses, not estimates): used
        where data are too few to train, and as EM's starting point."""
        spec = SPECS[kind]
        return cls(kind, _parameters(spec.settings("duckdb")), spec.prior_match, trained=False)

    def settings(self, dialect: str, *, term_frequencies: bool = True,
                 key_agreement: dict[str, float] | None = None) -> dict[str, Any]:
        """Splink settings for a backend with this model's parameters filled in.

        ``term_frequencies`` False drops the term-frequency adjustments: Splink
        counts name frequencies in the data being linked, and in a batch of a
        few records every name looks common. ``key_agreement`` (per
        term-frequency column, the chance that two records holding a value hold
        the same one) turns on the adjustment of the key levels, see
        :func:`_key_level_frequency`; training leaves it out."""
        s = self.spec.settings(dialect)
        if not term_frequencies:
            for comp in s["comparisons"]:
                for lv in comp["comparison_levels"]:
                    lv.pop("tf_adjustment_column", None)
                    lv.pop("disable_tf_exact_match_detection", None)
        s["probability_two_random_records_match"] = self.probability_two_random_records_match
        for comp in s["comparisons"]:
            params = self.parameters.get(comp["output_column_name"], [])
            levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
            if len(params) != len(levels):
                raise ValueError(f"model does not fit comparison {comp['output_column_name']!r}")
            for lv, p in zip(levels, params, strict=True):
                lv["m_probability"] = _clean_prob(p["m"], lv["m_probability"])
                lv["u_probability"] = _clean_prob(p["u"], lv["u_probability"])
                if lv.get("label_for_charts") == CLASH_LABEL:
                    lv["m_probability"] = CLASH_M
                col = lv.get("tf_adjustment_column")
                if term_frequencies and key_agreement and col in key_agreement \
                        and lv.get("label_for_charts") in KEY_LEVELS:
                    _key_level_frequency(lv, key_agreement[col])
        return s

    @classmethod
    def train(cls, df: pd.DataFrame | list[pd.DataFrame], *, engine: str = "duckdb", seed: int = 1,
              kind: str = "people", link_type: str = "dedupe_only") -> LinkModel:
        """Estimate the model on the records themselves, without labels.

        u by random sampling (seeded, so the same data give the same model), the
        prior match probability from near-certain rules, m by EM on two blockings
        so that every comparison is estimated on pairs it did not select. A step
        that cannot run on too little data keeps the starting values and says so
        in ``notes``."""
        if kind not in SPECS:
            raise ValueError(f"unknown model kind {kind!r}")
        spec = SPECS[kind]
        frames = df if isinstance(df, list) else [df]
        # m, u and the prior are rates, which a uniform sample of records keeps
        # (the share of matching pairs among all pairs does not depend on how
        # many records are drawn); EM's cost grows with the square of the
        # records sharing a date, so a large register trains on a seeded sample
        frames = [f.sample(n=TRAIN_MAX_RECORDS, random_state=seed) if len(f) > TRAIN_MAX_RECORDS else f
                  for f in frames]
        feats = [spec.prepare(f) for f in frames]
        if kind == "people":
            feats = [f[f["name_usable"] | f["date_usable"]] for f in feats]
        model = cls.prior(kind)
        settings = model.settings(engine)
        settings["link_type"] = link_type
        for comp in settings["comparisons"]:
            for lv in comp["comparison_levels"]:
                if lv.get("label_for_charts") == CLASH_LABEL:
                    # EM starts the twin clash as an ordinary level: from m = 1e-12
                    # its estimate underflows to 0 and Splink stops the whole step
                    lv["m_probability"] = CLASH_EM_START
        n = sum(len(f) for f in feats)
        notes: list[str] = []
        with quiet_splink():
            from splink import Linker

            api = _db_api(engine)
            tables = [api.register(f.reset_index(drop=True)) for f in feats]
            linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=None)
            try:
                linker.training.estimate_probability_two_random_records_match(
                    list(spec.deterministic_rules), recall=spec.deterministic_recall)
            except Exception as exc:  # too few records for the rule: keep the prior
                notes.append(f"prior match probability kept: {exc}")
            # the prior is this estimate: EM does not re-estimate it (and an EM
            # step that fails part-way on small data has been seen to leave 0.44)
            prior = linker.misc.save_model_to_json().get("probability_two_random_records_match")
            max_pairs = min(2e6, max(1e4, n * (n - 1) / 2))
            linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed,
                                                              min_count_per_level=None, num_chunks=1)
            # the model after each step that worked: an EM step that fails on
            # small data (a level with no pairs gets m = 0, which Splink refuses)
            # can leave Splink's saved model without the comparisons that step
            # had set aside, so those are taken from the last good snapshot
            snapshots = [_parameters(linker.misc.save_model_to_json())]
            for rule in spec.em_blocking:
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, estimate_without_term_frequencies=True)
                except Exception as exc:  # no pairs under this blocking on small data
                    notes.append(f"EM on {rule!r} skipped: {exc}")
                snapshots.append(_parameters(linker.misc.save_model_to_json()))
        prior_params = model.parameters
        params: dict[str, list[dict[str, Any]]] = {}
        for name, levels in prior_params.items():
            fitting = [snap[name] for snap in snapshots if len(snap.get(name, ())) == len(levels)]
            if fitting:
                params[name] = fitting[-1]
            else:  # never estimated in a form that fits: the starting values
                params[name] = [dict(lv) for lv in levels]
                notes.append(f"starting values kept for {name!r}")
        for name, levels in params.items():
            for lv, pr in zip(levels, prior_params[name], strict=True):
                m = _sig(_clean_prob(lv["m"], pr["m"], M_FLOOR))
                lv["m"] = CLASH_M if lv["label"] == CLASH_LABEL else m
                lv["u"] = _sig(_clean_prob(lv["u"], pr["u"], U_FLOOR))
        p = _sig(_clean_prob(prior, spec.prior_match))
        # frequencies counted on fewer records than a batch needs for its own
        # would only make every name look common: none kept then
        tfs = _term_frequencies(pd.concat(feats), settings) if n >= TF_MIN_RECORDS else {}
        return cls(kind, params, p, trained=True, notes=notes, term_frequencies=tfs)

    def to_json(self) -> str:
        """The parameters, with the Splink settings they make (DuckDB dialect) for reading."""
        return json.dumps({
            "format": MODEL_FORMAT,
            "kind": self.kind,
            "trained": self.trained,
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "parameters": self.parameters,
            "notes": self.notes,
            "term_frequencies": self.term_frequencies,
            "splink_settings": self.settings("duckdb"),
        }, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LinkModel:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a linkage model: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a linkage model (expected format {MODEL_FORMAT!r})")
        model = cls(data["kind"], data["parameters"], float(data["probability_two_random_records_match"]),
                    trained=bool(data.get("trained", True)), notes=data.get("notes", ()),
                    term_frequencies=data.get("term_frequencies") or {})
        model.settings("duckdb")  # fails early if the parameters do not fit the comparisons
        return model

    def __repr__(self) -> str:
        p = self.probability_two_random_records_match
        return f"LinkModel(kind={self.kind!r}, trained={self.trained}, p={p:.3g})"


# --------------------------------------------------------------------------- scoring and clustering


SMALL_BATCH_RECORDS = 200_000
TF_MIN_RECORDS = 1000  # below this, name frequencies in the batch say nothing about the population
TF_MIN_COUNT = 2  # values seen once in training are left out of the stored table (no adjustment)


def _tf_columns(settings: dict[str, Any]) -> list[str]:
    return sorted({lv["tf_adjustment_column"] for c in settings["comparisons"]
                   for lv in c["comparison_levels"] if lv.get("tf_adjustment_column")})


def _key_level_frequency(level: dict[str, Any], agreement: float) -> None:
    """Make Splink adjust a key level by how common the key is, in proportion.

    Splink's adjustment replaces a level's u by the value's frequency tf(v): right
    for "the values are equal", where u is the chance that a random pair shares
    a value. A key level is only part of "the keys are equal" (the keys agree
    *and* the scripts differ, or the spellings do): its u is that chance
    times the share q of key-agreeing pairs that fall in the level, and the
    value-specific u is tf(v) times the same q. Splink's form drops q, which
    under-weights every Latin-against-Khmer agreement by log2(1/q), 1 to 3 bits
    per name in the synthetic evaluation, where pairs it scored 0.5 to 0.8 were
    87 % true.

    Splink computes the adjustment as log2(u) - log2(tf(v)) on the level's own u,
    so setting u to the chance of key agreement Σtf², and m to m·Σtf²/u (the
    level's Bayes factor m/u unchanged), gives log2(m / (tf(v)·q)) with
    q = u/Σtf². The exact-spelling level keeps Splink's form: corrected the same
    way it made same-name pairs over-confident (of pairs then scored 0.5 to 0.8,
    40 % were true)."""
    u = float(level["u_probability"])
    if agreement <= 0 or u <= 0:
        return
    level["m_probability"] = float(level["m_probability"]) * agreement / u
    level["u_probability"] = agreement


def _key_agreement(shares: dict[str, pd.Series]) -> dict[str, float]:
    """Per column, Σ tf(v)² from the shares tf(v) Splink adjusts by: the chance that two
    records with a value share it. (The stored table lacks values seen once; their
    squares are negligible, and its shares are not rescaled, since Splink uses them as
    they are.)"""
    return {col: _sig(float((tf**2).sum())) for col, tf in shares.items() if len(tf)}


def _term_frequencies(feats: pd.DataFrame, settings: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Share of records holding each value of every term-frequency column, as
    Splink computes it (among records with a value), for values seen at least
    TF_MIN_COUNT times: kept in the model so that a small batch (an import
    linked with the last run's model) is adjusted by how common a name is in the
    register, not in the batch."""
    out: dict[str, dict[str, float]] = {}
    for col in _tf_columns(settings):
        if col not in feats:
            continue
        counts = feats[col].dropna().value_counts()
        total = int(counts.sum())
        kept = counts[counts >= TF_MIN_COUNT].sort_index()
        out[col] = {str(v): _sig(int(c) / total) for v, c in kept.items()} if total else {}
    return out


def score_pairs(feats: Sequence[pd.DataFrame], model: LinkModel, *, engine: str, min_probability: float,
                link_type: str = "dedupe_only") -> tuple[pd.DataFrame, int]:
    """All blocked pairs scored by Splink; those at or above ``min_probability``
    returned (unique_id_l, unique_id_r, match_probability), and the count
    of pairs scored."""
    n = sum(len(f) for f in feats)
    tf_cols = _tf_columns(model.settings(engine))
    stored = n < TF_MIN_RECORDS and bool(tf_cols) and all(model.term_frequencies.get(c) for c in tf_cols)
    # the frequencies Splink will adjust by: the batch's own, or the register's from training
    if stored:
        agreement = _key_agreement({c: pd.Series(model.term_frequencies[c], dtype=float) for c in tf_cols})
    elif n >= TF_MIN_RECORDS:
        agreement = _key_agreement({c: pd.concat([f[c] for f in feats]).value_counts(normalize=True)
                                    for c in tf_cols if all(c in f for f in feats)})
    else:
        agreement = {}
    settings = model.settings(engine, term_frequencies=n >= TF_MIN_RECORDS or stored, key_agreement=agreement)
    settings["link_type"] = link_type
    if n < SMALL_BATCH_RECORDS:
        settings["blocking_rules_to_generate_predictions"] += list(model.spec.small_batch_blocking)
    with quiet_splink():
        from splink import Linker

        api = _db_api(engine)
        tables = [api.register(f.reset_index(drop=True)) for f in feats]
        linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=None)
        if stored:
            for col in tf_cols:
                freqs = model.term_frequencies[col]
                lookup = pd.DataFrame({col: list(freqs), f"tf_{col}": list(freqs.values())},
                                      columns=[col, f"tf_{col}"])
                lookup[f"tf_{col}"] = lookup[f"tf_{col}"].astype(float)
                linker.table_management.register_term_frequency_lookup(api.register(lookup), col)
        pred = linker.inference.predict(warning_mode="never")
        n = int(linker.misc.query_sql(f"SELECT count(*) AS n FROM {pred.physical_name}",
                                      output_type="pandas")["n"].iloc[0])
        pairs = linker.misc.query_sql(
            f"SELECT unique_id_l, unique_id_r, match_probability FROM {pred.physical_name}"
            f" WHERE match_probability >= {float(min_probability)!r}",
            output_type="pandas",
        )
        pred.drop_table_from_database_and_remove_from_cache()
    pairs["unique_id_l"] = pairs["unique_id_l"].astype(str)
    pairs["unique_id_r"] = pairs["unique_id_r"].astype(str)
    pairs["match_probability"] = pairs["match_probability"].astype(float)
    return pairs, n


def constrained_clusters(ids: Sequence[str], edges: Iterable[tuple[str, str]],
                         cannot: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Clusters from edges taken in the order given (strongest first), never
    merging two clusters that hold the two ends of a ``cannot`` pair.

    Plain connected components would let A-B and B-C join a rejected pair A-C;
    here the weaker of the two links is dropped instead. Cluster id: the
    smallest record_id in it."""
    index = {r: i for i, r in enumerate(ids)}
    parent = list(range(len(ids)))
    forbid: dict[int, set[int]] = {}
    for a, b in cannot:
        if a in index and b in index and a != b:
            forbid.setdefault(index[a], set()).add(index[b])
            forbid.setdefault(index[b], set()).add(index[a])

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ia, ib = index.get(a), index.get(b)
        if ia is None or ib is None:
            continue
        ra, rb = find(ia), find(ib)
        if ra == rb:
            continue
        fa, fb = forbid.get(ra), forbid.get(rb)
        if (fa and any(find(x) == rb for x in fa)) or (fb and any(find(x) == ra for x in fb)):
            continue
        if len(fa or ()) < len(fb or ()):
            ra, rb, fa, fb = rb, ra, fb, fa
        parent[rb] = ra
        if fb:
            forbid.setdefault(ra, set()).update(fb)
            forbid.pop(rb, None)
    smallest: dict[int, str] = {}
    for r, i in index.items():
        root = find(i)
        if root not in smallest or r < smallest[root]:
            smallest[root] = r
    return {r: smallest[find(i)] for r, i in index.items()}


@dataclass
class LinkResult:
    """Clusters of linked records, the pairs a person should review, and what
    could not be linked at all."""

    clusters: dict[str, str]  # record_id -> cluster id (smallest record_id in the cluster)
    # uncertain pairs (l, r, match_probability), undecided only: linked ones
    # (p >= match_threshold) to confirm, unlinked ones to check
    review: list[tuple[str, str, float]]
    unlinkable: list[str]  # no usable name AND no usable date/age: not in clusters, one person each
    model: LinkModel
    pairs_scored: int
    seconds: float

    @property
    def n_persons(self) -> int:
        """Distinct people: clusters plus each unlinkable record on its own."""
        return len(set(self.clusters.values())) + len(self.unlinkable)


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


#: Links less probable than this are listed for a reviewer to confirm.
CONFIRM_THRESHOLD = 0.95

#: Fewer usable records than this are linked with :meth:`LinkModel.prior` instead of a model trained on them.
MIN_TRAIN_RECORDS = 200


def link(df: pd.DataFrame, *, model: LinkModel | None = None, engine: str = "duckdb",
         match_threshold: float = 0.5, review_threshold: float = 0.2,
         confirm_threshold: float = CONFIRM_THRESHOLD, decisions: Iterable[Decision] = ()) -> LinkResult:
    """Link person records: which records are the same person.

    ``model`` None trains one on ``df`` (see :meth:`LinkModel.train`), or takes the
    starting values when ``df`` has fewer than ``MIN_TRAIN_RECORDS`` usable records. Pairs with
    a match probability at or above ``match_threshold`` link; undecided pairs in
    [``review_threshold``, ``confirm_threshold``) are listed for review, linked
    or not; confirmed decisions force a link, rejected ones forbid it even
    through a chain of other links.

    The default link threshold is "more likely than not": the model is close to
    calibrated, so a pair at 0.7 is the same person about seven times in ten,
    and leaving such pairs apart counts people twice far more often than
    linking them counts two people once (synthetic evaluation: 0.95 overstated
    the person count by 6 %, 0.5 by 1.6 %). Those links below
    ``confirm_threshold`` wait for a reviewer's confirmation."""
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if not 0 < review_threshold <= match_threshold <= 1:
        raise ValueError("thresholds must satisfy 0 < review_threshold <= match_threshold <= 1")
    decisions = list(decisions)
    feats = prepare_people(df)
    usable = feats["name_usable"] | feats["date_usable"]
    unlinkable = sorted(feats.loc[~usable, "unique_id"].tolist())
    feats = feats[usable]
    ids = feats["unique_id"].tolist()
    if model is None:
        # EM on a handful of records learns the batch, not people: in eight records that all share
        # province, sex and nationality those fields look worthless and two identical records score
        # below 0.9.  Under MIN_TRAIN_RECORDS the starting values link better than any estimate.
        model = LinkModel.train(df, engine=engine) if len(feats) >= MIN_TRAIN_RECORDS else LinkModel.prior()
    elif model.kind != "people":
        raise ValueError(f"a {model.kind!r} model cannot link person records")
    if len(feats) >= 2:
        pairs, n_scored = score_pairs([feats], model, engine=engine, min_probability=review_threshold)
    else:
        pairs, n_scored = pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"]), 0
    decided = {_pair_key(d.record_id_l, d.record_id_r): d.same for d in decisions}
    pairs = pairs.sort_values(["match_probability", "unique_id_l", "unique_id_r"],
                              ascending=[False, True, True], kind="mergesort")
    strong = pairs[pairs["match_probability"] >= match_threshold]
    edges = [(d.record_id_l, d.record_id_r) for d in decisions if d.same]
    edges += [(a, b) for a, b in strong[["unique_id_l", "unique_id_r"]].itertuples(index=False)
              if decided.get(_pair_key(a, b)) is not False]
    cannot = [(d.record_id_l, d.record_id_r) for d in decisions if not d.same]
    clusters = constrained_clusters(ids, edges, cannot)
    band = pairs[pairs["match_probability"] < max(match_threshold, confirm_threshold)]
    review = [(a, b, float(p)) for a, b, p in
              band[["unique_id_l", "unique_id_r", "match_probability"]].itertuples(index=False)
              if _pair_key(a, b) not in decided]
    return LinkResult(clusters=clusters, review=review, unlinkable=unlinkable, model=model,
                      pairs_scored=n_scored, seconds=time.perf_counter() - t0)
