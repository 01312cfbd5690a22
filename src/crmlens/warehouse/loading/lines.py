"""Blank lines of a CSV file: DuckDB's reader skips them, so they shift the line numbers.

An empty line (or one holding only the ``\\r`` of a CRLF ending) is no record: ``read_csv``
yields no row for it, and nothing counts it as read. Yet it takes a physical line, so every row
after it sits one line further down than its position among the rows says. DuckDB's own line
numbers (of the records it rejects, see :mod:`.ragged`) do count it. A blank line inside a quoted
value is part of the value, not skipped (:mod:`.plan` counts it among the value's line breaks).

Finding them costs a byte search of the file (:func:`may_have_blank_lines`); only a file with a
candidate is scanned for the exact positions (:func:`blank_runs`, a vectorised pass that tracks
which line breaks lie inside quotes). With a single column an empty line is a record (an empty
value): DuckDB reads it as a row, and nothing is skipped.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pyarrow as pa

#: Bytes scanned at a time by :func:`blank_runs` (lines are never split across chunks).
CHUNK_BYTES = 1 << 23
_NL, _CR, _QUOTE = 10, 13, 34


def _data_start(mm: mmap.mmap, header_line: int) -> int:
    """The byte offset of the header line (the lines before it are skipped as lines)."""
    start = 0
    for _ in range(header_line - 1):
        found = mm.find(b"\n", start)
        if found < 0:
            return len(mm)
        start = found + 1
    return start


def may_have_blank_lines(path: Path, header_line: int = 1) -> bool:
    """Whether the file has an empty line after its header line: a byte search, no parsing.

    A hit may lie inside a quoted value; :func:`blank_runs` tells.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "b.csv"
    >>> _ = p.write_bytes(b"a,b\\r\\n1,2\\r\\n\\r\\n3,4\\r\\n")
    >>> may_have_blank_lines(p), may_have_blank_lines(p, header_line=4)
    (True, False)
    """
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            start = _data_start(mm, header_line)
            # one search: the header's line end is every line's (DuckDB fails on mixed ones)
            end = mm.find(b"\n", start)
            crlf = end > start and mm[end - 1] == _CR
            return mm.find(b"\n\r\n" if crlf else b"\n\n", max(end, start)) >= 0


def blank_runs(path: Path, header_line: int = 1, columns: int = 2) -> pa.Table | None:
    """The runs of consecutive blank lines after the header record, outside quoted values; None
    if there are none (or the file has one column, where an empty line is a value).

    One row per run: ``rec``, the data records (header left out) before it; ``n``, its blank
    lines; ``line``, DuckDB's line number of its first blank line (DuckDB numbers records and
    blank lines, not the line breaks inside quoted values).

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "b.csv"
    >>> _ = p.write_bytes(b'a,b\\n1,"x\\n\\ny"\\n\\n\\n2,3\\n\\n4,5\\n')
    >>> blank_runs(p).to_pylist()
    [{'rec': 1, 'n': 2, 'line': 3}, {'rec': 2, 'n': 1, 'line': 6}]
    """
    if columns < 2 or not may_have_blank_lines(path, header_line):
        return None
    recs: list[np.ndarray] = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        at, end = _data_start(mm, header_line), len(mm)
        records, odd = 0, False  # records so far (the header first); quotes so far odd
        while at < end:
            stop = mm.rfind(b"\n", at, min(at + CHUNK_BYTES, end)) + 1
            if stop <= at:  # a line longer than a chunk, or the last line without a break
                stop = mm.find(b"\n", at) + 1 or end
            chunk = np.frombuffer(mm, dtype=np.uint8, count=stop - at, offset=at)
            ends = np.flatnonzero(chunk == _NL)
            starts = np.concatenate(([0], ends[:-1] + 1))
            quotes = np.flatnonzero(chunk == _QUOTE)
            # a line starts a record when an even number of quotes lies before it
            outside = (np.searchsorted(quotes, starts) + odd) % 2 == 0
            length = ends - starts
            blank = outside & ((length == 0) | ((length == 1) & (chunk[starts] == _CR)))
            started = np.cumsum(outside & ~blank)
            recs.append(records + started[blank] - 1)  # the header is the first record
            records += int(started[-1]) if len(started) else 0
            odd = (len(quotes) + odd) % 2 == 1
            del chunk  # the buffer must be released before the map is closed
            at = stop
    rec = np.concatenate(recs) if recs else np.empty(0, dtype=np.int64)
    rec = rec[rec >= 0]  # blank lines before the header record: not among the rows
    if not len(rec):
        return None
    rec_runs, n = np.unique(rec, return_counts=True)
    before = np.concatenate(([0], np.cumsum(n)[:-1]))
    line = header_line + 1 + rec_runs + before
    return pa.table({"rec": rec_runs.astype(np.int64), "n": n, "line": line.astype(np.int64)})
