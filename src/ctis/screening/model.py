"""The statistical half of the screening: character n-grams, TF-IDF and logistic regression.

Character n-grams need no word segmentation, so one model reads Khmer, Thai
and Chinese (written without spaces) as well as English and Vietnamese, and
it is robust to the misspellings recruiters use to dodge keyword filters.
Contact points, numbers, money and places are replaced by slot tokens first
(the same masking as the network step), so the model learns how recruiters
*write*, not which phone numbers were in its training set.

The model is trained deterministically on the train part of the generated
corpus (``ctis.screening.corpus``) on first use and cached as JSON under
``CTIS_DATA_DIR`` — vocabulary, IDF weights and coefficients, no pickle, so a
cache file can never run code.  It explains each score by the n-grams that
pushed it up most.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ctis.config import get_settings

#: Bump when the corpus, the masking or the features change: the cached model is then retrained.
MODEL_VERSION = 2
NGRAMS = (2, 4)
MAX_FEATURES = 60_000
CORPUS_SIZE = 5000
CORPUS_SEED = 20250501
_lock = threading.Lock()


#: Bits per character in an n-gram key: four characters make one 64-bit integer.
_CHAR_BITS = 16


class NgramCounter:
    """The counts of scikit-learn's ``char_wb`` analyser for a whole batch, computed with numpy.

    scikit-learn builds every n-gram of every word as a Python string and looks
    it up in a dict, about half a millisecond a post.  Here each character of
    the vocabulary gets a 16-bit number, every 2-, 3- and 4-character window
    of the batch becomes one integer, and the windows are looked up in the
    vocabulary's sorted keys at once.  Words are joined with two spaces and
    padded with one, as the analyser pads them; a window that crosses a word
    boundary then holds an inner space (or is two spaces), which no feature
    does, so only the analyser's own n-grams are found.  A character no feature
    holds is number 0, which no key contains.  The counts, and so the TF-IDF
    matrix, are exactly the analyser's (a test compares them).
    """

    def __init__(self, vocabulary: dict[str, int], ngram_range: tuple[int, int]):
        chars = sorted(set("".join(vocabulary)) | {" "})
        self.usable = len(chars) < (1 << _CHAR_BITS) and ngram_range[1] <= 64 // _CHAR_BITS
        self.n_features = len(vocabulary)
        self.ngram_range = ngram_range
        number = {ch: i for i, ch in enumerate(chars, 1)}
        self.table = np.zeros(0x110000, dtype=np.uint64)
        self.table[[ord(ch) for ch in chars]] = np.arange(1, len(chars) + 1, dtype=np.uint64)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        for n in range(ngram_range[0], ngram_range[1] + 1):
            grams = [(g, i) for g, i in vocabulary.items() if len(g) == n]
            keys = np.zeros(len(grams), dtype=np.uint64)
            for pos in range(n):  # key = the characters' numbers, 16 bits each, first one highest
                digits = np.array([number[g[pos]] for g, _ in grams], dtype=np.uint64)
                keys = (keys << np.uint64(_CHAR_BITS)) | digits
            self.tables[n] = _hash_table(keys, np.array([i for _, i in grams], dtype=np.int64))

    def counts(self, texts: list[str]) -> sparse.csr_matrix:
        """Documents x features counts (float32, sorted indices), as ``CountVectorizer.transform``."""
        docs = [" " + "  ".join(words) + " " if (words := t.lower().split()) else "" for t in texts]
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        starts = np.concatenate(([0], np.cumsum(lengths)))
        joined = "".join(docs)
        ids = self.table[np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
        found_pos: list[np.ndarray] = []
        found_feat: list[np.ndarray] = []
        shift = np.uint64(_CHAR_BITS)
        key = ids.copy()
        for n in range(2, self.ngram_range[1] + 1):
            key = (key[:-1] << shift) | ids[n - 1 :]  # windows of n characters starting at each position
            if n < self.ngram_range[0]:
                continue
            feature = _lookup(self.tables[n], key)
            hit = np.flatnonzero(feature >= 0)
            found_pos.append(hit)
            found_feat.append(feature[hit])
        positions = np.concatenate(found_pos) if found_pos else np.zeros(0, dtype=np.int64)
        feats = np.concatenate(found_feat) if found_feat else np.zeros(0, dtype=np.int64)
        doc = np.searchsorted(starts, positions, side="right") - 1
        cells, counts = np.unique(doc * self.n_features + feats, return_counts=True)
        rows = cells // self.n_features
        indptr = np.searchsorted(rows, np.arange(len(texts) + 1))
        return sparse.csr_matrix(
            (counts.astype(np.float32), (cells % self.n_features).astype(np.int32), indptr.astype(np.int32)),
            shape=(len(texts), self.n_features),
        )


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash_table(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An open-addressing table (linear probing, at most 1/8 full) of non-zero 64-bit keys.

    A vectorised probe of it costs a few array operations, where a binary search
    (``np.searchsorted``) over the sorted keys took three times as long.
    """
    bits = max(4, int(len(keys) * 8).bit_length())
    size = 1 << bits
    slots = ((keys * _GOLDEN) >> np.uint64(64 - bits)).tolist()
    taken: dict[int, int] = {}  # slot -> position in keys
    for position, slot in enumerate(slots):
        while slot in taken:
            slot = (slot + 1) & (size - 1)
        taken[slot] = position
    table_keys = np.zeros(size, dtype=np.uint64)  # 0: empty (no key has a zero character)
    table_values = np.full(size, -1, dtype=np.int64)
    where = np.fromiter(taken.keys(), dtype=np.int64, count=len(taken))
    which = np.fromiter(taken.values(), dtype=np.int64, count=len(taken))
    table_keys[where], table_values[where] = keys[which], values[which]
    return table_keys, table_values, bits


def _lookup(table: tuple[np.ndarray, np.ndarray, int], keys: np.ndarray) -> np.ndarray:
    """The value of each key, -1 where it is not in the table."""
    table_keys, table_values, bits = table
    mask = (1 << bits) - 1
    slot = (keys * _GOLDEN) >> np.uint64(64 - bits)
    out = np.full(len(keys), -1, dtype=np.int64)
    active = np.arange(len(keys))
    while len(active):
        at = slot[active]
        held = table_keys[at]
        match = held == keys[active]
        out[active[match]] = table_values[at[match]]
        going = ~match & (held != 0)
        active = active[going]
        slot[active] = (slot[active] + 1) & mask
    return out


@dataclass
class TextModel:
    vectorizer: TfidfVectorizer
    coef: np.ndarray
    intercept: float
    features: np.ndarray
    _counter: NgramCounter | None = None
    _tfidf: TfidfTransformer | None = None

    def probabilities(self, masked_texts: list[str]) -> np.ndarray:
        """Probability that each (masked) text is a recruitment post of a scam network."""
        return self.score_matrix(self.transform(masked_texts))

    def transform(self, masked_texts: list[str]) -> Any:
        """The TF-IDF rows of a batch: the vectoriser's own, computed by :class:`NgramCounter`.

        Falls back to scikit-learn for a vectoriser the counter cannot mirror.
        """
        v = self.vectorizer
        if self._counter is None:
            self._counter = NgramCounter(v.vocabulary_, v.ngram_range)
            self._tfidf = TfidfTransformer(norm=v.norm, use_idf=v.use_idf, smooth_idf=v.smooth_idf,
                                           sublinear_tf=v.sublinear_tf)  # fmt: skip
            self._tfidf.idf_ = v.idf_
        simple = v.analyzer == "char_wb" and v.lowercase and v.preprocessor is None and not v.binary
        if not (self._counter.usable and simple and v.strip_accents is None) or self._tfidf is None:
            return v.transform(masked_texts)
        return self._tfidf.transform(self._counter.counts(masked_texts), copy=False)

    def score_matrix(self, x: Any) -> np.ndarray:
        z = x @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z))).ravel()

    def explain(self, masked_text: str, top: int = 5) -> list[tuple[str, float]]:
        """The n-grams that pushed this text's score up most, with their contribution (log-odds)."""
        return self.explain_row(self.vectorizer.transform([masked_text]), top)

    def explain_row(self, row: Any, top: int = 5) -> list[tuple[str, float]]:
        """As :meth:`explain`, for one row of an already vectorised batch."""
        return self.explain_arrays(row.indices, row.data, top)

    def explain_rows(self, x: Any, top: int = 5) -> list[list[tuple[str, float]]]:
        """:meth:`explain_row` for every row of a CSR matrix, read straight from its arrays
        (slicing a scipy row costs more than explaining it)."""
        ptr = x.indptr
        return [self.explain_arrays(x.indices[ptr[i] : ptr[i + 1]], x.data[ptr[i] : ptr[i + 1]], top)
                for i in range(x.shape[0])]  # fmt: skip

    def explain_arrays(
        self, indices: np.ndarray, values: np.ndarray, top: int = 5
    ) -> list[tuple[str, float]]:
        """The top n-grams of one row given as its column indices and values."""
        if len(indices) == 0:
            return []
        contributions = values * self.coef[indices]
        k = min(top, len(indices))
        best = np.argpartition(-contributions, k - 1)[:k]
        best = best[np.argsort(-contributions[best])]
        return [(str(self.features[indices[j]]), round(float(contributions[j]), 3)) for j in best
                if contributions[j] > 0]  # fmt: skip


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, min_df=2, max_features=MAX_FEATURES,
                           sublinear_tf=True, lowercase=True, dtype=np.float32)  # fmt: skip


def train(texts: list[str], labels: list[bool]) -> TextModel:
    """Fit on masked texts; liblinear with a fixed seed gives the same model on every machine."""
    vectorizer = _vectorizer()
    x = vectorizer.fit_transform(texts)
    clf = LogisticRegression(C=4.0, solver="liblinear", random_state=0, max_iter=1000)
    clf.fit(x, np.asarray(labels, dtype=int))
    return TextModel(vectorizer, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]),
                     vectorizer.get_feature_names_out())  # fmt: skip


def _dump(model: TextModel, path: Path) -> None:
    data = {
        "version": MODEL_VERSION,
        "vocabulary": {str(k): int(v) for k, v in model.vectorizer.vocabulary_.items()},
        "idf": [float(v) for v in model.vectorizer.idf_],
        "coef": [float(v) for v in model.coef],
        "intercept": model.intercept,
    }
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
    tmp.replace(path)


def _load(path: Path) -> TextModel:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    vectorizer = _vectorizer()
    vectorizer.vocabulary_ = data["vocabulary"]
    vectorizer.idf_ = np.asarray(data["idf"], dtype=np.float32)
    features = np.empty(len(data["vocabulary"]), dtype=object)
    for term, index in data["vocabulary"].items():
        features[index] = term
    return TextModel(vectorizer, np.asarray(data["coef"]), float(data["intercept"]), features)


def cache_path() -> Path:
    """Where the trained model is kept: named by everything that decides it, so a stale one is never read.

    The corpus's sentence pools are part of the name (an analyst who extends
    them gets a retrained model); code changes to the corpus, the masking or
    the features bump :data:`MODEL_VERSION`.
    """
    pools = (resources.files("ctis.screening") / "data" / "corpus.json").read_bytes()
    digest = hashlib.sha256(pools).hexdigest()[:12]
    key = f"{MODEL_VERSION}:{CORPUS_SIZE}:{CORPUS_SEED}:{sklearn.__version__}:{digest}"
    return (
        get_settings().data_dir / f"screening-model-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json.gz"
    )


def train_default() -> TextModel:
    """Train on the train part of the generated corpus (never on its test part)."""
    from ctis.screening import corpus
    from ctis.screening.networks import mask

    posts = [p for p in corpus.generate(CORPUS_SIZE, CORPUS_SEED) if p.split == "train"]
    return train([mask(p.post.full_text) for p in posts], [p.recruitment for p in posts])


_model: TextModel | None = None


def default_model() -> TextModel:
    """The shipped model: from the cache file, or trained now (a few seconds) and cached."""
    global _model
    with _lock:
        if _model is None:
            path = cache_path()
            if path.exists():
                try:
                    _model = _load(path)
                except (OSError, ValueError, KeyError, EOFError):
                    _model = None  # a damaged cache is retrained, not trusted
            if _model is None:
                _model = train_default()
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _dump(_model, path)
                except OSError:
                    pass  # a read-only data directory: the model lives in memory for this process
        return _model
