"""Reconciliation (D5): check a 10 % sample of a source file against the warehouse.

The sample is re-read independently of the loader: plain Python (``csv``, ``python-calamine``) and
a Python re-statement of the documented value rules (``docs/loading.md``, ``docs/quality.md``), not
the loader's SQL. Each sampled row must then be one of:

- **matched** — its key is in the table and every compared column holds the value the rules give;
- **quarantined** — the quarantine of the load holds a *rejected* record for its line;
- **merged** — another row of the file with the same key won (the newest by the spec's
  ``updated_column``, else the last in the file) and the key is in the table;

otherwise it is **mismatched** (key found, a value differs) or **missing** (key not found), with
examples naming the line, the column, the expected and the found value.

A record's empty ``customer_id`` that identity resolution filled (an ``identity_map`` entry
``matched`` by phone or e-mail) is expected to hold that customer. Compared: every mapped column. Not compared: derived columns (``Derive``), values the quarantine
says were inferred, and the audit columns. A value the quarantine says was *cleared* must be empty.
Reconcile the export that was loaded last: a newer export's rows legitimately replace older ones.

>>> normalise("phone", " +86 138-0000-0002 ")
'13800000002'
>>> normalise("timestamp", "2019年3月5日 10:21")
datetime.datetime(2019, 3, 5, 10, 21)
>>> normalise("money", "1,234.50"), normalise("bool", "是"), normalise("int", "3.5")
(1234.5, True, None)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
from python_calamine import CalamineWorkbook

from crmlens.errors import ConfigError, SourceError
from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.formats import cell_text
from crmlens.ingest.readers import canonical_encoding, detect_encoding
from crmlens.ingest.spec import SourceSpec
from crmlens.schema import TABLES
from crmlens.schema import table as schema_table
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading import TIMESTAMP_FORMATS
from crmlens.warehouse.migrations import META_TABLE

#: The default seed: the same seed samples the same lines of the same file.
DEFAULT_SEED = 20211231
#: Examples kept per outcome and source.
MAX_EXAMPLES = 5

_TRUE = frozenset({"true", "t", "yes", "y", "1", "是"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "否"})
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"(?:\+?86|0086)?(1[0-9]{10})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass
class SourceReconciliation:
    """The outcome of one source's sample; ``ok`` when nothing is mismatched or missing."""

    source: str
    table: str
    rows_in_file: int = 0
    sampled: int = 0
    matched: int = 0
    mismatched: int = 0
    missing: int = 0
    quarantined: int = 0
    merged: int = 0
    #: Up to :data:`MAX_EXAMPLES` per problem: line, key, outcome, column, expected, found.
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and self.missing == 0

    @property
    def accounted(self) -> bool:
        """Every sampled row has exactly one outcome."""
        outcomes = self.matched + self.mismatched + self.missing + self.quarantined + self.merged
        return outcomes == self.sampled


@dataclass(frozen=True)
class Reconciliation:
    """The reconciliation of several sources of one export."""

    load_id: str | None
    fraction: float
    seed: int
    sources: tuple[SourceReconciliation, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources)

    def totals(self) -> dict[str, int]:
        fields = ("rows_in_file", "sampled", "matched", "mismatched", "missing", "quarantined")
        return {f: sum(getattr(s, f) for s in self.sources) for f in (*fields, "merged")}

    def frame(self) -> pd.DataFrame:
        """One row per source with its counts."""
        cols = ("source", "table", "rows_in_file", "sampled", "matched", "mismatched", "missing")
        cols += ("quarantined", "merged")
        return pd.DataFrame([{c: getattr(s, c) for c in cols} | {"ok": s.ok} for s in self.sources])


# -- value rules, restated in Python --------------------------------------------------------
def normalise(kind: str, text: str | None, salt: str = "") -> Any:
    """The value the loader's rule for ``kind`` gives for the source text (None: empty or bad)."""
    if text is None:
        return None
    t = text.strip(" ") or None  # the loader trims spaces (SQL trim), nothing else
    if kind == "string":
        return t
    if t is None:
        return None
    if kind == "int":
        number = _number(t)
        return int(number) if number is not None and number.is_integer() else None
    if kind in ("float", "money"):
        return _number(t, commas=True)
    if kind == "bool":
        word = t.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    if kind in ("timestamp", "date"):
        stamp = _timestamp(t.strip())
        return stamp if stamp is None or kind == "timestamp" else stamp.date()
    if kind == "phone":
        match = _PHONE.fullmatch(_PHONE_SEPARATORS.sub("", text))
        return match.group(1) if match else None
    if kind == "email":
        lowered = t.lower()
        return lowered if _EMAIL.fullmatch(lowered) else None
    if kind == "anon_id":
        return hashlib.sha256((salt + t).encode()).hexdigest()[:16]
    if kind in ("period_start", "period_end"):
        return _period(t.upper(), kind == "period_end")
    raise ConfigError(f"unknown value kind {kind!r}")


def _number(text: str, *, commas: bool = False) -> float | None:
    for candidate in (text, text.replace(",", "")) if commas else (text,):
        try:
            value = float(candidate)
        except ValueError:
            continue
        return value if math.isfinite(value) else None
    return None


def _timestamp(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
        return stamp.replace(tzinfo=None) if stamp.tzinfo is None else None
    except ValueError:
        pass
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _period(p: str, end: bool) -> date | None:
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", p):
        start, months = date(int(p[:4]), int(p[5:7]), 1), 1
    elif re.fullmatch(r"\d{4}-Q[1-4]", p):
        start, months = date(int(p[:4]), int(p[6]) * 3 - 2, 1), 3
    elif re.fullmatch(r"\d{4}", p):
        start, months = date(int(p), 1, 1), 12
    else:
        return None
    if not end:
        return start
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


# -- reading the source again ---------------------------------------------------------------
#: Quarantine records by (line, action): the record's row (source header -> value) and ``column``.
_Notes = dict[tuple[int, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Record:
    line: int
    values: dict[str, str | None]  # source header -> text


def _csv_records(path: Path, spec: SourceSpec) -> Iterator[_Record]:
    encoding = detect_encoding(path) if spec.encoding == "auto" else spec.encoding
    encoding = canonical_encoding(encoding)
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is not part of the first header
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=spec.delimiter, quotechar='"', doublequote=True)
        headers: list[str] = []
        for row in reader:
            if reader.line_num == spec.header_row:
                headers = [h.strip() for h in row]
                break
        start = reader.line_num + 1
        for row in reader:
            if row:
                # an unquoted empty field is a missing value (as DuckDB's reader reads it)
                yield _Record(
                    start, {h: (v if v != "" else None) for h, v in zip(headers, row, strict=False)}
                )
            start = reader.line_num + 1


def _excel_records(path: Path, spec: SourceSpec) -> Iterator[_Record]:
    book = CalamineWorkbook.from_path(str(path))
    sheet = book.get_sheet_by_name(spec.sheet) if spec.sheet else book.get_sheet_by_index(0)
    grid = sheet.to_python(skip_empty_area=False)
    headers = [str(h).strip() for h in grid[spec.header_row - 1]]
    for line, row in enumerate(grid[spec.header_row :], start=spec.header_row + 1):
        if any(cell not in ("", None) for cell in row):
            yield _Record(line, {h: cell_text(v) for h, v in zip(headers, row, strict=False) if h})


def _records(export_dir: Path, spec: SourceSpec) -> list[_Record]:
    """The source's data records; an unpivoting spec yields one record per non-empty cell."""
    path = export_dir.joinpath(*spec.path.split("/"))
    if not path.is_file():
        raise SourceError(f"missing file (expected for table {spec.table})", path=path)
    rows = list(_excel_records(path, spec) if spec.format == "excel" else _csv_records(path, spec))
    if spec.unpivot is None:
        return rows
    u, out = spec.unpivot, []
    for rec in rows:
        rest = {h: v for h, v in rec.values.items() if h not in u.columns}
        for name in u.columns:
            if rec.values.get(name) is not None:
                out.append(_Record(rec.line, rest | {u.name: name, u.value: rec.values[name]}))
    return out


# -- comparing ------------------------------------------------------------------------------
def reconcile(
    wh: Warehouse,
    export_dir: Path,
    specs: SourceSpec | Sequence[SourceSpec] = DEMO_SOURCES,
    *,
    fraction: float = 0.1,
    seed: int = DEFAULT_SEED,
) -> Reconciliation:
    """Sample ``fraction`` of each source's rows (at least one) and check them in ``wh``.

    The sample of a source depends only on ``seed``, its path and table, and its row count.
    Quarantine records are those of the newest load that read the source.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"the sample fraction must be in (0, 1], got {fraction}")
    chosen = (specs,) if isinstance(specs, SourceSpec) else tuple(specs)
    salt = _salt(wh)
    results = []
    load_id = None
    for spec in chosen:
        source_load = _latest_load(wh, spec)
        load_id = load_id or source_load
        results.append(
            _reconcile_source(wh, Path(export_dir), spec, source_load, fraction, seed, salt)
        )
    return Reconciliation(load_id, fraction, seed, tuple(results))


def _reconcile_source(
    wh: Warehouse,
    export_dir: Path,
    spec: SourceSpec,
    load_id: str | None,
    fraction: float,
    seed: int,
    salt: str,
) -> SourceReconciliation:
    tbl = schema_table(spec.table)
    records = _records(export_dir, spec)
    out = SourceReconciliation(spec.path, spec.table, rows_in_file=len(records))
    if not records:
        return out
    rng = random.Random(f"{seed}:{spec.path}:{spec.table}")
    size = min(len(records), max(1, math.ceil(fraction * len(records))))
    sample = sorted(rng.sample(range(len(records)), size))
    out.sampled = size
    # every row's key (and update time) decides the winners; only the sample is parsed whole
    deciding = {*tbl.primary_key, *([spec.updated_column] if spec.updated_column else [])}
    parse_keys, parse = _Parser(spec, salt, deciding), _Parser(spec, salt)
    parsed = [parse_keys(r) for r in records]
    notes = _quarantine(wh, spec, load_id)
    matched_ids = _identity_matches(wh, spec.table)

    def key_of(row: dict[str, Any]) -> tuple[Any, ...] | None:
        key = tuple(row.get(k) for k in tbl.primary_key)
        return None if any(k is None for k in key) else key

    # the winner of each key among the rows not rejected: newest by updated_column, else last
    winners: dict[tuple[Any, ...], int] = {}
    upd = spec.updated_column
    for i, (rec, row) in enumerate(zip(records, parsed, strict=True)):
        key = key_of(row)
        if key is None or _is_rejected(rec, spec, notes):
            continue
        best = winners.get(key)
        if best is None or _newer(row, parsed[best], upd):
            winners[key] = i
    found = _warehouse_rows(wh, spec, [key_of(parsed[i]) for i in sample])
    for i in sample:
        rec, row = records[i], parse(records[i])
        key = key_of(row)
        if _is_rejected(rec, spec, notes):
            out.quarantined += 1
            continue
        stored = found.get(key) if key is not None else None
        if stored is None:
            out.missing += 1
            _example(out, rec, key, "missing", None, None, None)
        elif winners.get(key) != i:
            out.merged += 1
        else:
            if row.get("customer_id") is None and key is not None and len(key) == 1:
                # identity resolution (D4) may tie a record without a card to a customer
                row["customer_id"] = matched_ids.get(str(key[0]))
            diffs = _differences(spec, rec, row, stored, notes)
            if diffs:
                out.mismatched += 1
                column, expected, got = diffs[0]
                _example(out, rec, key, "mismatched", column, expected, got)
            else:
                out.matched += 1
    return out


def _newer(row: dict[str, Any], best: dict[str, Any], upd: str | None) -> bool:
    """Whether ``row`` (later in the file) beats ``best``: newer ``upd``, NULLs last, ties later."""
    if upd is None:
        return True
    a, b = row.get(upd), best.get(upd)
    if a is None:
        return b is None
    return b is None or a >= b


class _Parser:
    """The canonical values of records (of the columns ``only``) per the documented rules."""

    def __init__(self, spec: SourceSpec, salt: str, only: set[str] | None = None) -> None:
        self.salt = salt
        self.columns = [
            (col.target, spec.kind(col), col.source, col.value)
            for col in spec.columns
            if only is None or col.target in only
        ]

    def __call__(self, rec: _Record) -> dict[str, Any]:
        get, salt = rec.values.get, self.salt
        return {
            target: normalise(kind, get(source) if source else value, salt)
            for target, kind, source, value in self.columns
        }


def _notes_for(rec: _Record, spec: SourceSpec, notes: _Notes, action: str) -> list[dict[str, Any]]:
    """The quarantine records of ``rec``'s line with ``action``.

    An unpivoted line holds several long rows: a record's row names the one it is about.
    """
    found = notes.get((rec.line, action), [])
    if spec.unpivot is None:
        return found
    name = spec.unpivot.name
    return [n for n in found if n.get(name) in (None, rec.values.get(name))]


def _is_rejected(rec: _Record, spec: SourceSpec, notes: _Notes) -> bool:
    return bool(_notes_for(rec, spec, notes, "rejected"))


def _differences(
    spec: SourceSpec,
    rec: _Record,
    row: dict[str, Any],
    stored: dict[str, Any],
    notes: _Notes,
) -> list[tuple[str, Any, Any]]:
    """(column, expected, found) for every compared column that differs."""
    cleared = {n["column"] for n in _notes_for(rec, spec, notes, "cleared")}
    inferred = {n["column"] for n in _notes_for(rec, spec, notes, "inferred")}
    diffs = []
    for col in spec.columns:
        if col.source in inferred or col.target in inferred:
            continue
        expected = row[col.target]
        if col.source in cleared or col.target in cleared:
            expected = None
        got = stored.get(col.target)
        if not _same(expected, got):
            diffs.append((col.target, expected, got))
    return diffs


def _same(expected: Any, got: Any) -> bool:
    if got is None or (not isinstance(got, str) and pd.isna(got)):
        return expected is None
    if expected is None:
        return False
    if isinstance(expected, bool):
        return bool(got) == expected
    if isinstance(expected, float | int) and not isinstance(got, str):
        return math.isclose(float(expected), float(got), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, datetime):
        return pd.Timestamp(got) == pd.Timestamp(expected)
    if isinstance(expected, date):
        return pd.Timestamp(got).date() == expected
    return str(got) == str(expected)


def _example(
    out: SourceReconciliation,
    rec: _Record,
    key: tuple[Any, ...] | None,
    outcome: str,
    column: str | None,
    expected: Any,
    found: Any,
) -> None:
    if len(out.examples) < MAX_EXAMPLES:
        out.examples.append(
            {
                "line": rec.line,
                "key": None if key is None else "|".join(str(k) for k in key),
                "outcome": outcome,
                "column": column,
                "expected": None if expected is None else str(expected),
                "found": None if found is None or pd.isna(found) else str(found),
            }
        )


# -- warehouse side -------------------------------------------------------------------------
def _salt(wh: Warehouse) -> str:
    """The warehouse's salt for anonymised IDs (empty before the first load)."""
    meta = wh.backend.table(META_TABLE)
    got = wh.execute(meta.filter(meta.key == "anon_salt").select("value"))
    return "" if got.empty else str(got["value"].iloc[0])


def _identity_matches(wh: Warehouse, table_name: str) -> dict[str, str]:
    """Record key -> customer_id set by identity resolution (a phone or e-mail match)."""
    if "identity_map" not in TABLES or "customer_id" not in schema_table(table_name).column_names:
        return {}
    m = wh.table("identity_map")
    mine = m.filter(
        (m.source_table == table_name) & (m.outcome == "matched") & (m.rule != "member_card")
    )
    got = wh.execute(mine.select("source_key", "customer_id"))
    return dict(zip(got["source_key"], got["customer_id"], strict=True))


def _latest_load(wh: Warehouse, spec: SourceSpec) -> str | None:
    """The newest load that read ``spec``'s file into its table."""
    log = wh.table("load_log")
    mine = log.filter((log.table_name == spec.table) & log.source.contains(spec.path))
    newest = mine.order_by([ibis.desc(mine.started_at), ibis.desc(mine.load_id)]).limit(1)
    got = wh.execute(newest.select("load_id"))
    return None if got.empty else str(got["load_id"].iloc[0])


def _quarantine(wh: Warehouse, spec: SourceSpec, load_id: str | None) -> _Notes:
    """The load's quarantine records of this source by (line, action): column and row values."""
    if load_id is None:
        return {}
    q = wh.table("quarantine")
    mine = q.filter((q.load_id == load_id) & (q.table_name == spec.table) & (q.source == spec.path))
    got = wh.execute(mine.select("line_no", "action", "column_name", "row_json"))
    out: _Notes = {}
    for line, action, column, row_json in got.itertuples(index=False):
        row = json.loads(row_json) if row_json else {}
        out.setdefault((int(line), action), []).append(row | {"column": column})
    return out


def _warehouse_rows(
    wh: Warehouse, spec: SourceSpec, keys: list[tuple[Any, ...] | None]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The stored rows of the sampled keys, by key (one query, filtered on the first key column)."""
    tbl = schema_table(spec.table)
    wanted = {k for k in keys if k is not None}
    if not wanted:
        return {}
    t = wh.table(spec.table)
    first = tbl.primary_key[0]
    # a semi-join on a memory table: an IN list of thousands of literals is slow to compile
    firsts = ibis.memtable(
        pd.DataFrame({first: sorted({k[0] for k in wanted})}), schema={first: t[first].type()}
    )
    got = wh.execute(t.semi_join(firsts, first))
    out = {}
    for row in got.to_dict("records"):
        key = tuple(_key_part(row[k], tbl.column(k).type) for k in tbl.primary_key)
        if key in wanted:
            out[key] = row
    return out


def _key_part(value: Any, logical_type: str) -> Any:
    """A stored key value in the form :func:`normalise` gives (Python date, datetime, int)."""
    if logical_type == "date":
        return pd.Timestamp(value).date()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
