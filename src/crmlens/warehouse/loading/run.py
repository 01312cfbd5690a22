"""Executing a load: check (values, rules, references), merge duplicates, upsert, account."""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from crmlens.errors import ConfigError
from crmlens.warehouse.loading import lines, ragged
from crmlens.warehouse.loading.mapping import SourceResult, SourceRows, TableMapping
from crmlens.warehouse.loading.plan import (
    OVERRIDES,
    REJECT_SCANS,
    REJECTS,
    SRC,
    STAGE,
    CheckPlan,
)
from crmlens.warehouse.loading.values import lit
from crmlens.warehouse.migrations import META_TABLE, quote

#: Rows read as text to decide which columns the CSV reader may parse itself: enough to meet the
#: sparse dirt of an export (an issue every few thousand rows) before committing to a typed read.
SAMPLE_ROWS = 20_000
#: DuckDB's memory limit while a source loads, in MiB, unless set lower (its default is 80% of the
#: RAM): DuckDB spills to disk beyond it. The rows a load writes stay in its memory until the
#: load commits (a transaction keeps them), so without a cap a large load's memory grows with it.
LOAD_MEMORY_LIMIT_MIB = 1024
#: The runs of blank lines of a CSV file (:func:`.lines.blank_runs`), registered while the skipped
#: lines are written.
BLANKS = "__crmlens_blanks"


def anon_salt(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's salt for anonymised IDs, created on first use (in the caller's transaction).

    It never leaves the warehouse file: anyone holding the file can re-identify, nobody else can.
    """
    row = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'anon_salt'").fetchone()
    if row:
        return str(row[0])
    salt = secrets.token_hex(16)
    con.execute(f"INSERT INTO {META_TABLE} VALUES ('anon_salt', ?)", [salt])
    return salt


def load_source(
    con: duckdb.DuckDBPyConnection,
    rows: SourceRows,
    mapping: TableMapping,
    *,
    load_id: str,
    loaded_at: datetime,
    salt: str,
) -> SourceResult:
    """Check, de-duplicate and upsert one source into ``mapping.table``; write its quarantine rows.

    Runs inside the caller's transaction and leaves no temporary tables behind. Raises
    :class:`duckdb.Error` when DuckDB cannot read the input (the caller names the file).

    The source is read on a second connection (``scan``), outside the transaction: it holds
    nothing of the warehouse's, and its check table goes to a file (see :mod:`.plan`).
    """
    started, clock = datetime.now(), time.perf_counter()
    with load_settings(con):
        result = _load(con, rows, mapping, load_id, loaded_at, salt)
    result.seconds = time.perf_counter() - clock
    result.started_at, result.finished_at = started, datetime.now()
    return result


@contextmanager
def load_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep insertion order and cap DuckDB's memory while loading; restore both settings after.

    Row order = file order is what gives each row its line number (DuckDB's default). The cap
    keeps a large load's memory bounded: what the transaction wrote spills to disk beyond it.
    :func:`load_source` applies it to its source; a load of several sources applies it once
    around them all (lowering the cap makes DuckDB evict what it holds above it, which took up
    to 0.4 s per source at 1M customers), and the inner one then changes nothing.
    """
    order, limit = con.execute(
        "SELECT current_setting('preserve_insertion_order'), current_setting('memory_limit')"
    ).fetchone() or (True, "")
    capped = _size_bytes(limit) > LOAD_MEMORY_LIMIT_MIB << 20
    if not order:
        con.execute("SET preserve_insertion_order = true")
    if capped:
        con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT_MIB}MiB'")
    try:
        yield
    finally:
        if capped:  # the default exactly; a limit set before as DuckDB prints it (3 digits)
            con.execute("RESET memory_limit")
            if _scalar_text(con, "SELECT current_setting('memory_limit')") != limit:
                con.execute(f"SET memory_limit = {lit(limit)}")
        if not order:
            con.execute("SET preserve_insertion_order = false")


def _scalar_text(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    row = con.execute(sql).fetchone()
    return "" if row is None else str(row[0])


def _size_bytes(text: str) -> float:
    """Bytes of a DuckDB size setting as it reads it back (``'18.8 GiB'``); 0 if unreadable,
    which leaves that limit alone.

    >>> _size_bytes("1.5 KiB"), _size_bytes("12 bytes")
    (1536.0, 12.0)
    """
    match = re.fullmatch(r"([\d.]+)\s*(bytes|[KMGTPE]i?B)", text.strip())
    if not match:
        return 0.0
    number, unit = float(match[1]), match[2]
    if unit == "bytes":
        return number
    power = "KMGTPE".index(unit[0]) + 1
    return number * (1024 if "i" in unit else 1000) ** power


def _load(
    con: duckdb.DuckDBPyConnection,
    rows: SourceRows,
    mapping: TableMapping,
    load_id: str,
    loaded_at: datetime,
    salt: str,
) -> SourceResult:
    """:func:`load_source` under its settings: the check on a second connection, then the rest."""
    scan = con.cursor()
    if rows.arrow is not None:
        scan.register(SRC, rows.arrow)
    workdir = tempfile.TemporaryDirectory(prefix="crmlens-check-")
    try:
        plan, counts = _check(con, scan, Path(workdir.name), rows, mapping, salt)
        delete, insert = plan.upsert_sql()
        if _may_replace(con, plan):
            con.execute(delete)
        con.execute(insert, [load_id, loaded_at])
        source = [load_id, mapping.table, rows.label]
        if counts[2] > plan.skipped or counts[4]:  # rows rejected, or kept with a value changed
            if plan.blank_lines is None and not plan.has_line:
                # line numbers matter now: the blank lines before a row shift its line
                _write_skipped(scan, plan, None)
            con.execute(plan.quarantine_sql(), source)
        if plan.skipped:
            key = plan.tbl.primary_key[0]
            column = plan.header_of.get(key, key)
            con.execute(ragged.quarantine_sql(plan.skipped_rel, column), source)
        result = _account(con, plan, counts, rows.label, load_id)
        con.execute(f"DROP TABLE {OVERRIDES}")
    finally:
        # after an error the transaction is aborted and its rollback drops the temporary tables
        scan.close()
        workdir.cleanup()
    return result


def _may_replace(con: duckdb.DuckDBPyConnection, plan: CheckPlan) -> bool:
    """Whether a kept row may share its key with a row of the table: not when the table is empty,
    nor when the ranges of the first key column do not meet (a second source of a load adding keys
    of its own, as an export adding new IDs after the old ones). The ranges are far cheaper to
    find than the rows to delete.
    """
    first = quote(plan.tbl.primary_key[0])
    table = quote(plan.tbl.name)
    if not con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
        return False  # the usual first load: the rows to keep are not even read
    loaded = f"SELECT min({first}) AS lo, max({first}) AS hi FROM {table}"
    kept = (
        f"SELECT min({first}) AS lo, max({first}) AS hi FROM {plan.rows_sql} WHERE __status IS NULL"
    )
    # compared in SQL, as DuckDB orders the values; NULL (nothing kept) means nothing to replace
    meet = f"SELECT coalesce(k.lo <= t.hi AND t.lo <= k.hi, false) FROM ({loaded}) t, ({kept}) k"
    return bool(_scalar(con, meet))


def _check(
    con: duckdb.DuckDBPyConnection,
    scan: duckdb.DuckDBPyConnection,
    workdir: Path,
    rows: SourceRows,
    mapping: TableMapping,
    salt: str,
) -> tuple[CheckPlan, tuple[int, ...]]:
    """Make the check table, merge duplicates and check references; return the plan that made it
    and its counts (:meth:`CheckPlan.counts_sql`).

    A CSV file is first read typed where a sample allows it (see :func:`read_types_for`): parsing a
    timestamp while reading is far cheaper than reading its text and casting it. The typed result
    is kept only if it is what reading as text gives: the reader rejected no value (ragged records
    aside, see :mod:`.ragged`), and no row needs its text in the quarantine. Otherwise the file is
    read again as text.
    """

    def plan(read_types: dict[str, str] | None = None) -> CheckPlan:
        check_file = workdir / ("typed.parquet" if read_types else "text.parquet")
        return CheckPlan(rows, mapping, salt, read_types, str(check_file))

    text = plan()
    read_types = read_types_for(scan, text)
    if read_types:
        typed = plan(read_types)
        _scan(con, scan, typed)
        if not _skip(scan, typed):  # else a value did not cast, or the read failed
            counts = _settle(con, typed)
            if not counts[-1]:
                return typed, counts
    if rows.arrow is None and mapping.unpivot is not None:
        # the stage is what is read: its skipped records are known before the scan
        scan.execute(f"CREATE TEMP TABLE {STAGE} AS SELECT * FROM {text.read_csv()}")
        _skip(scan, text, fail=True, blank_lines=True)  # the scan gives each row its line
    _scan(con, scan, text)
    if rows.arrow is None and mapping.unpivot is None:
        _skip(scan, text, fail=True)
    scan.execute(f"DROP TABLE IF EXISTS {STAGE}")
    return text, _settle(con, text)


def _skip(
    scan: duckdb.DuckDBPyConnection, plan: CheckPlan, fail: bool = False, blank_lines: bool = False
) -> int:
    """Take the records ``plan``'s read skipped out of its rejects table: set ``plan.skipped`` to
    the ragged ones (written to its ``skipped_file``) and return how many others there are.

    The blank lines the read skipped are looked for when it skipped a record (a ragged one is
    quarantined with its line) or ``blank_lines`` says so; else only once quarantine records are
    written (:func:`_load`): a clean file is not searched at all. With ``fail``, raise DuckDB's
    error for the first record the reader could not read that is not ragged (as reading without
    rejects would have).
    """
    others = 0
    rejected = _scalar(scan, f"SELECT count(*) FROM {REJECTS}")
    if rejected or blank_lines:
        _write_skipped(scan, plan, REJECTS if rejected else None)
    if rejected:
        summary = scan.execute(ragged.summary_sql(plan.skipped_rel)).fetchone()
        assert summary is not None  # an aggregate always returns a row
        plan.skipped, others, first = summary
        if fail and others:
            # the Python binding's class of DuckDB's CSV errors: the caller names the file
            raise duckdb.InvalidInputException(f"CSV Error on Line: {first}")
    scan.execute(f"DROP TABLE {REJECTS}")
    scan.execute(f"DROP TABLE {REJECT_SCANS}")
    return others


def _write_skipped(scan: duckdb.DuckDBPyConnection, plan: CheckPlan, rejects: str | None) -> None:
    """Write ``plan``'s ``skipped_file``: the records of its rejects table ``rejects`` (if any) and
    the runs of blank lines of its CSV file; set ``plan.blank_lines``. Nothing to write, no file."""
    rows, runs = plan.rows, None
    if rows.csv_path is not None:
        runs = lines.blank_runs(rows.csv_path, rows.header_line, len(rows.headers))
    plan.blank_lines = 0 if runs is None else sum(runs.column("n").to_pylist())
    if rejects is None and runs is None:
        return
    skipped = ragged.skipped_sql(
        rejects, rows.header_line, plan.wraps_sql(), BLANKS if runs is not None else None
    )
    if runs is not None:
        scan.register(BLANKS, runs)
    try:
        scan.execute(f"COPY ({skipped}) TO {lit(plan.skipped_file)} (FORMAT parquet)")
    finally:
        if runs is not None:
            scan.unregister(BLANKS)


def _settle(con: duckdb.DuckDBPyConnection, plan: CheckPlan) -> tuple[int, ...]:
    """Merge duplicate keys and reject broken references; return the plan's counts.

    The check of distinct keys is much cheaper than the merge, which it mostly spares.
    """
    if _scalar(con, plan.distinct_keys_sql()):
        con.execute(plan.merge_sql())
    references = plan.reference_sql()
    if references:
        con.execute(references)
    counts = con.execute(plan.counts_sql()).fetchone()
    assert counts is not None  # an aggregate always returns a row
    read, loaded, rejected, *rest = (int(n) for n in counts)
    # the ragged records are read and rejected, but not in the check table
    return (read + plan.skipped, loaded, rejected + plan.skipped, *rest)


def _scan(con: duckdb.DuckDBPyConnection, scan: duckdb.DuckDBPyConnection, plan: CheckPlan) -> None:
    """Run the scan of ``plan`` on ``scan`` into its check table, and make the overrides empty.

    Refuses a scan that DuckDB plans with a join: it may reorder the rows, and the order of rows
    that do not carry their line number gives it. DuckDB turns ``x IN (...)`` of 5 or more values
    into a join.
    """
    sql = plan.check_sql()
    if not plan.has_line:
        explained = " ".join(
            str(v) for row in scan.execute(f"EXPLAIN {sql}").fetchall() for v in row
        )
        if re.search(r"\b\w+_JOIN\b|\bCROSS_PRODUCT\b", explained):
            raise ConfigError(
                f"{plan.rows.label}: a rule or derived column of table {plan.tbl.name} makes DuckDB "
                "join, which would lose the line numbers; write x IN (...) as "
                "list_contains([...], x), and use no subqueries"
            )
    scan.execute(plan.create_sql())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {OVERRIDES} (pos BIGINT, code INTEGER)")


def read_types_for(con: duckdb.DuckDBPyConnection, plan: CheckPlan) -> dict[str, str]:
    """The columns to read typed: the candidates whose sampled values all cast.

    None when a sampled row has an issue: the quarantine would need the text of the typed columns.
    """
    candidates = plan.read_candidates()
    if not candidates:
        return {}
    sample = con.execute(plan.sample_sql(SAMPLE_ROWS, candidates)).fetchone()
    assert sample is not None  # an aggregate always returns a row
    issues, *casts = sample
    if issues:
        return {}
    return {h: t for (h, t), ok in zip(candidates.items(), casts, strict=True) if ok}


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None  # an aggregate always returns a row
    return int(row[0])


def _account(
    con: duckdb.DuckDBPyConnection,
    plan: CheckPlan,
    counts: tuple[int, ...],
    source: str,
    load_id: str,
) -> SourceResult:
    """The counts of the check table and of the quarantine records just written."""
    table_name = plan.tbl.name
    result = SourceResult(source, table_name, *counts[:4])
    records = con.execute(
        "SELECT rule, action, count(*) FROM quarantine WHERE load_id = ? AND table_name = ? "
        "AND source = ? GROUP BY ALL ORDER BY ALL",
        [load_id, table_name, source],
    ).fetchall()
    for rule, action, n in records:
        by_rule = result.rejected_by_rule if action == "rejected" else result.cleared_by_rule
        by_rule[rule] = by_rule.get(rule, 0) + n
        result.values_cleared += n if action == "cleared" else 0
        result.values_inferred += n if action == "inferred" else 0
        result.values_flagged += n if action == "flagged" else 0
    return result


def write_load_log(
    con: duckdb.DuckDBPyConnection, load_id: str, results: list[SourceResult]
) -> None:
    """One ``load_log`` row per table of this load; the sources of one table are summed."""
    by_table: dict[str, list[SourceResult]] = {}
    for res in results:
        by_table.setdefault(res.table, []).append(res)
    for name, parts in by_table.items():
        totals = [
            sum(getattr(p, f) for p in parts)
            for f in ("rows_read", "rows_loaded", "rows_quarantined", "rows_merged")
        ]
        con.execute(
            "INSERT INTO load_log (load_id, table_name, source, started_at, finished_at, rows_read, "
            "rows_loaded, rows_quarantined, rows_merged, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok')",
            [
                load_id,
                name,
                "; ".join(p.source for p in parts),
                min(p.started_at for p in parts if p.started_at),
                max(p.finished_at for p in parts if p.finished_at),
                *totals,
            ],
        )
