"""Requests are answered while another view is being computed.

Dash's FastAPI backend runs a plain callback on the event loop; ours run on worker threads
(``crmlens.web.app.off_loop``), and a read-only warehouse reads on a cursor per thread. Checked
without timing: one page render is held inside the server until released, and meanwhile another
page, the REST API and a warehouse query must all be answered.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest

import crmlens.web.app as web_app
from crmlens.warehouse import Warehouse

#: How long the test waits for anything, in seconds (a bound on a loaded machine, not a target).
WAIT = 60


def _page(base: str, path: str, search: str) -> str:
    body = {
        "output": "page.children",
        "outputs": {"id": "page", "property": "children"},
        "inputs": [
            {"id": "url", "property": "pathname", "value": path},
            {"id": "url", "property": "search", "value": search},
        ],
        "changedPropIds": ["url.search"],
        "state": [],
    }
    request = urllib.request.Request(
        f"{base}/_dash-update-component",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return response.read().decode()


def test_a_view_being_computed_does_not_hold_up_other_requests(
    server: str, demo_wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real = web_app.render_page

    def held(path: str, context: Any) -> Any:
        if path == "/members":
            started.set()
            release.wait(WAIT)
        return real(path, context)

    monkeypatch.setattr(web_app, "render_page", held)
    slow: dict[str, str] = {}
    worker = threading.Thread(
        target=lambda: slow.update(text=_page(server, "/members", "?tier=白金&lang=en"))
    )
    worker.start()
    try:
        assert started.wait(WAIT), "the held page never started rendering"
        # the held render is still running; everything else must be answered meanwhile
        other = _page(server, "/value", "?tier=普通&lang=en")
        assert "page-value" in other and "error-banner" not in other
        with urllib.request.urlopen(f"{server}/api/v1/ping", timeout=WAIT) as response:
            assert json.load(response) == {"ok": True}
        assert demo_wh.row_count("customers") == 3000  # another thread's cursor
        assert worker.is_alive() and not release.is_set()
    finally:
        release.set()
        worker.join(WAIT)
    assert "page-members" in slow["text"] and "error-banner" not in slow["text"]


def test_reads_from_many_threads_at_once_give_the_same_answers(demo_wh: Warehouse) -> None:
    """Each thread reads on its own cursor: answers are those of one thread alone."""
    orders = demo_wh.table("orders")
    expr = orders.group_by("order_channel").aggregate(n=orders.count(), amount=orders.amount.sum())
    expected = demo_wh.execute(expr).sort_values("order_channel", ignore_index=True)
    results: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(5):
                got = demo_wh.execute(expr).sort_values("order_channel", ignore_index=True)
                results.append(got)
        except BaseException as exc:  # reported below: a thread's error would be lost
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors and len(results) == 30
    for got in results:
        assert got["order_channel"].tolist() == expected["order_channel"].tolist()
        assert got["n"].tolist() == expected["n"].tolist()
        assert got["amount"].round(6).tolist() == expected["amount"].round(6).tolist()
