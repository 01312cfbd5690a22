"""Forward migrations of the warehouse's tables.

The warehouse records the schema version it was built with in ``_crmlens_meta``. On open, every
migration newer than that version runs, in order, inside one transaction: either the warehouse
reaches :data:`crmlens.schema.SCHEMA_VERSION` or it stays exactly as it was.

A migration is a function of a DuckDB connection. Most only need :func:`sync_tables`, which creates
declared tables that are missing and adds declared columns that are missing; renames and retypes are
written out explicitly in their own migration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from crmlens.errors import WarehouseError
from crmlens.schema import SCHEMA_VERSION, TABLES, Table
from crmlens.warehouse.derived import drop_derived

META_TABLE = "_crmlens_meta"

# DuckDB names for the schema's logical types; the warehouse is created with plain DDL so that a
# migration can run before any Ibis expression is built over the tables.
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "money": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


@dataclass(frozen=True)
class Migration:
    """Brings the warehouse from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def quote(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(tbl: Table, name: str | None = None, *, temporary: bool = False) -> str:
    """``CREATE TABLE`` for a canonical table (optionally under another name, e.g. a staging copy)."""
    cols = ", ".join(
        f"{quote(c.name)} {_DUCKDB_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
        for c in tbl.columns
    )
    temp = "TEMPORARY " if temporary else ""
    return f"CREATE {temp}TABLE {quote(name or tbl.name)} ({cols})"


def sync_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every declared table that is missing and add every declared column that is missing."""
    existing = {
        row[0]: set()
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    for name, cols in existing.items():
        cols.update(
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ?",
                [name],
            ).fetchall()
        )
    for tbl in TABLES.values():
        if tbl.name not in existing:
            con.execute(create_table_sql(tbl))
            continue
        for col in tbl.columns:
            if col.name not in existing[tbl.name]:
                con.execute(
                    f"ALTER TABLE {quote(tbl.name)} ADD COLUMN {quote(col.name)} "
                    f"{_DUCKDB_TYPES[col.type]}"
                )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create the canonical tables", sync_tables),
    Migration(2, "model output tables", sync_tables),
    Migration(3, "identity map", sync_tables),
    Migration(4, "customer and session attributes, web sessions", sync_tables),
)


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version the warehouse was built with (0 for an empty file)."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [META_TABLE]
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return 0
    row = con.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(
    con: duckdb.DuckDBPyConnection,
    migrations: Sequence[Migration] = MIGRATIONS,
    target: int = SCHEMA_VERSION,
) -> list[Migration]:
    """Apply the pending migrations in one transaction; return those applied.

    Raises :class:`WarehouseError` when the file was built by a newer crmlens, or when a migration
    fails (after rolling back, so the file keeps its previous version and contents).
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)) or (versions and versions[-1] != target):
        raise WarehouseError(
            f"migrations must be numbered 1..{target} without gaps; found {versions}"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        current = stored_version(con)
        if current > target:
            raise WarehouseError(
                f"the warehouse has schema version {current}, but this crmlens knows only up to "
                f"{target}; upgrade crmlens to open it"
            )
        pending = [m for m in migrations if m.version > current]
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)"
        )
        for migration in pending:
            try:
                migration.apply(con)
            except duckdb.Error as exc:
                raise WarehouseError(
                    f"migration {migration.version} ({migration.description}) failed: {exc}"
                ) from exc
        if pending:
            con.execute(
                f"INSERT OR REPLACE INTO {META_TABLE} VALUES ('schema_version', ?)", [str(target)]
            )
            # a migration may change what the canonical tables hold: rebuilt by `crmlens build`
            drop_derived(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return pending
