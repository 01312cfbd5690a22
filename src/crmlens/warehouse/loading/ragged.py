"""Ragged lines: CSV records with more or fewer fields than the header, quarantined, not fatal.

Every full ``read_csv`` of a check scan stores what it cannot read in DuckDB's rejects table
(``store_rejects``) and skips it. After the scan the rejects become the *skipped lines*, one row
per record the reader skipped, written to a small Parquet file beside the check file:

- ``kind``: ``malformed`` (a column-count error, ``TOO MANY COLUMNS`` or ``MISSING COLUMNS``: the
  record is quarantined as :data:`RULE`), ``cast`` (a value a typed read could not cast: the file
  is read again as text) or ``fatal`` (any other reader error, e.g. an invalid UTF-8 byte or a
  quote left open; also a ragged record with such an error: the load fails as it always did);
- ``pos``: how many rows of the check file come before it, ``nl``: the line breaks inside it;
- ``line_no``: its physical line. DuckDB's ``line`` numbers *records* (a quoted value spanning
  lines counts once), so the line breaks inside the records before it are added: those of the
  check file's rows before it (``__nl``) and of the skipped records before it.

The rows after a skipped record move up in the check file, so the line number of a check row at
``__pos`` p adds one line, plus the line breaks inside, per skipped record with ``pos <= p``
(:func:`shift_sql`). The reader keeps no row for a skipped record: a clean file costs nothing more
than an empty rejects table.

DuckDB reports a record with a missing field once per missing field and a ragged record with an
unquoted quote also as ``UNQUOTED VALUE``: errors are grouped by record, and a record is only
quarantined when every error it has is a column-count (or cast) error.
"""

from __future__ import annotations

from crmlens.warehouse.loading.values import lit

#: The quarantine rule of a ragged record.
RULE = "malformed_line"
#: The reader's errors that make a record ragged.
COLUMN_COUNT_ERRORS = ("TOO MANY COLUMNS", "MISSING COLUMNS")


def _types(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(lit(n) for n in names) + "]"


def skipped_sql(rejects: str, header_line: int, wraps: str | None) -> str:
    """The records a read skipped, from its rejects table ``rejects``, in file order.

    ``wraps`` is a relation of (``pos``, ``nl``): the check rows (or staged rows) holding line
    breaks; None when no row can hold one.
    """
    ragged = f"list_contains({_types(COLUMN_COUNT_ERRORS)}, error_type)"
    readable = f"list_contains({_types((*COLUMN_COUNT_ERRORS, 'CAST'))}, error_type)"
    # DuckDB's csv_line of a CRLF file starts with the LF ending the line before
    raw = r"regexp_replace(any_value(csv_line), '^[\r\n]+|[\r\n]+$', '', 'g')"
    kind = (
        f"CASE WHEN NOT bool_and({readable}) THEN 'fatal' "
        f"WHEN bool_or({ragged}) THEN 'malformed' ELSE 'cast' END"
    )
    error = (
        f"first(error_type || ': ' || error_message ORDER BY byte_position) FILTER (NOT {readable})"
    )
    records = (
        f"SELECT line, {kind} AS kind, {error} AS error, {raw} AS raw FROM {rejects} GROUP BY line"
    )
    counted = (
        "SELECT *, length(raw) - length(replace(raw, chr(10), '')) AS nl, "
        # the data records before it, less the skipped ones: the check rows before it
        f"line - {header_line + 1} - (row_number() OVER (ORDER BY line) - 1) AS pos "
        f"FROM ({records})"
    )
    before = (
        "coalesce(sum(nl) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
    )
    kept = f"(SELECT coalesce(sum(w.nl), 0) FROM ({wraps}) w WHERE w.pos < s.pos)" if wraps else "0"
    return (
        f"SELECT s.pos, s.nl, (s.line + {before} + {kept})::BIGINT AS line_no, s.kind, s.error, s.raw "
        f"FROM ({counted}) s ORDER BY s.line"
    )


def summary_sql(skipped: str) -> str:
    """The skipped records: how many are ragged, how many are not, and the first of those."""
    return (
        "SELECT count(*) FILTER (kind = 'malformed'), count(*) FILTER (kind <> 'malformed'), "
        "arg_min(line_no || ': ' || coalesce(error, 'CAST') || '; Original Line: ' || raw, line_no) "
        f"FILTER (kind <> 'malformed') FROM {skipped}"
    )


def shift_sql(pos: str, skipped: str) -> str:
    """The lines taken by the skipped records before the check row at position ``pos``."""
    return f"(SELECT coalesce(sum(1 + m.nl), 0) FROM {skipped} m WHERE m.pos <= {pos})"


def quarantine_sql(skipped: str, column: str) -> str:
    """One ``rejected`` record per ragged record (parameters: load_id, table name, source).

    ``original_value`` is the record as written; ``row_json`` holds it under ``line`` (its fields
    cannot be told apart). ``column`` names the table's first key column: the value a ragged
    record is most likely meant to identify.
    """
    return (
        "INSERT INTO quarantine (load_id, table_name, source, line_no, column_name, rule, action, "
        f"original_value, row_json) SELECT ?, ?, ?, line_no, {lit(column)}, {lit(RULE)}, "
        f"'rejected', raw, json_object('line', raw)::VARCHAR FROM {skipped} "
        "WHERE kind = 'malformed'"
    )
