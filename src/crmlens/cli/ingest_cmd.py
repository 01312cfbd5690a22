"""``crmlens ingest``: map a real export file (or a folder/glob of them) and load it.

Without ``--mapping`` a mapping is suggested from the headers and values; ``--dry-run`` shows it
with its confidence, a profile of every column and what a load would do (loaded, quarantined and
merged rows by rule), without touching the warehouse. ``--save-mapping`` writes the mapping as
TOML to edit and pass back with ``--mapping`` for the next export (docs/ingestion.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crmlens.cli.options import QuietOption, WarehouseOption
from crmlens.cli.progress import make_console, progress_bars
from crmlens.errors import ConfigError

console = make_console()


def _print_mapping(suggestion: Any) -> None:
    table = Table(
        title=f"Proposed mapping onto {suggestion.kind} (confidence {suggestion.confidence:.0%})",
        title_justify="left",
    )
    for name in ("canonical column", "source", "confidence", "why"):
        table.add_column(name)
    for c in suggestion.columns:
        r = c.rule
        source = r.header or (
            f"= {r.value!r}" if r.value is not None else f"generated: {r.generate}"
        )
        if r.clean:
            source += f" (clean: {r.clean})"
        table.add_row(c.target, source, f"{c.confidence:.0%}", c.reason)
    console.print(table)
    if suggestion.unmapped:
        console.print(f"Not mapped (no canonical column): {', '.join(suggestion.unmapped)}")
    if suggestion.missing_required:
        console.print(
            f"[red]Required columns without a source:[/] {', '.join(suggestion.missing_required)}"
        )
    if not suggestion.fits:
        console.print(
            f"[red]The file does not fit {suggestion.kind} (nor any canonical table) as is:[/] "
            "edit a saved mapping, or keep the file out of the warehouse"
        )
    if suggestion.date_order == "ambiguous":
        console.print(
            "[yellow]Dates like 3/5/2021 do not show their order: set rules.date_order "
            "(dmy or mdy) in the mapping[/]"
        )


def _print_profile(profiles: list[Any]) -> None:
    table = Table(title="Column profile (all rows)", title_justify="left")
    for name in ("column", "looks like", "values", "blank", "NULL-like", "not fitting", "e.g."):
        table.add_column(
            name, justify="left" if name in ("column", "looks like", "e.g.") else "right"
        )
    for p in profiles:
        table.add_row(
            p.header,
            p.kind,
            f"{p.non_empty:,}",
            f"{p.blank:,}",
            f"{p.null_tokens:,}",
            f"{p.misfits:,}",
            ", ".join(repr(e) for e in p.examples),
        )
    console.print(table)


def print_load_report(report: Any) -> None:
    """The row accounting of a load, one line per source."""
    table = Table(
        title="Row accounting (read = loaded + quarantined + merged)", title_justify="left"
    )
    columns = (
        "source",
        "table",
        "read",
        "loaded",
        "quarantined",
        "merged",
        "cleared",
        "s",
        "rows/s",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("source", "table") else "right")
    for s in report.sources:
        table.add_row(
            s.source,
            s.table,
            f"{s.rows_read:,}",
            f"{s.rows_loaded:,}",
            f"{s.rows_quarantined:,}",
            f"{s.rows_merged:,}",
            f"{s.values_cleared + s.values_inferred:,}",
            f"{s.seconds:.1f}",
            _rate(s.rows_read, s.seconds),
        )
    read = sum(s.rows_read for s in report.sources)
    table.add_row(
        "total",
        "",
        f"{read:,}",
        f"{sum(s.rows_loaded for s in report.sources):,}",
        f"{sum(s.rows_quarantined for s in report.sources):,}",
        f"{sum(s.rows_merged for s in report.sources):,}",
        f"{sum(s.values_cleared + s.values_inferred for s in report.sources):,}",
        f"{report.seconds:.1f}",
        _rate(read, report.seconds),
        style="bold",
    )
    console.print(table)
    for s in report.sources:
        rules = {**s.rejected_by_rule, **{f"{k} (value)": v for k, v in s.cleared_by_rule.items()}}
        if rules:
            listed = ", ".join(f"{k} {v:,}" for k, v in sorted(rules.items()))
            console.print(f"  {s.table}: {listed}")
    verdict = "[green]balanced[/]" if report.balanced else "[red]NOT balanced[/]"
    console.print(f"Row accounting: {verdict}")
    if report.identity is not None:
        from crmlens.ingest.identity import format_counts

        console.print(format_counts(report.identity), highlight=False)


def _rate(rows: int, seconds: float) -> str:
    """Rows per second, or blank when too quick to measure.

    >>> _rate(27_000_000, 42.0), _rate(10, 0.0)
    ('642,857', '')
    """
    return f"{rows / seconds:,.0f}" if seconds > 0 else ""


def _print_dry_run(result: Any) -> None:
    print_load_report(result.report)
    if result.examples:
        table = Table(title="Quarantine examples (first 10)", title_justify="left")
        for name in ("table", "file", "line", "column", "rule", "action", "value"):
            table.add_column(name)
        for e in result.examples:
            table.add_row(
                e["table_name"],
                e["file"] or "",
                str(e["line_no"]),
                e["column_name"] or "",
                e["rule"],
                e["action"],
                "" if e["original_value"] is None else repr(e["original_value"]),
            )
        console.print(table)
    for name, rows in result.preview.items():
        if not rows:
            continue
        cols = [c for c in rows[0] if any(r[c] is not None for r in rows)]
        table = Table(title=f"First rows of {name} as they would load", title_justify="left")
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
        console.print(table)


def _read_options(
    source: str,
    base: Any,
    overrides: dict[str, Any],
) -> Any:
    """The mapping's read options (or those sniffed from the first file), overridden by the
    command's options."""
    from dataclasses import replace

    from crmlens.ingest.files import expand_sources
    from crmlens.ingest.mapping_file import ReadOptions
    from crmlens.ingest.sniff import sniff

    if base is None:
        first = expand_sources(source)[0]
        fmt = overrides.get("format", "auto")
        found = sniff(
            first,
            format=None if fmt == "auto" else fmt,
            encoding=overrides.get("encoding", "auto"),
            sheet=overrides.get("sheet"),
        )
        base = ReadOptions(
            encoding=found.encoding or "auto",
            delimiter=found.delimiter or ",",
            header_row=found.header_row,
            sheet=found.sheet,
        )
    return replace(base, **overrides)


def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="A file, a folder, a quoted glob of same-shaped files, or a PostgreSQL "
            "connection string (with --table or --query)."
        ),
    ],
    kind: Annotated[
        str | None,
        typer.Option(
            help="Canonical table the rows are (orders, order_lines, customers, …); default: the best fit."
        ),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="A mapping TOML to use instead of the suggestion.")
    ] = None,
    save_mapping: Annotated[
        Path | None, typer.Option(help="Write the mapping used as TOML (to edit and reuse).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show mapping, profile and a validation preview; load nothing."
        ),
    ] = False,
    table: Annotated[
        str | None, typer.Option(help="PostgreSQL: the table (schema.table) to read.")
    ] = None,
    query: Annotated[str | None, typer.Option(help="PostgreSQL: the query to read.")] = None,
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv, tsv, excel, parquet or jsonl; default: from each file."
        ),
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help="Text encoding (utf-8, gbk, big5, …); default: detected.")
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option(help="Field delimiter, or 'whitespace'; default: sniffed.")
    ] = None,
    sheet: Annotated[str | None, typer.Option(help="Excel sheet; default: the first.")] = None,
    header_row: Annotated[
        int | None,
        typer.Option(min=0, help="Line/row of the headers, 0 for none; default: sniffed."),
    ] = None,
    warehouse: WarehouseOption = None,
    quiet: QuietOption = False,
) -> None:
    """Map and load a real export: suggested mapping, cleaning rules, row accounting."""
    from dataclasses import replace

    from crmlens.ingest.files import read_input
    from crmlens.ingest.mapping_file import load_mapping
    from crmlens.ingest.mapping_file import save_mapping as write_mapping
    from crmlens.ingest.pipeline import dry_run as run_dry
    from crmlens.ingest.pipeline import ingest as run_ingest
    from crmlens.ingest.pipeline import profile, propose

    chosen = load_mapping(mapping) if mapping else None
    if chosen is not None and kind is not None and kind != chosen.kind:
        raise ConfigError(f"--kind {kind} contradicts the mapping's kind {chosen.kind}")
    database = table is not None or query is not None
    overrides = {
        k: v
        for k, v in (
            ("format", file_format),
            ("encoding", encoding),
            ("delimiter", delimiter),
            ("sheet", sheet),
            ("header_row", header_row),
        )
        if v is not None
    }
    base = chosen.read if chosen else None
    if database:
        from crmlens.ingest.mapping_file import ReadOptions

        read = replace(base or ReadOptions(), **overrides)
    else:
        read = _read_options(source, base, overrides)
    expected = chosen.headers if chosen else ()
    with progress_bars(console, enabled=not quiet, rows=True, label_width=6) as bars:
        raw = read_input(source, read, table=table, query=query, expected=expected, progress=bars)
    what = "the database" if database else f"{len(raw.files):,} file(s)"
    console.print(f"Read {what}, {raw.rows:,} rows in {raw.seconds:.1f} s ({raw.label})")
    suggestion = None
    if chosen is None:
        suggestion = propose(raw, kind)
        if suggestion.fits or dry_run:
            chosen = suggestion.to_mapping(read)
    else:
        chosen = replace(chosen, read=read)
    if dry_run:
        if suggestion is not None:
            _print_mapping(suggestion)
        _print_profile(profile(raw))
    if save_mapping and chosen is not None:
        write_mapping(chosen, save_mapping)
        console.print(f"Wrote the mapping to {save_mapping}")
    if chosen is None or (suggestion is not None and not suggestion.fits):
        assert suggestion is not None
        why = (
            f"its required columns {list(suggestion.missing_required)} have no source"
            if suggestion.missing_required
            else "no required column matches a header by name"
        )
        message = (
            f"{raw.label} does not fit {suggestion.kind}: {why}; save the suggestion with "
            "--dry-run --save-mapping, edit it, and pass it with --mapping"
        )
        if dry_run:
            console.print(f"[yellow]No validation preview:[/] {message}")
            return
        raise ConfigError(message)
    with progress_bars(console, enabled=not quiet, rows=True, label_width=6) as bars:
        if dry_run:
            result = run_dry(raw, chosen, progress=bars)
        else:
            from crmlens.warehouse import Warehouse

            with Warehouse(warehouse) as wh:
                report = run_ingest(wh, raw, chosen, progress=bars)
    if dry_run:
        _print_dry_run(result)
        report = result.report
        console.print("Dry run: nothing was loaded.")
    else:
        print_load_report(report)
    if not report.balanced:
        raise typer.Exit(1)
