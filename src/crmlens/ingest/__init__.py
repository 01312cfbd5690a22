"""Ingestion: read exports (files, folders, PostgreSQL), map them onto the canonical tables, load
them via the warehouse (docs/ingestion.md).

Two ways in, one reader and one loader underneath:

* **declared sources** (the demo export, or any :class:`SourceSpec`): :func:`load_sources` reads
  each with :func:`read_source` and loads them all or nothing;
* **``crmlens ingest``**: :func:`read_input` reads a file, folder, glob or database table as a
  :class:`RawTable`, :func:`propose` / :func:`suggest_mapping` suggest an :class:`IngestMapping`,
  :func:`ingest` cleans and loads it (through :func:`load_sources`), :func:`dry_run` shows what a
  load would do.

>>> from crmlens.ingest import DEMO_SOURCES
>>> len({s.path for s in DEMO_SOURCES})
20
"""

from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.encoding import canonical_encoding, detect, detect_encoding
from crmlens.ingest.files import RawTable, expand_sources, read_files, read_input
from crmlens.ingest.load import LoadReport, Prepared, Progress, load_demo_export, load_sources
from crmlens.ingest.mapping import Suggestion, suggest_kind, suggest_mapping
from crmlens.ingest.mapping_file import (
    ColumnRule,
    Currency,
    IngestMapping,
    ReadOptions,
    load_mapping,
    save_mapping,
)
from crmlens.ingest.pipeline import ColumnProfile, DryRun, dry_run, ingest, profile, propose
from crmlens.ingest.readers import ExportReader, read_batches, read_source
from crmlens.ingest.sniff import SniffResult, sniff
from crmlens.ingest.spec import (
    ColumnSpec,
    Derive,
    Infer,
    Reference,
    RowRule,
    SourceSpec,
    Unpivot,
)
from crmlens.warehouse.loading import SourceResult, SourceRows

__all__ = [
    "DEMO_SOURCES",
    "ColumnProfile",
    "ColumnRule",
    "ColumnSpec",
    "Currency",
    "Derive",
    "DryRun",
    "ExportReader",
    "Infer",
    "IngestMapping",
    "LoadReport",
    "Prepared",
    "Progress",
    "RawTable",
    "ReadOptions",
    "Reference",
    "RowRule",
    "SniffResult",
    "SourceResult",
    "SourceRows",
    "SourceSpec",
    "Suggestion",
    "Unpivot",
    "canonical_encoding",
    "detect",
    "detect_encoding",
    "dry_run",
    "expand_sources",
    "ingest",
    "load_demo_export",
    "load_mapping",
    "load_sources",
    "profile",
    "propose",
    "read_batches",
    "read_files",
    "read_input",
    "read_source",
    "save_mapping",
    "sniff",
    "suggest_kind",
    "suggest_mapping",
]
