"""``crmlens report``: the weekly / monthly report (P5) as an Excel workbook or an HTML page.

Registered on the main app with ``app.command()(report)``. The reports package (and through it the
metrics layer and XlsxWriter) is imported inside the command so that ``crmlens --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crmlens.cli.options import WarehouseOption
from crmlens.cli.progress import make_console

console = make_console()

#: Output formats and the file suffix each writes.
FORMATS = {"xlsx": ".xlsx", "html": ".html"}
#: Trend grains the command offers (the library takes any grain).
TREND_GRAINS = ("month", "week")


def report(
    period: Annotated[
        str,
        typer.Option(
            "--period",
            "-p",
            help="Report period: 2021-11 (monthly), 2021-W45 (weekly, ISO), 2021-Q4 or 2021.",
        ),
    ],
    grain: Annotated[
        str | None,
        typer.Option(
            help="Grain of the trend: month or week (default: week for a weekly report, else month)."
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="xlsx or html (default: from --out's suffix, else xlsx)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output file (default: crmlens-report-<period>.<format>)."
        ),
    ] = None,
    department: Annotated[
        str | None, typer.Option(help="制作部门 shown in the header, e.g. 市场部.")
    ] = None,
    reviewer: Annotated[str | None, typer.Option(help="审核人 shown in the header.")] = None,
    lang: Annotated[str, typer.Option(help="Language of the report: zh or en.")] = "zh",
    warehouse: WarehouseOption = None,
) -> None:
    """Write the weekly or monthly report: KPI overview (环比/同比/target), anomalies with probable
    causes, region × customer type table and trend. Aggregates only, no personal data."""
    from crmlens.reports import LANGS, build_report, write_html, write_xlsx
    from crmlens.warehouse import Warehouse

    _check("--lang", lang, LANGS)
    if grain is not None:
        _check("--grain", grain, TREND_GRAINS)
    chosen = _format(fmt, out)
    target = out or Path(f"crmlens-report-{period.strip()}{FORMATS[chosen]}")
    with Warehouse(warehouse, read_only=True) as wh:
        built = build_report(wh, period, grain=grain, department=department, reviewer=reviewer)
    written = (write_xlsx if chosen == "xlsx" else write_html)(built, target, lang)
    console.print(
        f"Wrote {written} ({built.header.period}, {len(built.kpis)} KPIs, "
        f"{len(built.anomalies)} anomalies)"
    )


def _format(fmt: str | None, out: Path | None) -> str:
    """The output format: as given, else from the output file's suffix, else xlsx."""
    if fmt is not None:
        _check("--format", fmt, tuple(FORMATS))
        return fmt
    by_suffix = {suffix: name for name, suffix in FORMATS.items()} | {".htm": "html"}
    return by_suffix.get(out.suffix.lower(), "xlsx") if out is not None else "xlsx"


def _check(option: str, given: str, allowed: tuple[str, ...]) -> None:
    """A usage error (exit code 2) unless ``given`` is one of ``allowed``."""
    if given not in allowed:
        raise typer.BadParameter(f"{given!r} is not one of {', '.join(allowed)}", param_hint=option)
