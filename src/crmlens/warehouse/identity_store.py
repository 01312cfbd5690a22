"""Identity resolution in the warehouse: tie records to one ``customer_id`` and keep the map (D4).

``crmlens.ingest.identity`` declares which tables carry contact values and in which precedence;
this module runs the resolution as set-based DuckDB SQL inside the caller's transaction and keeps
the ``identity_map`` table, and reads the map back for ``crmlens identity``.

The resolution is a pure function of the warehouse's current contents, so it is re-run whole after
every load:

1. **Reset**: records whose ``customer_id`` this resolution set earlier (an entry ``matched`` in
   the map) and that the current load did not rewrite are emptied again, so that a changed phone
   number in the customer master moves or removes the link instead of leaving a stale one.
2. **Conflicts**: a record that carries a member card keeps it (member card beats phone and
   e-mail); when its phone or e-mail belongs only to other customers, that is recorded.
3. **Match**: a record without a customer_id takes the first rule, in precedence order, whose value
   is some customer's: one customer means ``matched`` and the record gets that customer_id; several
   mean ``ambiguous`` and the record is left alone (a shared family phone must not merge people).
4. **Shared values**: customers sharing a phone or e-mail are recorded, each with the others.
5. **Map**: entries that did not change keep their first ``load_id`` and ``resolved_at``; changed
   and vanished entries are replaced and removed. Loading the same files twice leaves the map
   exactly as it was.

Values in the map are masked (``138****1234``, ``z***@qq.com``): the map explains a link without
holding the personal data again (D7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import duckdb

from crmlens.errors import ConfigError
from crmlens.schema import data_tables
from crmlens.schema import table as schema_table
from crmlens.warehouse.migrations import quote

#: A contact rule and the ``customers`` column its values are matched against (same name).
ContactRule = Literal["phone", "email"]
CONTACT_RULES: tuple[ContactRule, ...] = ("phone", "email")
MAP = "identity_map"
_INDEX = "_crmlens_identity_index"
_NEW = "_crmlens_identity_new"
_GONE = "_crmlens_identity_gone"
#: The columns that make an entry what it is (the rest say when it was first made).
_ENTRY_COLUMNS = (
    "source_table", "source_key", "rule", "outcome", "customer_id", "matched_value", "candidates",
)  # fmt: skip


@dataclass(frozen=True)
class Contact:
    """A column of a record table holding a normalised contact value, matched by ``rule``."""

    column: str
    rule: ContactRule


@dataclass(frozen=True)
class RecordSource:
    """A table whose records may lack a customer_id but carry contact values.

    ``contacts`` are in precedence order: the first rule that finds a customer decides.
    """

    table: str
    key: str
    contacts: tuple[Contact, ...]

    def __post_init__(self) -> None:
        tbl = schema_table(self.table)
        for name in (self.key, "customer_id", "load_id", *(c.column for c in self.contacts)):
            tbl.column(name)  # ConfigError naming the table and column if it is not declared
        if len(tbl.primary_key) != 1 or tbl.primary_key[0] != self.key:
            raise ConfigError(
                f"identity source {self.table}: key {self.key!r} must be the table's one-column "
                f"primary key; the table's key is {tbl.primary_key}"
            )
        bad = [c.rule for c in self.contacts if c.rule not in CONTACT_RULES]
        if bad or not self.contacts:
            raise ConfigError(
                f"identity source {self.table}: contact rules must be some of {CONTACT_RULES}; "
                f"found {bad or 'none'}"
            )


@dataclass
class ResolutionCounts:
    """What one resolution did: map entries by (table, rule, outcome), and entries changed."""

    #: (source_table, rule, outcome) → number of entries in the rebuilt map
    entries: dict[tuple[str, str, str], int] = field(default_factory=dict)
    records_reset: int = 0
    entries_added: int = 0
    entries_removed: int = 0

    def count(self, table: str, rule: str | None = None, outcome: str | None = None) -> int:
        """Entries of ``table`` (optionally only of one ``rule`` and ``outcome``)."""
        return sum(
            n
            for (t, r, o), n in self.entries.items()
            if t == table and rule in (None, r) and outcome in (None, o)
        )


def mask_sql(rule: str, value: str) -> str:
    """SQL masking the SQL expression ``value`` of a phone or e-mail ``rule`` (a SQL expression).

    Phones keep their first 3 and last 4 digits, e-mails their first character and domain.
    """
    return (
        f"CASE {rule} WHEN 'phone' THEN CASE WHEN length({value}) >= 8 "
        f"THEN left({value}, 3) || '****' || right({value}, 4) ELSE '****' END "
        f"WHEN 'email' THEN left({value}, 1) || '***' || "
        f"CASE WHEN strpos({value}, '@') > 0 "
        f"THEN substr({value}, strpos({value}, '@')) ELSE '' END "
        "END"
    )


def resolve(
    con: duckdb.DuckDBPyConnection,
    sources: tuple[RecordSource, ...],
    *,
    load_id: str,
    resolved_at: datetime,
) -> ResolutionCounts:
    """Resolve ``sources`` against ``customers`` and rebuild ``identity_map`` (see module doc).

    Runs inside the caller's transaction and leaves no temporary tables behind.
    """
    counts = ResolutionCounts()
    entry_cols = ", ".join(_ENTRY_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_NEW} AS SELECT {entry_cols} FROM {MAP} LIMIT 0")
    # every customer value with the customers holding it, sorted so that lists compare exactly
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_INDEX} AS "
        + " UNION ALL ".join(
            f"SELECT '{rule}' AS rule, {rule} AS value, "
            "list(customer_id ORDER BY customer_id) AS ids "
            f"FROM customers WHERE {rule} IS NOT NULL GROUP BY {rule}"
            for rule in CONTACT_RULES
        )
    )
    try:
        for source in sources:
            counts.records_reset += _resolve_source(con, source, load_id)
        _record_shared(con)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_GONE} AS SELECT {entry_cols} FROM {MAP} "
            f"EXCEPT SELECT {entry_cols} FROM {_NEW}"
        )
        gone = _scalar(con, f"SELECT count(*) FROM {_GONE}")
        if gone:
            con.execute(
                f"DELETE FROM {MAP} m USING {_GONE} g WHERE m.source_table = g.source_table "
                "AND m.source_key = g.source_key AND m.rule = g.rule"
            )
        counts.entries_removed = gone
        counts.entries_added = _scalar(
            con,
            f"INSERT INTO {MAP} ({entry_cols}, load_id, resolved_at) "
            f"SELECT *, ?, ? FROM (SELECT {entry_cols} FROM {_NEW} "
            f"EXCEPT SELECT {entry_cols} FROM {MAP})",
            [load_id, resolved_at],
        )
        for source_table, rule, outcome, n in con.execute(
            f"SELECT source_table, rule, outcome, count(*) FROM {_NEW} GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            counts.entries[(source_table, rule, outcome)] = n
    finally:
        for name in (_INDEX, _NEW, _GONE):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return counts


def _resolve_source(con: duckdb.DuckDBPyConnection, source: RecordSource, load_id: str) -> int:
    """Steps 1-3 for one table; entries go to the new map. Returns the records reset."""
    t, key, name = quote(source.table), quote(source.key), source.table
    reset = _scalar(
        con,
        f"UPDATE {t} SET customer_id = NULL FROM {MAP} m WHERE m.source_table = ? "
        f"AND m.outcome = 'matched' AND m.source_key = CAST({t}.{key} AS VARCHAR) "
        f"AND {t}.customer_id = m.customer_id AND {t}.load_id IS DISTINCT FROM ?",
        [name, load_id],
    )
    # one row per record and contact value that some customer holds, with the rule's precedence
    hits = " UNION ALL ".join(
        f"SELECT CAST(r.{key} AS VARCHAR) AS source_key, r.customer_id AS card, "
        f"'{c.rule}' AS rule, {rank} AS rank, i.value, i.ids FROM {t} r "
        f"JOIN {_INDEX} i ON i.rule = '{c.rule}' AND i.value = r.{quote(c.column)}"
        for rank, c in enumerate(source.contacts)
    )
    mask = mask_sql("rule", "value")
    # the member card wins; a value that is only other customers' is a conflict worth recording
    con.execute(
        f"INSERT INTO {_NEW} SELECT ?, source_key, 'member_card', 'conflict', card, {mask}, "
        f"array_to_string(ids, ';') FROM ({hits}) "
        "WHERE card IS NOT NULL AND NOT list_contains(ids, card) "
        "QUALIFY row_number() OVER (PARTITION BY source_key ORDER BY rank) = 1",
        [name],
    )
    # records without a card: the first rule with a hit decides, unique or not
    con.execute(
        f"INSERT INTO {_NEW} SELECT ?, source_key, rule, "
        "CASE WHEN len(ids) = 1 THEN 'matched' ELSE 'ambiguous' END, "
        f"CASE WHEN len(ids) = 1 THEN ids[1] END, {mask}, "
        f"CASE WHEN len(ids) > 1 THEN array_to_string(ids, ';') END FROM ({hits}) "
        "WHERE card IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY source_key ORDER BY rank) = 1",
        [name],
    )
    con.execute(
        f"UPDATE {t} SET customer_id = n.customer_id FROM {_NEW} n WHERE n.source_table = ? "
        f"AND n.outcome = 'matched' AND n.source_key = CAST({t}.{key} AS VARCHAR)",
        [name],
    )
    return reset


def _record_shared(con: duckdb.DuckDBPyConnection) -> None:
    """Step 4: one ``shared`` entry per customer and value held by more than one customer."""
    con.execute(
        f"INSERT INTO {_NEW} SELECT 'customers', customer_id, rule, 'shared', customer_id, "
        f"{mask_sql('rule', 'value')}, "
        "array_to_string(list_filter(ids, x -> x <> customer_id), ';') "
        f"FROM (SELECT rule, value, ids, unnest(ids) AS customer_id FROM {_INDEX} "
        "WHERE len(ids) > 1)"
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    """The single number a statement returns (a count, or the rows a DML statement changed)."""
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0


# -- reading the map back ---------------------------------------------------------------------
def entries_for(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[dict[str, Any]]:
    """Map entries that name ``customer_id``, as resolved customer or as a candidate."""
    cur = con.execute(
        f"SELECT source_table, source_key, rule, outcome, customer_id, matched_value, candidates, "
        f"load_id, resolved_at FROM {MAP} WHERE customer_id = ? "
        "OR list_contains(string_split(candidates, ';'), ?) "
        "ORDER BY source_table, outcome, source_key, rule",
        [customer_id, customer_id],
    )
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def customer_exists(con: duckdb.DuckDBPyConnection, customer_id: str) -> bool:
    """Whether ``customers`` holds ``customer_id``."""
    return bool(_scalar(con, "SELECT count(*) FROM customers WHERE customer_id = ?", [customer_id]))


def records_by_table(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, int]:
    """Records carrying ``customer_id`` in each data table that has that column (non-zero only),
    and ``app_events`` under the customer's anonymised user ID."""
    counts: dict[str, int] = {}
    for name in _customer_tables(con):
        n = _scalar(con, f"SELECT count(*) FROM {quote(name)} WHERE customer_id = ?", [customer_id])
        if n:
            counts[name] = n
    events = _scalar(
        con,
        "SELECT count(*) FROM app_events e JOIN customers c ON e.user_id = c.anon_id "
        "WHERE c.customer_id = ?",
        [customer_id],
    )
    if events:
        counts["app_events"] = events
    return counts


def summary(con: duckdb.DuckDBPyConnection, sources: tuple[RecordSource, ...]) -> dict[str, Any]:
    """Per record table: records, with a customer, by card, by each rule, ambiguous, unresolved;
    and the map's entries by (table, rule, outcome)."""
    tables = []
    for source in sources:
        t, key = quote(source.table), quote(source.key)
        has_contact = " OR ".join(f"r.{quote(c.column)} IS NOT NULL" for c in source.contacts)
        row = con.execute(
            f"SELECT count(*), count(r.customer_id), "
            f"count(*) FILTER (m.outcome = 'matched'), "
            f"count(*) FILTER (m.outcome = 'ambiguous'), "
            f"count(*) FILTER (r.customer_id IS NULL AND m.outcome IS NULL AND ({has_contact})) "
            f"FROM {t} r LEFT JOIN {MAP} m ON m.source_table = ? AND m.rule <> 'member_card' "
            f"AND m.source_key = CAST(r.{key} AS VARCHAR)",
            [source.table],
        ).fetchone()
        total, with_customer, matched, ambiguous, unmatched = row or (0, 0, 0, 0, 0)
        tables.append(
            {
                "table": source.table,
                "records": total,
                "with_customer": with_customer,
                "by_member_card": with_customer - matched,
                "by_contact": matched,
                "ambiguous": ambiguous,
                "contact_matches_nobody": unmatched,
                "without_customer": total - with_customer,
            }
        )
    entries = [
        {"source_table": t, "rule": r, "outcome": o, "entries": n}
        for t, r, o, n in con.execute(
            f"SELECT source_table, rule, outcome, count(*) FROM {MAP} GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    ]
    return {"tables": tables, "entries": entries}


def _customer_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Data tables other than ``customers`` with a ``customer_id`` column, in the warehouse."""
    present = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'main' AND column_name = 'customer_id'"
        ).fetchall()
    }
    return [t.name for t in data_tables() if t.name != "customers" and t.name in present]
