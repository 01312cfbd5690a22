"""``crmlens quality``: the data-quality report (D5), the recent loads and a 10 % reconciliation.

Registered on the main app with ``app.command()(quality)``. Exits 1 when a load's row accounting
does not balance or the reconciliation finds a mismatched or missing row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from crmlens.cli.options import WarehouseOption
from crmlens.cli.progress import make_console

#: Width of the tables when the output is not a terminal (a log, a pipe): nothing truncated.
WIDE = 170
console = make_console()
if not console.is_terminal:
    console.width = max(console.width, WIDE)


def quality(
    warehouse: WarehouseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    reconcile_dir: Annotated[
        Path | None,
        typer.Option(
            "--reconcile",
            help="Also check a sample of this export folder (the one loaded last) "
            "against the warehouse.",
            show_default=False,
        ),
    ] = None,
    fraction: Annotated[
        float, typer.Option(min=0.0001, max=1.0, help="Share of each file's rows to sample.")
    ] = 0.1,
    seed: Annotated[int | None, typer.Option(help="Sample seed (same seed, same rows).")] = None,
    loads_shown: Annotated[int, typer.Option("--loads", min=1, help="Loads to list.")] = 5,
) -> None:
    """Per table: rows, missing %, duplicate keys, invalid and quarantined rows, freshness and
    trend over loads; the recent loads with their row accounting; optionally a reconciliation."""
    from crmlens.metrics.quality import loads, quality_report, quarantine_summary
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse, read_only=True) as wh:
        report = quality_report(wh)
        recent = loads(wh, loads_shown)
        rules = quarantine_summary(wh, "latest")
        checked = _reconcile(wh, reconcile_dir, fraction, seed) if reconcile_dir else None
    balanced = bool(recent["balanced"].all()) if len(recent) else True
    if as_json:
        payload: dict[str, Any] = {
            "tables": _records(report),
            "loads": _records(recent),
            "quarantine_latest_load": _records(rules),
            "balanced": balanced,
        }
        if checked is not None:
            payload["reconciliation"] = {
                "load_id": checked.load_id,
                "fraction": checked.fraction,
                "seed": checked.seed,
                "ok": checked.ok,
                "totals": checked.totals(),
                "sources": [
                    _records(checked.frame().iloc[[i]])[0] | {"examples": s.examples}
                    for i, s in enumerate(checked.sources)
                ],
            }
        console.print_json(json.dumps(payload, default=str, ensure_ascii=False))
    else:
        _print_tables(report)
        _print_loads(recent)
        _print_rules(rules)
        if checked is not None:
            _print_reconciliation(checked)
    if not balanced or (checked is not None and not checked.ok):
        raise typer.Exit(1)


def _reconcile(wh: Any, export_dir: Path, fraction: float, seed: int | None) -> Any:
    from crmlens.ingest.reconcile import DEFAULT_SEED, reconcile

    return reconcile(wh, export_dir, fraction=fraction, seed=DEFAULT_SEED if seed is None else seed)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with None for missing values (JSON has no NaN)."""
    return [
        {k: (None if _missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def _missing(value: Any) -> bool:
    return not isinstance(value, list | tuple | dict) and bool(pd.isna(value))


def _fmt(value: Any, spec: str = ",") -> str:
    return "—" if _missing(value) else format(value, spec)


def _print_tables(report: pd.DataFrame) -> None:
    table = Table(
        title="数据质量 / Data quality (miss% over all columns; invalid = values cleared or "
        "inferred in the last load; days = since the latest business time)",
        title_justify="left",
    )
    heads = ("table", "rows", "key miss%", "miss%", "dup keys", "invalid", "quar. last/all")
    heads += ("loads", "latest data", "days", "quar.% trend")
    for name in heads:
        table.add_column(name, justify="left" if name == "table" else "right", no_wrap=True)
    for r in report.to_dict("records"):
        latest = "—" if _missing(r["latest_time"]) else str(pd.Timestamp(r["latest_time"]).date())
        table.add_row(
            r["table"],
            _fmt(r["rows"]),
            _fmt(r["key_missing_pct"], ".2f"),
            _fmt(r["missing_pct"], ".2f"),
            _fmt(r["duplicate_keys"]),
            _fmt(r["invalid_values"]),
            f"{r['quarantined_last_load']:,} / {r['quarantined_total']:,}",
            _fmt(r["loads"]),
            latest,
            _fmt(r["days_since_latest"], ",.0f"),
            " → ".join(f"{p:g}" for p in r["trend_quarantined_pct"]) or "—",
        )
    console.print(table)


def _print_loads(recent: pd.DataFrame) -> None:
    table = Table(
        title="加载记录 / Loads (rows read = loaded + quarantined + merged)", title_justify="left"
    )
    for name in ("load", "started", "s", "tables", "read", "loaded", "quarantined", "merged"):
        table.add_column(name, justify="left" if name in ("load", "started") else "right")
    table.add_column("balanced")
    for r in recent.to_dict("records"):
        table.add_row(
            r["load_id"],
            str(pd.Timestamp(r["started_at"]).floor("s")),
            _fmt(r["seconds"], ".1f"),
            _fmt(r["tables"]),
            _fmt(r["rows_read"]),
            _fmt(r["rows_loaded"]),
            _fmt(r["rows_quarantined"]),
            _fmt(r["rows_merged"]),
            "[green]yes[/]" if r["balanced"] else "[red]NO[/]",
        )
    console.print(table if len(recent) else "No loads yet: run `crmlens load` first.")


def _print_rules(rules: pd.DataFrame) -> None:
    if rules.empty:
        return
    table = Table(title="隔离区 / Quarantine, latest load", title_justify="left")
    for name in ("table", "source", "column", "rule", "action", "records", "first line"):
        table.add_column(name, justify="right" if name in ("records", "first line") else "left")
    for r in rules.to_dict("records"):
        table.add_row(
            r["table"],
            r["source"],
            r["column_name"] or "",
            r["rule"],
            r["action"],
            _fmt(r["records"]),
            _fmt(r["first_line"]),
        )
    console.print(table)
    console.print("Details: `crmlens quarantine` (--table, --rule, --export FILE.csv|FILE.xlsx)")


def _print_reconciliation(checked: Any) -> None:
    table = Table(
        title=f"对账 / Reconciliation: {checked.fraction:.0%} sample, seed {checked.seed}",
        title_justify="left",
    )
    for name in ("source", "table", "rows", "sampled", "matched", "mismatched", "missing"):
        table.add_column(name, justify="left" if name in ("source", "table") else "right")
    table.add_column("quarantined", justify="right")
    table.add_column("merged", justify="right")
    for s in checked.sources:
        bad = "[red]" if not s.ok else ""
        table.add_row(
            s.source,
            s.table,
            f"{s.rows_in_file:,}",
            f"{s.sampled:,}",
            f"{s.matched:,}",
            f"{bad}{s.mismatched:,}",
            f"{bad}{s.missing:,}",
            f"{s.quarantined:,}",
            f"{s.merged:,}",
        )
    console.print(table)
    for s in checked.sources:
        for ex in s.examples:
            what = f"column {ex['column']}: expected {ex['expected']!r}, found {ex['found']!r}"
            console.print(
                f"  [red]{ex['outcome']}[/] {s.source} line {ex['line']} (key {ex['key']})"
                + ("" if ex["outcome"] == "missing" else f": {what}")
            )
    verdict = (
        "[green]every sampled row accounted for[/]" if checked.ok else "[red]NOT reconciled[/]"
    )
    console.print(f"Reconciliation: {verdict}")
