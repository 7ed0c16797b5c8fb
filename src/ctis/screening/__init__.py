"""Screening of online recruitment posts for trafficking and scam-compound recruitment (issue 5).

``posts`` reads posts, ``language`` names their language, ``entities`` pulls
out contact points and facts, ``indicators`` applies the analyst's rule files,
``model`` is the statistical classifier, ``score`` combines the two, and
``networks`` links posts into the networks that wrote them.  ``service``
stores, audits and reads them for the CLI and the API.
"""
