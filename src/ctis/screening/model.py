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
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ctis.config import get_settings

#: Bump when the corpus, the masking or the features change: the cached model is then retrained.
MODEL_VERSION = 2
NGRAMS = (2, 4)
MAX_FEATURES = 60_000
CORPUS_SIZE = 5000
CORPUS_SEED = 20250501
_lock = threading.Lock()


@dataclass
class TextModel:
    vectorizer: TfidfVectorizer
    coef: np.ndarray
    intercept: float
    features: np.ndarray

    def probabilities(self, masked_texts: list[str]) -> np.ndarray:
        """Probability that each (masked) text is a recruitment post of a scam network."""
        return self.score_matrix(self.vectorizer.transform(masked_texts))

    def score_matrix(self, x: Any) -> np.ndarray:
        z = x @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z))).ravel()

    def explain(self, masked_text: str, top: int = 5) -> list[tuple[str, float]]:
        """The n-grams that pushed this text's score up most, with their contribution (log-odds)."""
        return self.explain_row(self.vectorizer.transform([masked_text]), top)

    def explain_row(self, row: Any, top: int = 5) -> list[tuple[str, float]]:
        """As :meth:`explain`, for one row of an already vectorised batch."""
        indices, values = row.indices, row.data
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
