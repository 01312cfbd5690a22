"""The dimensions a KPI can be filtered and broken down by, declared once as data.

A dimension names a business attribute ("city", "tier", "category"), not a column: each fact
(:mod:`crmlens.metrics.facts`) says how it reaches it — its own column, the customer's master
record, the store it happened in or the product it concerns. The filter bar, the ``--filter`` and
``--by`` options, row-level security and ``docs/metrics.md`` all take their names and labels from
here.

>>> dimension("tier").label_zh
'会员等级'
>>> age_band_label(45)
'40-49'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crmlens.errors import ConfigError

#: Shown for a missing dimension value (a walk-in order has no customer, so no tier). Missing values
#: are grouped under this label rather than dropped, so a breakdown always adds up to the total.
UNKNOWN = "未知"
#: The row that folds everything outside a top-N breakdown together.
OTHER = "其他"

#: Where a dimension's value comes from.
#:  - ``customer``: a column of the ``customers`` master record, reached via the fact's customer;
#:  - ``age``: the customer's age band, from ``customers.birth_date`` (age on the scope's last day);
#:  - ``store``: the fact's own store key (the order's store; a customer's home store);
#:  - ``product``: a column of ``products``, reached via the fact's SKU or its order lines;
#:  - ``fact``: a column only some facts have (order channel, ticket type).
Source = Literal["customer", "age", "store", "product", "fact"]

#: Lower bounds of the age bands, in whole years.
AGE_BANDS: tuple[int, ...] = (0, 20, 30, 40, 50, 60)


@dataclass(frozen=True)
class Dimension:
    """One dimension: labels, meaning and where its value comes from."""

    name: str
    label_zh: str
    label_en: str
    description: str
    source: Source
    #: The column in ``customers`` / ``products`` for the customer and product sources.
    column: str | None = None


def age_band_label(age: int) -> str:
    """The band an age in whole years falls in: ``<20``, ``20-29`` … ``60+``.

    >>> [age_band_label(a) for a in (19, 20, 59, 60)]
    ['<20', '20-29', '50-59', '60+']
    """
    if age < AGE_BANDS[1]:
        return f"<{AGE_BANDS[1]}"
    if age >= AGE_BANDS[-1]:
        return f"{AGE_BANDS[-1]}+"
    lower = max(b for b in AGE_BANDS if b <= age)
    return f"{lower}-{lower + 9}"


# fmt: off
_DIMENSIONS = (
    Dimension("region", "大区", "Region", "The customer's sales region (customers.region), e.g. 华东.", "customer", "region"),
    Dimension("city", "城市", "City", "The customer's city (customers.city); for members who signed up in a store it is that store's city.", "customer", "city"),
    Dimension("store", "门店", "Store", "The store of the fact: where an order was placed, a customer's home store (注册门店), the store a ticket or survey concerns.", "store"),
    Dimension("customer_type", "客户类型", "Customer type", "个人 (individual) or 企业 (company), from customers.customer_type.", "customer", "customer_type"),
    Dimension("channel", "注册渠道", "Signup channel", "The acquisition channel: customers.signup_channel_id; for marketing spend, the channel spent on.", "customer", "signup_channel_id"),
    Dimension("tier", "会员等级", "Member tier", "白金 / 黄金 / 白银 / 普通, from customers.member_tier.", "customer", "member_tier"),
    Dimension("gender", "性别", "Gender", "男 / 女 from customers.gender.", "customer", "gender"),
    Dimension("age_band", "年龄段", "Age band", "Age in whole years on the scope's last day, from customers.birth_date, in bands <20, 20-29, …, 60+.", "age"),
    Dimension("category", "品类", "Category", "products.category: of an order's lines (each order's amount is split over its categories pro rata to the line amounts) or of a ticket's SKU.", "product", "category"),
    Dimension("order_channel", "下单渠道", "Order channel", "POS, online or app (orders.order_channel).", "fact"),
    Dimension("ticket_type", "工单类型", "Ticket type", "咨询 / 投诉 / 售后 / 建议 (service_tickets.ticket_type).", "fact"),
)
# fmt: on

#: Every dimension by name, in the order the filter bar shows them.
DIMENSIONS: dict[str, Dimension] = {d.name: d for d in _DIMENSIONS}


def dimension(name: str) -> Dimension:
    """The dimension called ``name``; :class:`ConfigError` listing the known ones if unknown."""
    try:
        return DIMENSIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dimension {name!r}; expected one of: {', '.join(DIMENSIONS)}"
        ) from None
