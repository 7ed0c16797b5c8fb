"""One screening of one post: language, entities, indicators, model, and the risk score.

The score weighs two parts: the rules (a noisy-or of the weights of the
indicators that fired, reduced by signs of a legitimate employer) count for
:data:`RULES_SHARE`, the model's probability for the rest.  The rules carry
more because they encode published indicators, while the model has only seen
the generated corpus and is less sure of wording it never met.  A post is
flagged at :data:`FLAG_AT`.  Because the rules' part is zero when no
indicator fires, the model alone can never flag a post: every flag has at
least one named indicator with the words behind it, which is what an analyst
can act on and explain to the public.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctis.screening import indicators as ind
from ctis.screening.entities import Entities, extract, normalise_digits
from ctis.screening.language import detect, detect_many
from ctis.screening.model import TextModel, default_model
from ctis.screening.networks import mask, signature_values, signatures
from ctis.screening.posts import Post

FLAG_AT = 0.5
#: Share of the rules' half that signs of a legitimate employer can take away, at most.
MAX_LEGITIMACY = 0.8
RULES_SHARE = 0.6


@dataclass
class Screened:
    post: Post
    language: str
    score: float
    flagged: bool
    rules_score: float
    model_score: float
    indicators: list[ind.Hit]
    entities: Entities
    masked: str
    model_features: list[tuple[str, float]] = field(default_factory=list)
    network: str | None = None
    #: The MinHash of ``masked`` (its 128 values as a uint32 array where ``screen_many`` was asked for
    #: ``minhash=False``), once computed.
    signature: Any = None

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON line: exactly the fields the issue names."""
        e = self.entities
        return {
            "id": self.post.id,
            "language": self.language,
            "score": round(self.score, 3),
            "flagged": self.flagged,
            "indicators": [h.name for h in self.indicators if h.family != "legitimacy"],
            "entities": {
                "phones": e.phones,
                "handles": e.handles,
                "urls": e.urls,
                "emails": e.emails,
                "salary_usd_month": e.salary_usd_month,
            },
            "network": self.network,
        }


def rules_score(hits: list[ind.Hit]) -> float:
    """Noisy-or of the fired red flags and ILO indicators, less the legitimacy signs' share."""
    missing = 1.0
    legit = 0.0
    for hit in hits:
        if hit.weight > 0:
            missing *= 1.0 - min(hit.weight, 0.99)
        else:
            legit += -hit.weight
    return (1.0 - missing) * (1.0 - min(legit, MAX_LEGITIMACY))


def combine(rules: float, model: float) -> float:
    return RULES_SHARE * rules + (1 - RULES_SHARE) * model


def screen_many(
    posts: list[Post],
    model: TextModel | None = None,
    explain: bool = True,
    fast: bool = True,
    minhash: bool = True,
) -> list[Screened]:
    """Screen a batch; the model scores the batch in one matrix product.

    The fast path (the default) does the per-post work that numpy can do for a
    whole batch at once: the languages (:func:`detect_many`), the model's
    n-gram counts (:meth:`TextModel.transform`), the explanations and the
    MinHash signatures (:func:`signatures`, set on each result so that the
    network step need not compute them).  ``fast=False`` is the plain path, one
    post at a time with scikit-learn's and py3langid's own code; both give the
    same results (a test compares them on generated posts).  ``explain=False``
    leaves out the model's features (not in :meth:`Screened.summary`);
    ``minhash=False`` sets each signature as its values only (a row of one
    array), which is all the network index needs: making a datasketch
    ``MinHash`` of them costs more than computing them.
    """
    if not posts:
        return []
    texts = [post.full_text for post in posts]
    languages = detect_many(texts) if fast else [detect(text) for text in texts]
    prepared = []
    for post, text, language in zip(posts, texts, languages, strict=True):
        entities = extract(text, language)
        hits = ind.evaluate(normalise_digits(text), entities, language)
        prepared.append((post, language, entities, hits, mask(text, entities)))
    m = model or default_model()
    masked = [p[4] for p in prepared]
    x = m.transform(masked) if fast else m.vectorizer.transform(masked)
    probabilities = m.score_matrix(x)
    features: list[list[tuple[str, float]]] = []
    if explain:
        features = m.explain_rows(x) if fast else [m.explain_row(x[i]) for i in range(x.shape[0])]
    sigs: list[Any]
    if not fast:
        sigs = [None] * len(masked)
    elif minhash:
        sigs = signatures(masked)
    else:
        sigs = list(signature_values(masked))
    out = []
    for i, ((post, language, entities, hits, masked_text), p) in enumerate(
        zip(prepared, probabilities, strict=True)
    ):
        r = rules_score(hits)
        score = combine(r, float(p))
        screened = Screened(post, language, score, score >= FLAG_AT, r, float(p), hits, entities, masked_text)
        if explain:
            screened.model_features = features[i]
        screened.signature = sigs[i]
        out.append(screened)
    return out


def screen(post: Post, model: TextModel | None = None) -> Screened:
    return screen_many([post], model)[0]


#: A post that goes through every part of the screening (phone, handle, pay, age, place, mention).
_WARM_UP = Post(
    id="warm-up",
    text="Typing job in Bavet, salary $1,500-2,000 per month, age 18-35, free visa and ticket. "
    "Telegram @warm_up_team or WhatsApp +855 97 123 4567, www.example.com, mail hr@example.com",
)


def warm_up(model: TextModel | None = None) -> None:
    """Load and build, once, what the screening loads on first use (language model, rules,
    gazetteer, n-gram tables: about half a second).  Called before worker processes are forked,
    so that they inherit it instead of each building it again."""
    screen_many([_WARM_UP], model or default_model())
