"""The SQL of loading one source, generated from a :class:`~.mapping.TableMapping`.

One scan of the source parses every value, applies inferences and derived columns and evaluates the
row-local rules: the check table (:attr:`CheckPlan.chk`). :mod:`.run` writes it to a Parquet file
(``check_file``) and the load reads that file as often as it needs. Not a table: DuckDB keeps
every table a transaction wrote or read until the transaction ends (the whole load), so check
tables would pile up in memory, or be spilled to disk beyond its memory limit; nor an Arrow table,
held whole in the process's memory. Nor a stage table written before the load's transaction and
then renamed to the (empty) target, so that the rows are written once: measured at 1M customers,
a scan writing DuckDB's own format cost about what writing this file and copying it cost (orders
5.0-6.7 s against 3.1 + 3.2 s, order lines 6.1-7.9 against 4.3 + 4.5 s) and the whole load was
slower (three alternating pairs: 44.6-56.2 s against 40.8-47.2 s, CPU 78-100 s against 73-84 s);
nor Arrow batches streamed through Python into the target (order lines 12.6-14.6 s); nor, for
a clean source, an insert straight from the scan (6.0M app events 9.7-9.9 s, against 4.9-5.6 s
to write this file and 5.0-5.1 s to insert from it: the insert fed by the CSV reader is slow).
The file is compact (Parquet's encodings), read with all threads, and gone once the source is
loaded. DuckDB keeps insertion order, so the scan's rows are written in the file's order (as
long as no join sits in the scan, which would reorder them) and a row's ``file_row_number`` is
its position in the source (``__pos``). Every row carries
``__reject`` (NULL = load it; n > 0 = rejected by ``rejects[n - 1]``), ``__flags`` (bit b set =
``clears[b]`` cleared or inferred a value) and ``__raw`` (the source row as JSON, kept only for
rows with an issue). Merged duplicates (code 0) and rows failing a reference are few: they go to
the small ``OVERRIDES`` table, and a row's final code ``__status`` is its override, else
``__reject`` (:attr:`CheckPlan.rows_sql`). The kept rows are then appended to the target in one
insert: the data is written to the warehouse once, and never modified after (DuckDB would
rewrite it on commit).

A CSV source may be read *typed*: the CSV reader parses the columns in ``read_types`` itself (see
:mod:`.values`). Such a plan has no text of those columns, hence no ``__raw``; :mod:`.run` uses it
only when the reader rejected no value and no row needs its text in the quarantine.

A record the CSV reader cannot read is skipped and kept out of the check file: a ragged record
(more or fewer fields than the header) is quarantined, any other reader error fails the load
(:mod:`.ragged`). ``skipped`` counts the ragged records; the line numbers of the rows after them
add the lines they took, as they add the blank lines the reader skips (``blank_lines``, see
:mod:`.lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crmlens.errors import ConfigError
from crmlens.schema import table
from crmlens.warehouse.loading import ragged
from crmlens.warehouse.loading.mapping import ColumnSpec, SourceRows, TableMapping
from crmlens.warehouse.loading.values import (
    BAD_VALUE_RULES,
    FINITE_KINDS,
    READ_TYPES,
    SQL_TYPES,
    json_object_sql,
    lit,
    parse_sql,
    read_value_sql,
)
from crmlens.warehouse.migrations import quote

OVERRIDES = "__crmlens_overrides"  # (pos, code): merged rows and rows failing a reference
SRC = "__crmlens_src"  # an Arrow source, registered as a view
STAGE = "__crmlens_stage"  # a CSV copied first, when unpivoting needs explicit line numbers
REJECTS = "__crmlens_rejects"  # what a read could not read or cast (temporary, made by read_csv)
REJECT_SCANS = "__crmlens_reject_scans"  # the scans of a read (temporary, made by read_csv)
MERGED = 0


def _line_breaks(columns: list[str]) -> str:
    """SQL counting the line breaks inside the values of ``columns``."""
    return " + ".join(
        f"coalesce(length({c}) - length(replace({c}, chr(10), '')), 0)" for c in columns
    )


def _source_value(col: ColumnSpec) -> str:
    """The SQL of a column's source value: its header, else its constant."""
    return quote(col.source) if col.source else lit(col.value or "")


@dataclass(frozen=True)
class Check:
    """One rule as the quarantine shows it, and the SQL condition that breaks it."""

    rule: str
    column: str  # the source header at fault, else the canonical column
    action: str  # rejected, cleared, inferred or flagged
    condition: str  # over the parsed row; empty for references (checked after the scan)
    header: str | None = None  # the source header holding the original value
    clears: str | None = None  # the canonical column a clearing row rule sets empty


class CheckPlan:
    """The checks of one source, in the order they are reported, and the SQL that applies them.

    ``read_types`` maps the source headers that the CSV reader parses itself to the type it reads
    them as (see :meth:`read_candidates`); every other column is read as text and parsed in SQL.
    ``check_file`` is the Parquet file the check table is written to (:meth:`create_sql`), and
    ``skipped_file`` the records the read skipped (:mod:`.ragged`); ``skipped`` is how many of
    them are ragged, set by :mod:`.run` once it has read them, and ``blank_lines`` how many blank
    lines it skipped (written to ``skipped_file`` too; None until :mod:`.run` looks for them).
    """

    def __init__(
        self,
        rows: SourceRows,
        mapping: TableMapping,
        salt: str,
        read_types: Mapping[str, str] | None = None,
        check_file: str = "check.parquet",
    ) -> None:
        self.rows, self.mapping, self.tbl = rows, mapping, table(mapping.table)
        self.read_types = dict(read_types or {})
        self.check_file = check_file
        self.skipped_file = check_file.removesuffix(".parquet") + "-skipped.parquet"
        self.skipped = 0
        self.blank_lines: int | None = None
        headers = list(rows.headers)
        if mapping.unpivot:
            u = mapping.unpivot
            headers = [h for h in headers if h not in u.columns] + [u.name, u.value]
        missing = sorted({c.source for c in mapping.columns if c.source} - set(headers))
        if missing:
            raise ConfigError(f"{rows.label}: mapping uses columns {missing} the source lacks")
        self.raw = {h: f"__s{i}" for i, h in enumerate(headers)}
        self.header_of = {c.target: c.source for c in mapping.columns if c.source}
        self.targets = [c.target for c in mapping.columns] + [d.target for d in mapping.derive]
        self.parsed = [f"{self._value_sql(c, salt)} AS {quote(c.target)}" for c in mapping.columns]
        # constant columns are not stored in the check table but added back when it is read
        # (as are __flags and __raw where they are always empty): a smaller file
        changed = {i.target for i in mapping.infer} | {r.column for r in mapping.rules}
        self.constants = {
            c.target: self._value_sql(c, salt)
            for c in mapping.columns
            if c.source is None and c.target not in changed
        }
        self.rejects: list[Check] = []
        self.clears: list[Check] = []
        self._column_checks()
        for j, inf in enumerate(mapping.infer):
            at = self.header_of.get(inf.target)
            self.clears.append(Check(inf.rule, at or inf.target, "inferred", f"__inf{j}", at))
            if inf.reject_if_missing:
                missing_sql = f"{quote(inf.target)} IS NULL"
                self.rejects.append(Check(inf.rule, at or inf.target, "rejected", missing_sql, at))
        for r in mapping.rules:
            at, when = self.header_of.get(r.column), f"coalesce({r.when}, false)"
            # a flag only records the row: it clears nothing
            clears = r.column if r.action == "cleared" else None
            check = Check(r.rule, at or r.column, r.action, when, at, clears)
            (self.rejects if r.action == "rejected" else self.clears).append(check)
        self.row_local = len(self.rejects)
        for ref in mapping.references:
            at = self.header_of.get(ref.column)
            self.rejects.append(Check(ref.rule, at or ref.column, "rejected", "", at))
        if len(self.rejects) > 32_000:
            raise ConfigError(f"{rows.label}: at most 32000 rejecting checks per source")
        if len(self.clears) > 63:
            raise ConfigError(f"{rows.label}: at most 63 clearing checks per source")

    def _value_sql(self, col: ColumnSpec, salt: str) -> str:
        kind = self.mapping.kind(col)
        if col.source in self.read_types:
            return read_value_sql(kind, quote(col.source))
        return parse_sql(kind, _source_value(col), salt)

    def _column_checks(self) -> None:
        """Missing or unparseable values: required columns reject the row, others are cleared."""
        inferred = {i.target for i in self.mapping.infer}
        for col in self.mapping.columns:
            if col.source is None or col.target in inferred:
                continue
            kind, src, tgt = self.mapping.kind(col), self.raw[col.source], quote(col.target)
            textual = kind not in BAD_VALUE_RULES  # strings cannot fail to parse
            bad = f"{src} IS NOT NULL AND {tgt} IS NULL"
            if self.mapping.required(col):
                missing = f"{tgt} IS NULL" if textual else f"{src} IS NULL"
                self.rejects.append(
                    Check("missing_required", col.source, "rejected", missing, col.source)
                )
            if textual or (col.source in self.read_types and kind not in FINITE_KINDS):
                continue  # what the reader took, parsed (but NaN and infinities do not)
            action = "rejected" if self.mapping.required(col) else "cleared"
            checks = self.rejects if action == "rejected" else self.clears
            checks.append(Check(BAD_VALUE_RULES[kind], col.source, action, bad, col.source))

    @property
    def _flags_type(self) -> str:
        """The narrowest unsigned integer type with a bit per clearing check."""
        for bits, name in ((8, "UTINYINT"), (16, "USMALLINT"), (32, "UINTEGER")):
            if len(self.clears) <= bits:
                return name
        return "UBIGINT"

    @property
    def has_line(self) -> bool:
        """Whether rows carry their line (``__line``) rather than deriving it from ``__pos``."""
        return self.rows.arrow is not None or self.mapping.unpivot is not None

    @property
    def counts_wraps(self) -> bool:
        """Whether rows count the line breaks inside their values (``__nl``) for the line numbers.

        Only text can hold a line break: a typed value with one would not have parsed.
        """
        return not self.has_line and self.rows.may_span_lines and bool(self._text_values())

    def _text_values(self) -> list[str]:
        return [s for h, s in self.raw.items() if h not in self.read_types]

    def read_candidates(self) -> dict[str, str]:
        """Headers the CSV reader could parse itself (kinds of :data:`READ_TYPES`), and as what.

        A header mapped to several columns qualifies when they all read it as the same type.
        """
        if self.rows.csv_path is None or self.mapping.unpivot is not None:
            return {}
        types: dict[str, set[str | None]] = {}
        for col in self.mapping.columns:
            if col.source:
                types.setdefault(col.source, set()).add(READ_TYPES.get(self.mapping.kind(col)))
        return {h: next(iter(t)) for h, t in types.items() if len(t) == 1 and None not in t}  # type: ignore[misc]

    def read_csv(self, limit: int | None = None) -> str:
        """``read_csv`` of the source, no sniffing: VARCHAR except the ``read_types`` columns.

        A full read stores what it cannot read (a ragged line, a bad byte) or cast in ``REJECTS``
        and skips it instead of failing (see :mod:`.ragged`); a sample (``limit``) skips it.
        """
        rows, types = self.rows, self.read_types
        cols = ", ".join(f"{lit(h)}: {lit(types.get(h, 'VARCHAR'))}" for h in rows.headers)
        rejects = (
            f", store_rejects = true, rejects_table = {lit(REJECTS)}, "
            f"rejects_scan = {lit(REJECT_SCANS)}"
            if limit is None
            else ", ignore_errors = true"
        )
        sql = (
            f"read_csv({lit(str(rows.csv_path))}, header = true, skip = {rows.header_line - 1}, "
            f"auto_detect = false, columns = {{{cols}}}, delim = {lit(rows.delimiter)}, "
            f"quote = '\"', escape = '\"'{rejects})"
        )
        return sql if limit is None else f"(SELECT * FROM {sql} LIMIT {limit})"

    def _relation(self) -> str:
        if self.rows.arrow is not None:
            rel = SRC
        elif self.mapping.unpivot is not None:  # staged first: unpivoting would lose the order
            wraps = _line_breaks([quote(h) for h in self.rows.headers])
            before = f"sum({wraps}) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            at = f"(SELECT *, rowid - min(rowid) OVER () AS __p, coalesce({before}, 0) AS __w FROM {STAGE})"
            line, shift = f"a.__p + {self.rows.header_line + 1} + a.__w", ""
            if self.shifted:
                line += f" + {ragged.SHIFT}"
                shift = ragged.shift_sql("a.__p", self.skipped_rel)
            rel = f"(SELECT a.* EXCLUDE (__p, __w), {line} AS __line FROM {at} a {shift})"
        else:
            rel = self.read_csv()
        if self.mapping.unpivot:
            u = self.mapping.unpivot
            cols = ", ".join(quote(c) for c in u.columns)
            rel = f"(UNPIVOT {rel} ON {cols} INTO NAME {quote(u.name)} VALUE {quote(u.value)})"
        return rel

    @property
    def shifted(self) -> bool:
        """Whether the read skipped lines (ragged records, blank lines): ``skipped_file`` has them."""
        return bool(self.skipped or self.blank_lines)

    @property
    def skipped_rel(self) -> str:
        """The records the read skipped (``skipped_file``, see :mod:`.ragged`)."""
        return f"read_parquet({lit(self.skipped_file)})"

    def wraps_sql(self) -> str | None:
        """The rows holding line breaks, as (``pos``, ``nl``), once the check file (or the stage
        of an unpivoted CSV) is written; None when no row can hold one."""
        if self.mapping.unpivot is not None:
            breaks = _line_breaks([quote(h) for h in self.rows.headers])
            pos = f"SELECT rowid - min(rowid) OVER () AS pos, {breaks} AS nl FROM {STAGE}"
            return f"SELECT * FROM ({pos}) WHERE nl > 0"
        if not self.counts_wraps:
            return None
        read = f"read_parquet({lit(self.check_file)}, file_row_number = true)"
        return f"SELECT file_row_number AS pos, __nl AS nl FROM {read} WHERE __nl > 0"

    def check_sql(self) -> str:
        """The parsed and checked rows, in source order (one scan), as stored: without ``__pos``
        and the columns :attr:`chk` adds back."""
        return self._checked(self._relation(), stored=True)

    def create_sql(self) -> str:
        """Write the scan to the check table (the Parquet file ``check_file``)."""
        return (
            f"COPY ({self.check_sql()}) TO {lit(self.check_file)} "
            "(FORMAT parquet, COMPRESSION snappy)"
        )

    @property
    def chk(self) -> str:
        """The check table's rows, with their position in the source (``__pos``)."""
        added = [f"{sql} AS {quote(t)}" for t, sql in self.constants.items()]
        if not self.clears:
            added.append(f"0::{self._flags_type} AS __flags")
        if self.read_types:
            added.append("NULL::JSON AS __raw")
        read = f"read_parquet({lit(self.check_file)}, file_row_number = true)"
        added.append("file_row_number AS __pos")
        return f"(SELECT * EXCLUDE (file_row_number), {', '.join(added)} FROM {read})"

    @property
    def rows_sql(self) -> str:
        """The check table's rows with their final code ``__status`` (NULL = load it)."""
        return (
            f"(SELECT c.*, coalesce(o.code, c.__reject) AS __status FROM {self.chk} c "
            f"LEFT JOIN {OVERRIDES} o ON o.pos = c.__pos)"
        )

    def sample_sql(self, rows: int, candidates: Mapping[str, str]) -> str:
        """Over the first ``rows`` rows, read as text: rows with an issue, then per candidate
        header whether the plain cast to its type takes every value (a typed read would too)."""
        raw = self.raw
        casts = ", ".join(
            f"bool_and({raw[h]} IS NULL OR TRY_CAST({raw[h]} AS {t}) IS NOT NULL)"
            for h, t in candidates.items()
        )
        issues = "count(*) FILTER (__reject IS NOT NULL OR __flags <> 0)"
        checked = self._checked(self.read_csv(rows), raw.values())
        return f"SELECT {issues}, {casts} FROM ({checked})"

    def _checked(self, relation: str, keep: Iterable[str] = (), stored: bool = False) -> str:
        """The parsed and checked rows of ``relation``, with the source values ``keep`` too;
        only the columns the check table stores if ``stored``.

        Built in layers over the source: raw values (``__s0`` …) and parsed columns, inferred
        values, derived columns, the check results, and the final projection.
        """
        raw = self.raw
        line = ["__line"] if self.has_line else []
        parsed = [f"{quote(h)} AS {s}" for h, s in raw.items()] + self.parsed + line
        sql = self._derive(self._infer(f"SELECT {', '.join(parsed)} FROM {relation}"))
        whens = " ".join(
            f"WHEN {c.condition} THEN {i + 1}" for i, c in enumerate(self.rejects[: self.row_local])
        )
        bits = " | ".join(
            f"(coalesce({c.condition}, false)::UBIGINT << {b})" for b, c in enumerate(self.clears)
        )
        checked = [
            # the narrowest types that hold the codes and bits: a smaller check table
            f"(CASE {whens} END)::SMALLINT AS __reject" if whens else "NULL::SMALLINT AS __reject",
            f"({bits or '0'})::{self._flags_type} AS __flags",
        ]
        if self.counts_wraps:
            # a record spanning lines shifts the line numbers of the records after it
            text = self._text_values()
            spans = " OR ".join(f"coalesce(contains({s}, chr(10)), false)" for s in text)
            checked.append(f"CASE WHEN {spans} THEN {_line_breaks(text)} ELSE 0 END AS __nl")
            line = ["__nl"]
        sql = f"SELECT *, {', '.join(checked)} FROM ({sql})"
        issue = "__reject IS NOT NULL OR __flags <> 0"
        keep_raw = f"CASE WHEN {issue} THEN {json_object_sql(list(raw.items()))} END AS __raw"
        if self.read_types:  # no text to keep: such a plan is used only when no row needs it
            keep_raw = "NULL::JSON AS __raw"
        body = [*self._final_columns(), "__reject", "__flags", keep_raw, *line, *keep]
        if stored:
            left_out = {quote(t) for t in self.constants} | (
                {"__flags"} if not self.clears else set()
            )
            if self.read_types:
                left_out.add(keep_raw)
            body = [b for b in body if b not in left_out]
        return f"SELECT {', '.join(body)} FROM ({sql})"

    def _infer(self, sql: str) -> str:
        """Fill missing values from other columns, flagging each row where that happened."""
        if not self.mapping.infer:
            return sql
        fill, flags = [], []
        for j, inf in enumerate(self.mapping.infer):
            col, sql_type = quote(inf.target), SQL_TYPES[self.tbl.column(inf.target).type]
            fill.append(f"coalesce({col}, CAST(({inf.expr}) AS {sql_type})) AS {col}")
            flags.append(f"({col} IS NULL AND ({inf.expr}) IS NOT NULL) AS __inf{j}")
        return f"SELECT * REPLACE ({', '.join(fill)}), {', '.join(flags)} FROM ({sql})"

    def _derive(self, sql: str) -> str:
        if not self.mapping.derive:
            return sql
        derived = ", ".join(
            f"CAST(({d.expr}) AS {SQL_TYPES[self.tbl.column(d.target).type]}) AS {quote(d.target)}"
            for d in self.mapping.derive
        )
        return f"SELECT *, {derived} FROM ({sql})"

    def _final_columns(self) -> list[str]:
        """The canonical columns, emptied where a clearing row rule fired."""
        cleared = {c.clears: b for b, c in enumerate(self.clears) if c.clears}
        return [
            f"CASE WHEN (__flags >> {cleared[t]}) & 1 = 1 THEN NULL ELSE {quote(t)} END AS {quote(t)}"
            if t in cleared
            else quote(t)
            for t in self.targets
        ]

    def distinct_keys_sql(self) -> str:
        """How many keys are not greater than the key before them; 0 proves all keys distinct.

        A strictly increasing sequence has no duplicates whatever the order ``lag`` walks the rows
        in; exports are usually sorted by their key, and this one streaming pass is 4x cheaper than
        grouping millions of keys. Rows with a key part missing are rejected, never merged.
        """
        key = [quote(k) for k in self.tbl.primary_key]
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in key)
        # compared part by part, lexicographically: cheaper than building and comparing a struct
        up = f"{key[-1]} > lag({key[-1]}) OVER w"
        for c in reversed(key[:-1]):
            up = f"{c} > lag({c}) OVER w OR ({c} = lag({c}) OVER w AND ({up}))"
        return (
            f"SELECT count(*) FROM (SELECT {up} AS up FROM {self.chk} WHERE {not_null} "
            "WINDOW w AS ()) WHERE NOT up"
        )

    def merge_sql(self) -> str:
        """Mark all but the winner of each key as merged: the newest, else the last in the file."""
        key = ", ".join(f"c.{quote(k)}" for k in self.tbl.primary_key)
        not_null = " AND ".join(f"c.{quote(k)} IS NOT NULL" for k in self.tbl.primary_key)
        upd = self.mapping.updated_column
        order = (f"c.{quote(upd)} DESC NULLS LAST, " if upd else "") + (
            "c.__line DESC" if self.has_line else "c.__pos DESC"
        )
        # grouping a 64-bit hash of the key finds candidates twice as fast as grouping the key;
        # equal hashes are only candidates: the window partitions them by the key itself
        candidates = f"SELECT hash({key}) FROM {self.chk} c WHERE {not_null} GROUP BY ALL HAVING count(*) > 1"
        ranked = (
            f"SELECT c.__pos, row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS n "
            f"FROM {self.chk} c WHERE {not_null} AND hash({key}) IN ({candidates})"
        )
        return f"INSERT INTO {OVERRIDES} SELECT __pos, {MERGED} FROM ({ranked}) WHERE n > 1"

    def reference_sql(self) -> str | None:
        """Reject rows (not yet rejected) whose value is not in the referenced table: each row by
        the first reference it breaks, in one pass; None without references.

        Run after the scan, not in it: a join in the scan's pipeline may reorder its rows.
        """
        whens = []
        for i, ref in enumerate(self.mapping.references):
            col, target = quote(ref.column), quote(ref.target_column)
            # NOT IN builds the hash table on the referenced table; an ANTI JOIN may be planned
            # the other way round, hashing millions of rows to probe a few thousand
            known = f"SELECT k.{target} FROM {quote(ref.table)} k WHERE k.{target} IS NOT NULL"
            whens.append(
                f"WHEN c.{col} IS NOT NULL AND c.{col} NOT IN ({known}) "
                f"THEN {self.row_local + i + 1}"
            )
        if not whens:
            return None
        return (
            f"INSERT INTO {OVERRIDES} SELECT pos, code FROM (SELECT c.__pos AS pos, "
            f"CASE {' '.join(whens)} END AS code FROM {self.rows_sql} c WHERE c.__status IS NULL) "
            "WHERE code IS NOT NULL"
        )

    def counts_sql(self) -> str:
        """Rows read, to load, rejected and merged, and rows whose quarantine record shows the
        source row as read (after merging; the text a typed read does not keep)."""
        needs_text = (
            f"__status BETWEEN 1 AND {self.row_local} OR (__status IS NULL AND __flags <> 0)"
        )
        return (
            "SELECT count(*), count(*) FILTER (__status IS NULL), count(*) FILTER (__status > 0), "
            f"count(*) FILTER (__status = {MERGED}), count(*) FILTER ({needs_text}) "
            f"FROM {self.rows_sql}"
        )

    def upsert_sql(self) -> tuple[str, str]:
        """Delete the rows whose key is loaded again, then insert (parameters: load_id, loaded_at)."""
        name, cols = quote(self.tbl.name), ", ".join(quote(t) for t in self.targets)
        key = [quote(k) for k in self.tbl.primary_key]
        t_key = f"t.{key[0]}" if len(key) == 1 else "(" + ", ".join(f"t.{k}" for k in key) + ")"
        # IN, not a correlated EXISTS: DuckDB then skips the row groups whose key range misses
        # every new key, instead of scanning the whole table
        delete = (
            f"DELETE FROM {name} t WHERE {t_key} IN "
            f"(SELECT {', '.join(f'c.{k}' for k in key)} FROM {self.rows_sql} c WHERE c.__status IS NULL)"
        )
        insert = (
            f"INSERT INTO {name} ({cols}, load_id, loaded_at) "
            f"SELECT {cols}, ?, ? FROM {self.rows_sql} WHERE __status IS NULL"
        )
        return delete, insert

    def quarantine_sql(self) -> str:
        """One record per rejected row (its first broken rule) and per cleared or inferred value.

        Parameters: load_id, table name, source. Rows rejected by a reference check passed the
        checks of the scan, so they carry no raw copy: they show their parsed values.
        """

        def path(c: Check) -> str:
            return lit('$."' + c.header.replace('"', '\\"') + '"') if c.header else "NULL"

        meta = [
            f"({i + 1}, NULL, {lit(c.rule)}, {lit(c.column)}, 'rejected', {path(c)})"
            for i, c in enumerate(self.rejects)
        ]
        meta += [
            f"(NULL, {b}, {lit(c.rule)}, {lit(c.column)}, {lit(c.action)}, {path(c)})"
            for b, c in enumerate(self.clears)
        ]
        refs = " ".join(
            f"WHEN {self.row_local + i + 1} THEN CAST(c.{quote(r.column)} AS VARCHAR)"
            for i, r in enumerate(self.mapping.references)
        )
        original = "json_extract_string(c.__raw, q.path)"
        if refs:
            original = f"coalesce({original}, CASE c.__status {refs} END)"
        parsed_row = json_object_sql(
            [(self.header_of.get(t, t), f"c.{quote(t)}") for t in self.targets]
        )
        return (
            "INSERT INTO quarantine (load_id, table_name, source, line_no, column_name, rule, action, "
            f"original_value, row_json) SELECT ?, ?, ?, {self._line_sql()}, q.col, q.rule, q.action, "
            f"{original}, coalesce(c.__raw, {parsed_row})::VARCHAR "
            f"FROM {self.rows_sql} c {self._shift_join()} {self._wraps_join()} "
            f"JOIN (VALUES {', '.join(meta)}) q(code, bit, rule, col, action, path) "
            "ON c.__status = q.code OR (c.__status IS NULL AND (c.__flags >> q.bit) & 1 = 1) "
            "WHERE c.__status > 0 OR (c.__status IS NULL AND c.__flags <> 0)"
        )

    def _line_sql(self) -> str:
        """The source line of check-table row ``c``: header line + position + wrapped lines before
        + lines of the skipped records and blank lines before."""
        if self.has_line:
            return "c.__line"
        line = f"c.__pos + {self.rows.header_line + 1}"
        if self.shifted:  # the ragged records and blank lines before it, not in the check table
            line += f" + {ragged.SHIFT}"  # joined by _shift_join
        if self.counts_wraps:  # the line breaks inside the values of the rows before it
            line += " + coalesce(__wraps.lines, 0)"  # joined by _wraps_join
        return line

    def _shift_join(self) -> str:
        """The join :meth:`_line_sql` needs for the lines skipped before row ``c``, if any."""
        if self.has_line or not self.shifted:
            return ""
        return ragged.shift_sql("c.__pos", self.skipped_rel)

    def _wraps_join(self) -> str:
        """The join :meth:`_line_sql` needs for the line breaks inside the values of the rows
        before row ``c``: an ASOF join on their running total, as :func:`.ragged.shift_sql` (a
        correlated sum took 12.8 s for 30k records among 100k multi-line rows)."""
        if self.has_line or not self.counts_wraps:
            return ""
        running = (
            f"SELECT __pos AS pos, sum(__nl) OVER (ORDER BY __pos) AS lines "
            f"FROM {self.chk} WHERE __nl > 0"
        )
        return f"ASOF LEFT JOIN ({running}) __wraps ON c.__pos > __wraps.pos"
