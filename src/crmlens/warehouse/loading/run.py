"""Executing a load: check, merge duplicates, check references, upsert, account."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import duckdb

from crmlens.warehouse.loading.mapping import SourceResult, SourceRows, TableMapping
from crmlens.warehouse.loading.plan import CHK, MERGED, SRC, STAGE, CheckPlan
from crmlens.warehouse.migrations import META_TABLE, quote


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
    """
    started, clock = datetime.now(), time.perf_counter()
    plan = CheckPlan(rows, mapping, salt)
    # rowid order = file order is what gives each row its line number (DuckDB's default)
    setting = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    if setting and not setting[0]:
        con.execute("SET preserve_insertion_order = true")
    if rows.arrow is not None:
        con.register(SRC, rows.arrow)
    try:
        if rows.arrow is None and mapping.unpivot is not None:
            con.execute(f"CREATE TEMP TABLE {STAGE} AS SELECT * FROM {plan.read_csv()}")
        con.execute(plan.check_sql())
        con.execute(plan.merge_sql())
        for sql in plan.reference_sql():
            con.execute(sql)
        delete, insert = plan.upsert_sql()
        if con.execute(f"SELECT 1 FROM {quote(mapping.table)} LIMIT 1").fetchone():
            con.execute(delete)
        con.execute(insert, [load_id, loaded_at])
        con.execute(plan.quarantine_sql(), [load_id, mapping.table, rows.label])
        result = _account(con, rows.label, mapping.table, load_id)
        con.execute(f"DROP TABLE {CHK}")
        con.execute(f"DROP TABLE IF EXISTS {STAGE}")
    finally:
        # after an error the transaction is aborted and its rollback drops the temporary tables
        if rows.arrow is not None:
            con.unregister(SRC)
        if setting and not setting[0]:
            con.execute("SET preserve_insertion_order = false")
    result.seconds = time.perf_counter() - clock
    result.started_at, result.finished_at = started, datetime.now()
    return result


def _account(
    con: duckdb.DuckDBPyConnection, source: str, table_name: str, load_id: str
) -> SourceResult:
    """The counts of the check table and of the quarantine records just written."""
    counts = con.execute(
        f"SELECT count(*), count(*) FILTER (__reject IS NULL), count(*) FILTER (__reject > 0), "
        f"count(*) FILTER (__reject = {MERGED}) FROM {CHK}"
    ).fetchone()
    assert counts is not None  # an aggregate always returns a row
    result = SourceResult(source, table_name, *counts)
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
