"""Load one mapped source into its canonical table with set-based DuckDB SQL.

A source is loaded in three steps, all inside the caller's transaction:

1. **check**: one scan of the rows (``read_csv`` of a UTF-8 file, or an Arrow table) parses every
   value, applies inferences and derived columns, evaluates the row-local rules and writes the
   typed rows to a temporary Parquet file. DuckDB preserves insertion order, so a row's number in
   that file is the record's position in the source and gives its line number without storing one.
2. **merge duplicates and check references**: rows sharing the primary key collapse to the newest
   (``updated_column``), else to the last in the file; the others are counted as merged. Rows
   whose values must exist in an already loaded table and do not are rejected.
3. **upsert and account**: rows with the same key are replaced, the kept rows appended, quarantine
   records written and the counts returned, so that rows read = loaded + quarantined + merged.

Modules: :mod:`.mapping` (the vocabulary ``crmlens.ingest`` declares its sources with),
:mod:`.values` (parsing values), :mod:`.plan` (the SQL generated from a mapping), :mod:`.ragged`
(lines with more or fewer fields than the header: quarantined), :mod:`.run` (executing it).
"""

from crmlens.warehouse.loading.mapping import (
    ColumnSpec,
    Derive,
    Infer,
    Kind,
    Reference,
    RowRule,
    SourceResult,
    SourceRows,
    TableMapping,
    Unpivot,
)
from crmlens.warehouse.loading.run import anon_salt, load_settings, load_source, write_load_log
from crmlens.warehouse.loading.values import TIMESTAMP_FORMATS, parse_sql

__all__ = [
    "TIMESTAMP_FORMATS",
    "ColumnSpec",
    "Derive",
    "Infer",
    "Kind",
    "Reference",
    "RowRule",
    "SourceResult",
    "SourceRows",
    "TableMapping",
    "Unpivot",
    "anon_salt",
    "load_settings",
    "load_source",
    "parse_sql",
    "write_load_log",
]
