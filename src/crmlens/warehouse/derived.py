"""Derived tables: copies of canonical tables laid out for fast reading, rebuilt by ``crmlens build``.

A derived table holds nothing a query could not compute from the canonical tables; it holds it in
the shape the dashboard's queries read fastest (the orders with their customers' attributes beside
them, in time order, so a month's rows are contiguous and a city filter needs no join). The metrics
layer declares them (:func:`crmlens.metrics.derived_tables.derived_tables`) and reads one only
when it is present with the columns it expects; otherwise it reads the canonical tables, with the same
results.

So that a derived table never describes older data than the canonical tables, every load drops
all of them in its own transaction (:func:`drop_derived`); ``crmlens build`` writes them again.
Their names start with :data:`PREFIX`, which no canonical table does.
"""

from __future__ import annotations

import duckdb

from crmlens.errors import WarehouseError

#: The name prefix of every derived table.
PREFIX = "derived__"


def is_derived(name: str) -> bool:
    """Whether ``name`` is a derived table's name.

    >>> is_derived("derived__orders"), is_derived("orders")
    (True, False)
    """
    return name.startswith(PREFIX)


def check_derived(name: str) -> str:
    """``name`` if it is a derived table's name, else :class:`WarehouseError` (a write or read
    meant for a derived table must never reach a canonical one)."""
    if not is_derived(name):
        raise WarehouseError(f"{name!r} is not a derived table's name")
    return name


def derived_in(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The derived tables in the database ``con`` is connected to (its main schema)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "AND starts_with(table_name, ?)",
        [PREFIX],
    ).fetchall()
    return sorted(name for (name,) in rows)


def drop_derived(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop every derived table (inside the caller's transaction: a load's); return their names."""
    names = derived_in(con)
    for name in names:
        con.execute(f'DROP TABLE "{name}"')
    return names
