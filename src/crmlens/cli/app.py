"""The ``crmlens`` command. Thin: parse options, call the library, render the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crmlens import __version__
from crmlens.cli.identity_cmd import identity_app
from crmlens.cli.ingest_cmd import ingest, print_load_report
from crmlens.cli.kpi import kpi
from crmlens.cli.models_cmd import build, churn, clv, segment
from crmlens.cli.options import QuietOption, WarehouseOption
from crmlens.cli.progress import make_console, progress_bars
from crmlens.cli.quality_cmd import quality
from crmlens.cli.quarantine_cmd import quarantine
from crmlens.cli.report import report
from crmlens.cli.serve import DEFAULT_HOST, DEFAULT_PORT, run_server, serve
from crmlens.errors import CrmlensError

app = typer.Typer(
    name="crmlens",
    help="Self-hosted CRM analytics: load exports, build customer models, serve the dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = make_console()
err_console = make_console(stderr=True)


class _State:
    verbose = False


def _version(value: bool) -> None:
    if value:
        console.print(f"crmlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _State.verbose = verbose


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "money":
        return f"¥{value:,.2f}"
    if unit == "ratio":
        return f"{value:.1%}"
    return f"{value:,.0f}"


def _print_kpis(rows: list[dict[str, Any]]) -> None:
    table = Table(title="KPI 概览 / KPI summary", title_justify="left")
    table.add_column("指标")
    table.add_column("KPI")
    table.add_column("Value", justify="right")
    for row in rows:
        table.add_row(row["label_zh"], row["label_en"], _format_value(row["value"], row["unit"]))
    console.print(table)


def _generate(customers: int, seed: int, out: Path, quiet: bool) -> dict[str, Any]:
    from crmlens.demo import DemoConfig, generate

    config = DemoConfig(customers=customers, seed=seed, out_dir=out)
    with progress_bars(console, enabled=not quiet) as bars:
        return generate(config, progress=bars)


def _load(export_dir: Path, warehouse_path: Path | None, quiet: bool) -> Any:
    from crmlens.ingest import load_demo_export
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse_path) as wh, progress_bars(console, enabled=not quiet) as bars:
        report = load_demo_export(wh, export_dir, progress=bars)
    print_load_report(report)
    return report


def _summary(warehouse_path: Path | None) -> list[dict[str, Any]]:
    from crmlens.metrics import summary
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse_path, read_only=True) as wh:
        return summary(wh)


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(min=100, help="Number of customers.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 42,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-data"),
    quiet: QuietOption = False,
) -> None:
    """Write the demo company's exports (CSV, GBK, Excel, with realistic dirt) and planted.json."""
    manifest = _generate(customers, seed, out, quiet)
    rows = sum(f["rows"] for f in manifest["files"].values())
    console.print(f"Wrote {len(manifest['files'])} files, {rows:,} rows, to {out}")


@app.command()
def load(
    export_dir: Annotated[Path, typer.Argument(help="A folder written by `crmlens demo-data`.")],
    warehouse: WarehouseOption = None,
    quiet: QuietOption = False,
) -> None:
    """Load a demo-company export folder into the warehouse, with row accounting."""
    report = _load(export_dir, warehouse, quiet)
    if not report.balanced:
        raise typer.Exit(1)
    if not quiet:
        console.print(
            "Next: `crmlens build` rebuilds the customer models and the dashboard's derived "
            "tables (this load dropped them: they described the data before it)."
        )


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=100, help="Number of customers.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    out: Annotated[Path, typer.Option(help="Where to write the exports.")] = Path("demo-data"),
    warehouse: WarehouseOption = None,
    quiet: QuietOption = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the dashboard at the end.")
    ] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Dashboard port.")] = DEFAULT_PORT,
) -> None:
    """Generate the demo company, load it, build the models, print the KPIs, serve the dashboard."""
    _generate(customers, seed, out, quiet)
    _load(out, warehouse, quiet)
    build(as_of=None, warehouse=warehouse, quiet=quiet)
    _print_kpis(_summary(warehouse))
    if serve_after:
        run_server(warehouse, DEFAULT_HOST, port, console)


@app.command()
def info(
    warehouse: WarehouseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Tables, row counts and date ranges of the warehouse, and its derived tables."""
    from crmlens.metrics.facts import usable_derived
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse, read_only=True) as wh:
        rows = wh.describe()
        version = wh.schema_version()
        path = wh.path
        used = usable_derived(wh)
        derived = [
            {
                "table": name,
                "rows": int(wh.execute(wh.derived_table(name).count())),
                "used": name in used,
            }
            for name in sorted(wh.derived_names())
        ]
    if as_json:
        payload = {"warehouse": str(path), "schema_version": version, "tables": rows}
        console.print_json(json.dumps(payload | {"derived": derived}, default=str))
        return
    table = Table(title=f"{path} (schema version {version})", title_justify="left")
    for name in ("table", "rows", "time column", "from", "to"):
        table.add_column(name, justify="right" if name == "rows" else "left")
    for row in rows:
        table.add_row(
            row["table"],
            f"{row['rows']:,}",
            row.get("time_column") or "",
            str(row.get("min") or ""),
            str(row.get("max") or ""),
        )
    console.print(table)
    _print_derived(derived)


def _print_derived(derived: list[dict[str, Any]]) -> None:
    """The derived tables (docs/engines.md), or what to do when there are none."""
    if not derived:
        console.print(
            "派生表 / derived tables: none — `crmlens build` writes them (the dashboard reads "
            "the canonical tables meanwhile: same numbers, slower at millions of orders)"
        )
        return
    table = Table(title="派生表 / derived tables (written by crmlens build)", title_justify="left")
    for name in ("table", "rows", "used"):
        table.add_column(name, justify="right" if name == "rows" else "left")
    for row in derived:
        used = "yes" if row["used"] else "no: other columns (run `crmlens build`)"
        table.add_row(row["table"], f"{row['rows']:,}", used)
    console.print(table)


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="Docs folder.")] = Path("docs"),
) -> None:
    """Regenerate the reference docs (schema.md, metrics.md) from the declarations."""
    from crmlens.metrics.docs import render_markdown as render_metrics
    from crmlens.schema import render_markdown as render_schema

    out.mkdir(parents=True, exist_ok=True)
    for name, render in (("schema.md", render_schema), ("metrics.md", render_metrics)):
        (out / name).write_text(render() + "\n", encoding="utf-8")
        console.print(f"Wrote {out / name}")


app.command()(kpi)
app.command()(ingest)
app.command()(report)
app.command()(build)
app.command()(segment)
app.command()(clv)
app.command()(churn)
app.add_typer(identity_app, name="identity")
app.command()(serve)
app.command()(quality)
app.command()(quarantine)


def main() -> None:
    """Entry point: run the app; a CrmlensError prints one line (a traceback only with --verbose)."""
    try:
        app(standalone_mode=False)
    except CrmlensError as exc:
        if _State.verbose:
            raise
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # an internal error: still one line, the traceback on request
        if _State.verbose:
            raise
        err_console.print(
            f"[red]internal error:[/] {type(exc).__name__}: {exc} (run with --verbose for details)"
        )
        sys.exit(2)
