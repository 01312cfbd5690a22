"""The KPI declarations, by subject area; :mod:`crmlens.metrics.registry` validates and indexes them."""

from crmlens.metrics.definitions import customers, marketing, sales, service

#: Every declared KPI, in the order docs and pickers list them.
ALL = (*sales.METRICS, *customers.METRICS, *marketing.METRICS, *service.METRICS)

__all__ = ["ALL"]
