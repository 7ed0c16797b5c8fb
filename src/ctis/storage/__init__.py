"""Storage: SQLAlchemy 2 models, Alembic migrations and the repository layer.

SQLite is the embedded default; PostgreSQL is selected by ``CTIS_DATABASE_URL``.
Nothing outside this package writes SQL against these tables except the metric
registry, which reads them.
"""
