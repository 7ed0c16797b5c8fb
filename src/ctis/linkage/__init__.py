"""Person linkage: which records of victims and suspects are the same person.

The engine (Splink 5 on DuckDB, or on Spark) is pure data in, data out; see
docs/linkage.md. Storage, review and counting build on this API.
"""

from ctis.linkage.engine import INPUT_COLUMNS, Decision, LinkModel, LinkResult, link

__all__ = ["INPUT_COLUMNS", "Decision", "LinkModel", "LinkResult", "link"]
