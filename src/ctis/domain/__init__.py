"""The domain: value sets, periods, ages and record validation.

Nothing in this package imports SQLAlchemy, Typer or any other front end:
every other layer depends on it, never the reverse.
"""
