"""Every endpoint returns what the metrics layer or the model views return for the same scope —
unfiltered, filtered, and on a server with row limits — and masks contact data."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

import pytest
from schemathesis.python.asgi import ASGIClient

from crmlens.api.convert import rows
from crmlens.metrics import (
    REGISTRY,
    SEED_OVERVIEW,
    Scope,
    breakdown,
    cohort_table,
    lifecycle,
    member_trend,
    overview,
    timeseries,
)
from crmlens.models import views
from crmlens.warehouse import Warehouse

V1 = "/api/v1"
START, END = date(2021, 1, 1), date(2021, 6, 30)
RANGE = f"start={START}&end={END}"
FULL = Scope(START, END)
EAST = FULL.narrow(region="华东")
LIMITED = Scope(START, END, row_limits={"region": "华东"})
PHONE = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def iso(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value))


def as_json(data: Any) -> Any:
    """What ``data`` looks like after a trip through JSON (dates as ISO text)."""
    return json.loads(json.dumps(data, default=iso, ensure_ascii=False))


def get(client: ASGIClient, url: str, status: int = 200) -> Any:
    r = client.get(V1 + url)
    assert r.status_code == status, r.text
    return r.json()


# -- KPIs ------------------------------------------------------------------------------------
def test_kpi_catalogue_lists_every_registered_kpi(client: ASGIClient) -> None:
    body = get(client, "/kpis")
    assert [k["name"] for k in body["kpis"]] == list(REGISTRY)
    aov = next(k for k in body["kpis"] if k["name"] == "aov")
    assert (aov["label_zh"], aov["unit"], aov["direction"]) == ("客单价", "money", "up")


@pytest.mark.parametrize(("query", "scope"), [("", FULL), ("&filter=region:华东", EAST)])
def test_kpi_series_equals_timeseries(
    client: ASGIClient, wh: Warehouse, query: str, scope: Scope
) -> None:
    body = get(client, f"/kpis/new_customers?{RANGE}{query}")
    want = timeseries(wh, "new_customers", scope, compare=True, targets=True)
    got = body["points"]
    assert [p["period"] for p in got] == want["period"].tolist()
    for column in ("value", "previous", "change", "last_year", "change_yoy", "target", "met"):
        assert _close([p[column] for p in got], as_json(want[column].tolist())), column
    assert body["scope"]["filters"] == ({"region": ["华东"]} if query else {})


def test_kpi_series_by_dimension(client: ASGIClient, wh: Warehouse) -> None:
    body = get(client, f"/kpis/members?{RANGE}&by=city")
    want = timeseries(wh, "members", FULL, ["city"], compare=True, targets=True)
    got = {(p["period"], p["dimensions"]["city"]): p["value"] for p in body["points"]}
    assert got == {(r.period, r.city): r.value for r in want.itertuples()}


@pytest.mark.parametrize(("query", "scope"), [("", FULL), ("&filter=region:华东", EAST)])
def test_overview_equals_metrics_overview(
    client: ASGIClient, wh: Warehouse, query: str, scope: Scope
) -> None:
    body = get(client, f"/overview?{RANGE}{query}")
    assert _close(body["rows"], as_json(rows(overview(wh, SEED_OVERVIEW, scope))))


def test_overview_on_a_row_limited_server_equals_the_limited_scope(
    limited: ASGIClient, wh: Warehouse
) -> None:
    body = get(limited, f"/overview?{RANGE}&metric=revenue&metric=customers")
    want = overview(wh, ["revenue", "customers"], LIMITED)
    assert _close(body["rows"], as_json(rows(want)))
    everyone = overview(wh, ["revenue", "customers"], FULL)
    assert body["rows"][0]["value"] < everyone["value"].iloc[0]
    # a filter can narrow the limit, never widen it: 华南 outside 华东 sees nothing
    outside = get(limited, f"/overview?{RANGE}&metric=revenue&filter=region:华南")
    assert outside["rows"][0]["value"] == 0


def test_breakdown_equals_metrics_breakdown(client: ASGIClient, wh: Warehouse) -> None:
    url = f"/breakdown?{RANGE}&metric=revenue&metric=aov&by=region&by=tier&top=3&filter=gender:女"
    body = get(client, url)
    scope = FULL.narrow(gender="女")
    want = breakdown(wh, ["revenue", "aov"], scope, ["region", "tier"], top=3)
    assert _close(body["rows"], as_json(rows(want)))


def test_cohorts_lifecycle_and_member_trend(client: ASGIClient, wh: Warehouse) -> None:
    cells = get(client, f"/cohorts?{RANGE}&periods=3&filter=region:华东")["cells"]
    assert _close(cells, as_json(rows(cohort_table(wh, EAST, periods=3))))
    cells = get(client, f"/cohorts?{RANGE}&periods=2&measure=revenue&grain=quarter")["cells"]
    want = cohort_table(wh, Scope(START, END, "quarter"), periods=2, measure="revenue")
    assert _close(cells, as_json(rows(want)))
    assert _close(get(client, f"/lifecycle?{RANGE}")["rows"], as_json(rows(lifecycle(wh, FULL))))
    trend = get(client, f"/member-trend?{RANGE}&filter=tier:白金")["rows"]
    assert _close(trend, as_json(rows(member_trend(wh, FULL.narrow(tier="白金")))))


# -- customer models -------------------------------------------------------------------------
def test_segments_without_filters_equal_the_model_table(client: ASGIClient, wh: Warehouse) -> None:
    for scheme in ("cn8", "en11", "lifecycle"):
        got = get(client, f"/segments?scheme={scheme}")["rows"]
        table = views.segments(wh, scheme)
        assert [r["segment"] for r in got] == table["segment"].tolist()
        assert [r["customers"] for r in got] == table["customers"].tolist()
        assert [r["revenue"] for r in got] == pytest.approx(table["revenue"].tolist())
        stored = as_json(rows(table[["mean_clv_12m", "mean_churn_risk"]]))
        assert [r["mean_clv_12m"] for r in got] == pytest.approx(
            [r["mean_clv_12m"] for r in stored], nan_ok=True
        )


def test_segments_filtered_and_limited(
    client: ASGIClient, limited: ASGIClient, wh: Warehouse
) -> None:
    got = get(client, "/segments?scheme=cn8&filter=region:华东")["rows"]
    assert _close(got, as_json(rows(views.segment_counts(wh, EAST, "cn8"))))
    assert get(limited, "/segments?scheme=cn8")["rows"] == got
    everyone = get(client, "/segments?scheme=cn8")["rows"]
    assert sum(r["customers"] for r in got) < sum(r["customers"] for r in everyone)


def test_rfm_grid_clusters_personas(client: ASGIClient, wh: Warehouse) -> None:
    grid = get(client, "/segments/rfm-grid?filter=tier:白金,黄金")["cells"]
    assert _close(grid, as_json(rows(views.rfm_grid(wh, FULL.narrow(tier=["白金", "黄金"])))))
    body = get(client, "/clusters?points=true")
    assert _close(body["clusters"], as_json(rows(views.clusters(wh))))
    assert len(body["points"]) == len(views.cluster_points(wh))
    assert get(client, "/clusters")["points"] is None
    tiers = get(client, "/personas?kind=member_tier")["rows"]
    assert _close(tiers, as_json(rows(views.personas(wh, "member_tier"))))
    assert {r["group_name"] for r in tiers} == {"白金", "黄金", "白银", "普通"}


def test_clv(client: ASGIClient, limited: ASGIClient, wh: Warehouse) -> None:
    body = get(client, "/clv?by=tier&bins=10&filter=region:华东")
    assert _close(body["distribution"], as_json(rows(views.clv_distribution(wh, EAST, 10))))
    want = views.clv_by(wh, EAST, "tier").rename(columns={"tier": "group"})
    # sums over many floats: equal to the last bits only when both sum in the same order
    assert _close(body["groups"], as_json(rows(want)))
    params = views.clv_params(wh)
    assert (
        body["models"]["bgnbd"]["parameters"]["r"]["value"]
        == params["models"]["bgnbd"]["parameters"]["r"]["value"]
    )
    assert sum(b["customers"] for b in body["distribution"]) == sum(
        g["customers"] for g in body["groups"]
    )
    assert _close(get(limited, "/clv?by=tier&bins=10")["groups"], body["groups"])


def _close(got: Any, want: Any) -> bool:
    """Equal JSON values, floats to 12 significant digits: a sum over a parallel join or
    aggregate may add in a different order from one run to the next."""
    if isinstance(got, float) and isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-9)
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in got)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    return got == want


def test_churn_risk_list_pages_and_masks(
    client: ASGIClient, limited: ASGIClient, wh: Warehouse
) -> None:
    body = get(client, "/churn/risk?limit=20&offset=5&min_risk=0.5&filter=region:华东")
    want = views.churn_risk_list(wh, EAST, limit=20, offset=5, min_risk=0.5)
    assert _close(body["rows"], as_json(rows(want)))
    assert body["total"] == views.churn_risk_count(wh, EAST, min_risk=0.5)
    risks = [r["churn_risk"] for r in body["rows"]]
    assert risks == sorted(risks, reverse=True) and min(risks) >= 0.5
    assert {r["region"] for r in body["rows"]} == {"华东"}
    text = json.dumps(body, ensure_ascii=False)
    assert not PHONE.search(text)
    assert all(
        r["phone"] is None or re.fullmatch(r"\d{3}\*{4}\d{4}", r["phone"]) for r in body["rows"]
    )
    assert all(r["email"] is None or re.fullmatch(r".\*{3}@.+", r["email"]) for r in body["rows"])
    limited_body = get(limited, "/churn/risk?limit=20&offset=5&min_risk=0.5")
    assert _close(limited_body["rows"], body["rows"])
    warned = get(client, "/churn/risk?early_warning_only=true&limit=500")
    assert all(r["early_warning"] for r in warned["rows"])


def test_churn_drivers(client: ASGIClient, wh: Warehouse) -> None:
    body = get(client, "/churn/drivers?filter=tier:普通")
    assert _close(body["rows"], as_json(rows(views.churn_drivers(wh, FULL.narrow(tier="普通")))))
    assert _close(body["churned_categories"], as_json(rows(views.churned_purchases(wh))))
    assert len(body["sku_counts"]) == len(views.churned_sku_counts(wh))
    top = {r["category"] for r in body["churned_categories"] if r["rank_by_lines"]}
    assert top, "the churned customers' top categories are reported"


def test_customer_search_and_360(client: ASGIClient, limited: ASGIClient, wh: Warehouse) -> None:
    customers = wh.execute(wh.table("customers").select("customer_id", "phone", "region"))
    one = customers.dropna(subset=["phone"]).iloc[0]
    by_id = get(client, f"/customers?q={one.customer_id.lower()}")["rows"]
    assert by_id[0]["customer_id"] == one.customer_id  # exact match first
    by_phone = get(client, f"/customers?q={one.phone}")["rows"]
    assert one.customer_id in [r["customer_id"] for r in by_phone]
    last4 = get(client, f"/customers?q={one.phone[-4:]}&limit=100")["rows"]
    assert one.customer_id in [r["customer_id"] for r in last4]
    assert not PHONE.search(json.dumps(last4))

    record = get(client, f"/customers/{one.customer_id}")
    want = views.customer_360(wh, one.customer_id, FULL)
    assert record["profile"]["customer_id"] == one.customer_id
    assert record["profile"]["phone"] == f"{one.phone[:3]}****{one.phone[-4:]}"
    assert "birth_date" not in record["profile"]
    assert record["orders"]["orders"] == want["orders"]["orders"]
    assert len(record["orders"]["latest"]) == len(want["orders"]["latest"])
    assert not PHONE.search(json.dumps(record))
    get(client, "/customers/NOPE-0", status=404)

    outside = customers[customers["region"] != "华东"].iloc[0].customer_id
    inside = customers[customers["region"] == "华东"].iloc[0].customer_id
    assert get(limited, f"/customers/{outside}", status=404)["error"] == "not_found"
    get(limited, f"/customers/{inside}")
    found = get(limited, f"/customers?q={outside}")["rows"]
    assert outside not in [r["customer_id"] for r in found]


def test_health_reports_the_build(client: ASGIClient, wh: Warehouse) -> None:
    body = get(client, "/health")
    assert body["status"] == "ok" and body["loads"] > 0
    assert body["latest_build"]["build_id"] == views.latest_build(wh)["build_id"]


def test_a_given_cache_is_used_even_when_empty(wh: Warehouse) -> None:
    from crmlens.api import create_api
    from crmlens.metrics.cache import ResultCache

    cache = ResultCache(wh)
    assert create_api(wh, cache).state.crmlens.cache is cache


def test_results_come_from_the_cache(app: Any, client: ASGIClient) -> None:
    cache = app.state.crmlens.cache
    get(client, f"/lifecycle?{RANGE}&filter=gender:男")
    hits, misses = cache.hits, cache.misses
    get(client, f"/lifecycle?{RANGE}&filter=gender:男")
    assert cache.misses == misses and cache.hits > hits


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/overview?grain=decade",
        "/overview?start=2021-13-01",
        "/overview?start=0021-01-01",
        "/overview?start=2021-06-01&end=2021-01-01",
        "/overview?filter=region",
        "/overview?filter=bogus:1",
        "/overview?filter=region:'; DROP TABLE customers; --&metric=nope",
        "/overview?metric=revenue;drop",
        "/kpis/aov?start=2019-01-01&end=2021-12-31&grain=day&by=region&by=region",
        "/kpis/aov?start=1900-01-01&end=2100-12-31&grain=day",
        "/breakdown?metric=revenue",
        "/breakdown?metric=revenue&by=region&by=tier&by=city&by=gender",
        "/breakdown?metric=revenue&by=region&sort_by=aov",
        "/breakdown?metric=revenue&by=shoe_size",
        "/cohorts?periods=0",
        "/cohorts?mode=sometimes",
        "/segments?scheme=abc",
        "/churn/risk?limit=0",
        "/churn/risk?min_risk=1.5",
        "/customers?q=",
        "/customers",
        "/clv?by=horoscope",
    ],
)
def test_invalid_parameters_are_422_with_a_message(client: ASGIClient, url: str) -> None:
    body = get(client, url, status=422)
    assert body["error"] == "invalid_parameter"
    assert body["message"] and body["details"]


def test_injection_text_is_only_a_value(client: ASGIClient, wh: Warehouse) -> None:
    body = get(client, "/overview?metric=customers&filter=region:x' OR '1'='1")
    assert body["rows"][0]["value"] == 0
    assert wh.row_count("customers") > 0


def test_requests_the_data_cannot_answer_are_400(client: ASGIClient) -> None:
    body = get(client, "/breakdown?metric=cac&by=gender", status=400)
    assert body["error"] == "not_applicable" and "gender" in body["message"]
    body = get(client, "/segments?filter=order_channel:POS", status=400)
    assert "order_channel" in body["message"]
    assert get(client, "/kpis/no_such_kpi", status=404)["error"] == "not_found"
    assert get(client, "/nowhere", status=404)["error"] == "not_found"


def test_before_a_build_model_endpoints_say_so(tmp_path: Any) -> None:
    from schemathesis.python.asgi import get_client

    from crmlens.api import create_api

    with Warehouse(tmp_path / "empty.duckdb") as empty, get_client(create_api(empty)) as c:
        for url in ("/segments", "/clusters", "/personas", "/clv", "/churn/drivers", "/churn/risk"):
            body = get(c, url, status=409)
            assert body["error"] == "not_built" and "crmlens build" in body["message"]
        assert get(c, "/health")["latest_build"] is None
        assert get(c, "/overview?start=2021-01-01&end=2021-01-31")["rows"][0]["value"] == 0


def test_api_docs_work_offline(client: ASGIClient) -> None:
    """The Swagger UI page and every file it loads come from this server, never a CDN."""
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.text
    assert "/api/openapi.json" in html
    assert "https://" not in html and "http://" not in html, "docs must not load from the web"
    assets = re.findall(r'(?:src|href)="(/api/static/swagger/[^"]+)"', html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert client.get("/api/openapi.json").json()["info"]["title"] == "crmlens API"
