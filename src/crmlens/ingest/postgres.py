"""A PostgreSQL table or query as a source, streamed with ``COPY … TO STDOUT`` (psycopg 3).

The server prints every value as its canonical text (dates ISO, booleans ``t``/``f``, numerics
exactly), which is what the loader parses and keeps in the quarantine. ``COPY`` in CSV format
streams the result to a file in the work folder, a network buffer at a time; ``pyarrow.csv``
reads that file back in blocks as text batches, each row's ``__line`` its ordinal (from 1). A NULL
stays missing, an empty string stays empty. The session is read-only: a query cannot change the
database. No DuckDB extension is involved, so this works offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from crmlens.errors import ConfigError, SourceError
from crmlens.ingest.formats import text_batch, unique_headers

#: Seconds to wait for a connection; a load must fail, not hang, when the server is away.
CONNECT_TIMEOUT = 10
_BLOCK = 1 << 22  # bytes per block pyarrow parses: bounds the memory of reading back


def source_query(table: str | None = None, query: str | None = None) -> sql.Composable:
    """The query of a source: ``SELECT * FROM`` its ``table`` (``schema.table`` quoted), or
    ``query`` (exactly one of the two).

    >>> source_query(table="crm.Stores").as_string(None)
    'SELECT * FROM "crm"."Stores"'
    """
    if (table is None) == (query is None):
        raise ConfigError("a PostgreSQL source needs either a table or a query")
    if table is not None:
        parts = [p.strip().strip('"') for p in table.split(".")]
        return sql.SQL("SELECT * FROM {}").format(sql.Identifier(*parts))
    assert query is not None
    return sql.SQL(query.strip().rstrip(";"))  # type: ignore[arg-type]  # the user's own SQL


def postgres_source(
    dsn: str, *, table: str | None = None, query: str | None = None, label: str, scratch: Path
) -> tuple[tuple[str, ...], Iterator[pa.RecordBatch]]:
    """The headers and text batches of ``table`` or ``query``; ``scratch`` receives the COPY.

    Raises :class:`~crmlens.errors.SourceError` naming the source by ``label`` (never the
    connection string, which may hold a password) when the server cannot be reached or the
    query fails.
    """
    composed = source_query(table, query)
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.read_only = True
            with conn.cursor() as cur:
                cur.execute("SET DateStyle = 'ISO, YMD'")
                cur.execute("SET client_encoding = 'UTF8'")
                cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(composed))
                names = [c.name for c in cur.description or ()]
                copy = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(composed)
                with scratch.open("wb") as out, cur.copy(copy) as stream:
                    for chunk in stream:
                        out.write(chunk)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"PostgreSQL: {message}", path=label) from exc
    if not names:
        raise SourceError("PostgreSQL: the query returns no columns", path=label)
    headers = unique_headers(names, label)
    return headers, _read_back(scratch, headers)


def _read_back(path: Path, headers: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """Text batches of a ``COPY … (FORMAT csv)`` file: an unquoted empty field is NULL."""
    if path.stat().st_size == 0:
        return
    names = [f"c{i}" for i in range(len(headers))]  # headers may repeat no name, but be anything
    reader = pacsv.open_csv(
        str(path),
        read_options=pacsv.ReadOptions(column_names=names, block_size=_BLOCK),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )
    first = 1
    for batch in reader:
        lines = pa.array(range(first, first + batch.num_rows), pa.int64())
        yield text_batch(list(batch.columns), headers, lines)
        first += batch.num_rows
