"""Ragged lines: CSV records with more or fewer fields than the header, quarantined, not fatal.

Every full ``read_csv`` of a check scan stores what it cannot read in DuckDB's rejects table
(``store_rejects``) and skips it. After the scan the rejects become the *skipped lines*, one row
per record the reader skipped, written to a small Parquet file beside the check file:

- ``kind``: ``malformed`` (a column-count error, ``TOO MANY COLUMNS`` or ``MISSING COLUMNS``: the
  record is quarantined as :data:`RULE`), ``cast`` (a value a typed read could not cast: the file
  is read again as text) or ``fatal`` (any other reader error, e.g. an invalid UTF-8 byte or a
  quote left open; also a ragged record with such an error: the load fails as it always did);
  ``blank``: a run of blank lines (:mod:`.lines`), which the reader skips without a reject;
- ``pos``: how many rows of the check file come before it, ``nl``: the line breaks inside it;
- ``line_no``: its physical line. DuckDB's ``line`` numbers *records* and blank lines (a quoted
  value spanning lines counts once), so the line breaks inside the records before it are added:
  those of the check file's rows before it (``__nl``) and of the skipped records before it. Its
  ``pos`` leaves out the blank lines before it.

The rows after a skipped record move up in the check file, so the line number of a check row at
``__pos`` p adds one line, plus the line breaks inside, per skipped record with ``pos <= p``
(:func:`shift_sql`), and one line per blank line before it. The reader keeps no row for a
skipped record: a clean file costs nothing more than an empty rejects table.

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


def skipped_sql(
    rejects: str | None, header_line: int, wraps: str | None, blanks: str | None = None
) -> str:
    """The records a read skipped, from its rejects table ``rejects``, and the runs of blank lines
    it skipped, ``blanks`` (:func:`.lines.blank_runs`), in file order; either may be None.

    ``wraps`` is a relation of (``pos``, ``nl``): the check rows (or staged rows) holding line
    breaks; None when no row can hold one. A run of n blank lines is a skipped entry of kind
    ``blank`` taking n lines (``nl`` = n - 1), never quarantined.
    """
    blank_rows = f"SELECT b.rec AS r, b.n - 1 AS nl FROM {blanks} b" if blanks else ""
    if rejects is None:
        assert blanks is not None  # nothing skipped: nothing to ask for
        return (
            "SELECT r AS pos, nl, NULL::BIGINT AS line_no, 'blank' AS kind, NULL::VARCHAR AS error, "
            f"NULL::VARCHAR AS raw FROM ({blank_rows}) ORDER BY pos"
        )
    ragged = f"list_contains({_types(COLUMN_COUNT_ERRORS)}, error_type)"
    readable = f"list_contains({_types((*COLUMN_COUNT_ERRORS, 'CAST'))}, error_type)"
    # DuckDB's csv_line of a CRLF file starts with the LF ending the line before (and with the
    # blank lines before it)
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
    # DuckDB's line counts the blank lines before a record, which are no records
    blank_before = (
        f"(SELECT coalesce(sum(b.n), 0) FROM {blanks} b WHERE b.line < g.line)" if blanks else "0"
    )
    counted = (
        "SELECT *, length(raw) - length(replace(raw, chr(10), '')) AS nl, "
        # the data records before it; less the skipped ones: the check rows before it
        f"r - (row_number() OVER (ORDER BY line) - 1) AS pos FROM "
        f"(SELECT *, line - {header_line + 1} - {blank_before} AS r FROM ({records}) g)"
    )
    before = (
        "coalesce(sum(nl) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
    )
    kept = f"(SELECT coalesce(sum(w.nl), 0) FROM ({wraps}) w WHERE w.pos < s.pos)" if wraps else "0"
    sql = (
        f"WITH s AS ({counted}) SELECT s.pos, s.nl, (s.line + {before} + {kept})::BIGINT AS line_no, "
        "s.kind, s.error, s.raw FROM s"
    )
    if blanks:  # a run's check rows before it: the records before it less the skipped ones
        sql += (
            " UNION ALL SELECT k.r - (SELECT count(*) FROM s WHERE s.r < k.r), k.nl, NULL, "
            f"'blank', NULL, NULL FROM ({blank_rows}) k"
        )
    return f"SELECT * REPLACE (pos::BIGINT AS pos) FROM ({sql}) ORDER BY pos, line_no NULLS FIRST"


def summary_sql(skipped: str) -> str:
    """The skipped records: how many are ragged, how many are not (blank lines aside), and the
    first of those."""
    other = "kind NOT IN ('malformed', 'blank')"
    return (
        f"SELECT count(*) FILTER (kind = 'malformed'), count(*) FILTER ({other}), "
        "arg_min(line_no || ': ' || coalesce(error, 'CAST') || '; Original Line: ' || raw, line_no) "
        f"FILTER ({other}) FROM {skipped}"
    )


#: The lines taken by the skipped records before a row, once joined by :func:`shift_sql`.
SHIFT = "coalesce(__shift.lines, 0)"


def shift_sql(pos: str, skipped: str) -> str:
    """The join giving the check row at ``pos`` the lines taken by the skipped records and blank
    lines before it (:data:`SHIFT`): those with ``pos`` <= its own.

    An ASOF join on the running total per position: it sorts both sides once, where a correlated
    sum would compare every row with every skipped entry (a double-spaced file has one per row).
    """
    total = "sum(sum(1 + nl)) OVER (ORDER BY pos)"
    shifts = f"SELECT pos, {total} AS lines FROM {skipped} GROUP BY pos"
    return f"ASOF LEFT JOIN ({shifts}) __shift ON {pos} >= __shift.pos"


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
