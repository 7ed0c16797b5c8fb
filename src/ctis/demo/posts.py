"""Screened recruitment posts for the demo, so the screening pages show a queue, networks and a trend.

The posts come from the same seeded generator as the screening evaluation (``ctis.screening.corpus``):
synthetic job posts in five languages, a fifth of them written by recruitment networks. They are
screened and stored through the screening service, as a crawler's batch would be, and so audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from ctis.screening import corpus, service
from ctis.security.permissions import SYSTEM
from ctis.storage.db import session_scope
from ctis.storage.models import ScreenedPost

#: Posts in the demo: enough for several networks and a monthly trend, few enough to screen in seconds.
DEMO_POSTS = 600
DEMO_SEED = 20250501


@dataclass(frozen=True)
class DemoPosts:
    posts: int
    flagged: int
    networks: int


def store_demo_posts(engine: Engine, n: int = DEMO_POSTS, seed: int = DEMO_SEED) -> DemoPosts:
    """Screen and store ``n`` generated posts; storing them again changes nothing (same ids)."""
    posts = [item.post for item in corpus.generate(n, seed)]
    with session_scope(engine) as session:
        service.ingest(session, SYSTEM, posts)
    with session_scope(engine) as session:
        stored, flagged, networks = session.execute(
            select(
                func.count(),
                func.count().filter(ScreenedPost.flagged.is_(True)),
                func.count(func.distinct(ScreenedPost.network_id)).filter(ScreenedPost.flagged.is_(True)),
            )
        ).one()
    return DemoPosts(int(stored), int(flagged), int(networks))
