"""The metric registry: every figure CTIS shows is defined here, once."""

from ctis.metrics.registry import DIMENSIONS, METRICS, Metric, get_metric
from ctis.metrics.report import Report, compute_report, drill_down

__all__ = [
    "DIMENSIONS",
    "METRICS",
    "Metric",
    "Report",
    "compute_report",
    "drill_down",
    "get_metric",
]
