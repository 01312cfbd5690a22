"""Sources that are not a UTF-8 CSV for DuckDB: their rows as Arrow batches of text, spooled.

Parquet files, JSON lines, whitespace-separated or header-less text and PostgreSQL results are
read in batches, every value turned into the text an export would hold (the loader parses and
checks text, and shows it in the quarantine), and written batch by batch to an Arrow IPC file in
the load's work folder. The file is then memory-mapped as the :class:`pyarrow.Table` of a
:class:`~crmlens.warehouse.loading.SourceRows`: memory stays bounded by one batch while reading,
and the loader's scan pages the table in from disk. Each row carries ``__line``: its line in a
text file, its ordinal (from 1) in a Parquet file or a query result.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crmlens.errors import EncodingError, SourceError
from crmlens.ingest.encoding import iter_lines
from crmlens.ingest.spec import WHITESPACE

#: Rows per batch: a batch of short text columns is a few megabytes.
BATCH_ROWS = 1 << 16
#: Rows per batch built from Python values (text and JSON lines): these take more memory per row.
PY_BATCH_ROWS = 1 << 14
LINE = "__line"
R = TypeVar("R")
_REPLACEMENT = "\ufffd"


def cell_text(value: Any) -> str | None:
    """A spreadsheet cell as the text a CSV export would hold; ``None`` when empty.

    >>> cell_text(3.0), cell_text(2.5), cell_text(datetime(2021, 4, 1, 10)), cell_text("")
    ('3', '2.5', '2021-04-01 10:00:00', None)
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    return str(value)


def split_fields(line: str, delimiter: str) -> list[str]:
    """The fields of one line: ``whitespace`` splits on runs of spaces, else CSV rules.

    >>> split_fields("  00001 19970101  1  11.77", "whitespace")
    ['00001', '19970101', '1', '11.77']
    >>> split_fields('a,"b,c",d', ",")
    ['a', 'b,c', 'd']
    """
    if delimiter == WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter), [])


def json_text(value: Any) -> str | None:
    """A JSON value as text: strings as they are, numbers as written, nested values as JSON.

    >>> json_text("王"), json_text(True), json_text(None), json_text({"a": [1]}), json_text("1.50")
    ('王', 'true', None, '{"a": [1]}', '1.50')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def arrow_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Any Arrow column as text: timestamps without a fraction of zeros, nested values as JSON."""
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return array.cast(pa.string())
    if pa.types.is_timestamp(t) and t.unit != "s" and t.tz is None:
        try:  # whole seconds print as 2021-01-02 03:04:05, like an export
            return array.cast(pa.timestamp("s")).cast(pa.string())
        except pa.ArrowInvalid:
            pass  # a fraction of a second: keep it
    if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array([_nested_text(v) for v in array.to_pylist()], pa.string())
    return pc.cast(array, pa.string())


def _nested_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.hex()
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def text_batch(
    columns: list[pa.Array], headers: tuple[str, ...], lines: pa.Array
) -> pa.RecordBatch:
    """A batch of text columns named ``headers`` plus ``__line``."""
    return pa.RecordBatch.from_arrays([*columns, lines], names=[*headers, LINE])


def schema_of(headers: tuple[str, ...]) -> pa.Schema:
    return pa.schema([*(pa.field(h, pa.string()) for h in headers), pa.field(LINE, pa.int64())])


def spool(
    batches: Iterable[pa.RecordBatch], headers: tuple[str, ...], dst: Path, label: str
) -> pa.Table:
    """Write ``batches`` to the Arrow IPC file ``dst`` and return it memory-mapped.

    Every text value is checked for U+FFFD, the trace of an earlier broken conversion: such text
    is garbled and never loaded (:class:`EncodingError` naming the row and column).
    """
    schema = schema_of(headers)
    with pa.OSFile(str(dst), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            refuse_replacement(batch, headers, label)
            # DuckDB scans an Arrow table a batch per thread: no batch larger than BATCH_ROWS
            for start in range(0, batch.num_rows, BATCH_ROWS):
                writer.write_batch(batch.slice(start, BATCH_ROWS))
    return pa.ipc.open_file(pa.memory_map(str(dst), "r")).read_all()


def refuse_replacement(
    batch: pa.RecordBatch | pa.Table, headers: tuple[str, ...], label: str
) -> None:
    """:class:`EncodingError` naming the row (``__line``) and column of the first U+FFFD."""
    for h in headers:
        hits = pc.match_substring(batch.column(h), _REPLACEMENT)
        if pc.any(hits).as_py():
            index = pc.index(hits, True).as_py()
            raise EncodingError(
                "found the replacement character U+FFFD: the text was garbled by an earlier "
                "conversion",
                path=label,
                row=batch.column(LINE)[index].as_py(),
                column=h,
            )


def unique_headers(names: Iterable[str], path: Path | str) -> tuple[str, ...]:
    """``names`` stripped; :class:`SourceError` for a duplicate or an empty source."""
    headers = tuple(str(n).strip() for n in names)
    dupes = sorted({h for h in headers if headers.count(h) > 1})
    if dupes:
        raise SourceError(f"duplicate columns {dupes}", path=path)
    return headers


def in_batches(
    records: Iterable[tuple[int, R]],
    make: Callable[[list[R], list[int]], pa.RecordBatch],
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """``make(rows, lines)`` over every ``batch_rows`` of ``(line, row)`` records, and the rest.

    >>> [b.num_rows for b in in_batches(((n, n) for n in range(5)),
    ...     lambda rows, lines: pa.record_batch([pa.array(rows)], names=["n"]), 2)]
    [2, 2, 1]
    """
    rows: list[R] = []
    lines: list[int] = []
    for number, row in records:
        rows.append(row)
        lines.append(number)
        if len(rows) >= batch_rows:
            yield make(rows, lines)
            rows, lines = [], []
    if rows:
        yield make(rows, lines)


# ---- Parquet --------------------------------------------------------------------------------


def parquet_headers(path: Path) -> tuple[str, ...]:
    """The column names of a Parquet file."""
    return unique_headers(_parquet(path).schema_arrow.names, path)


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"cannot be read as a Parquet file: {exc}", path=path) from exc


def parquet_batches(
    path: Path, *, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[tuple[str, ...], pa.RecordBatch]]:
    """The headers and text batches (with ``__line`` = row ordinal from 1) of a Parquet file."""
    source = _parquet(path)
    headers = unique_headers(source.schema_arrow.names, path)
    first = 1
    try:
        for batch in source.iter_batches(batch_size=batch_rows):
            lines = pa.array(range(first, first + batch.num_rows), pa.int64())
            texts = [arrow_text(batch.column(i)) for i in range(batch.num_columns)]
            yield headers, text_batch(texts, headers, lines)
            first += batch.num_rows
    except pa.ArrowException as exc:
        raise SourceError(f"cannot read row group near row {first}: {exc}", path=path) from exc


# ---- JSON lines -----------------------------------------------------------------------------


def json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    """One line of a JSON-lines file as an object; numbers keep their text (``SourceError``
    naming the line if it is not an object)."""
    try:
        # numbers keep their written text: 1.50 stays 1.50, a 20-digit ID is not rounded
        value = json.loads(line, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"expected a JSON object, found invalid JSON ({exc.msg})", path=path, row=number
        ) from exc
    if not isinstance(value, dict):
        raise SourceError(
            f"expected a JSON object, found a {type(value).__name__}", path=path, row=number
        )
    return value


def jsonl_headers(path: Path, encoding: str) -> tuple[str, ...]:
    """Every key of every object, in order of first appearance (one pass over the file)."""
    keys: dict[str, None] = {}
    for number, line in iter_lines(path, encoding):
        if line.strip():
            keys.update(dict.fromkeys(json_object(path, number, line)))
    if not keys:
        raise SourceError("expected JSON objects, found no line holding one", path=path)
    return unique_headers(keys, path)


def jsonl_batches(
    path: Path, encoding: str, headers: tuple[str, ...], *, batch_rows: int = PY_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Text batches of a JSON-lines file, ``__line`` = the line of the object; blank lines skipped."""
    objects = (
        (number, json_object(path, number, line))
        for number, line in iter_lines(path, encoding)
        if line.strip()
    )
    return in_batches(objects, lambda rows, lines: _json_batch(rows, lines, headers), batch_rows)


def _json_batch(
    rows: list[dict[str, Any]], lines: list[int], headers: tuple[str, ...]
) -> pa.RecordBatch:
    columns = [pa.array([json_text(r.get(h)) for r in rows], pa.string()) for h in headers]
    return text_batch(columns, headers, pa.array(lines, pa.int64()))


# ---- delimited text that DuckDB cannot read as it is ------------------------------------------


def text_records(
    path: Path, encoding: str, delimiter: str, header_row: int
) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of every non-blank record after ``header_row`` (0: from line 1).

    ``whitespace`` splits each line on runs of spaces and tabs; a character delimiter follows CSV
    quoting, so a record may span lines (its first line is given).
    """
    if delimiter == WHITESPACE:  # the hot loop of e.g. the CDNOW file: kept flat
        for number, text in iter_lines(path, encoding):
            if number > header_row and (fields := text.split()):
                yield number, fields
        return
    lines = ((n, text) for n, text in iter_lines(path, encoding) if n > header_row)
    numbers: list[int] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text + "\n"

    # csv.reader pulls one line at a time, never ahead: numbers[0] is the record's first line
    for fields in csv.reader(feed(), delimiter=delimiter):
        first = numbers[0]
        numbers.clear()
        if any(f.strip() for f in fields):
            yield first, fields


def text_headers(path: Path, encoding: str, delimiter: str, header_row: int) -> tuple[str, ...]:
    """The headers on line ``header_row``, or ``column_1`` … for a file without (``0``)."""
    if header_row == 0:
        first = next(text_records(path, encoding, delimiter, 0), None)
        width = len(first[1]) if first else 0
        return tuple(f"column_{i + 1}" for i in range(width))
    for number, text in iter_lines(path, encoding):
        if number == header_row:
            headers = unique_headers(split_fields(text.removeprefix("\ufeff"), delimiter), path)
            if any(headers):
                return headers
            break
    raise SourceError("no header line: the line is empty or missing", path=path, row=header_row)


def text_batches(
    path: Path,
    encoding: str,
    delimiter: str,
    header_row: int,
    headers: tuple[str, ...],
    *,
    batch_rows: int = PY_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Text batches of a delimited file; a record with more fields than headers is an error."""
    width = len(headers)

    def padded() -> Iterator[tuple[int, list[str]]]:
        for number, fields in text_records(path, encoding, delimiter, header_row):
            if len(fields) != width:
                if len(fields) > width:
                    raise SourceError(
                        f"expected at most {width} fields, found {len(fields)}",
                        path=path,
                        row=number,
                    )
                fields += [""] * (width - len(fields))
            yield number, fields

    return in_batches(padded(), lambda rows, lines: _fields_batch(rows, lines, headers), batch_rows)


def _fields_batch(
    rows: list[list[str]], lines: list[int], headers: tuple[str, ...]
) -> pa.RecordBatch:
    """Rows of equal width as a batch; an empty field is missing."""
    empty = pa.scalar(None, pa.string())
    columns = []
    for values in zip(*rows, strict=True):  # transposing in C: far faster than per-cell Python
        array = pa.array(values, pa.string())
        columns.append(pc.if_else(pc.equal(array, ""), empty, array))
    return text_batch(columns, headers, pa.array(lines, pa.int64()))
