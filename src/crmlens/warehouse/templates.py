"""Compiled SQL reused across queries that differ only in their values.

Compiling an Ibis expression to SQL is Python work that grows with the expression, not the data:
at 1M customers a dashboard filter change spent about a quarter of its time compiling queries
that DuckDB then ran in tens of milliseconds. The queries of a page under two scopes that filter
the same dimensions differ only in values — a city, a tier, the days of a period, the rows of an
in-memory table of periods — so :class:`SqlTemplates` compiles an expression's *shape* once and
fills the values in afterwards:

1. The values of an expression are its non-NULL string, date and timestamp literals and its
   in-memory tables, in the order a breadth-first walk of the expression meets them. Its shape
   is the walk with the values left out (and the numbers Ibis gives table references from a
   process-wide counter): equal for two expressions exactly when they differ only in values.
2. The first time a shape is met, the expression is compiled in full, and that SQL is kept with
   the values as the compiler writes them. The second time, the expression is compiled with
   each value replaced by a numbered sentinel of the same type (a text, a date in a year no data
   has, an empty table of its own name) and the SQL cut at the sentinels' renderings. The pieces
   are the shape's template only if, filled with the first sight's values, they give exactly
   the first sight's SQL: two compiles with different values agree that the SQL depends on each
   value through its rendering alone (a value Ibis also wrote in another form, e.g. folded into
   a pattern, makes them differ); otherwise the shape is compiled in full every time. A value
   whose sentinel does not appear at all (the unit of a date difference, which Ibis writes as a
   keyword) is kept as it is instead: the template then serves only expressions with that value
   there. So a shape costs one compile per sight until it has a template, and none after.
3. The SQL of an expression with a known shape is the pieces joined with its own values, each
   rendered by the compiler's own literal rule (quotes escaped by it, exactly as in a full
   compile) or, for a table, as its quoted name.

Numbers, booleans and intervals stay part of the shape. The shapes are kept per backend, at most
``maxsize`` of them (least recently used dropped first).

>>> import ibis
>>> con = ibis.duckdb.connect()
>>> templates = SqlTemplates(con)
>>> t = ibis.table({"city": "string", "amount": "float64"}, name="orders")
>>> def revenue(city):
...     return templates.compile(t.filter(t.city == city).amount.sum().as_table())
>>> revenue("烟台") == con.compile(t.filter(t.city == "烟台").amount.sum().as_table())
True
>>> "'O''Brien'" in revenue("O'Brien"), "'青岛'" in revenue("青岛")
(True, True)
>>> templates.hits, templates.misses
(1, 2)
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import ibis.expr.operations as ops
import sqlglot as sg
from ibis.backends import BaseBackend
from ibis.common.graph import Graph
from ibis.expr.types import Expr
from ibis.formats.pyarrow import PyArrowTableProxy

#: A compiled shape: SQL pieces alternating with value slots, ``("text", 3, "text", ...)``;
#: an int is the index of the value (literal or in-memory table) that goes there.
Pieces = tuple[str | int, ...]
#: Expressions with more values than this are compiled in full (each date or timestamp sentinel
#: has a year of its own, see :func:`_stand_ins`).
MAX_VALUES = 500


@dataclass(frozen=True)
class _Template:
    """A shape's SQL pieces, and the values it was compiled with rather than cut at: their
    positions and renderings, which an expression must have for the pieces to be its SQL."""

    pieces: Pieces
    kept: tuple[tuple[int, str], ...] = ()

    def fits(self, rendered: list[str]) -> bool:
        """Whether values rendered so have the kept values where the template has them."""
        return all(rendered[i] == r for i, r in self.kept)


@dataclass(frozen=True)
class _FirstSight:
    """A shape met once: the SQL compiled for it then, and its values as written in it."""

    sql: str
    rendered: list[str]


#: A shape not met yet.
_UNKNOWN = object()


class SqlTemplates:
    """A drop-in ``compile`` for an Ibis SQL backend that reuses the SQL of known shapes.

    ``SqlTemplates(backend).compile`` takes what ``backend.compile`` takes; anything but a plain
    compile (a ``limit``, scalar ``params``, other options) goes to the backend's own compile.
    Thread-safe: the shapes are shared by every thread compiling through it.
    """

    def __init__(self, backend: Any, *, maxsize: int = 512) -> None:
        # held weakly, and its compile as a function: the backend holds this object (as its
        # compile), and a reference back would keep a dropped connection (and its file) open
        # until Python's cycle collector ran
        self._backend = weakref.ref(backend)
        compile_ = backend.compile
        self._compile_function: Callable[..., str] = getattr(compile_, "__func__", compile_)
        self._bound = hasattr(compile_, "__func__")
        self.maxsize = maxsize
        #: shape → its template; None if it cannot have one; what it was at its first sight
        self._shapes: OrderedDict[Hashable, _Template | _FirstSight | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def compile(self, expr: Expr, /, *, limit: Any = None, params: Any = None, **kw: Any) -> str:
        """The SQL of ``expr``: filled in from its shape's template when there is one."""
        if limit is not None or params or kw:
            return self._full_compile(expr, limit=limit, params=params, **kw)
        table = expr.as_table()
        root = table.op()
        shape, values = _shape(root)
        if len(values) > MAX_VALUES:
            return self._full_compile(table)
        with self._lock:
            known = self._shapes.get(shape, _UNKNOWN)
            if known is not _UNKNOWN:
                self._shapes.move_to_end(shape)
        # a shape that cannot have a template needs no renderings
        rendered = [] if known is None else [self._render(v) for v in values]
        hit = isinstance(known, _Template) and known.fits(rendered)
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
        if hit:
            assert isinstance(known, _Template)
            return fill_in(known.pieces, rendered)
        if known is None or isinstance(known, _Template):  # none, or one for another kept value
            return self._full_compile(table)
        if isinstance(known, _FirstSight):
            template = self._cut(root, values)
            if template is not None and not template.fits(known.rendered):
                # a kept value differs from the first sight's: met again, with this one first
                sql = self._full_compile(table)
                self._remember(shape, _FirstSight(sql, rendered))
                return sql
            if template is not None and fill_in(template.pieces, known.rendered) != known.sql:
                template = None  # the SQL depends on a value otherwise than through its rendering
            self._remember(shape, template)
            if template is None:
                return self._full_compile(table)
            return fill_in(template.pieces, rendered)
        sql = self._full_compile(table)
        self._remember(shape, _FirstSight(sql, rendered))
        return sql

    def _remember(self, shape: Hashable, what: _Template | _FirstSight | None) -> None:
        with self._lock:
            self._shapes[shape] = what
            while len(self._shapes) > self.maxsize:
                self._shapes.popitem(last=False)

    def _cut(self, root: ops.Node, values: list[ops.Node]) -> _Template | None:
        """``root`` compiled with its values' sentinels, cut at their renderings; the values
        whose sentinels do not appear at all compiled as they are (kept). None if a sentinel
        does not appear as itself wherever its value shapes the SQL."""
        stand_ins = _stand_ins(values)
        sql = self._full_compile(root.replace(stand_ins).to_expr())
        rendered = {self._render(s): i for i, s in enumerate(stand_ins.values())}
        kept = sorted(i for r, i in rendered.items() if r not in sql)
        if kept:
            keep = {values[i] for i in kept}
            stand_ins = {node: s for node, s in stand_ins.items() if node not in keep}
            sql = self._full_compile(root.replace(stand_ins).to_expr())
            rendered = {r: i for r, i in rendered.items() if i not in kept}
        template_kept = tuple((i, self._render(values[i])) for i in kept)
        if not rendered:
            return _Template((sql,), template_kept)
        pieces = cut_at(sql, rendered)
        if set(pieces[1::2]) != set(range(len(values))) - set(kept):
            return None
        return _Template(tuple(pieces), template_kept)

    @property
    def backend(self) -> Any:
        """The backend this compiles for (None once it is gone)."""
        return self._backend()

    def full_compile(self, expr: Expr, /, **kwargs: Any) -> str:
        """The backend's own compile (no template made or used)."""
        return self._full_compile(expr, **kwargs)

    def _full_compile(self, expr: Expr, /, **kwargs: Any) -> str:
        """The backend's own compile."""
        if not self._bound:
            return self._compile_function(expr, **kwargs)
        return self._compile_function(self._backend(), expr, **kwargs)

    def _render(self, node: ops.Node) -> str:
        """A value as the compiler writes it: a literal by its own rule, a table by name."""
        compiler = self.backend.compiler
        if isinstance(node, ops.InMemoryTable):
            return sg.to_identifier(node.name, quoted=True).sql(dialect=compiler.dialect)
        sql = compiler.visit_Literal(node, value=node.value, dtype=node.dtype)
        return sql.sql(dialect=compiler.dialect)


def reuse_compiled_sql(backend: Any, *, like: Any = None) -> None:
    """Make an Ibis SQL backend compile through :class:`SqlTemplates` (a backend without an SQL
    compiler is left alone); with ``like``, another backend of the same kind that does, through
    the same templates.

    A server reads on a backend per thread (one cursor each), and requests land on whichever
    thread is free: with templates per thread, a shape would be compiled in full twice on every
    thread before that thread reused it.
    """
    if not hasattr(backend, "compiler"):
        return
    shared = getattr(getattr(like, "compile", None), "__self__", None)
    if isinstance(shared, SqlTemplates):
        backend.compile = shared.compile
    elif not isinstance(getattr(backend.compile, "__self__", None), SqlTemplates):
        backend.compile = SqlTemplates(backend).compile


def _is_value(node: ops.Node) -> bool:
    """Whether a node is one of an expression's values (see the module's docstring)."""
    if isinstance(node, ops.InMemoryTable):
        return True
    if not isinstance(node, ops.Literal) or node.value is None:
        return False
    return node.dtype.is_string() or node.dtype.is_date() or node.dtype.is_timestamp()


def _shape(root: ops.Node) -> tuple[Hashable, list[ops.Node]]:
    """``root``'s shape and values: one breadth-first walk, each node written as its type and its
    arguments with nodes as their positions in the walk; a value as its type alone, a table
    reference without its number."""
    order: dict[ops.Node, int] = {node: i for i, node in enumerate(Graph.from_bfs(root))}
    values: list[ops.Node] = []
    shape: list[Hashable] = []
    for node in order:
        if _is_value(node):
            values.append(node)
            shape.append(
                node.schema if isinstance(node, ops.InMemoryTable) else ("value", node.dtype)
            )
            continue
        reference = isinstance(node, ops.Reference)
        args = tuple(
            None if reference and name == "identifier" else _arg_shape(arg, order)
            for name, arg in zip(node.__argnames__, node.__args__, strict=True)
        )
        shape.append((type(node), args))
    return tuple(shape), values


def _arg_shape(arg: Any, order: dict[ops.Node, int]) -> Hashable:
    if isinstance(arg, ops.Node):
        return order[arg]
    if isinstance(arg, BaseBackend):
        # a table's connection is not in its SQL; kept, it would tie the backend to itself
        return None
    if isinstance(arg, tuple):
        return tuple(_arg_shape(a, order) for a in arg)
    if isinstance(arg, Mapping):
        return tuple((k, _arg_shape(v, order)) for k, v in arg.items())
    return arg


#: Empty tables standing in for in-memory tables, by schema.
_EMPTY: dict[Any, PyArrowTableProxy] = {}


def _stand_ins(values: list[ops.Node]) -> dict[ops.Node, ops.Node]:
    """Each value's sentinel: a text, a time in a year no company's data holds (each value its
    own), or an empty table named apart; none equal to a value of the expression."""
    out: dict[ops.Node, ops.Node] = {}
    for i, node in enumerate(values):
        if isinstance(node, ops.InMemoryTable):
            if node.schema not in _EMPTY:
                _EMPTY[node.schema] = PyArrowTableProxy(node.schema.to_pyarrow().empty_table())
            out[node] = ops.InMemoryTable(
                name=f"crmlens slot {i}", schema=node.schema, data=_EMPTY[node.schema]
            )
        elif node.dtype.is_string():
            out[node] = ops.Literal(f"crmlens slot {i}", node.dtype)
        elif node.dtype.is_timestamp():
            out[node] = ops.Literal(datetime(1000 + i, 2, 3, 4, 5, 6), node.dtype)
        else:
            out[node] = ops.Literal(date(1000 + i, 2, 3), node.dtype)
    return out


def cut_at(sql: str, slots: Mapping[str, int]) -> Pieces:
    """``sql`` cut at every occurrence of a slot's text (the longest first where two overlap),
    each replaced by the slot's number.

    >>> cut_at("a = 'x' OR b = 'x' OR c = 'y'", {"'x'": 0, "'y'": 1})
    ('a = ', 0, ' OR b = ', 0, ' OR c = ', 1, '')
    """
    if not slots:
        return (sql,)
    pattern = re.compile("|".join(re.escape(r) for r in sorted(slots, key=len, reverse=True)))
    pieces: list[str | int] = []
    at = 0
    for match in pattern.finditer(sql):
        pieces += [sql[at : match.start()], slots[match.group()]]
        at = match.end()
    pieces.append(sql[at:])
    return tuple(pieces)


def fill_in(pieces: Pieces, rendered: Sequence[str]) -> str:
    """The SQL of ``pieces`` with slot ``i`` written as ``rendered[i]``."""
    return "".join(p if isinstance(p, str) else rendered[p] for p in pieces)


__all__ = ["MAX_VALUES", "SqlTemplates", "cut_at", "fill_in", "reuse_compiled_sql"]
