"""Reading the model tables: the one place a scope selects customers of the model outputs.

:func:`scored` joins ``model_customer_scores`` to the customers a
:class:`~crmlens.metrics.Scope` allows, through :func:`crmlens.metrics.facts.scoped` on the
``customers`` fact (the one place filters and row limits become row filters), or reads the scores
with the customers' columns beside them from their derived table when ``crmlens build`` wrote it
(:func:`crmlens.metrics.facts.customer_scores`, filtered the same way); the views in
:mod:`crmlens.models.views` and :mod:`crmlens.models.customer360` read the scores from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from ibis.expr.types import Table

from crmlens.errors import ConfigError, NotBuiltError, WarehouseError
from crmlens.metrics.dimensions import DIMENSIONS
from crmlens.metrics.evaluate import with_nulls
from crmlens.metrics.facts import customer_scores, scoped
from crmlens.metrics.facts import table as cached_table
from crmlens.metrics.scope import NotApplicableError, Scope
from crmlens.schema import table as schema_table
from crmlens.warehouse.engines import ReadableWarehouse

#: Dimensions of a customer's master record (what :func:`clv_by` and the scope can use).
CUSTOMER_DIMENSIONS: tuple[str, ...] = tuple(
    d for d, spec in DIMENSIONS.items() if spec.source in ("customer", "age") or d == "store"
)


def model_table(wh: ReadableWarehouse, name: str) -> Table:
    """The Ibis table of model table ``name``; :class:`NotBuiltError` if it does not exist."""
    try:
        return cached_table(wh, name)  # type: ignore[arg-type]
    except WarehouseError as exc:
        raise NotBuiltError(f"model table {name} is missing ({exc}); run `crmlens build`") from exc


def require_built(wh: ReadableWarehouse, name: str) -> None:
    """:class:`NotBuiltError` when model table ``name`` has no rows."""
    t = model_table(wh, name)
    if int(wh.execute(t.count())) == 0:
        raise NotBuiltError(f"model table {name} is empty; run `crmlens build` first")


def checked(wh: ReadableWarehouse, frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """``frame``, after making sure an empty one is not because model table ``name`` is empty
    (the check costs a query only when the result is empty), with ``name``'s date columns as
    dates."""
    if frame.empty:
        require_built(wh, name)
    return as_dates(frame, name)


def scored(wh: ReadableWarehouse, scope: Scope | None, dims: Sequence[str] = ()) -> Table:
    """``model_customer_scores`` rows of the customers ``scope`` allows, with the customer
    dimensions ``dims`` as columns (named after the dimension; they need a scope, since the age
    band is the age on the scope's last day)."""
    scores = model_table(wh, "model_customer_scores")
    if not dims and (scope is None or not scope.constraints()):
        return scores
    if scope is None:
        raise ConfigError("grouping customer scores by a dimension needs a scope")
    bad = [d for d in dims if d not in CUSTOMER_DIMENSIONS]
    if bad:
        raise NotApplicableError(
            f"customer scores cannot be grouped by {', '.join(bad)}; "
            f"expected one of: {', '.join(CUSTOMER_DIMENSIONS)}"
        )
    copy = customer_scores(wh, scope, dims)  # type: ignore[arg-type]
    if copy is not None:
        return copy
    c = scoped(wh, "customers", scope, dims=dims)  # type: ignore[arg-type]
    c = c.select(v__id=c.customer_id, **{f"v__{d}": c[d] for d in dims})
    j = scores.join(c, scores.customer_id == c.v__id)
    return j.select(*scores.columns, **{d: j[f"v__{d}"] for d in dims})


def records(frame: pd.DataFrame, table: str | None = None) -> list[dict[str, Any]]:
    """Rows as dicts with None for missing values; with ``table``, its ``date`` columns as
    :class:`datetime.date` (pandas reads them as midnight timestamps)."""
    if table is not None:
        frame = as_dates(frame, table)
    return with_nulls(frame).to_dict(orient="records")


def as_dates(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """``frame`` with the columns declared ``date`` in canonical table ``table`` as dates."""
    declared = {c.name for c in schema_table(table).columns if c.type == "date"}
    out = frame.copy()
    for name in declared & set(frame.columns):
        out[name] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[name]]
    return out
