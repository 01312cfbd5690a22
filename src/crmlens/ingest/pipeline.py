"""``crmlens ingest``: propose a mapping, profile the columns, dry-run or load a source.

:func:`ingest` loads the prepared sources of one file (or folder/glob of same-shaped files) in one
warehouse transaction, all or nothing, with the row accounting of the loader. :func:`dry_run` does
the same into a throw-away warehouse and returns the accounting, the quarantine by rule with
examples, and the first loaded rows: exactly what a real load would do, without touching the
user's warehouse.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from crmlens.ingest.files import FILE_COLUMN, LINE_COLUMN, IngestProgress, RawTable
from crmlens.ingest.load import LoadReport, load_sources
from crmlens.ingest.mapping import (
    NULL_TOKENS,
    Suggestion,
    sniff_values,
    suggest_kind,
    suggest_mapping,
    value_fits,
)
from crmlens.ingest.mapping_file import IngestMapping
from crmlens.ingest.prepare import prepare
from crmlens.warehouse import Warehouse


@dataclass(frozen=True)
class ColumnProfile:
    """One source column over all rows: its sniffed kind and how many values do not fit it."""

    header: str
    kind: str
    non_empty: int
    blank: int  # empty or only spaces
    null_tokens: int  # NULL, NA, N/A, -, 无, …
    misfits: int  # non-empty values that are not ``kind``
    examples: tuple[str, ...]  # a few misfits or null tokens, as found


def _misfits(kind: str, counts: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(NULL-like values, values not fitting ``kind``, a few examples) over value counts."""
    nulls = misfits = 0
    examples: list[str] = []
    for item in counts:
        value, n = item["values"], item["counts"]
        if not value:
            continue
        if value.lower() in NULL_TOKENS:
            nulls += n
        elif kind not in ("string", "empty") and not value_fits(kind, value):
            misfits += n
        else:
            continue
        if len(examples) < 3:
            examples.append(value)
    return nulls, misfits, examples


def profile(raw: RawTable) -> list[ColumnProfile]:
    """A :class:`ColumnProfile` per header: the kind from a sample (widened from int to float
    when later rows need it), the counts over every row."""
    sample = raw.sample()
    out = []
    for i, h in enumerate(raw.headers):
        kind = sniff_values([r[i] for r in sample]).kind
        col = raw.arrow.column(h)
        trimmed = pc.utf8_trim_whitespace(col)
        blank = col.null_count + (pc.sum(pc.equal(trimmed, "")).as_py() or 0)
        counts = pc.value_counts(pc.drop_null(trimmed).combine_chunks()).to_pylist()
        nulls, misfits, examples = _misfits(kind, counts)
        if kind == "int" and misfits:
            wider = _misfits("float", counts)
            if wider[1] < misfits:
                kind, (nulls, misfits, examples) = "float", wider
        out.append(ColumnProfile(h, kind, raw.rows - blank, blank, nulls, misfits, tuple(examples)))
    return out


def propose(raw: RawTable, kind: str | None) -> Suggestion:
    """The suggested mapping of ``raw`` onto ``kind`` (or onto the best-fitting kind)."""
    sample = raw.sample()
    return suggest_mapping(raw.headers, sample, kind) if kind else suggest_kind(raw.headers, sample)


def ingest(
    warehouse: Warehouse,
    raw: RawTable,
    mapping: IngestMapping,
    *,
    progress: IngestProgress | None = None,
) -> LoadReport:
    """Load ``raw`` with ``mapping`` (and the tables it derives), all or nothing."""
    if progress:
        progress("clean", 0, 1, 0)
    sources = prepare(raw, mapping)
    if progress:
        progress("clean", 1, 1, raw.rows)
    if progress is None:
        return load_sources(warehouse, None, sources)
    # rows before each source: the loader reads every row of an Arrow source (rows_read)
    sizes = (s.rows.arrow.num_rows if s.rows.arrow is not None else 0 for s in sources)
    before = list(accumulate(sizes, initial=0))
    bars = progress
    return load_sources(
        warehouse, None, sources, progress=lambda step, done, n: bars(step, done, n, before[done])
    )


@dataclass
class DryRun:
    """What loading would do: the accounting, the quarantine and the first loaded rows."""

    report: LoadReport
    #: (table, source, rule, action) → count, over the quarantine records.
    quarantine: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: A few quarantine records: table, line, column, rule, action, original value, source file.
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: table → the first loaded rows (canonical columns, audit columns dropped).
    preview: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def dry_run(
    raw: RawTable,
    mapping: IngestMapping,
    *,
    preview_rows: int = 5,
    progress: IngestProgress | None = None,
) -> DryRun:
    """Load into a temporary warehouse and report; the user's warehouse is never opened."""
    with (
        tempfile.TemporaryDirectory(prefix="crmlens-dry-") as tmp,
        Warehouse(Path(tmp) / "dry.duckdb") as wh,
    ):
        report = ingest(wh, raw, mapping, progress=progress)
        quarantine = wh.table("quarantine")
        counts = wh.execute(
            quarantine.group_by(["table_name", "source", "rule", "action"]).aggregate(
                n=quarantine.count()
            )
        )
        out = DryRun(report)
        for r in counts.itertuples(index=False):
            out.quarantine[(r.table_name, r.source, r.rule, r.action)] = int(r.n)
        first = quarantine.order_by(["table_name", "line_no"]).limit(10)
        for r in wh.to_arrow(first).to_pylist():
            row = r.get("row_json") or ""
            out.examples.append(
                {
                    k: r[k]
                    for k in (
                        "table_name",
                        "line_no",
                        "column_name",
                        "rule",
                        "action",
                        "original_value",
                    )
                }
                | {"file": _file_of(row)}
            )
        for name in dict.fromkeys(s.table for s in report.sources):
            t = wh.table(name)
            cols = [c for c in t.columns if c not in ("load_id", "loaded_at")]
            out.preview[name] = wh.to_arrow(t.select(cols).limit(preview_rows)).to_pylist()
    return out


def _file_of(row_json: str) -> str | None:
    try:
        return json.loads(row_json).get(FILE_COLUMN)
    except (ValueError, AttributeError):
        return None


__all__ = [
    "LINE_COLUMN",
    "ColumnProfile",
    "DryRun",
    "dry_run",
    "ingest",
    "profile",
    "propose",
]
