"""Query plans: the SQL of expressions built from text values, reused with other values unbuilt.

:class:`~crmlens.warehouse.templates.SqlTemplates` saves compiling an expression whose shape it has
met, but the expression must still be built, and building is most of the Python work: at 1M
customers a steady overview spent about 105 ms building the Ibis expressions of its KPIs and 40 ms
compiling and preparing them, against about 210 ms in DuckDB. A caller that knows which text
values its expressions depend on (the values a :class:`~crmlens.metrics.Scope` allows: a city, a
tier) asks :meth:`QueryPlans.run` with a *key* that fixes everything else, and the values:

1. The first time a key is met, the expressions are built with the values, compiled and run; their
   SQL is kept with the values as the compiler writes them.
2. The second time, they are built with a sentinel for each value (a text no data holds), compiled,
   and each SQL cut at the sentinels' renderings. The pieces are the key's plan only if, filled
   with the first sight's values, they give exactly the first sight's SQL, so the SQL depends on
   each value through its rendering alone; otherwise the key is built every time.
3. From then on nothing is built or compiled: the pieces are filled with the values, each rendered
   by the compiler's own literal rule (quotes escaped by it), and run.

The check in step 2 proves that two sets of values give the SQL the key's pieces give, not that
every set does: the key must include whatever the builder branches on (for a scope: the
dimensions constrained, how many values each allows, whether one is the unknown value). Whatever
else ``build`` returns besides the expressions (how to read their results) is kept from the
sentinels' build, so it must not depend on the values either.

Plans are kept per warehouse, at most ``maxsize`` (least recently used dropped first); a caller
keys them on the warehouse's ``generation`` as well when the tables' presence shapes its SQL.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import pandas as pd
from ibis.expr.types import Table

from crmlens.warehouse.templates import Pieces, cut_at, fill_in

T = TypeVar("T")

#: ``build(values)``: the expressions to run, and how to read their results (value-independent).
Build = Callable[[Sequence[str]], tuple[Sequence[Table], T]]


@dataclass(frozen=True)
class Compiled:
    """An expression as the warehouse runs it: its SQL, its result's schema, and the in-memory
    tables the SQL reads (registered on the connection that runs it)."""

    sql: str
    schema: Any  # ibis.Schema
    memtables: tuple[ops.InMemoryTable, ...]


class Runner(Protocol):
    """What :class:`QueryPlans` needs of a warehouse."""

    def compile_expr(self, expr: Table, *, reuse: bool = True) -> Compiled: ...

    def run_compiled(self, query: Compiled) -> pd.DataFrame: ...

    def render_text(self, value: str) -> str: ...


@dataclass(frozen=True)
class _FirstSight:
    sql: tuple[str, ...]
    rendered: tuple[str, ...]
    memtables: tuple[ops.InMemoryTable, ...]  # of every query, in order


@dataclass(frozen=True)
class _Plan(Generic[T]):
    pieces: tuple[Pieces, ...]
    queries: tuple[Compiled, ...]  # compiled with the sentinels: their schemas and memtables
    extra: T


#: A key not met yet.
_UNKNOWN = object()


class QueryPlans:
    """Plans per key for one warehouse (see the module's docstring). Thread-safe."""

    def __init__(self, runner: Runner, *, maxsize: int = 256) -> None:
        # held weakly: the warehouse holds this object, and a reference back would keep a
        # dropped warehouse's connection (and its file) open until the cycle collector ran
        self._runner = weakref.ref(runner)
        self.maxsize = maxsize
        self._plans: OrderedDict[Hashable, _Plan[Any] | _FirstSight | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def run(
        self, key: Hashable, values: Sequence[str], build: Build[T]
    ) -> tuple[list[pd.DataFrame], T]:
        """The results of ``build(values)``'s expressions, and what else it returns: from the
        key's plan when there is one (``build`` is not called), else built and run."""
        with self._lock:
            known = self._plans.get(key, _UNKNOWN)
            if known is not _UNKNOWN:
                self._plans.move_to_end(key)
            if isinstance(known, _Plan):
                self.hits += 1
            else:
                self.misses += 1
        rendered = tuple(self.runner.render_text(v) for v in values)
        if isinstance(known, _Plan):
            return self._filled(known, rendered), known.extra
        if isinstance(known, _FirstSight):
            plan = self._plan(values, build, known)
            self._remember(key, plan)
            if plan is not None:
                return self._filled(plan, rendered), plan.extra
        exprs, extra = build(values)
        compiled = [self.runner.compile_expr(e) for e in exprs]
        if known is _UNKNOWN:
            memtables = tuple(m for c in compiled for m in c.memtables)
            self._remember(key, _FirstSight(tuple(c.sql for c in compiled), rendered, memtables))
        return [self.runner.run_compiled(c) for c in compiled], extra

    @property
    def runner(self) -> Runner:
        runner = self._runner()
        if runner is None:
            raise ReferenceError("the warehouse of these query plans is gone")
        return runner

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)

    def _filled(self, plan: _Plan[Any], rendered: Sequence[str]) -> list[pd.DataFrame]:
        rendered = (*rendered, *(m.name for q in plan.queries for m in q.memtables))
        return [
            self.runner.run_compiled(
                Compiled(fill_in(pieces, rendered), query.schema, query.memtables)
            )
            for pieces, query in zip(plan.pieces, plan.queries, strict=True)
        ]

    def _plan(self, values: Sequence[str], build: Build[T], first: _FirstSight) -> _Plan[T] | None:
        """The key's plan from a build with sentinels, checked against its first sight; None when
        the SQL depends on a value otherwise than through its rendering."""
        sentinels = [f"crmlens value {i:04d}" for i in range(len(values))]
        if any(s in values for s in sentinels):
            return None
        exprs, extra = build(sentinels)
        compiled = [self.runner.compile_expr(e, reuse=False) for e in exprs]
        if len(compiled) != len(first.sql) or any(
            next(iter(e.op().find(ops.ScalarUDF)), None) is not None for e in exprs
        ):
            return None  # a UDF is registered by Ibis's own execute, which a plan skips
        # an in-memory table (the periods) has a new name at every build: a slot too, after the
        # values, and the same rows as at the first sight (they must not depend on the values)
        memtables = tuple(m for c in compiled for m in c.memtables)
        if len(memtables) != len(first.memtables) or not all(
            _same_rows(a, b) for a, b in zip(memtables, first.memtables, strict=True)
        ):
            return None
        slots = {self.runner.render_text(s): i for i, s in enumerate(sentinels)}
        slots |= {m.name: len(values) + i for i, m in enumerate(memtables)}
        pieces = tuple(cut_at(c.sql, slots) for c in compiled)
        seen = first.rendered + tuple(m.name for m in first.memtables)
        if any(fill_in(p, seen) != sql for p, sql in zip(pieces, first.sql, strict=True)):
            return None
        return _Plan(pieces, tuple(compiled), extra)

    def _remember(self, key: Hashable, what: _Plan[Any] | _FirstSight | None) -> None:
        with self._lock:
            self._plans[key] = what
            self._plans.move_to_end(key)
            while len(self._plans) > self.maxsize:
                self._plans.popitem(last=False)


def _same_rows(a: ops.InMemoryTable, b: ops.InMemoryTable) -> bool:
    return a.schema == b.schema and a.data.to_pyarrow(a.schema).equals(b.data.to_pyarrow(b.schema))


def render_text(compiler: Any, value: str) -> str:
    """A text value as ``compiler`` writes it in SQL (its own quoting and escaping)."""
    literal = ops.Literal(value, dt.string)
    return str(compiler.visit_Literal(literal, value=value, dtype=dt.string).sql(compiler.dialect))


__all__ = ["Build", "Compiled", "QueryPlans", "Runner", "render_text"]
