"""Value parsing as SQL: how a source value of each kind becomes a typed value, or NULL.

:func:`parse_sql` parses text (every value read as VARCHAR). :data:`READ_TYPES` names the kinds
whose parse is a plain cast that DuckDB's CSV reader can do itself while reading, which is much
cheaper than materialising the text first: for those the reader accepts a subset of what
:func:`parse_sql` accepts, with the same result (``tests/warehouse/test_loading.py`` checks this),
and rejects the rest, which then go through :func:`parse_sql`.
"""

from __future__ import annotations

from crmlens.errors import ConfigError
from crmlens.warehouse.loading.mapping import Kind

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
SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "money": "DOUBLE",
             "bool": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP"}  # fmt: skip
#: Kinds the CSV reader may parse, and the type it reads them as. Not ``int``: the reader rounds
#: 3.5 to 4, where the rule is that only whole numbers pass. Dates are read as timestamps and cast,
#: as :func:`parse_sql` does.
READ_TYPES = {"float": "DOUBLE", "money": "DOUBLE", "bool": "BOOLEAN", "date": "TIMESTAMP",
              "timestamp": "TIMESTAMP"}  # fmt: skip
#: Kinds whose casts take ``NaN``, ``inf`` or ``infinity``: such a value does not parse (a NaN
#: amount would make every sum NaN, an order at infinity would sit in no period), so the check
#: must run on a typed read of them too.
FINITE_KINDS = ("float", "money", "date", "timestamp")


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(lit(w) for w in words)


def _is_one_of(x: str, words: tuple[str, ...]) -> str:
    """``x`` is one of ``words``; not ``x IN (...)``, which DuckDB plans as a join from 5 words on,
    and a join in the scan's pipeline may reorder its rows (their order gives the line numbers)."""
    return f"list_contains([{_words(words)}], {x})"


def parse_sql(kind: Kind, x: str, salt: str = "") -> str:
    """SQL turning the VARCHAR expression ``x`` into a ``kind`` value; NULL where it does not parse.

    Each kind tries the plain cast first (cheap, and exactly what the CSV reader does for the kinds
    in :data:`READ_TYPES`), and the slower general parse only where that gives nothing.

    >>> parse_sql("bool", "x")[:36]
    'coalesce(TRY_CAST(x AS BOOLEAN), CAS'
    """
    t = f"nullif(trim({x}), '')"
    if kind == "string":  # trimming only where needed keeps most strings as read (faster)
        return f"CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' THEN {t} ELSE {x} END"
    if kind == "int":  # TRY_CAST would round 3.5 to 4: only whole numbers pass
        d = f"TRY_CAST({x} AS DOUBLE)"
        return f"CASE WHEN NOT contains({x}, '.') THEN TRY_CAST({x} AS BIGINT) WHEN {d} = trunc({d}) THEN {d}::BIGINT END"
    if kind in ("float", "money"):  # "1,234.50" as exported by spreadsheets, too
        return _finite(
            f"coalesce(TRY_CAST({x} AS DOUBLE), TRY_CAST(replace({x}, ',', '') AS DOUBLE))"
        )
    if kind == "bool":  # the cast takes true/t/yes/y/1 and their opposites in any case, not 是/否
        words = f"CASE WHEN {_is_one_of(f'lower({t})', TRUE_WORDS)} THEN true WHEN {_is_one_of(f'lower({t})', FALSE_WORDS)} THEN false END"
        return f"coalesce(TRY_CAST({x} AS BOOLEAN), {words})"
    if kind in (
        "timestamp",
        "date",
    ):  # the cast skips surrounding spaces itself; 4x strptime's speed
        ts = _finite(
            f"coalesce(TRY_CAST({x} AS TIMESTAMP), try_strptime({t}, [{_words(TIMESTAMP_FORMATS)}]))"
        )
        return ts if kind == "timestamp" else f"CAST({ts} AS DATE)"
    if kind == "phone":  # mainland mobile: 11 digits from 1, after +86/0086 and separators
        digits = rf"regexp_replace({x}, '[\s\-().]', '', 'g')"
        general = rf"nullif(regexp_extract({digits}, '^(?:\+?86|0086)?(1\d{{10}})$', 1), '')"
        # most numbers are already 11 plain digits: no regular expression for those
        plain = f"length({x}) = 11 AND starts_with({x}, '1') AND ltrim({x}, '0123456789') = ''"
        return f"CASE WHEN {plain} THEN {x} ELSE {general} END"
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


def read_value_sql(kind: Kind, x: str) -> str:
    """SQL turning ``x``, read by the CSV reader as ``READ_TYPES[kind]``, into a ``kind`` value:
    what :func:`parse_sql` gives for the text the reader read."""
    value = _finite(x) if kind in FINITE_KINDS else x
    return f"CAST({value} AS DATE)" if kind == "date" else value


def _finite(value: str) -> str:
    """``value`` where it is finite, else NULL (NaN and infinities do not parse)."""
    return f"CASE WHEN isfinite({value}) THEN {value} END"


def json_object_sql(pairs: list[tuple[str, str]]) -> str:
    """``json_object`` of (key, SQL value) pairs, chunked because a call's arguments are limited."""
    parts = [
        "json_object(" + ", ".join(f"{lit(k)}, {v}" for k, v in pairs[i : i + 40]) + ")"
        for i in range(0, len(pairs), 40)
    ] or ["json_object()"]
    return parts[0] if len(parts) == 1 else "json_merge_patch(" + ", ".join(parts) + ")"
