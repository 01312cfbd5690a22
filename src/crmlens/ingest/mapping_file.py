"""An ingest mapping: how one kind of export file maps onto the canonical tables, as editable TOML.

``crmlens ingest FILE --kind orders --save-mapping m.toml`` writes the proposed mapping; the user
edits it and passes ``--mapping m.toml`` for the next export. A mapping names the *kind* (the
canonical table the file's rows are), how to read the file, one entry per canonical column, and
the cleaning rules::

    kind = "order_lines"

    [source]
    delimiter = ","

    [columns]
    order_id = "InvoiceNo"                                   # canonical column = header
    "orders.customer_id" = { header = "CustomerID", clean = "id" }
    "orders.order_time" = "InvoiceDate"
    line_no = { generate = "position" }

    [rules]
    missing_customer = "guest"
    refund = { prefix = "C" }

Keys without a table are the kind's own columns; ``orders.*`` and ``customers.*`` keys (allowed for
line and order files) describe the order and the customer each line belongs to, and make
``crmlens ingest`` derive those tables too (docs/ingestion.md); so do ``experiments.*`` keys of an
experiment-unit file. ``[attributes]`` lists the source columns the schema has no column for, kept
typed in the kind's attribute table (:class:`Attribute`, :data:`ATTRIBUTE_HOMES`).

>>> m = IngestMapping("customers", columns=(ColumnRule("customer_id", header="会员卡号"),))
>>> loads_mapping(dumps_mapping(m)) == m
True
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

import tomli_w

from crmlens.errors import ConfigError
from crmlens.ingest.spec import check_text_options
from crmlens.schema import data_tables, table

Clean = Literal["id"]
Generate = Literal["row", "position"]
#: The kinds whose files may describe related tables (``orders.*``, ``customers.*`` keys).
RELATED = {
    "order_lines": ("orders", "customers"),
    "orders": ("customers",),
    "experiment_units": ("experiments",),
}
#: kind → (the long table its extra columns go to, that table's key column, the kind's column
#: naming the owner). Experiment units are customers (unit_type = "customer"): their outcomes are
#: customer attributes.
ATTRIBUTE_HOMES = {
    "customers": ("customer_attributes", "customer_id", "customer_id"),
    "experiment_units": ("customer_attributes", "customer_id", "unit_id"),
    "web_sessions": ("session_attributes", "session_id", "session_id"),
}
AttributeKind = Literal["string", "int", "float", "money", "bool", "date"]
#: What a missing or bad value of an attribute does (see :class:`Attribute`).
Invalid = Literal["clear", "quarantine", "default"]
_ATTRIBUTE_KINDS = ("string", "int", "float", "money", "bool", "date")
_BOOL_WORDS = ("true", "t", "yes", "y", "1", "是", "false", "f", "no", "n", "0", "否")
_RULE_DEFAULTS: dict[str, Any] = {
    "date_order": "ymd",
    "exact_duplicates": "merge",
    "missing_customer": "guest",
    "negative_amount": "quarantine",
    "refund": "negative",
    "refund_link": "none",
}
_RULE_CHOICES = {
    "date_order": ("ymd", "dmy", "mdy"),
    "exact_duplicates": ("merge", "keep"),
    "missing_customer": ("guest", "quarantine"),
    "negative_amount": ("quarantine", "keep"),
    "refund_link": ("none", "customer_sku"),
}


@dataclass(frozen=True)
class ColumnRule:
    """One canonical column: from a header, a constant ``value``, or generated.

    ``target`` is ``column`` for the kind's own table, ``table.column`` for a related one.
    """

    target: str
    header: str | None = None
    value: str | None = None
    #: ``row``: ``<file stem>-<line>`` (an ID for files without one); ``position``: the line's
    #: position within its order (line numbers for line files without one).
    generate: Generate | None = None
    #: A value kind other than the column's type (``phone``, ``email``, ``anon_id``, …).
    kind: str | None = None
    #: ``id``: a numeric ID exported as a float (``17850.0``) loses its ``.0``.
    clean: Clean | None = None
    #: Missing values become this (recorded in the quarantine as inferred, rule ``default_<col>``).
    default: str | None = None
    #: Reject the row when missing or bad (default: the column is NOT NULL in the schema).
    required: bool | None = None

    def __post_init__(self) -> None:
        sources = [x for x in (self.header, self.value, self.generate) if x is not None]
        if len(sources) != 1:
            raise ConfigError(f"column {self.target}: give exactly one of header, value, generate")
        if self.clean not in (None, "id"):
            raise ConfigError(f"column {self.target}: clean must be 'id', got {self.clean!r}")
        if self.generate not in (None, "row", "position"):
            raise ConfigError(f"column {self.target}: generate is 'row' or 'position'")

    @property
    def table_column(self) -> tuple[str | None, str]:
        """(related table or None, column)."""
        head, _, tail = self.target.rpartition(".")
        return (head or None, tail)


@dataclass(frozen=True)
class Attribute:
    """A source column the schema has no column for, kept in the kind's attribute table.

    ``invalid`` says what a missing or bad value does: ``clear`` (default) loads the attribute
    empty, recording a bad value as cleared; ``quarantine`` rejects the attribute's row (recorded
    as ``missing_required`` or ``bad_<kind>``); ``default`` loads ``default`` instead, recorded as
    inferred under rule ``default_<name>``; with ``default_when`` only where other attributes
    have the given values (``{ tenure_months = "0" }``), ``otherwise`` (``quarantine`` or
    ``clear``) applying elsewhere. Every record names the file, line, column and the original
    value.

    >>> Attribute("tenure", "tenure", kind="int").value_column
    'value_number'
    """

    name: str
    header: str
    kind: AttributeKind = "string"
    invalid: Invalid = "clear"
    default: str | None = None
    #: Only where these other attributes have these values (``{ tenure = "0" }``) does a missing
    #: or bad value get the default; elsewhere ``otherwise`` applies.
    default_when: dict[str, str] | None = None
    otherwise: Literal["clear", "quarantine"] = "quarantine"

    def __post_init__(self) -> None:
        if self.default_when is not None and (self.invalid != "default" or not self.default_when):
            raise ConfigError(
                f'attribute {self.name}: default_when = {{ attribute = "value", … }} goes with '
                'invalid = "default"'
            )
        if self.otherwise not in ("clear", "quarantine"):
            raise ConfigError(f"attribute {self.name}: otherwise is 'clear' or 'quarantine'")
        if self.kind not in _ATTRIBUTE_KINDS:
            raise ConfigError(f"attribute {self.name}: kind is one of {_ATTRIBUTE_KINDS}")
        if self.invalid not in ("clear", "quarantine", "default"):
            raise ConfigError(
                f"attribute {self.name}: invalid is 'clear', 'quarantine' or 'default', "
                f"got {self.invalid!r}"
            )
        if (self.invalid == "default") != (self.default is not None):
            raise ConfigError(
                f'attribute {self.name}: give default = "…" exactly when invalid = "default"'
            )
        if self.default is not None and not _valid_default(self.kind, self.default):
            raise ConfigError(
                f"attribute {self.name}: default {self.default!r} is not a {self.kind} value"
            )

    @property
    def value_column(self) -> str:
        """The column of the attribute table that holds this attribute's values."""
        return {"string": "value_text", "bool": "value_bool", "date": "value_date"}.get(
            self.kind, "value_number"
        )


def _valid_default(kind: str, text: str) -> bool:
    """Whether ``text`` is a plain value of ``kind`` (ISO dates, numbers, true/false words)."""
    try:
        if kind == "int":
            int(text)
        elif kind in ("float", "money"):
            float(text)
        elif kind == "date":
            date.fromisoformat(text)
        elif kind == "bool":
            return text.strip().lower() in _BOOL_WORDS
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Currency:
    """Money columns converted to ``base`` with ``rates`` (units of base per unit of a currency)."""

    column: str
    rates: dict[str, float]
    base: str = "CNY"


#: The formats a mapping may name; ``auto`` guesses each file's from its first bytes and suffix.
FILE_FORMATS = ("auto", "csv", "tsv", "excel", "parquet", "jsonl")


@dataclass(frozen=True)
class ReadOptions:
    """How to read the files of a source."""

    encoding: str = "auto"
    #: One character, or ``whitespace`` (runs of spaces and tabs, e.g. CDNOW).
    delimiter: str = ","
    #: The line (text) or row (Excel) of the headers; 0 (text only): no header line, the columns
    #: are named ``column_1``, ``column_2``, ….
    header_row: int = 1
    #: Excel only: the sheet to read (default: the first).
    sheet: str | None = None
    format: str = "auto"

    def __post_init__(self) -> None:
        if self.format not in FILE_FORMATS:
            raise ConfigError(f"format is one of {FILE_FORMATS}, got {self.format!r}")
        if self.header_row < 0:
            raise ConfigError(
                f"header_row counts from 1 (0: no header line), got {self.header_row}"
            )
        check_text_options(self.encoding, self.delimiter)


@dataclass(frozen=True)
class IngestMapping:
    """A mapping of one kind of file (see the module docstring for the TOML form)."""

    kind: str
    columns: tuple[ColumnRule, ...]
    read: ReadOptions = field(default_factory=ReadOptions)
    rules: dict[str, Any] = field(default_factory=dict)
    currency: Currency | None = None
    #: Source columns kept as attributes (``[attributes]``), for the kinds of ATTRIBUTE_HOMES.
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        self._check_attributes()
        if self.kind not in {t.name for t in data_tables()}:
            names = ", ".join(t.name for t in data_tables())
            raise ConfigError(f"unknown kind {self.kind!r}; expected one of: {names}")
        allowed = RELATED.get(self.kind, ())
        for col in self.columns:
            related, name = col.table_column
            if related is not None and related not in allowed:
                raise ConfigError(
                    f"column {col.target}: a {self.kind} file may describe "
                    f"{', '.join(allowed) or 'no other table'}"
                )
            table(related or self.kind).column(name)  # ConfigError for an unknown column
        for key, value in self.rules.items():
            if key not in _RULE_DEFAULTS:
                raise ConfigError(
                    f"unknown rule {key!r}; expected one of: {', '.join(_RULE_DEFAULTS)}"
                )
            if key in _RULE_CHOICES and value not in _RULE_CHOICES[key]:
                raise ConfigError(f"rule {key} is one of {_RULE_CHOICES[key]}, got {value!r}")
        refund = self.rule("refund")
        if refund != "negative" and not (isinstance(refund, dict) and "prefix" in refund):
            raise ConfigError(f"rule refund is 'negative' or {{ prefix = \"C\" }}, got {refund!r}")

    def _check_attributes(self) -> None:
        if not self.attributes:
            return
        if self.kind not in ATTRIBUTE_HOMES:
            raise ConfigError(
                f"[attributes]: a {self.kind} file has no attribute table; attributes are kept "
                f"for {', '.join(ATTRIBUTE_HOMES)}"
            )
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ConfigError(f"[attributes]: an attribute is declared twice in {names}")
        kinds = {a.name: a.kind for a in self.attributes}
        for a in self.attributes:
            for other, value in (a.default_when or {}).items():
                if other not in kinds or other == a.name:
                    raise ConfigError(
                        f"attribute {a.name}: default_when names {other!r}, which is not another "
                        f"declared attribute ({', '.join(names)})"
                    )
                if not _valid_default(kinds[other], str(value)):
                    raise ConfigError(
                        f"attribute {a.name}: default_when {other} = {value!r} is not a "
                        f"{kinds[other]} value"
                    )
        owner = ATTRIBUTE_HOMES[self.kind][2]
        if not any(c.target == owner and (c.header or c.generate) for c in self.columns):
            raise ConfigError(f"[attributes] need {owner} mapped to a header (or generated)")
        if self.kind == "experiment_units":
            unit = next((c for c in self.columns if c.target == "unit_type"), None)
            if unit is None or unit.value != "customer":
                raise ConfigError(
                    "[attributes] of experiment units are customer attributes: map "
                    'unit_type = { value = "customer" }'
                )

    def rule(self, name: str) -> Any:
        """A rule's value, its default when not set."""
        return self.rules.get(name, _RULE_DEFAULTS[name])

    def of(self, table_name: str | None) -> tuple[ColumnRule, ...]:
        """The columns of the kind's table (None) or of a related table, named without prefix."""
        return tuple(
            replace(c, target=c.table_column[1])
            for c in self.columns
            if c.table_column[0] == table_name
        )

    @property
    def headers(self) -> tuple[str, ...]:
        """The source headers the mapping reads."""
        names = [c.header for c in self.columns if c.header]
        names += [a.header for a in self.attributes]
        if self.currency:
            names.append(self.currency.column)
        return tuple(dict.fromkeys(names))


def dumps_mapping(mapping: IngestMapping) -> str:
    """The TOML text of ``mapping``."""
    doc: dict[str, Any] = {"kind": mapping.kind}
    r = mapping.read
    source: dict[str, Any] = {"encoding": r.encoding, "delimiter": r.delimiter}
    source["header_row"] = r.header_row
    if r.format != "auto":
        source["format"] = r.format
    if r.sheet is not None:
        source["sheet"] = r.sheet
    doc["source"] = source
    columns: dict[str, Any] = {}
    for col in mapping.columns:
        extra = {
            f.name: getattr(col, f.name)
            for f in fields(col)
            if f.name not in ("target", "header") and getattr(col, f.name) is not None
        }
        columns[col.target] = col.header if not extra else {"header": col.header} | extra
        if col.header is None:
            columns[col.target].pop("header")
    doc["columns"] = columns
    if mapping.rules:
        doc["rules"] = dict(mapping.rules)
    if mapping.currency:
        c = mapping.currency
        doc["currency"] = {"column": c.column, "base": c.base, "rates": dict(c.rates)}
    if mapping.attributes:
        doc["attributes"] = {
            a.name: {"header": a.header, "kind": a.kind, "invalid": a.invalid}
            | ({"default": a.default} if a.default is not None else {})
            | (
                {"default_when": dict(a.default_when), "otherwise": a.otherwise}
                if a.default_when
                else {}
            )
            for a in mapping.attributes
        }
    return tomli_w.dumps(doc)


def loads_mapping(text: str, *, where: str = "mapping") -> IngestMapping:
    """Parse the TOML text of a mapping; :class:`ConfigError` naming ``where`` if it is invalid."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    try:
        return _from_doc(doc)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _from_doc(doc: dict[str, Any]) -> IngestMapping:
    unknown = set(doc) - {"kind", "source", "columns", "rules", "currency", "attributes"}
    if unknown:
        raise ConfigError(f"unknown sections {sorted(unknown)}")
    if "kind" not in doc or "columns" not in doc:
        raise ConfigError('expected `kind = "…"` and a [columns] table')
    columns = []
    for target, spec in doc["columns"].items():
        if isinstance(spec, str):
            columns.append(ColumnRule(target, header=spec))
        elif isinstance(spec, dict):
            columns.append(ColumnRule(target, **spec))
        else:
            raise ConfigError(f"column {target}: expected a header name or a table")
    attributes = []
    for name, spec in doc.get("attributes", {}).items():
        if isinstance(spec, str):  # attribute = "Header": a string attribute
            attributes.append(Attribute(name, spec))
        elif isinstance(spec, dict):
            attributes.append(Attribute(name, **({"header": name} | spec)))
        else:
            raise ConfigError(f"attribute {name}: expected a header name or a table")
    source = dict(doc.get("source", {}))
    currency = doc.get("currency")
    return IngestMapping(
        doc["kind"],
        tuple(columns),
        rules=dict(doc.get("rules", {})),
        currency=Currency(**currency) if currency else None,
        read=ReadOptions(**source),
        attributes=tuple(attributes),
    )


def save_mapping(mapping: IngestMapping, path: Path) -> None:
    """Write ``mapping`` as TOML to ``path``."""
    Path(path).write_text(dumps_mapping(mapping), encoding="utf-8")


def load_mapping(path: Path) -> IngestMapping:
    """Read a mapping written by :func:`save_mapping` (and perhaps edited)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the mapping: {exc.strerror}") from exc
    return loads_mapping(text, where=str(path))
