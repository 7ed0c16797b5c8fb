"""CTIS — Counter-Trafficking Information System.

The package is layered so that the domain (``ctis.domain``) is the centre and
knows nothing of storage or front ends; ``ctis.storage`` persists it,
``ctis.metrics`` counts it, ``ctis.io`` moves it in and out of files, and
``ctis.cli`` is a thin front end over those services.
"""

__version__ = "0.1.0"
