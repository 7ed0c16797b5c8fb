"""Settings, read from the environment once.

``CTIS_DATABASE_URL`` selects the database (an SQLAlchemy URL); without it CTIS
uses an SQLite file in ``CTIS_DATA_DIR`` (default ``./var``), so that a new user
needs no server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path


def get_settings() -> Settings:
    data_dir = Path(os.environ.get("CTIS_DATA_DIR", "var")).resolve()
    url = os.environ.get("CTIS_DATABASE_URL") or f"sqlite:///{data_dir / 'ctis.db'}"
    return Settings(database_url=url, data_dir=data_dir)
