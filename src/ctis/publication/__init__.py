"""Publication: figures that leave CTIS only through the release gate.

Exact counts stay inside; what goes out (public releases, the transparency
page, CTDC / TIP / GLOTIP exports) is protected first, by small-cell and
complementary suppression or by differentially private noise.
"""
