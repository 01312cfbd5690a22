"""Stream ``shop/orders.csv`` and ``shop/order_lines.csv`` to disk, planting the contract's dirt.

Orders are generated block by block (:mod:`crmlens.demo.commerce`) and written chunk by chunk with
pyarrow's CSV writer; only one chunk of orders and lines is ever in memory. Dirt is planted per
block with the block's own random stream, on disjoint sets of rows so every count is exact:

- orders: exact duplicate rows; refunds (their own rows, see commerce); entry errors (a sale keyed
  with negative amounts, status completed, no original order); order times in the older tills'
  ``2021/3/5 14:23`` format (all orders of the 潍坊 and 淄博 stores, a chain taken over in 2018);
  unparseable times (``#N/A``).
- order_lines: SKUs that are not in the product master; missing quantities.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crmlens.demo.calendar import build_calendar
from crmlens.demo.commerce import (
    BLOCK,
    CHANNELS,
    PAYMENTS,
    STATUSES,
    OrderBlock,
    block_slice,
    blocks,
    generate_block,
    prepare,
)
from crmlens.demo.truth import TruthTally
from crmlens.demo.world import DemoWorld

ORDERS_FILE = "shop/orders.csv"
LINES_FILE = "shop/order_lines.csv"
ORDER_COLUMNS = (
    "order_id",
    "member_card_no",
    "store_id",
    "order_channel",
    "order_time",
    "payment_method",
    "gross_amount",
    "discount_amount",
    "paid_amount",
    "currency",
    "status",
    "original_order_id",
)
LINE_COLUMNS = ("order_id", "line_no", "sku", "quantity", "unit_price", "line_amount")
# Stores whose tills export times as 2021/3/5 14:23 (潍坊 and 淄博: S16-S19, S23-S25).
OLD_TILL_CITIES = ("潍坊", "淄博")
DUPLICATE_P = 0.004
ENTRY_ERROR_P = 0.001
BAD_TIME_P = 0.0005
UNKNOWN_SKU_P = 0.001
MISSING_QUANTITY_P = 0.0005
ORDER_ID_WIDTH = 10
_CENT = pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))

Progress = Callable[[str, int, int], None]


def _money(cents: np.ndarray) -> pa.Array:
    """Cents as a decimal with exactly two places (``12.50``, ``-0.03``)."""
    return pc.multiply(pa.array(cents, pa.int64()).cast(pa.decimal128(19, 0)), _CENT)


def _iso(times: np.ndarray) -> pa.Array:
    return pc.strftime(pa.array(times, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")


def _old_till(times: np.ndarray) -> pa.Array:
    """``2021/3/5 14:23``: no zero padding on month and day, no seconds."""
    ts = pa.array(times, pa.timestamp("s"))
    text = [pc.cast(part(ts), pa.string()) for part in (pc.year, pc.month, pc.day)]
    minute = pc.strftime(ts, format="%H:%M")
    date = pc.binary_join_element_wise(*text, "/")
    return pc.binary_join_element_wise(date, minute, " ")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


class ShopWriter:
    """Writes the two shop files block by block and keeps the dirt counts."""

    def __init__(self, world: DemoWorld, out_dir: Path) -> None:
        self.world = world
        (out_dir / "shop").mkdir(parents=True, exist_ok=True)
        self.orders_path = out_dir / ORDERS_FILE
        self.lines_path = out_dir / LINES_FILE
        self._orders = self.orders_path.open("wb")
        self._lines = self.lines_path.open("wb")
        self._orders.write((",".join(ORDER_COLUMNS) + "\n").encode())
        self._lines.write((",".join(LINE_COLUMNS) + "\n").encode())
        self._options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        stores = world.stores
        self.store_ids = stores["store_id"].to_numpy().astype(str)
        self.old_till = stores["city"].isin(OLD_TILL_CITIES).to_numpy()
        self.skus = world.products["sku"].to_numpy().astype(str)
        self.card_width = max(7, len(str(world.config.customers)))
        self.next_order = 1
        self.counts = dict.fromkeys(
            (
                "orders.rows",
                "orders.exact_duplicates",
                "orders.refunds",
                "orders.entry_errors",
                "orders.old_till_time_format",
                "orders.bad_times",
                "lines.rows",
                "lines.unknown_sku",
                "lines.missing_quantity",
            ),
            0,
        )

    def render(self, block_no: int, block: OrderBlock) -> tuple[pa.Table, pa.Table]:
        """Plant dirt in one block and return its orders and lines as CSV-ready tables."""
        rng = np.random.default_rng([self.world.config.seed, 11, block_no])
        orders, lines = block.orders, block.lines
        n = len(orders["time"])
        ids = _ids("O", np.arange(self.next_order, self.next_order + n), ORDER_ID_WIDTH)
        self.next_order += n

        sale = orders["status"] == 0
        refunded = np.zeros(n, dtype=bool)
        refunded[orders["original"][~sale]] = True
        old_format = self.old_till[orders["store"]]
        # disjoint dirt sets: each row gets at most one kind, so counts are exact
        u = rng.random(n)
        plain = sale & ~refunded
        entry_error = plain & (u < ENTRY_ERROR_P)
        bad_time = plain & (u >= ENTRY_ERROR_P) & (u < ENTRY_ERROR_P + BAD_TIME_P)
        duplicate = (
            plain
            & ~old_format
            & (u >= ENTRY_ERROR_P + BAD_TIME_P)
            & (u < ENTRY_ERROR_P + BAD_TIME_P + DUPLICATE_P)
        )

        sign = np.where(entry_error, -1, 1)
        times = np.where(
            old_format,
            _old_till(orders["time"]).to_numpy(False),
            _iso(orders["time"]).to_numpy(False),
        )
        times = np.where(bad_time, "#N/A", times)
        customer = orders["customer"]
        cards = np.where(customer >= 0, _ids("M", customer + 1, self.card_width), "")
        original = np.where(orders["original"] >= 0, ids[np.maximum(orders["original"], 0)], "")
        table = pa.table(
            {
                "order_id": ids,
                "member_card_no": cards,
                "store_id": self.store_ids[orders["store"]],
                "order_channel": CHANNELS[orders["channel"]],
                "order_time": times,
                "payment_method": PAYMENTS[orders["payment"]],
                "gross_amount": _money(orders["gross"] * sign),
                "discount_amount": _money(orders["discount"] * sign),
                "paid_amount": _money(orders["paid"] * sign),
                "currency": np.full(n, "CNY"),
                "status": STATUSES[orders["status"]],
                "original_order_id": original,
            }
        )
        # exact duplicates: the same row twice in a row (synced twice)
        table = table.take(np.repeat(np.arange(n), np.where(duplicate, 2, 1)))

        m = len(lines["order"])
        v = rng.random(m)
        unknown = v < UNKNOWN_SKU_P
        missing = (v >= UNKNOWN_SKU_P) & (v < UNKNOWN_SKU_P + MISSING_QUANTITY_P)
        sku = self.skus[lines["product"]]
        sku = np.where(unknown, _ids("99", rng.integers(0, 10**6, size=m), 6), sku)
        quantity = pa.array(lines["quantity"], pa.int64(), mask=missing)
        line_table = pa.table(
            {
                "order_id": ids[lines["order"]],
                "line_no": pa.array(lines["line_no"], pa.int64()),
                "sku": sku,
                "quantity": quantity,
                "unit_price": _money(lines["price"]),
                "line_amount": _money(lines["amount"]),
            }
        )

        c = self.counts
        c["orders.rows"] += table.num_rows
        c["orders.exact_duplicates"] += int(duplicate.sum())
        c["orders.refunds"] += int((~sale).sum())
        c["orders.entry_errors"] += int(entry_error.sum())
        c["orders.old_till_time_format"] += int((old_format & ~bad_time).sum())
        c["orders.bad_times"] += int(bad_time.sum())
        c["lines.rows"] += m
        c["lines.unknown_sku"] += int(unknown.sum())
        c["lines.missing_quantity"] += int(missing.sum())
        return table, line_table

    def append(self, orders: list[pa.Table], lines: list[pa.Table]) -> None:
        """Append rendered tables (one chunk) to the files."""
        if orders:
            pacsv.write_csv(pa.concat_tables(orders), self._orders, self._options)
            pacsv.write_csv(pa.concat_tables(lines), self._lines, self._options)

    def close(self) -> None:
        """Flush and close both files."""
        self._orders.close()
        self._lines.close()


def write_shop(
    world: DemoWorld, out_dir: Path, progress: Progress | None = None
) -> tuple[list[Path], TruthTally]:
    """Generate and write all orders and lines; record dirt in ``world.dirt``.

    Returns the written paths and the tally of the clean truth. Blocks are grouped into chunks of
    about ``config.chunk_customers`` customers only to bound memory; the files do not depend on it.
    """
    config = world.config
    calendar = build_calendar(config.start, config.end)
    shop = prepare(world, calendar)
    tally = TruthTally(world.products, world.customers, len(calendar.months))
    writer = ShopWriter(world, out_dir)
    all_blocks = blocks(len(world.customers))
    per_chunk = max(1, -(-config.chunk_customers // BLOCK))
    start = np.datetime64(calendar.days[0].date(), "s")
    try:
        for first in range(0, len(all_blocks), per_chunk):
            chunk = all_blocks[first : first + per_chunk]
            order_tables, line_tables = [], []
            for block_no in chunk:
                customers = world.customers.iloc[block_slice(block_no, len(world.customers))]
                block = generate_block(world, shop, block_no, customers)
                day = ((block.orders["time"] - start) // np.timedelta64(1, "D")).astype(np.int64)
                tally.add(block, day, calendar.month_index[day])
                orders, lines = writer.render(block_no, block)
                order_tables.append(orders)
                line_tables.append(lines)
            writer.append(order_tables, line_tables)
            if progress is not None:
                done = min(len(world.customers), (chunk[-1] + 1) * BLOCK)
                progress("orders", done, len(world.customers))
    finally:
        writer.close()
    for key, count in writer.counts.items():
        if key.endswith(".rows"):
            continue
        kind_file = ORDERS_FILE if key.startswith("orders.") else LINES_FILE
        world.dirt[f"{kind_file}.{key.split('.', 1)[1]}"] = count
    return [writer.orders_path, writer.lines_path], tally
