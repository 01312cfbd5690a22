"""Property-based requests generated from the OpenAPI spec (schemathesis): no input — valid or
deliberately invalid — makes the API answer with a 5xx, and every response matches the schema the
spec declares for its status."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

#: Every operation of the spec (checked against the spec below, so none is left untested).
PATHS = [
    "/api/v1/health",
    "/api/v1/kpis",
    "/api/v1/kpis/{name}",
    "/api/v1/overview",
    "/api/v1/breakdown",
    "/api/v1/cohorts",
    "/api/v1/lifecycle",
    "/api/v1/member-trend",
    "/api/v1/segments",
    "/api/v1/segments/rfm-grid",
    "/api/v1/clusters",
    "/api/v1/personas",
    "/api/v1/clv",
    "/api/v1/churn/risk",
    "/api/v1/churn/drivers",
    "/api/v1/customers",
    "/api/v1/customers/{customer_id}",
]
#: Examples per operation and generation mode; small, as each may run several queries.
EXAMPLES = 8


@pytest.fixture(scope="session")
def api_schema(app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


def test_every_operation_is_covered(api_schema: schemathesis.BaseSchema) -> None:
    spec = api_schema.raw_schema["paths"]
    assert sorted(spec) == sorted(PATHS)
    assert all(list(ops) == ["get"] for ops in spec.values())


@pytest.mark.parametrize("path", PATHS)
def test_no_input_makes_the_api_fail(api_schema: schemathesis.BaseSchema, path: str) -> None:
    operation = api_schema[path]["GET"]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=2 * EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    run()
