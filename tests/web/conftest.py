"""The dashboard served from a real demo warehouse, and one real headless Chromium.

Session fixtures, built once: the demo company (3,000 customers, seed 42) generated, loaded and
its models built; a FastAPI app with the dashboard on it, under uvicorn in a background thread on
127.0.0.1 and a free port; Debian's Chromium driven by Playwright (never a downloaded browser).
Screenshots go to ``tests/artifacts/web`` (git-ignored).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi
import pytest
import uvicorn

from crmlens.demo import DemoConfig, generate
from crmlens.ingest import load_demo_export
from crmlens.metrics.cache import ResultCache
from crmlens.models.build import build
from crmlens.warehouse import Warehouse
from crmlens.web import create_dash

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
#: The longest a page may take to render on a loaded 2-core machine, in milliseconds.
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def demo_wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The demo warehouse with its models built (read-only once built, as under ``crmlens serve``)."""
    out = tmp_path_factory.mktemp("web_demo")
    generate(DemoConfig(customers=3000, seed=42, out_dir=out))
    path = out / "w.duckdb"
    with Warehouse(path) as wh:
        assert load_demo_export(wh, out).balanced
        build(wh)
    with Warehouse(path, read_only=True) as wh:
        yield wh


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(demo_wh: Warehouse) -> Iterator[str]:
    """The dashboard's base URL; the server runs until the session ends."""
    app = fastapi.FastAPI()

    @app.get("/api/v1/ping")
    def ping() -> dict[str, bool]:  # stands in for the REST API sharing the app
        return {"ok": True}

    create_dash(app, demo_wh, ResultCache(demo_wh))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the dashboard did not start on port {port} within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A browser tab on the dashboard that records console errors, server errors and any request
    that leaves the dashboard's origin."""

    def __init__(self, tab: Any, base: str) -> None:
        self.tab = tab
        self.base = base
        self.errors: list[str] = []
        tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        tab.on("pageerror", lambda e: self.errors.append(str(e)))
        tab.on(
            "response",
            lambda r: r.status >= 500 and self.errors.append(f"{r.status} {r.url}"),
        )
        # offline: every asset comes from the dashboard itself, nothing from a CDN
        tab.on(
            "request",
            lambda r: (
                r.url.startswith((base, "data:", "blob:"))
                or self.errors.append(f"external request {r.url}")
            ),
        )

    def open(self, path: str) -> None:
        """Load ``path`` and wait until the page's content has rendered."""
        self.tab.goto(self.base + path)
        self.settle()

    def settle(self) -> None:
        """Wait until Dash has no callback in flight and the page grid is there."""
        self.tab.wait_for_selector("#page .grid", timeout=PAGE_TIMEOUT_MS)
        self.tab.wait_for_function(
            "() => !document.querySelector('[data-dash-is-loading=\"true\"]')",
            timeout=PAGE_TIMEOUT_MS,
            polling=100,
        )
        # the theme is applied and every graph has been drawn by Plotly (it loads lazily)
        ready = """() => {
            const bar = document.querySelector('.topbar');
            const drawn = document.querySelectorAll('.chart .main-svg').length;
            return !!bar && getComputedStyle(bar).backgroundColor !== 'rgba(0, 0, 0, 0)'
                && drawn >= document.querySelectorAll('.chart').length;
        }"""
        try:
            self.tab.wait_for_function(ready, timeout=PAGE_TIMEOUT_MS, polling=100)
        except Exception as exc:
            state = self.tab.evaluate(
                """() => ({charts: document.querySelectorAll('.chart').length,
                    drawn: document.querySelectorAll('.chart .main-svg').length,
                    sheets: [...document.styleSheets].map(s => s.href).filter(Boolean),
                    errors: document.querySelectorAll('.error-banner').length})"""
            )
            raise AssertionError(f"page not ready: {state}; console: {self.errors}") from exc

    def wait_for_text(self, selector: str, *, not_equal: str) -> str:
        """Wait until ``selector``'s text is no longer ``not_equal`` (the page re-rendered after
        an interaction), then until the page has settled; the new text."""
        self.tab.wait_for_function(
            "([sel, old]) => { const e = document.querySelector(sel);"
            " return !!e && e.innerText !== old; }",
            arg=[selector, not_equal],
            timeout=PAGE_TIMEOUT_MS,
            polling=100,
        )
        self.settle()
        return self.text(selector)

    def text(self, selector: str) -> str:
        return self.tab.inner_text(selector)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def page(browser: Any, server: str) -> Iterator[Page]:
    """One desktop-sized tab shared by the tests (a fresh page per test costs seconds)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    yield Page(context.new_page(), server)
    context.close()


@pytest.fixture
def fresh_page(browser: Any, server: str) -> Iterator[Page]:
    """A tab in a new browser context (no history, no state), closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Page(context.new_page(), server)
    context.close()


@pytest.fixture(scope="session")
def phone(browser: Any, server: str) -> Iterator[Page]:
    """A phone-width tab (iPhone 12: 390 × 844)."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    yield Page(context.new_page(), server)
    context.close()
