"""``crmlens quarantine``: list or export the rows and values the loads rejected, cleared or inferred.

Registered on the main app with ``app.command()(quarantine)``. Personal data (the columns the
schema marks PII: names, phones, e-mails, …) is masked in the listing and in the export unless
``--show-pii`` is given (D7): fixing a bad phone number needs it, browsing the quarantine does not.
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
from crmlens.errors import ConfigError
from crmlens.warehouse.loading.ragged import RULE as MALFORMED_LINE

#: Export formats by file suffix.
EXPORT_SUFFIXES = (".csv", ".xlsx")
#: Width of the listing when the output is not a terminal (a log, a pipe): nothing truncated.
WIDE = 170
console = make_console()
if not console.is_terminal:
    console.width = max(console.width, WIDE)


def quarantine(
    table: Annotated[str | None, typer.Option(help="Only this table, e.g. orders.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule, e.g. bad_timestamp.")] = None,
    load_id: Annotated[
        str, typer.Option("--load-id", help="A load ID, 'latest' or 'all'.")
    ] = "latest",
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many records (default: all).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Write the records to FILE.csv (UTF-8 with BOM, opens in Excel) or FILE.xlsx.",
            show_default=False,
        ),
    ] = None,
    show_pii: Annotated[
        bool, typer.Option("--show-pii", help="Show personal data unmasked.")
    ] = False,
    warehouse: WarehouseOption = None,
) -> None:
    """List the quarantine: file, line, column, rule, original value and what was done
    (rejected: row not loaded; cleared: value emptied; inferred: value filled by a rule)."""
    from crmlens.metrics.quality import quarantine_records
    from crmlens.warehouse import Warehouse

    if export is not None and export.suffix.lower() not in EXPORT_SUFFIXES:
        raise ConfigError(f"--export {export}: expected a .csv or .xlsx file")
    with Warehouse(warehouse, read_only=True) as wh:
        records = quarantine_records(
            wh,
            table=table,
            rule=rule,
            load_id=None if load_id == "all" else load_id,
            limit=limit,
        )
    if not show_pii:
        records = mask_pii(records)
    if export is not None:
        _export(records, export)
        console.print(f"Wrote {len(records):,} quarantine records to {export}")
        return
    _print(records, load_id)


def mask_pii(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with the values of PII columns masked in ``original_value`` and ``row_json``."""
    pii = _pii_headers()
    out = records.copy()
    if out.empty:
        return out
    # a ragged line is kept as the raw text of the whole line: which part is a name or a phone
    # cannot be told, so the line is masked whole in a table holding personal data
    personal = {t for t, _ in pii}
    whole = [
        rule == MALFORMED_LINE and t in personal
        for t, rule in zip(out["table_name"], out["rule"], strict=True)
    ]
    is_pii = [
        (t, c) in pii or w
        for t, c, w in zip(out["table_name"], out["column_name"], whole, strict=True)
    ]
    out["original_value"] = [
        mask(v) if hit else v for v, hit in zip(out["original_value"], is_pii, strict=True)
    ]
    out["row_json"] = [
        _mask_row(t, raw, pii, whole=w)
        for t, raw, w in zip(out["table_name"], out["row_json"], whole, strict=True)
    ]
    return out


def mask(value: Any) -> Any:
    """Keep the first 3 and last 2 characters of longer values, the first of short ones.

    >>> mask("13800000002"), mask("王秀英"), mask(None)
    ('138******02', '王**', None)
    """
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value)
    if len(text) <= 4:
        return text[:1] + "*" * (len(text) - 1)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def _pii_headers() -> set[tuple[str, str]]:
    """(table, name) pairs holding personal data: canonical names and the demo sources' headers."""
    from crmlens.ingest import DEMO_SOURCES
    from crmlens.schema import data_tables

    out = {(t.name, c.name) for t in data_tables() for c in t.columns if c.pii}
    for spec in DEMO_SOURCES:
        for col in spec.columns:
            if col.source and (spec.table, col.target) in out:
                out.add((spec.table, col.source))
    return out


def _mask_row(table: str, raw: Any, pii: set[tuple[str, str]], *, whole: bool = False) -> Any:
    if not isinstance(raw, str) or not raw:
        return raw
    try:
        row = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(row, dict):
        return raw
    return json.dumps(
        {k: mask(v) if whole or (table, k) in pii else v for k, v in row.items()},
        ensure_ascii=False,
    )


def _export(records: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        records.to_csv(path, index=False, encoding="utf-8-sig")
    else:
        records.to_excel(path, index=False, sheet_name="quarantine", engine="xlsxwriter")


def _print(records: pd.DataFrame, load_id: str) -> None:
    if records.empty:
        console.print(f"No quarantine records (load: {load_id}).")
        return
    table = Table(title=f"隔离区 / Quarantine ({len(records):,} records)", title_justify="left")
    for name in ("load", "table", "file", "line", "column", "rule", "action", "original value"):
        table.add_column(
            name,
            justify="right" if name == "line" else "left",
            overflow="fold",
            no_wrap=name != "original value",
        )
    for r in records.to_dict("records"):
        table.add_row(
            r["load_id"],
            r["table_name"],
            r["source"],
            str(r["line_no"]),
            r["column_name"] or "",
            r["rule"],
            r["action"],
            "" if pd.isna(r["original_value"]) else str(r["original_value"]),
        )
    console.print(table)
