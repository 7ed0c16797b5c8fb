"""Standard exports: the CTDC record layout, the US TIP report tables, UNODC GLOTIP tables.

Each export is a mapping of the registry's figures (or, for CTDC, of the very
records a registry figure counts) into someone else's layout.  Tables pass the
release gate and record-level rows are made k-anonymous unless an exact export
is explicitly asked for; every export reports the values it could not map, and
every export is audited.
"""

from __future__ import annotations

from ctis.exports.ctdc import CtdcExport, export_ctdc
from ctis.exports.glotip import export_glotip
from ctis.exports.mapping import Unmapped
from ctis.exports.release import TableExport
from ctis.exports.tip import export_tip

LAYOUTS = ("ctdc", "tip", "glotip")

__all__ = ["LAYOUTS", "CtdcExport", "TableExport", "Unmapped", "export_ctdc", "export_glotip", "export_tip"]
