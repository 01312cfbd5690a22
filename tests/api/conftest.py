"""One small built demo warehouse per session for the API tests: generated, loaded, built, and
reopened read-only as the server opens it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from schemathesis.python.asgi import ASGIClient, get_client

from crmlens.api import create_api
from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.models.build import build
from crmlens.warehouse import Warehouse

CUSTOMERS = 3_000
#: The row limits of the "regional" server in these tests.
LIMITS = {"region": "华东"}


def built_demo(root: Path) -> Path:
    """A built 3,000-customer demo warehouse under ``root`` (made once, then reused)."""
    path = root / "demo.duckdb"
    done = root / "built.ok"
    if not done.exists():
        generate(DemoConfig(customers=CUSTOMERS, seed=42, out_dir=root / "export"))
        with Warehouse(path) as wh:
            load_demo_export(wh, root / "export")
            build(wh)
        done.write_text("ok", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    root = tmp_path_factory.getbasetemp() / "built-demo"
    root.mkdir(exist_ok=True)
    with Warehouse(built_demo(root), read_only=True) as opened:
        yield opened


@pytest.fixture(scope="session")
def app(wh: Warehouse) -> FastAPI:
    return create_api(wh)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[ASGIClient]:
    with get_client(app) as c:
        yield c


@pytest.fixture(scope="session")
def limited(wh: Warehouse) -> Iterator[ASGIClient]:
    """A client of a server whose users may only see 华东."""
    with get_client(create_api(wh, row_limits=LIMITS)) as c:
        yield c
