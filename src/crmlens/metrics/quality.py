"""Data quality (D5): per-table figures, the load history with its row accounting, the quarantine.

Every function builds Ibis expressions over the canonical tables and the two system tables
(``load_log``, ``quarantine``) and lets the warehouse run them; labels come from the schema. What
each figure means is documented in ``docs/quality.md``.

- :func:`quality_report` — one row per data table: rows, missing values, duplicate keys, invalid
  values, quarantined rows, freshness and the trend over the last loads (the figures counted in
  the tables themselves are read from the derived table :data:`TABLE_FIGURES` when ``crmlens
  build`` wrote it after the last load: at millions of rows counting them takes seconds);
- :func:`duplicate_keys` — the report's duplicate-key counts alone (its slow part);
- :func:`load_history` — ``load_log`` per table and load, newest first, the accounting identity
  ``rows_read = rows_loaded + rows_quarantined + rows_merged`` checked on every row;
- :func:`loads` — the same summed per load;
- :func:`quarantine_summary` — quarantine records counted by table, source, column, rule, action;
- :func:`quarantine_records` — the records themselves (file, line, column, rule, original value).

``load_id`` arguments take a load ID, ``"latest"`` (the newest load) or ``None`` (every load).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis
import pandas as pd

from crmlens.metrics.facts import table, usable_derived
from crmlens.schema import Table, data_tables
from crmlens.schema import table as schema_table
from crmlens.warehouse.engines import ReadableWarehouse

#: The audit columns every data table carries: written by the loader, not part of the data.
AUDIT_COLUMNS = ("load_id", "loaded_at")
#: The columns of :func:`quality_report`, in order (the dashboard relies on these names).
QUALITY_COLUMNS = (
    "table", "label_zh", "label_en", "rows", "key_missing_pct", "missing_pct", "duplicate_keys",
    "invalid_values", "quarantined_last_load", "quarantined_total", "loads", "last_load_id",
    "last_loaded_at", "time_column", "latest_time", "days_since_latest", "trend_rows_read",
    "trend_quarantined_pct",
)  # fmt: skip
#: The columns of :func:`load_history`.
HISTORY_COLUMNS = (
    "load_id", "table", "label_zh", "label_en", "source", "started_at", "finished_at", "seconds",
    "rows_read", "rows_loaded", "rows_quarantined", "rows_merged", "status", "balanced",
)  # fmt: skip
#: The columns of :func:`loads`.
LOADS_COLUMNS = (
    "load_id", "started_at", "finished_at", "seconds", "tables", "rows_read", "rows_loaded",
    "rows_quarantined", "rows_merged", "status", "balanced",
)  # fmt: skip
#: The columns of :func:`quarantine_summary`.
SUMMARY_COLUMNS = (
    "table", "label_zh", "label_en", "source", "column_name", "rule", "action", "records", "lines",
    "first_line", "loads",
)  # fmt: skip
#: The columns of :func:`quarantine_records`.
RECORD_COLUMNS = (
    "load_id", "table_name", "source", "line_no", "column_name", "rule", "action",
    "original_value", "row_json",
)  # fmt: skip
_COUNTS = ("rows_read", "rows_loaded", "rows_quarantined", "rows_merged")
#: The derived table of the figures :func:`quality_report` counts in each data table.
TABLE_FIGURES = "derived__table_figures"


def quality_report(
    wh: ReadableWarehouse,
    *,
    as_of: date | None = None,
    trend_loads: int = 5,
    duplicates: bool = True,
) -> pd.DataFrame:
    """One row per data table (schema order) with the columns :data:`QUALITY_COLUMNS`.

    ``as_of`` is the day freshness is measured from (default: today); ``trend_loads`` how many of
    the newest loads the two trend columns cover (lists, oldest first). Without ``duplicates``,
    ``duplicate_keys`` is left NULL: counting distinct keys hashes every key of every table, most
    of the report's time at millions of rows, while the other figures are one plain scan each.
    """
    as_of = as_of or date.today()
    history = _load_log(wh)
    quarantine = _quarantine_counts(wh)
    counted = _stored_figures(wh)
    rows = []
    for tbl in data_tables():
        stored = None if counted is None else counted[tbl.name]
        figures = _table_figures(wh, tbl) if stored is None else _figures_of(tbl, stored)
        mine = history[history["table"] == tbl.name]
        last = mine.iloc[0] if len(mine) else None
        last_id = None if last is None else last["load_id"]
        mine_q = quarantine[quarantine["table_name"] == tbl.name]
        latest_time = figures["latest_time"]
        recent = mine.head(trend_loads).iloc[::-1]
        rows.append(
            {
                "table": tbl.name,
                "label_zh": tbl.label_zh,
                "label_en": tbl.label_en,
                **{k: v for k, v in figures.items() if k != "latest_time"},
                "duplicate_keys": _duplicates(wh, tbl, stored) if duplicates else None,
                "invalid_values": int(
                    mine_q.loc[
                        (mine_q["load_id"] == last_id) & (mine_q["action"] != "rejected"), "n"
                    ].sum()
                ),
                "quarantined_last_load": 0 if last is None else int(last["rows_quarantined"]),
                "quarantined_total": int(mine["rows_quarantined"].sum()),
                "loads": int(mine["load_id"].nunique()),
                "last_load_id": last_id,
                "last_loaded_at": None if last is None else last["finished_at"],
                "time_column": tbl.time_column,
                "latest_time": latest_time,
                "days_since_latest": None
                if latest_time is None
                else (as_of - pd.Timestamp(latest_time).date()).days,
                "trend_rows_read": [int(n) for n in recent["rows_read"]],
                "trend_quarantined_pct": [
                    _pct(q, r)
                    for q, r in zip(recent["rows_quarantined"], recent["rows_read"], strict=True)
                ],
            }
        )
    out = pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))
    out["days_since_latest"] = out["days_since_latest"].astype("Int64")
    if not duplicates:
        out["duplicate_keys"] = out["duplicate_keys"].astype("Int64")
    return out


def missing_by_column(wh: ReadableWarehouse, table_name: str) -> pd.DataFrame:
    """Per column of one table (audit columns left out): label, required, missing rows and %."""
    tbl = schema_table(table_name)
    t = wh.table(tbl.name)
    cols = [c for c in tbl.columns if c.name not in AUDIT_COLUMNS]
    aggs = {"__rows": t.count()} | {
        f"m{i}": t.count(where=t[c.name].isnull()) for i, c in enumerate(cols)
    }
    got = wh.execute(t.aggregate(**aggs)).iloc[0]
    total = int(got["__rows"])
    return pd.DataFrame(
        [
            {
                "column": c.name,
                "label_zh": c.label_zh,
                "label_en": c.label_en,
                "required": not c.nullable,
                "missing": int(got[f"m{i}"]),
                "missing_pct": _pct(int(got[f"m{i}"]), total),
            }
            for i, c in enumerate(cols)
        ]
    )


def duplicate_keys(wh: ReadableWarehouse) -> pd.DataFrame:
    """``table`` and ``duplicate_keys`` per data table (schema order): the column
    :func:`quality_report` leaves NULL without ``duplicates``, on its own (the dashboard shows the
    rest of the report first and adds these when they are counted)."""
    counted = _stored_figures(wh) or {}
    return pd.DataFrame(
        [(tbl.name, _duplicates(wh, tbl, counted.get(tbl.name))) for tbl in data_tables()],
        columns=["table", "duplicate_keys"],
    )


def figures_table(wh: ReadableWarehouse) -> ibis.Table:
    """The expression of :data:`TABLE_FIGURES`: one row per data table with ``table``, ``rows``,
    ``missing_cells`` and ``required_missing`` (NULL values among all, and among the required
    columns), ``latest`` (the time column's latest value) and ``keys`` (distinct primary keys)."""
    parts = []
    for tbl in data_tables():
        t = table(wh, tbl.name)  # type: ignore[arg-type]
        cols, required = _figure_columns(tbl)
        latest = (
            t[tbl.time_column].max().cast("timestamp")
            if tbl.time_column
            else ibis.null("timestamp")
        )
        one = t.aggregate(
            table=ibis.literal(tbl.name),
            rows=t.count(),
            missing_cells=_nulls(t, cols),
            required_missing=_nulls(t, required),
            latest=latest,
        )
        keys = t.select(*tbl.primary_key).distinct().aggregate(keys=ibis._.count())
        parts.append(one.cross_join(keys))
    return ibis.union(*parts).order_by("table")


def _nulls(t: ibis.Table, cols: list[Any]) -> ibis.Value:
    """NULL values in the columns ``cols`` of ``t``, all together (0 without columns or rows)."""
    return sum((t.count(where=t[c.name].isnull()) for c in cols), ibis.literal(0, "int64"))


def _stored_figures(wh: ReadableWarehouse) -> dict[str, dict[str, Any]] | None:
    """:data:`TABLE_FIGURES` by table name when it is usable (a build wrote it after the last
    load), else None."""
    copy = usable_derived(wh).get(TABLE_FIGURES)  # type: ignore[arg-type]
    if copy is None:
        return None
    frame = wh.execute(copy)
    return {r["table"]: r for r in frame.to_dict(orient="records")}


def _duplicates(wh: ReadableWarehouse, tbl: Table, stored: dict[str, Any] | None) -> int:
    """Duplicate keys of one table: from its row of :data:`TABLE_FIGURES`, else counted."""
    if stored is None:
        return _duplicate_keys(wh, tbl)
    return int(stored["rows"] - stored["keys"])


def _figures_of(tbl: Table, stored: dict[str, Any]) -> dict[str, Any]:
    """:func:`_table_figures` from a row of :data:`TABLE_FIGURES`."""
    cols, required = _figure_columns(tbl)
    rows, latest = int(stored["rows"]), stored["latest"]
    return {
        "rows": rows,
        "key_missing_pct": _pct(int(stored["required_missing"]), rows * len(required)),
        "missing_pct": _pct(int(stored["missing_cells"]), rows * len(cols)),
        "latest_time": None if latest is None or pd.isna(latest) else pd.Timestamp(latest),
    }


def _figure_columns(tbl: Table) -> tuple[list[Any], list[Any]]:
    """The columns a table's missing values are counted in (audit columns left out), and the
    required ones among them (not nullable, or part of the key)."""
    cols = [c for c in tbl.columns if c.name not in AUDIT_COLUMNS]
    required = [c for c in cols if not c.nullable or c.name in tbl.primary_key]
    return cols, required


def load_history(wh: ReadableWarehouse, limit: int = 50) -> pd.DataFrame:
    """``load_log`` rows of the newest ``limit`` loads, newest first (:data:`HISTORY_COLUMNS`).

    ``balanced`` is the accounting identity of the row: read = loaded + quarantined + merged.
    """
    history = _load_log(wh)
    keep = history["load_id"].drop_duplicates().head(limit)
    return history[history["load_id"].isin(keep)].reset_index(drop=True)


def loads(wh: ReadableWarehouse, limit: int = 20) -> pd.DataFrame:
    """One row per load, newest first (:data:`LOADS_COLUMNS`): its tables' counts summed."""
    history = load_history(wh, limit)
    if history.empty:
        return pd.DataFrame(columns=list(LOADS_COLUMNS))
    grouped = history.groupby("load_id", sort=False)
    out = grouped.agg(
        started_at=("started_at", "min"),
        finished_at=("finished_at", "max"),
        tables=("table", "nunique"),
        **{c: (c, "sum") for c in _COUNTS},
        balanced=("balanced", "all"),
        status=("status", lambda s: "ok" if (s == "ok").all() else "failed"),
    ).reset_index()
    out["seconds"] = (out["finished_at"] - out["started_at"]).dt.total_seconds()
    return out[list(LOADS_COLUMNS)]


def latest_load_id(wh: ReadableWarehouse) -> str | None:
    """The ID of the newest load in ``load_log`` (None before the first load)."""
    log = wh.table("load_log")
    newest = log.order_by([ibis.desc(log.started_at), ibis.desc(log.load_id)]).limit(1)
    got = wh.execute(newest.select("load_id"))
    return None if got.empty else str(got["load_id"].iloc[0])


def quarantine_summary(wh: ReadableWarehouse, load_id: str | None = None) -> pd.DataFrame:
    """Quarantine records counted by table, source, column, rule and action (most first).

    ``records`` counts records (a rejected row is one record; each cleared or inferred value is
    one), ``lines`` the distinct source lines, ``loads`` the loads they came from.
    """
    q = _quarantine_filtered(wh, load_id=load_id)
    keys = ["table_name", "source", "column_name", "rule", "action"]
    expr = q.group_by(keys).aggregate(
        records=q.count(),
        lines=q.line_no.nunique(),
        first_line=q.line_no.min(),
        loads=q.load_id.nunique(),
    )
    got = wh.execute(expr.order_by([ibis.desc("records"), *keys]))
    got = got.rename(columns={"table_name": "table"})
    got.insert(1, "label_zh", got["table"].map(lambda n: schema_table(n).label_zh))
    got.insert(2, "label_en", got["table"].map(lambda n: schema_table(n).label_en))
    for col in ("records", "lines", "first_line", "loads"):
        got[col] = got[col].astype("int64")
    return got[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def quarantine_records(
    wh: ReadableWarehouse,
    *,
    table: str | None = None,
    rule: str | None = None,
    load_id: str | None = "latest",
    limit: int | None = None,
) -> pd.DataFrame:
    """The quarantine records (:data:`RECORD_COLUMNS`): newest load first, then by file and line."""
    if table is not None:
        schema_table(table)  # ConfigError listing the tables for an unknown name
    q = _quarantine_filtered(wh, load_id=load_id, table=table, rule=rule)
    # newest by the load's start time: load IDs of two loads in one second do not sort by time
    log = wh.table("load_log")
    starts = log.group_by("load_id").aggregate(load_started=log.started_at.min())
    q = q.left_join(starts, "load_id").select(q, "load_started")
    newest = [ibis.desc(q.load_started), ibis.desc(q.load_id)]
    expr = q.order_by([*newest, q.table_name, q.source, q.line_no, q.column_name])
    if limit is not None:
        expr = expr.limit(limit)
    got = wh.execute(expr.select(*RECORD_COLUMNS))
    got["line_no"] = got["line_no"].astype("int64")
    return got.reset_index(drop=True)


# -- internals ------------------------------------------------------------------------------
def _pct(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole``, rounded to 2 places; 0 for an empty whole."""
    return round(100.0 * part / whole, 2) if whole else 0.0


def _duplicate_keys(wh: ReadableWarehouse, tbl: Table) -> int:
    """Rows of one table beyond the first with the same primary key: rows - distinct keys."""
    t = wh.table(tbl.name)
    if len(tbl.primary_key) == 1:
        got = wh.execute(t.aggregate(rows=t.count(), keys=t[tbl.primary_key[0]].nunique()))
        return int(got["rows"].iloc[0]) - int(got["keys"].iloc[0])
    # several key columns: count the distinct combinations
    keys = int(wh.execute(t.select(*tbl.primary_key).distinct().count()))
    return int(wh.execute(t.count())) - keys


def _table_figures(wh: ReadableWarehouse, tbl: Table) -> dict[str, Any]:
    """Rows, missing values and the latest business time of one table (one scan)."""
    t = wh.table(tbl.name)
    cols, required = _figure_columns(tbl)
    aggs: dict[str, Any] = {"rows": t.count()}
    aggs |= {f"m{i}": t.count(where=t[c.name].isnull()) for i, c in enumerate(cols)}
    if tbl.time_column:
        aggs["latest"] = t[tbl.time_column].max()
    got = wh.execute(t.aggregate(**aggs)).iloc[0]
    rows = int(got["rows"])
    missing = {c.name: int(got[f"m{i}"]) for i, c in enumerate(cols)}
    latest = got["latest"] if tbl.time_column else None
    return {
        "rows": rows,
        "key_missing_pct": _pct(sum(missing[c.name] for c in required), rows * len(required)),
        "missing_pct": _pct(sum(missing.values()), rows * len(cols)),
        "latest_time": None if latest is None or pd.isna(latest) else pd.Timestamp(latest),
    }


def _load_log(wh: ReadableWarehouse) -> pd.DataFrame:
    """``load_log`` as :data:`HISTORY_COLUMNS`, newest load first, tables in schema order."""
    log = wh.table("load_log")
    got = wh.execute(log.order_by([ibis.desc(log.started_at), ibis.desc(log.load_id)]))
    got = got.rename(columns={"table_name": "table"})
    if got.empty:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    # the loads' own order (newest first), then tables as declared: a stable, readable listing
    load_rank = {lid: i for i, lid in enumerate(got["load_id"].drop_duplicates())}
    order = {name: i for i, name in enumerate(t.name for t in data_tables())}
    got = got.assign(
        _load=got["load_id"].map(load_rank), _table=got["table"].map(lambda n: order.get(n, 99))
    ).sort_values(["_load", "_table"], kind="stable")
    for col in _COUNTS:
        got[col] = got[col].fillna(0).astype("int64")
    got["label_zh"] = got["table"].map(lambda n: schema_table(n).label_zh)
    got["label_en"] = got["table"].map(lambda n: schema_table(n).label_en)
    got["seconds"] = (got["finished_at"] - got["started_at"]).dt.total_seconds()
    got["balanced"] = got["rows_read"] == (
        got["rows_loaded"] + got["rows_quarantined"] + got["rows_merged"]
    )
    return got[list(HISTORY_COLUMNS)].reset_index(drop=True)


def _quarantine_counts(wh: ReadableWarehouse) -> pd.DataFrame:
    """Quarantine records per table, load and action (column ``n``)."""
    q = wh.table("quarantine")
    return wh.execute(q.group_by(["table_name", "load_id", "action"]).aggregate(n=q.count()))


def _quarantine_filtered(
    wh: ReadableWarehouse,
    *,
    load_id: str | None,
    table: str | None = None,
    rule: str | None = None,
) -> ibis.Table:
    q = wh.table("quarantine")
    if load_id == "latest":
        load_id = latest_load_id(wh) or ""
    if load_id is not None:
        q = q.filter(q.load_id == load_id)
    if table is not None:
        q = q.filter(q.table_name == table)
    if rule is not None:
        q = q.filter(q.rule == rule)
    return q
