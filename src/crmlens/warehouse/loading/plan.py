"""The SQL of loading one source, generated from a :class:`~.mapping.TableMapping`.

One scan of the source parses every value, applies inferences and derived columns, evaluates the
row-local rules and writes the check table ``CHK`` (temporary). DuckDB keeps insertion order, so its
rowids follow the file and give each row its line number without storing one. Every row carries
``__reject`` (NULL = load it; 0 = merged into a duplicate; n > 0 = rejected by ``rejects[n - 1]``),
``__flags`` (bit b set = ``clears[b]`` cleared or inferred a value) and ``__raw`` (the source row as
JSON, kept only for rows with an issue). Duplicates and references then update ``__reject`` of the
few rows concerned, and the kept rows are appended to the target in one insert: the data is written
to the warehouse once, and never modified after (DuckDB would rewrite it on commit).
"""

from __future__ import annotations

from dataclasses import dataclass

from crmlens.errors import ConfigError
from crmlens.schema import table
from crmlens.warehouse.loading.mapping import ColumnSpec, Kind, SourceRows, TableMapping
from crmlens.warehouse.migrations import quote

CHK = "__crmlens_chk"  # the check table (temporary, one source at a time)
SRC = "__crmlens_src"  # an Arrow source, registered as a view
STAGE = "__crmlens_stage"  # a CSV copied first, when unpivoting needs explicit line numbers
MERGED = 0

#: Tried in order; the first that parses wins. Month and day may lack a leading zero.
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日", "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",
)  # fmt: skip
TRUE_WORDS = ("true", "t", "yes", "y", "1", "是")
FALSE_WORDS = ("false", "f", "no", "n", "0", "否")
#: The rule a value of each kind breaks when it does not parse.
BAD_VALUE_RULES = {
    "int": "bad_int", "float": "bad_number", "money": "bad_number", "bool": "bad_bool",
    "date": "bad_date", "timestamp": "bad_timestamp", "phone": "invalid_phone",
    "email": "invalid_email", "period_start": "bad_period", "period_end": "bad_period",
}  # fmt: skip
_SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "money": "DOUBLE",
              "bool": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP"}  # fmt: skip


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(lit(w) for w in words)


def parse_sql(kind: Kind, x: str, salt: str = "") -> str:
    """SQL turning the VARCHAR expression ``x`` into a ``kind`` value; NULL where it does not parse.

    >>> parse_sql("bool", "x")[:35]
    "CASE WHEN lower(nullif(trim(x), ''))"
    """
    t = f"nullif(trim({x}), '')"
    if kind == "string":  # trimming only where needed keeps most strings as read (faster)
        return f"CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' THEN {t} ELSE {x} END"
    if kind == "int":  # TRY_CAST would round 3.5 to 4: only whole numbers pass
        d = f"TRY_CAST({x} AS DOUBLE)"
        return f"CASE WHEN NOT contains({x}, '.') THEN TRY_CAST({x} AS BIGINT) WHEN {d} = trunc({d}) THEN {d}::BIGINT END"
    if kind in ("float", "money"):  # "1,234.50" as exported by spreadsheets, too
        return f"coalesce(TRY_CAST({x} AS DOUBLE), TRY_CAST(replace({x}, ',', '') AS DOUBLE))"
    if kind == "bool":
        return f"CASE WHEN lower({t}) IN ({_words(TRUE_WORDS)}) THEN true WHEN lower({t}) IN ({_words(FALSE_WORDS)}) THEN false END"
    if kind in ("timestamp", "date"):  # the cast is 4x faster than strptime for ISO values
        ts = f"coalesce(TRY_CAST({t} AS TIMESTAMP), try_strptime({t}, [{_words(TIMESTAMP_FORMATS)}]))"
        return ts if kind == "timestamp" else f"CAST({ts} AS DATE)"
    if kind == "phone":  # mainland mobile: 11 digits from 1, after +86/0086 and separators
        digits = rf"regexp_replace({x}, '[\s\-().]', '', 'g')"
        return rf"nullif(regexp_extract({digits}, '^(?:\+?86|0086)?(1\d{{10}})$', 1), '')"
    if kind == "email":
        return rf"CASE WHEN regexp_full_match(lower({t}), '[^@\s]+@[^@\s]+\.[^@\s]+') THEN lower({t}) END"
    if kind == "anon_id":
        if not salt.isalnum():
            raise ConfigError("anon_id needs the warehouse's salt (letters and digits)")
        return f"substr(sha256({lit(salt)} || {t}), 1, 16)"
    if kind in ("period_start", "period_end"):
        p = f"upper({t})"
        start = (
            rf"CASE WHEN regexp_full_match({p}, '\d{{4}}-(0[1-9]|1[0-2])') THEN make_date({p}[1:4]::INT, {p}[6:7]::INT, 1)"
            rf" WHEN regexp_full_match({p}, '\d{{4}}-Q[1-4]') THEN make_date({p}[1:4]::INT, {p}[7]::INT * 3 - 2, 1)"
            rf" WHEN regexp_full_match({p}, '\d{{4}}') THEN make_date({p}::INT, 1, 1) END"
        )
        if kind == "period_start":
            return start
        step = f"CASE WHEN contains({p}, 'Q') THEN INTERVAL 3 MONTH WHEN length({p}) = 4 THEN INTERVAL 1 YEAR ELSE INTERVAL 1 MONTH END"
        return f"CAST({start} + {step} - INTERVAL 1 DAY AS DATE)"
    raise ConfigError(f"unknown value kind {kind!r}")


def json_object_sql(pairs: list[tuple[str, str]]) -> str:
    """``json_object`` of (key, SQL value) pairs, chunked because a call's arguments are limited."""
    parts = [
        "json_object(" + ", ".join(f"{lit(k)}, {v}" for k, v in pairs[i : i + 40]) + ")"
        for i in range(0, len(pairs), 40)
    ] or ["json_object()"]
    return parts[0] if len(parts) == 1 else "json_merge_patch(" + ", ".join(parts) + ")"


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
    action: str  # rejected, cleared or inferred
    condition: str  # over the parsed row; empty for reference checks (run later, as anti-joins)
    header: str | None = None  # the source header holding the original value
    clears: str | None = None  # the canonical column a clearing row rule sets empty


class CheckPlan:
    """The checks of one source, in the order they are reported, and the SQL that applies them."""

    def __init__(self, rows: SourceRows, mapping: TableMapping, salt: str) -> None:
        self.rows, self.mapping, self.tbl = rows, mapping, table(mapping.table)
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
        self.parsed = [
            f"{parse_sql(mapping.kind(c), _source_value(c), salt)} AS {quote(c.target)}"
            for c in mapping.columns
        ]
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
            check = Check(r.rule, at or r.column, r.action, when, at, r.column)
            (self.rejects if r.action == "rejected" else self.clears).append(check)
        self.row_local = len(self.rejects)
        for ref in mapping.references:
            at = self.header_of.get(ref.column)
            self.rejects.append(Check(ref.rule, at or ref.column, "rejected", "", at))
        if len(self.clears) > 63:
            raise ConfigError(f"{rows.label}: at most 63 clearing checks per source")

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
            if textual:
                continue
            action = "rejected" if self.mapping.required(col) else "cleared"
            checks = self.rejects if action == "rejected" else self.clears
            checks.append(Check(BAD_VALUE_RULES[kind], col.source, action, bad, col.source))

    @property
    def has_line(self) -> bool:
        """Whether rows carry their line (``__line``) rather than deriving it from the rowid."""
        return self.rows.arrow is not None or self.mapping.unpivot is not None

    def read_csv(self) -> str:
        """``read_csv`` of the source with every column as VARCHAR and no sniffing."""
        rows = self.rows
        cols = ", ".join(f"{lit(h)}: 'VARCHAR'" for h in rows.headers)
        return (
            f"read_csv({lit(str(rows.csv_path))}, header = true, skip = {rows.header_line - 1}, "
            f"auto_detect = false, columns = {{{cols}}}, delim = {lit(rows.delimiter)}, "
            "quote = '\"', escape = '\"')"
        )

    def _relation(self) -> str:
        if self.rows.arrow is not None:
            rel = SRC
        elif self.mapping.unpivot is not None:  # staged first: unpivoting would lose the order
            wraps = _line_breaks([quote(h) for h in self.rows.headers])
            before = f"sum({wraps}) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            line = (
                f"rowid - min(rowid) OVER () + {self.rows.header_line + 1} + coalesce({before}, 0)"
            )
            rel = f"(SELECT *, {line} AS __line FROM {STAGE})"
        else:
            rel = self.read_csv()
        if self.mapping.unpivot:
            u = self.mapping.unpivot
            cols = ", ".join(quote(c) for c in u.columns)
            rel = f"(UNPIVOT {rel} ON {cols} INTO NAME {quote(u.name)} VALUE {quote(u.value)})"
        return rel

    def check_sql(self) -> str:
        """``CREATE TEMP TABLE`` of the parsed and checked rows, in source order (one scan).

        Built in layers over the source: raw values (``__s0`` …) and parsed columns, inferred
        values, derived columns, the check results, and the final projection.
        """
        raw = self.raw
        line = ["__line"] if self.has_line else []
        parsed = [f"{quote(h)} AS {s}" for h, s in raw.items()] + self.parsed + line
        sql = self._derive(self._infer(f"SELECT {', '.join(parsed)} FROM {self._relation()}"))
        whens = " ".join(
            f"WHEN {c.condition} THEN {i + 1}" for i, c in enumerate(self.rejects[: self.row_local])
        )
        bits = " | ".join(
            f"(coalesce({c.condition}, false)::UBIGINT << {b})" for b, c in enumerate(self.clears)
        )
        checked = [
            f"(CASE {whens} END)::INTEGER AS __reject" if whens else "NULL::INTEGER AS __reject",
            f"({bits or '0'})::UBIGINT AS __flags",
        ]
        if not self.has_line and self.rows.may_span_lines:
            # a record spanning lines shifts the line numbers of the records after it
            spans = " OR ".join(f"coalesce(contains({s}, chr(10)), false)" for s in raw.values())
            breaks = _line_breaks(list(raw.values()))
            checked.append(f"CASE WHEN {spans} THEN {breaks} ELSE 0 END AS __nl")
            line = ["__nl"]
        sql = f"SELECT *, {', '.join(checked)} FROM ({sql})"
        issue = "__reject IS NOT NULL OR __flags <> 0"
        keep_raw = f"CASE WHEN {issue} THEN {json_object_sql(list(raw.items()))} END AS __raw"
        # a 64-bit hash of the key: finding duplicate candidates on it is twice as fast as on text
        key = [quote(k) for k in self.tbl.primary_key]
        not_null = " AND ".join(f"{k} IS NOT NULL" for k in key)
        key_hash = f"CASE WHEN {not_null} THEN hash({', '.join(key)}) END AS __key"
        body = [*self._final_columns(), "__reject", "__flags", keep_raw, key_hash, *line]
        return f"CREATE TEMP TABLE {CHK} AS SELECT {', '.join(body)} FROM ({sql})"

    def _infer(self, sql: str) -> str:
        """Fill missing values from other columns, flagging each row where that happened."""
        if not self.mapping.infer:
            return sql
        fill, flags = [], []
        for j, inf in enumerate(self.mapping.infer):
            col, sql_type = quote(inf.target), _SQL_TYPES[self.tbl.column(inf.target).type]
            fill.append(f"coalesce({col}, CAST(({inf.expr}) AS {sql_type})) AS {col}")
            flags.append(f"({col} IS NULL AND ({inf.expr}) IS NOT NULL) AS __inf{j}")
        return f"SELECT * REPLACE ({', '.join(fill)}), {', '.join(flags)} FROM ({sql})"

    def _derive(self, sql: str) -> str:
        if not self.mapping.derive:
            return sql
        derived = ", ".join(
            f"CAST(({d.expr}) AS {_SQL_TYPES[self.tbl.column(d.target).type]}) AS {quote(d.target)}"
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

    def merge_sql(self) -> str:
        """Mark all but the winner of each key as merged: the newest, else the last in the file."""
        key = ", ".join(f"c.{quote(k)}" for k in self.tbl.primary_key)
        upd = self.mapping.updated_column
        order = (f"c.{quote(upd)} DESC NULLS LAST, " if upd else "") + (
            "c.__line DESC" if self.has_line else "c.rowid DESC"
        )
        # equal hashes are only candidates: the window partitions them by the key itself
        candidates = (
            f"SELECT __key FROM {CHK} WHERE __key IS NOT NULL GROUP BY __key HAVING count(*) > 1"
        )
        ranked = (
            f"SELECT c.rowid AS r, row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS n "
            f"FROM {CHK} c WHERE c.__key IN ({candidates})"
        )
        return f"UPDATE {CHK} SET __reject = {MERGED} WHERE rowid IN (SELECT r FROM ({ranked}) WHERE n > 1)"

    def reference_sql(self) -> list[str]:
        """Per reference, in order: reject rows (not yet rejected) whose value is not in its table."""
        out = []
        for i, ref in enumerate(self.mapping.references):
            col, target = quote(ref.column), quote(ref.target_column)
            # NOT IN builds the hash table on the referenced table; an ANTI JOIN may be planned
            # the other way round, hashing millions of rows to probe a few thousand
            known = f"SELECT k.{target} FROM {quote(ref.table)} k WHERE k.{target} IS NOT NULL"
            missing = (
                f"SELECT c.rowid FROM {CHK} c WHERE c.__reject IS NULL AND c.{col} IS NOT NULL "
                f"AND c.{col} NOT IN ({known})"
            )
            out.append(
                f"UPDATE {CHK} SET __reject = {self.row_local + i + 1} WHERE rowid IN ({missing})"
            )
        return out

    def upsert_sql(self) -> tuple[str, str]:
        """Delete the rows whose key is loaded again, then insert (parameters: load_id, loaded_at)."""
        name, cols = quote(self.tbl.name), ", ".join(quote(t) for t in self.targets)
        same_key = " AND ".join(f"c.{quote(k)} = t.{quote(k)}" for k in self.tbl.primary_key)
        delete = (
            f"DELETE FROM {name} t WHERE EXISTS "
            f"(SELECT 1 FROM {CHK} c WHERE c.__reject IS NULL AND {same_key})"
        )
        insert = (
            f"INSERT INTO {name} ({cols}, load_id, loaded_at) "
            f"SELECT {cols}, ?, ? FROM {CHK} WHERE __reject IS NULL"
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
            original = f"coalesce({original}, CASE c.__reject {refs} END)"
        parsed_row = json_object_sql(
            [(self.header_of.get(t, t), f"c.{quote(t)}") for t in self.targets]
        )
        return (
            "INSERT INTO quarantine (load_id, table_name, source, line_no, column_name, rule, action, "
            f"original_value, row_json) SELECT ?, ?, ?, {self._line_sql()}, q.col, q.rule, q.action, "
            f"{original}, coalesce(c.__raw, {parsed_row})::VARCHAR "
            f"FROM {CHK} c JOIN (VALUES {', '.join(meta)}) q(code, bit, rule, col, action, path) "
            "ON c.__reject = q.code OR (c.__reject IS NULL AND (c.__flags >> q.bit) & 1 = 1) "
            "WHERE c.__reject > 0 OR (c.__reject IS NULL AND c.__flags <> 0)"
        )

    def _line_sql(self) -> str:
        """The source line of check-table row ``c``: header line + position + wrapped lines before."""
        if self.has_line:
            return "c.__line"
        # rowids of rows written in an open transaction start at an offset: count from the first
        line = f"c.rowid - (SELECT min(rowid) FROM {CHK}) + {self.rows.header_line + 1}"
        if not self.rows.may_span_lines:
            return line
        wraps = f"(SELECT sum(n.__nl) FROM {CHK} n WHERE n.__nl > 0 AND n.rowid < c.rowid)"
        return f"{line} + coalesce({wraps}, 0)"
