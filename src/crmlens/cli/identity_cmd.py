"""``crmlens identity explain CUSTOMER_ID`` and ``crmlens identity stats`` (D4).

Registered on the main app with ``app.add_typer(identity_app, name="identity")``. The ingest layer
is imported inside the commands so that ``crmlens --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from crmlens.cli.options import WarehouseOption
from crmlens.cli.progress import make_console

console = make_console()
identity_app = typer.Typer(
    help="How records of different systems were tied to one customer_id (identity map).",
    no_args_is_help=True,
)


@identity_app.command()
def explain(
    customer_id: Annotated[str, typer.Argument(help="The customer_id (member card number).")],
    warehouse: WarehouseOption = None,
) -> None:
    """Why records belong to a customer: member card, phone or e-mail matches, doubts, conflicts."""
    from crmlens.ingest.identity import explain as explain_customer
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse, read_only=True) as wh:
        lines = explain_customer(wh, customer_id)
    for line in lines:
        console.print(line, highlight=False, markup=False)


@identity_app.command()
def stats(
    warehouse: WarehouseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per source table: records tied by member card, by phone or e-mail, ambiguous, unresolved."""
    from crmlens.ingest.identity import stats as identity_stats
    from crmlens.warehouse import Warehouse

    with Warehouse(warehouse, read_only=True) as wh:
        result = identity_stats(wh)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title="Records tied to a customer", title_justify="left")
    columns = ("records", "with_customer", "by_member_card", "by_contact", "ambiguous")
    columns += ("contact_matches_nobody", "without_customer")
    table.add_column("table", no_wrap=True)
    for name in columns:
        table.add_column(name.replace("_", " "), justify="right")
    for row in result["tables"]:
        table.add_row(row["table"], *(f"{row[c]:,}" for c in columns))
    console.print(table)
    entries = Table(title="Identity map entries", title_justify="left")
    for name in ("source table", "rule", "outcome", "entries"):
        entries.add_column(name, justify="right" if name == "entries" else "left")
    for row in result["entries"]:
        entries.add_row(row["source_table"], row["rule"], row["outcome"], f"{row['entries']:,}")
    console.print(entries)
