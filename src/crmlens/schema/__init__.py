"""The canonical CRM schema: every table and column crmlens knows, in one place.

Everything else is derived from these declarations: the warehouse creates its tables from them, the
loaders map source headers onto them, `docs/schema.md` is rendered from them and the UI takes its
column labels from them. Change a table here and bump :data:`SCHEMA_VERSION` with a migration in
``crmlens.warehouse.migrations``.

>>> table("customers").column("customer_id").label_zh
'客户编号'
>>> "orders" in TABLES
True
"""

from __future__ import annotations

from crmlens.errors import ConfigError
from crmlens.schema.data_tables import DATA_TABLES
from crmlens.schema.model_tables import MODEL_TABLES
from crmlens.schema.system_tables import SYSTEM_TABLES
from crmlens.schema.types import Column, LogicalType, Table, TableKind

#: Bumped whenever a table or column is added, removed or retyped; see warehouse/migrations.py.
SCHEMA_VERSION = 4

#: Every table, data first, then system, then model outputs, by name.
TABLES: dict[str, Table] = {t.name: t for t in (*DATA_TABLES, *SYSTEM_TABLES, *MODEL_TABLES)}


def table(name: str) -> Table:
    """The canonical table called ``name``; :class:`ConfigError` listing the known ones if unknown."""
    try:
        return TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown table {name!r}; expected one of: {', '.join(TABLES)}") from None


def data_tables() -> tuple[Table, ...]:
    """The tables holding the company's data, in load order (masters before facts)."""
    return tuple(t for t in TABLES.values() if t.kind == "data")


def render_markdown() -> str:
    """``docs/schema.md``: every table and column with type, labels and meaning."""
    lines = [
        "# Canonical schema",
        "",
        "Generated from `src/crmlens/schema/` by `crmlens docs`; do not edit by hand.",
        f"Schema version {SCHEMA_VERSION}. Money is stored as float64 in one currency.",
        "Columns marked PII are personal data: reports and the dashboard never show them unmasked.",
        "",
    ]
    for tbl in TABLES.values():
        key = ", ".join(f"`{k}`" for k in tbl.primary_key)
        lines += [
            f"## `{tbl.name}` — {tbl.label_zh} / {tbl.label_en}",
            "",
            f"{tbl.description} Key: {key}."
            + (f" Time: `{tbl.time_column}`." if tbl.time_column else "")
            + {
                "data": "",
                "system": " (system table)",
                "model": " (model output, `crmlens build`)",
            }[tbl.kind],
            "",
            "| column | type | 中文 | English | required | PII | description |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.type} | {c.label_zh} | {c.label_en} | "
            f"{'' if c.nullable else 'yes'} | {'yes' if c.pii else ''} | {c.description} |"
            for c in tbl.columns
        ]
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Column",
    "LogicalType",
    "Table",
    "TableKind",
    "data_tables",
    "render_markdown",
    "table",
]
