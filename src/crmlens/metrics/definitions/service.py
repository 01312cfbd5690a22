"""Service and voice-of-the-customer KPIs: tickets, complaints, resolution time, NPS, CSAT."""

from __future__ import annotations

import ibis
from ibis.expr.types import BooleanValue, Table, Value

from crmlens.metrics.definitions.sales import orders
from crmlens.metrics.measures import Measure, row_count
from crmlens.metrics.metric import PER_MILLE, Format, Metric
from crmlens.metrics.query import Query

#: ``service_tickets.ticket_type`` of a complaint.
COMPLAINT = "投诉"


def _complaint_count(q: Query, t: Table) -> Value:
    return ibis.ifelse(t.ticket_type == COMPLAINT, 1, 0).sum()


#: Tickets of type 投诉 per period.
_complaints = Measure("tickets", _complaint_count, adds_up="rows")


def _complaint_rate(q: Query) -> Table:
    return q.ratio(_complaints(q), orders(q))


def _closed(t: Table) -> BooleanValue:
    """Closed tickets: closed_at set, not before opened_at."""
    return t.closed_at.notnull() & (t.closed_at >= t.opened_at)


def _hours(t: Table) -> Value:
    """Resolution time in hours (of closed tickets)."""
    return (t.closed_at.epoch_seconds() - t.opened_at.epoch_seconds()) / 3600.0


def _resolution_mean(q: Query, t: Table) -> Value:
    return _hours(t).mean()


def _resolution_p90(q: Query, t: Table) -> Value:
    return _hours(t).quantile(0.9)


def _answered(t: Table) -> BooleanValue:
    return t.nps_score.notnull()


def _nps(q: Query, t: Table) -> Value:
    score = ibis.ifelse(t.nps_score >= 9, 100.0, ibis.ifelse(t.nps_score <= 6, -100.0, 0.0))
    return score.mean()


def _csat(q: Query, t: Table) -> Value:
    return t.csat_score.mean()


def _service_csat(q: Query, t: Table) -> Value:
    return t.satisfaction.mean()


_RESOLUTION = (
    "over the service tickets opened in the period that are closed (closed_at set and not "
    "before opened_at), of closed_at - opened_at in hours. Open tickets are not included. None "
    "without a closed ticket."
)

METRICS = (
    Metric(
        "tickets",
        "工单量",
        "Service tickets",
        "Number of service tickets opened (opened_at) in the period, of every type; by "
        "ticket_type this is the inquiries-by-type breakdown.",
        "count",
        Measure("tickets", row_count, adds_up="rows"),
        ("tickets",),
        "Service",
        additive=True,
        default_dims=("ticket_type", "store", "category"),
    ),
    Metric(
        "complaints",
        "投诉量",
        "Complaints",
        f"Number of service tickets of type {COMPLAINT} opened in the period.",
        "count",
        _complaints,
        ("tickets",),
        "Service",
        direction="down",
        additive=True,
        default_dims=("category", "store"),
    ),
    Metric(
        "complaint_rate",
        "投诉率",
        "Complaint rate",
        f"Complaints (tickets of type {COMPLAINT} opened in the period) per completed order of "
        "the period, shown per 1,000 orders (‰). By category: complaints about SKUs of the "
        "category per order containing it. None when the period has no completed order.",
        "ratio",
        _complaint_rate,
        ("tickets", "orders"),
        "Service",
        direction="down",
        format=PER_MILLE,
        default_dims=("category", "store"),
    ),
    Metric(
        "resolution_hours",
        "平均解决时长(小时)",
        "Mean resolution time (hours)",
        "Mean, " + _RESOLUTION,
        "hours",
        Measure("tickets", _resolution_mean, keep=_closed),
        ("tickets",),
        "Service",
        direction="down",
        default_dims=("ticket_type",),
    ),
    Metric(
        "resolution_hours_p90",
        "解决时长P90(小时)",
        "Resolution time p90 (hours)",
        "90th percentile (linear interpolation between closest ranks), " + _RESOLUTION,
        "hours",
        Measure("tickets", _resolution_p90, keep=_closed),
        ("tickets",),
        "Service",
        direction="down",
        default_dims=("ticket_type",),
    ),
    Metric(
        "nps",
        "NPS净推荐值",
        "Net promoter score",
        "Over survey responses submitted in the period with an NPS answer (0-10): percentage of "
        "promoters (9-10) minus percentage of detractors (0-6), from -100 to 100. None without "
        "answers.",
        "score",
        Measure("surveys", _nps, keep=_answered),
        ("surveys",),
        "Service",
        format=Format(1),
        default_dims=("store", "customer_type"),
    ),
    Metric(
        "csat",
        "客户满意度",
        "Customer satisfaction (CSAT)",
        "Mean overall satisfaction (survey_responses.csat_score, 1-5) of survey responses "
        "submitted in the period. None without answers.",
        "score",
        Measure("surveys", _csat),
        ("surveys",),
        "Service",
        format=Format(2),
        default_dims=("store", "customer_type"),
    ),
    Metric(
        "service_csat",
        "服务满意度",
        "Service satisfaction",
        "Mean rating (service_tickets.satisfaction, 1-5) of the tickets opened in the period that "
        "were rated. None without ratings.",
        "score",
        Measure("tickets", _service_csat),
        ("tickets",),
        "Service",
        format=Format(2),
        default_dims=("ticket_type",),
    ),
)
