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
from ctis.screening.language import detect
from ctis.screening.model import TextModel, default_model
from ctis.screening.networks import mask
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
    signature: Any = None  # the MinHash of ``masked``, once the post is clustered

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


def screen_many(posts: list[Post], model: TextModel | None = None, explain: bool = True) -> list[Screened]:
    """Screen a batch; the model scores the batch in one matrix product."""
    prepared = []
    for post in posts:
        text = post.full_text
        language = detect(text)
        entities = extract(text, language)
        hits = ind.evaluate(normalise_digits(text), entities, language)
        prepared.append((post, language, entities, hits, mask(text, entities)))
    if not prepared:
        return []
    m = model or default_model()
    x = m.vectorizer.transform([p[4] for p in prepared])
    probabilities = m.score_matrix(x)
    out = []
    for i, ((post, language, entities, hits, masked), p) in enumerate(
        zip(prepared, probabilities, strict=True)
    ):
        r = rules_score(hits)
        score = combine(r, float(p))
        screened = Screened(post, language, score, score >= FLAG_AT, r, float(p), hits, entities, masked)
        if explain:
            screened.model_features = m.explain_row(x[i])
        out.append(screened)
    return out


def screen(post: Post, model: TextModel | None = None) -> Screened:
    return screen_many([post], model)[0]
