"""Attributes: the source columns a mapping keeps although the schema has no column for them.

A customer export carries tenure, contract type, charges and a churn label; a web-analytics export
carries page counts per page type; an A/B test export carries each player's outcomes. The mapping
lists them under ``[attributes]`` with a kind and a rule for missing or bad values
(:class:`~crmlens.ingest.mapping_file.Attribute`), and each becomes a source of its own for the
kind's long attribute table (``customer_attributes`` or ``session_attributes``): one row per owner
and attribute, the value in the column of its kind.

One source per attribute, rather than one unpivoted source for all, because each attribute is
parsed as its own kind with its own rule, and a quarantine record then names the attribute's own
header, line and original text. The rows of an attribute whose owner was rejected (a customer or
session quarantined by the kind's own rules) are rejected too, by a reference to the owner's table
(rule ``unknown_customer`` / ``unknown_session``), so that no attribute hangs without its owner.

>>> from crmlens.ingest.mapping_file import Attribute, ColumnRule, IngestMapping
>>> m = IngestMapping("customers", (ColumnRule("customer_id", header="id"),),
...     attributes=(Attribute("tenure", "months", kind="int"),))
>>> rows = pa.table({"id": ["C1"], "months": ["3"], FILE_COLUMN: ["f.csv"], LINE_COLUMN: [2]})
>>> [(s.rows.label, s.mapping.table) for s in attribute_sources(rows, m, "f.csv", "id")]
[('f.csv → customer_attributes.tenure', 'customer_attributes')]
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from crmlens.ingest.files import FILE_COLUMN, LINE_COLUMN
from crmlens.ingest.load import Prepared
from crmlens.ingest.mapping_file import ATTRIBUTE_HOMES, Attribute, IngestMapping
from crmlens.warehouse.loading import ColumnSpec, Infer, Reference, SourceRows, TableMapping
from crmlens.warehouse.loading.values import FALSE_WORDS, TRUE_WORDS, lit

#: The owner's table, checked by a reference (experiment units' players are not customers rows).
_OWNER_TABLES = {
    "customers": ("customers", "customer_id", "unknown_customer"),
    "web_sessions": ("web_sessions", "session_id", "unknown_session"),
}


def _mapping(kind: str, attr: Attribute, key_source: str) -> TableMapping:
    table_name, key, _ = ATTRIBUTE_HOMES[kind]
    value = attr.value_column
    infer: tuple[Infer, ...] = ()
    if attr.invalid == "default":
        assert attr.default is not None
        # a literal cast to the value column's type: '0' → 0.0, 'true' → true, ISO text → date
        infer = (Infer(value, lit(attr.default), f"default_{attr.name}", reject_if_missing=False),)
    references: tuple[Reference, ...] = ()
    if kind in _OWNER_TABLES:
        owner, owner_key, rule = _OWNER_TABLES[kind]
        references = (Reference(key, owner, owner_key, rule),)
    return TableMapping(
        table=table_name,
        columns=(
            ColumnSpec(key, key_source),
            ColumnSpec("attribute", value=attr.name),
            ColumnSpec("value_kind", value=attr.kind),
            ColumnSpec(value, attr.header, kind=attr.kind, required=attr.invalid == "quarantine"),
            ColumnSpec("source", FILE_COLUMN),
        ),
        infer=infer,
        references=references,
    )


def attribute_sources(
    arrow: pa.Table, mapping: IngestMapping, label: str, key_source: str
) -> list[Prepared]:
    """One loader source per attribute of ``mapping``, over the cleaned rows ``arrow``.

    ``key_source`` is the column of ``arrow`` holding the owner's key (a header, or a generated
    column); load these after the kind's own source, whose rows they reference.
    """
    out = []
    table_name = ATTRIBUTE_HOMES[mapping.kind][0]
    for attr in mapping.attributes:
        keep = list(dict.fromkeys([key_source, attr.header, FILE_COLUMN, LINE_COLUMN]))
        rows = arrow.select(keep)
        name = f"{label} → {table_name}.{attr.name}"
        if not attr.default_when:
            out.append(_source(name, rows, _mapping(mapping.kind, attr, key_source)))
            continue
        # the rows where the default may apply, and the others (under `otherwise`): two sources
        mask = _condition(arrow, mapping, attr.default_when)
        when = ", ".join(f"{k} = {v}" for k, v in attr.default_when.items())
        rest = replace(attr, invalid=attr.otherwise, default=None, default_when=None)
        out += [
            _source(
                f"{name} ({when})", rows.filter(mask), _mapping(mapping.kind, attr, key_source)
            ),
            _source(
                f"{name} (otherwise)",
                rows.filter(pc.invert(mask)),
                _mapping(mapping.kind, rest, key_source),
            ),
        ]
    return out


def _source(label: str, rows: pa.Table, mapping: TableMapping) -> Prepared:
    headers = tuple(n for n in rows.column_names if n != LINE_COLUMN)
    return Prepared(SourceRows(label, headers, arrow=rows), mapping)


def _condition(
    arrow: pa.Table, mapping: IngestMapping, when: dict[str, str]
) -> pa.Array | pa.ChunkedArray:
    """Rows where every named attribute has its value; a missing value never matches."""
    kinds = {a.name: a for a in mapping.attributes}
    mask: pa.Array | pa.ChunkedArray = pa.array([True] * arrow.num_rows, pa.bool_())
    for name, value in when.items():
        attr = kinds[name]
        text = pc.utf8_trim_whitespace(arrow.column(attr.header))
        # each distinct value is compared once, so the rows cost no Python objects
        hits = [v for v in pc.unique(text).to_pylist() if v and _same(attr.kind, v, value)]
        mask = pc.and_(mask, pc.is_in(text, pa.array(hits, pa.string())))
    return mask


def _same(kind: str, found: str, wanted: str) -> bool:
    """Whether the source text ``found`` is the value ``wanted`` of ``kind``: numbers compared as
    numbers (``0.0`` is ``0``), bools as true/false words, other kinds as text.

    >>> _same("int", "0.0", "0"), _same("bool", "是", "yes"), _same("string", "0", "0.0")
    (True, True, False)
    """
    if kind in ("int", "float", "money"):
        try:
            return float(found.replace(",", "")) == float(wanted)
        except ValueError:
            return False
    if kind == "bool":
        truth = wanted.strip().lower() in TRUE_WORDS
        return found.lower() in (TRUE_WORDS if truth else FALSE_WORDS)
    return found == wanted.strip()
