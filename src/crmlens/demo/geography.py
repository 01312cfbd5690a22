"""Where the demo company is: its stores in Shandong and where its online customers live."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

ONLINE_STORE = "S00"
KIOSK_FROM = date(2021, 1, 1)

# (city, [(district-style store suffix, store_type, opened, area_sqm, sign-up weight), ...]).
# Sign-up weights set how many members a store attracts; 青岛's stores draw the fewest members per
# store (seed 000: 青島市的平均會員數最低) and 烟台's the most, so only 烟台 reaches its target.
_STORES: tuple[tuple[str, tuple[tuple[str, str, str, int, float], ...]], ...] = (
    (
        "烟台",
        (
            ("芝罘店", "大卖场", "2012-05-18", 9800, 1.55),
            ("莱山店", "标准超市", "2014-09-26", 4200, 1.35),
            ("福山店", "标准超市", "2015-04-30", 3900, 1.25),
            ("开发区店", "大卖场", "2013-11-08", 8600, 1.45),
            ("牟平社区店", "社区店", "2017-06-16", 1200, 0.95),
        ),
    ),
    (
        "青岛",
        (
            ("市南店", "标准超市", "2015-08-08", 4500, 0.85),
            ("李沧店", "大卖场", "2016-03-18", 8800, 0.90),
            ("崂山店", "标准超市", "2017-10-01", 3600, 0.70),
            ("黄岛店", "标准超市", "2018-04-28", 3800, 0.72),
            ("城阳社区店", "社区店", "2018-09-09", 1100, 0.55),
        ),
    ),
    (
        "济南",
        (
            ("历下店", "大卖场", "2013-06-06", 9200, 1.30),
            ("槐荫店", "标准超市", "2015-12-12", 4000, 1.05),
            ("天桥店", "标准超市", "2016-05-20", 3700, 0.95),
            ("历城店", "大卖场", "2016-09-28", 8100, 1.15),
            ("长清社区店", "社区店", "2018-01-18", 1000, 0.70),
        ),
    ),
    (
        "潍坊",
        (
            ("奎文店", "大卖场", "2014-04-18", 8900, 1.20),
            ("潍城店", "标准超市", "2015-07-07", 3900, 0.95),
            ("寒亭店", "标准超市", "2017-03-03", 3500, 0.85),
            ("高新区社区店", "社区店", "2018-06-18", 1050, 0.65),
        ),
    ),
    (
        "威海",
        (
            ("环翠店", "大卖场", "2014-10-10", 8200, 1.10),
            ("文登店", "标准超市", "2016-08-18", 3600, 0.85),
            ("荣成店", "标准超市", "2017-12-08", 3400, 0.75),
        ),
    ),
    (
        "淄博",
        (
            ("张店店", "大卖场", "2015-05-01", 8700, 1.05),
            ("临淄店", "标准超市", "2016-11-11", 3700, 0.85),
            ("周村社区店", "社区店", "2018-08-08", 1000, 0.60),
        ),
    ),
)

# The kiosk pilot (seed 000 ②): 10 stores, self-service sign-up kiosks in 3 of them from 2021-01.
# The treatment stores already drew more sign-ups than the controls before the kiosks.
PILOT_STORES = ("S01", "S02", "S04", "S06", "S07", "S11", "S12", "S14", "S16", "S21")
KIOSK_STORES = ("S01", "S04", "S11")

# Cities of Shandong without a store (online customers live there too).
OTHER_SHANDONG_CITIES = (
    "临沂",
    "日照",
    "东营",
    "济宁",
    "泰安",
    "德州",
    "聊城",
    "滨州",
    "菏泽",
    "枣庄",
)

# Online customers outside Shandong: (region, province, city, weight).
NATIONWIDE: tuple[tuple[str, str, str, float], ...] = (
    ("华东", "江苏", "南京", 0.06),
    ("华东", "江苏", "苏州", 0.05),
    ("华东", "上海", "上海", 0.08),
    ("华东", "浙江", "杭州", 0.06),
    ("华东", "安徽", "合肥", 0.03),
    ("华北", "北京", "北京", 0.10),
    ("华北", "天津", "天津", 0.06),
    ("华北", "河北", "石家庄", 0.05),
    ("华南", "广东", "广州", 0.07),
    ("华南", "广东", "深圳", 0.07),
    ("华中", "河南", "郑州", 0.06),
    ("华中", "湖北", "武汉", 0.05),
    ("西南", "四川", "成都", 0.05),
    ("西南", "重庆", "重庆", 0.03),
    ("西北", "陕西", "西安", 0.04),
    ("东北", "辽宁", "大连", 0.06),
    ("东北", "辽宁", "沈阳", 0.04),
    ("东北", "黑龙江", "哈尔滨", 0.04),
)


def build_stores() -> pd.DataFrame:
    """The store master: ``S00`` (online shop) and the physical stores ``S01``… across Shandong.

    Besides the documented columns it carries ``signup_weight`` (relative member intake).
    """
    rows: list[dict[str, object]] = [
        {
            "store_id": ONLINE_STORE,
            "store_name": "线上商城",
            "region": "华东",
            "province": "山东",
            "city": "烟台",
            "store_type": "线上",
            "opened_date": pd.Timestamp("2016-06-18"),
            "area_sqm": 0,
            "signup_weight": 0.0,
        }
    ]
    number = 0
    for city, stores in _STORES:
        for suffix, store_type, opened, area, weight in stores:
            number += 1
            rows.append(
                {
                    "store_id": f"S{number:02d}",
                    "store_name": f"{city}{suffix}",
                    "region": "华东",
                    "province": "山东",
                    "city": city,
                    "store_type": store_type,
                    "opened_date": pd.Timestamp(opened),
                    "area_sqm": area,
                    "signup_weight": weight,
                }
            )
    stores = pd.DataFrame(rows)
    stores["in_pilot"] = stores["store_id"].isin(PILOT_STORES)
    stores["kiosk_from"] = pd.to_datetime(
        np.where(stores["store_id"].isin(KIOSK_STORES), str(KIOSK_FROM), None)
    )
    return stores
