"""Application services shared by every front end.

The CLI (and later the web application) call these functions rather than
touching storage or the registry directly, so that what a command does and
what a page does cannot drift apart.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis.config import get_settings
from ctis.storage.db import make_engine, migrate
from ctis.storage.models import MODELS


@cache
def engine() -> Engine:
    return make_engine(get_settings().database_url)


def init_database(eng: Engine | None = None) -> None:
    migrate(eng or engine())


def record_counts(eng: Engine | None = None) -> dict[str, int]:
    with Session(eng or engine()) as session:
        return {
            kind: int(session.execute(select(func.count()).select_from(model)).scalar_one())  # type: ignore[arg-type]
            for kind, model in MODELS.items()
        }


def is_empty(eng: Engine | None = None) -> bool:
    return not any(record_counts(eng).values())


def clear_records(eng: Engine | None = None) -> None:
    """Delete every record (reference tables stay); used by ``ctis demo --reset``."""
    from ctis.storage.models import Base

    with (eng or engine()).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "provinces" and table.name != "alembic_version":
                conn.execute(table.delete())
