"""Ingestion: declare the sources of an export (specs), read them, and load them via the warehouse.

>>> from crmlens.ingest import DEMO_SOURCES
>>> len({s.path for s in DEMO_SOURCES})
20
"""

from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.load import LoadReport, Progress, load_demo_export, load_sources
from crmlens.ingest.spec import (
    ColumnSpec,
    Derive,
    Infer,
    Reference,
    RowRule,
    SourceSpec,
    Unpivot,
)
from crmlens.warehouse.loading import SourceResult

__all__ = [
    "DEMO_SOURCES",
    "ColumnSpec",
    "Derive",
    "Infer",
    "LoadReport",
    "Progress",
    "Reference",
    "RowRule",
    "SourceResult",
    "SourceSpec",
    "Unpivot",
    "load_demo_export",
    "load_sources",
]
