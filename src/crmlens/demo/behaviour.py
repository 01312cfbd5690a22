"""Behaviour logs: the shopping app's events (``app/app_events.csv``) and the sales reps' use of the
CRM (``sales/crm_usage_log.csv``), one row per step of a session.

A session follows one path from a small table (app: login → home → category/search → product →
cart → checkout → pay_success/pay_fail, cut where the user drops out; CRM: home → customer list →
customer detail → add follow-up, and others), expanded to events with numpy (repeat + gather).

App events are generated per fixed block of :data:`~crmlens.demo.commerce.BLOCK` customers, each
with its own random stream (seed, :data:`APP_STREAM`, block index), ordered by time within the
block, and appended a chunk of blocks at a time, so the file does not depend on
``DemoConfig.chunk_customers``. The CRM log (a fixed team of reps) is generated in one pass from
the writer's own stream and ordered by time; it does not depend on customer chunking at all.

Planted (``world.effects``): ``app_funnel``, ``app_pay_failure``, ``app_activity_heatmap``,
``app_device_mix``, ``crm_most_common_path``, ``crm_failure_rate``, ``crm_usage``,
``crm_active_hours``. Dirt (``world.dirt``): step durations under 10 s and over 24 h in both files.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmlens.demo.commerce import BLOCK, block_slice, blocks
from crmlens.demo.world import DemoWorld

NAME = "behaviour"
APP_FILE, CRM_FILE = "app/app_events.csv", "sales/crm_usage_log.csv"
DAY = 86_400
APP_STREAM = 41  # app events of customer block b: default_rng([seed, APP_STREAM, b])
COLUMNS = ["event_id", "user_ref", "session_id", "event_name", "page", "event_time", "device",
           "duration_seconds", "success"]  # fmt: skip
DEVICES = ("iOS", "Android", "Web", "小程序")
EVENTS_PER_CUSTOMER = 6.0  # app volume over the whole period, per customer (not per app user)
# event -> (page, median seconds on the step)
APP_STEPS = {
    "login": ("login", 15), "view_home": ("home", 25), "view_category": ("category", 40),
    "search": ("search", 35), "view_product": ("product_detail", 60), "add_to_cart": ("cart", 30),
    "checkout": ("checkout", 45), "pay_success": ("payment", 20), "pay_fail": ("payment", 25),
}  # fmt: skip
# P(next funnel step | reached this one): home, category/search, product, cart, checkout, pay
FUNNEL_P = (1.0, 0.82, 0.75, 0.42, 0.62, 0.90)
FUNNEL_NAMES = ("login", "home", "category/search", "product", "cart", "checkout", "pay")
SEARCH_SHARE = 0.4
DEVICE_P = (0.35, 0.45, 0.05, 0.15)
PAY_FAIL = (0.05, 0.14, 0.06, 0.05)  # by device: Android payments fail most
WEEKDAY_W = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.45, 1.4])
# relative sessions per hour, by is-weekend: evening peak on weekdays, daytime too at weekends
APP_HOURS = {
    False: np.r_[2, 1, 1, 1, 1, 2, 4, 6, 6, 5, 5, 6, 9, 8, 5, 5, 5, 6, 8, 12, 15, 14, 10, 5.0],
    True: np.r_[3, 2, 1, 1, 1, 1, 2, 4, 7, 10, 11, 10, 10, 9, 9, 9, 9, 9, 10, 12, 14, 12, 8, 5.0],
}  # fmt: skip
# CRM: event -> (page, median seconds, failure probability)
CRM_STEPS = {
    "login": ("login", 12, 0.01), "view_home": ("home", 20, 0.002),
    "view_customer_list": ("customer_list", 45, 0.004), "search": ("search", 25, 0.01),
    "view_customer_detail": ("customer_detail", 90, 0.004),
    "add_follow_up": ("follow_up", 180, 0.03), "edit_tags": ("tags", 40, 0.01),
    "view_report": ("report", 120, 0.02), "export_report": ("report_export", 30, 0.15),
    "view_lead_list": ("lead_list", 40, 0.004), "view_lead_detail": ("lead_detail", 70, 0.004),
    "update_lead_stage": ("lead_stage", 35, 0.02),
}  # fmt: skip
_HOME = ["login", "view_home"]
CRM_PATHS = [  # (share of sessions, events)
    (0.38, [*_HOME, "view_customer_list", "view_customer_detail", "add_follow_up"]),
    (0.18, [*_HOME, "search", "view_customer_detail", "add_follow_up"]),
    (0.14, [*_HOME, "view_report", "export_report"]),
    (0.12, [*_HOME, "view_lead_list", "view_lead_detail", "update_lead_stage"]),
    (0.10, [*_HOME, "view_customer_list", "view_customer_detail", "edit_tags"]),
    (0.08, _HOME),
]
# share of reps who use each path at all (feature adoption differs between reps)
CRM_ADOPTION = (1.0, 1.0, 0.7, 0.8, 0.55, 1.0)
CRM_WEEKDAY_W = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.12, 0.04])
CRM_HOURS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 5, 10, 11, 8, 3, 4, 9, 10, 8, 5, 2, 1, 1, 0, 0, 0.0])
CRM_DEVICE_P = (0.05, 0.05, 0.8, 0.1)
SHORT_SHARE, LONG_SHARE = 0.004, 0.001  # planted anomalies: < 10 s and > 24 h on a step

Progress = Callable[[str, int, int], None] | None


def write(world: DemoWorld, out_dir: Path, progress: Progress = None) -> list[Path]:
    """Write both behaviour logs and record effects and dirt; returns the written paths."""
    return [_write_app(world, out_dir, progress), _write_crm(world, out_dir, progress)]


def _secs(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)  # NaT -> int64 min


def _period(world: DemoWorld) -> tuple[int, int]:
    start = int(pd.Timestamp(world.config.start).value // 10**9)
    return start, int(pd.Timestamp(world.config.end).value // 10**9) + DAY - 1


def sample_days(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, weekday_w: np.ndarray
) -> np.ndarray:
    """A midnight (epoch seconds) per row between the days of ``lo`` and ``hi`` (epoch seconds),
    weekdays (Monday first) weighted by ``weekday_w``; vectorised rejection sampling."""
    first, count = lo // DAY, np.maximum(hi // DAY - lo // DAY + 1, 1)
    day = first + (rng.random(len(lo)) * count).astype(np.int64)
    accept = weekday_w / weekday_w.max()
    todo = np.flatnonzero(rng.random(len(day)) > accept[(day + 3) % 7])  # 1970-01-01 was Thursday
    for _ in range(30):
        if not len(todo):
            break
        day[todo] = first[todo] + (rng.random(len(todo)) * count[todo]).astype(np.int64)
        todo = todo[rng.random(len(todo)) > accept[(day[todo] + 3) % 7]]
    return day * DAY


def _expand(paths: list[list[int]], path_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session index and event code per event for sessions following ``paths[path_id]``."""
    lengths = np.array([len(p) for p in paths])
    flat = np.array([e for p in paths for e in p], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = lengths[path_id]
    session = np.repeat(np.arange(len(path_id)), n)
    first_row = np.cumsum(n) - n  # also right for an empty block (no such sessions)
    pos = np.arange(n.sum()) - np.repeat(first_row, n)
    return session, flat[offsets[path_id][session] + pos]


def _events(
    rng: np.random.Generator,
    session: np.ndarray,
    event: np.ndarray,
    start: np.ndarray,
    median: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Durations and times of events; plants exact numbers of < 10 s and > 24 h durations.

    Long durations go on a session's last step (an app left open), so later steps never move.
    """
    n = len(event)
    duration = np.clip(rng.lognormal(np.log(median[event]), 0.7), 10, 1800).astype(np.int64)
    first = np.r_[True, session[1:] != session[:-1]] if n else np.zeros(0, bool)
    last = np.r_[session[1:] != session[:-1], True] if n else np.zeros(0, bool)
    k_long = min(round(LONG_SHARE * n), int(last.sum()))
    long_rows = rng.choice(np.flatnonzero(last), k_long, replace=False)
    duration[long_rows] = rng.integers(DAY + 1, 3 * DAY, k_long)
    others = np.setdiff1d(np.arange(n), long_rows)
    k_short = min(round(SHORT_SHARE * n), len(others))
    duration[rng.choice(others, k_short, replace=False)] = rng.integers(1, 10, k_short)
    step = duration + rng.integers(1, 6, n)  # a second or few between steps
    cum = np.cumsum(step) - step
    offset = cum - np.maximum.accumulate(np.where(first, cum, 0))
    return start[session] + offset, duration, k_short, k_long


def _start_log(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    return path


def _by_time(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-event arrays ordered by time (stable: ties keep generation order)."""
    order = np.argsort(cols["time"], kind="stable")
    return {k: v[order] for k, v in cols.items()}


def _append(path: Path, ids: tuple[str, int], parts: list[dict[str, np.ndarray]]) -> int:
    """Append per-event arrays (each part already in its final order) to the log, numbered from
    ``ids``; returns the number of events written."""
    prefix, first = ids
    c = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(c["time"])
    ids_ = prefix + pd.Series(np.arange(first, first + n)).astype(str).str.zfill(10)
    pd.DataFrame({
        "event_id": ids_, "user_ref": c["user"], "session_id": c["session"],
        "event_name": c["event"], "page": c["page"],
        "event_time": c["time"].astype("datetime64[s]"), "device": c["device"],
        "duration_seconds": c["duration"], "success": np.where(c["ok"], "true", "false"),
    }).to_csv(path, mode="a", header=False, index=False, lineterminator="\n",
              date_format="%Y-%m-%d %H:%M:%S")  # fmt: skip
    return n


def _app_paths() -> tuple[list[list[int]], np.ndarray]:
    """Every app path (event codes) and a lookup [depth reached, uses search, payment failed] ->
    path index."""
    paths, index = [], np.zeros((8, 2, 2), dtype=np.int64)
    for d in range(2, 8):
        for s in (0, 1):
            for f in (0, 1):
                index[d, s, f] = len(paths)
                names = ["login", "view_home", "search" if s else "view_category",
                         "view_product", "add_to_cart", "checkout",
                         "pay_fail" if f else "pay_success"][:d]  # fmt: skip
                paths.append([list(APP_STEPS).index(e) for e in names])
    return paths, index


def _write_app(world: DemoWorld, out_dir: Path, progress: Progress) -> Path:
    """App sessions for app users, generated per customer block and appended per chunk of blocks.

    Each block of :data:`BLOCK` customers draws from its own stream, so neither the rows nor their
    order depend on ``chunk_customers`` (a chunk only decides how many blocks are written at once).
    """
    c = world.customers
    start, end = _period(world)
    lo = np.maximum(_secs(c.signup_time), start)
    hi = np.minimum(_secs(c.last_active), end)
    users = c.app_user.to_numpy(dtype=bool) & (hi > lo)
    years = np.where(users, (hi - lo) / (365 * DAY), 0.0)
    per_session = 1 + np.cumprod(FUNNEL_P).sum()  # events per session
    rate = EVENTS_PER_CUSTOMER * len(c) / per_session / max(years.sum(), 1e-9)  # sessions/year
    paths, path_index = _app_paths()
    hour_p = {w: h / h.sum() for w, h in APP_HOURS.items()}
    names = np.array(list(APP_STEPS), dtype=object)
    pages = np.array([p for p, _ in APP_STEPS.values()], dtype=object)
    medians = np.array([m for _, m in APP_STEPS.values()], dtype=float)
    device_names = np.array(DEVICES, dtype=object)
    card = c.member_card_no.to_numpy(object)
    path = _start_log(out_dir / APP_FILE)
    reach = np.zeros(7, dtype=np.int64)
    pay = np.zeros((2, len(DEVICES)), dtype=np.int64)  # attempts, failures by device
    heat = np.zeros((7, 24), dtype=np.int64)
    devices = np.zeros(len(DEVICES), dtype=np.int64)
    n_short = n_long = n_sessions = n_events = 0
    all_blocks = blocks(len(c))
    per_chunk = max(1, -(-world.config.chunk_customers // BLOCK))
    for first_block in range(0, len(all_blocks), per_chunk):
        chunk = all_blocks[first_block : first_block + per_chunk]
        parts = []
        for block in chunk:
            rng = np.random.default_rng([world.config.seed, APP_STREAM, block])
            rows = block_slice(block, len(c))
            who = rows.start + np.flatnonzero(users[rows])
            device = rng.choice(len(DEVICES), len(who), p=DEVICE_P)  # each user keeps one device
            activity = rng.lognormal(-0.18, 0.6, len(who))  # mean 1: heavy and light users
            n_s = rng.poisson(rate * years[who] * activity)
            s_user = np.repeat(np.arange(len(who)), n_s)
            s_lo, s_hi = lo[who][s_user], hi[who][s_user]
            day = sample_days(rng, s_lo, s_hi, WEEKDAY_W)
            weekend = ((day // DAY + 3) % 7) >= 5
            hour = np.where(weekend, rng.choice(24, len(day), p=hour_p[True]),
                            rng.choice(24, len(day), p=hour_p[False]))  # fmt: skip
            # sessions end by the member's last activity (and inside the period): start 4 h before
            latest = np.maximum(s_lo, s_hi - 4 * 3600)
            s_start = np.clip(day + hour * 3600 + rng.integers(0, 3600, len(day)), s_lo, latest)
            s_device = device[s_user]
            # funnel depth: each step after home continues with its own probability
            cont = rng.random((len(day), len(FUNNEL_P) - 1)) < np.array(FUNNEL_P[1:])
            d = 2 + cont.cumprod(axis=1).sum(axis=1)
            failed = (d == 7) & (rng.random(len(day)) < np.array(PAY_FAIL)[s_device])
            s_search = (rng.random(len(day)) < SEARCH_SHARE).astype(np.int64)
            session, event = _expand(paths, path_index[d, s_search, failed.astype(np.int64)])
            time, duration, k_short, k_long = _events(rng, session, event, s_start, medians)
            s_ids = "AS" + pd.Series(n_sessions + np.arange(len(day))).astype(str).str.zfill(9)
            parts.append(_by_time({
                "user": card[who][s_user][session], "session": s_ids.to_numpy()[session],
                "event": names[event], "page": pages[event], "time": time,
                "device": device_names[s_device][session], "duration": duration,
                "ok": names[event] != "pay_fail",
            }))  # fmt: skip
            n_sessions += len(day)
            n_short, n_long = n_short + k_short, n_long + k_long
            reach += np.array([(d >= k + 1).sum() for k in range(7)])
            np.add.at(pay, (0, s_device[d == 7]), 1)
            np.add.at(pay, (1, s_device[failed]), 1)
            np.add.at(heat, ((s_start // DAY + 3) % 7, s_start % DAY // 3600), 1)
            devices += np.bincount(device[n_s > 0], minlength=len(DEVICES))
        n_events += _append(path, ("AE", n_events + 1), parts)
        if progress:
            progress(APP_FILE, min((chunk[-1] + 1) * BLOCK, len(c)), len(c))
    world.dirt[f"{APP_FILE}.duration_under_10s"] = n_short
    world.dirt[f"{APP_FILE}.duration_over_24h"] = n_long
    _record_app(world, reach, pay, heat, devices, n_events)
    return path


def _share(num: np.ndarray | int, den: np.ndarray | int) -> Any:
    return np.round(np.asarray(num) / np.maximum(np.asarray(den), 1), 4).tolist()


def _record_app(
    world: DemoWorld,
    reach: np.ndarray,
    pay: np.ndarray,
    heat: np.ndarray,
    devices: np.ndarray,
    n_events: int,
) -> None:
    """Record the app effects from the counts accumulated while writing."""
    steps = [f"{a}->{b}" for a, b in pairwise(FUNNEL_NAMES)]
    world.effects["app_funnel"] = {
        "requirement": "A11",
        "description": "App funnel: login → home → category/search → product → cart → "
        "checkout → pay.",
        "definition": "sessions with an event of step k / sessions with an event of step k-1 "
        "(category/search: view_category or search; pay: pay_success or pay_fail)",
        "expected": dict(zip(steps, FUNNEL_P, strict=True)),
        "realised": dict(zip(steps, _share(reach[1:], reach[:-1]), strict=True))
        | {"sessions": int(reach[0]), "events": n_events,
           "login_to_pay_success": _share(pay[0].sum() - pay[1].sum(), reach[0])},
        "tolerance": 0.03,
    }  # fmt: skip
    world.effects["app_pay_failure"] = {
        "requirement": "M6/A11",
        "description": "Payment failures, highest on Android.",
        "definition": "pay_fail / (pay_success + pay_fail), overall and by device",
        "expected": {"overall": round(float(np.dot(DEVICE_P, PAY_FAIL)), 4),
                     "worst_device": "Android"}
        | dict(zip(DEVICES, PAY_FAIL, strict=True)),
        "realised": {"overall": _share(pay[1].sum(), pay[0].sum()),
                     "worst_device": DEVICES[int(np.argmax(pay[1] / np.maximum(pay[0], 1)))]}
        | dict(zip(DEVICES, _share(pay[1], pay[0]), strict=True)),
        "tolerance": 0.03,
    }  # fmt: skip
    # intended evening share: the weekday and weekend hour mixes, weighted by their sessions
    evening = {w: h[19:23].sum() / h.sum() for w, h in APP_HOURS.items()}
    weekend = WEEKDAY_W[5:].sum() / WEEKDAY_W.sum()
    evening_share = float(evening[True] * weekend + evening[False] * (1 - weekend))
    weekend_per_day = heat[5:].sum() / 2
    weekday_per_day = heat[:5].sum() / 5
    world.effects["app_activity_heatmap"] = {
        "requirement": "A11",
        "description": "Sessions peak in the evening (19-22 h) and at weekends.",
        "definition": "sessions by weekday x hour of their login event; evening share = hours "
        "19-22; weekend ratio = sessions per weekend day / per weekday",
        "expected": {"peak_hour": 20, "evening_share": round(evening_share, 3),
                     "weekend_ratio": round(WEEKDAY_W[5:].mean() / WEEKDAY_W[:5].mean(), 3)},
        "realised": {"peak_hour": int(heat.sum(axis=0).argmax()),
                     "evening_share": _share(heat[:, 19:23].sum(), heat.sum()),
                     "weekend_ratio": round(float(weekend_per_day / max(weekday_per_day, 1)), 3),
                     "by_weekday_hour": heat.tolist()},
        "tolerance": 0.1,
    }  # fmt: skip
    world.effects["app_device_mix"] = {
        "requirement": "M6",
        "description": "App users by device.",
        "definition": "distinct user_ref per device / distinct user_ref with sessions",
        "expected": dict(zip(DEVICES, DEVICE_P, strict=True)),
        "realised": dict(zip(DEVICES, _share(devices, devices.sum()), strict=True)),
        "tolerance": 0.03,
    }


def _write_crm(world: DemoWorld, out_dir: Path, progress: Progress) -> Path:
    """CRM sessions of every rep from hiring to the end, in one pass ordered by time.

    The reps are a fixed team (tens of thousands of sessions), so the log is generated at once
    from the writer's own stream and does not depend on customer chunking at all.
    """
    rng = world.rng(f"{NAME}.crm")
    reps = world.reps
    start, end = _period(world)
    hired = np.maximum(_secs(reps.hired_date), start)
    weeks = np.maximum(end - hired, 0) / (7 * DAY)
    per_week = np.clip(rng.lognormal(np.log(5), 0.5, len(reps)), 0.5, 15)  # rep habits differ
    n_s = rng.poisson(per_week * weeks)
    rep_uses = rng.random((len(reps), len(CRM_PATHS))) < np.array(CRM_ADOPTION)
    names = list(CRM_STEPS)
    paths = [[names.index(e) for e in p] for _, p in CRM_PATHS]
    share = np.array([w for w, _ in CRM_PATHS])
    pages = np.array([p for p, _, _ in CRM_STEPS.values()], dtype=object)
    medians, fails = (np.array([v[i] for v in CRM_STEPS.values()], dtype=float) for i in (1, 2))
    rep_id = reps.rep_id.to_numpy(object)
    path = _start_log(out_dir / CRM_FILE)

    s_rep = np.repeat(np.arange(len(reps)), n_s)
    day = sample_days(rng, hired[s_rep], np.full(len(s_rep), end), CRM_WEEKDAY_W)
    s_start = day + rng.choice(24, len(day), p=CRM_HOURS / CRM_HOURS.sum()) * 3600
    s_start += rng.integers(0, 3600, len(day))
    # each session picks a path among those its rep uses, in proportion to the shares
    weights = np.cumsum(share * rep_uses[s_rep], axis=1)
    path_id = (rng.random((len(day), 1)) * weights[:, -1:] > weights).sum(axis=1)
    device = rng.choice(len(DEVICES), len(day), p=CRM_DEVICE_P)
    session, event = _expand(paths, path_id)
    time, duration, n_short, n_long = _events(rng, session, event, s_start, medians)
    ok = rng.random(len(event)) >= fails[event]
    s_ids = "CS" + pd.Series(np.arange(len(day))).astype(str).str.zfill(9)
    cols = {"user": rep_id[s_rep][session], "session": s_ids.to_numpy()[session],
            "event": np.array(names, dtype=object)[event], "page": pages[event], "time": time,
            "device": np.array(DEVICES, dtype=object)[device][session], "duration": duration,
            "ok": ok}  # fmt: skip
    _append(path, ("CE", 1), [_by_time(cols)])
    if progress:
        progress(CRM_FILE, len(reps), len(reps))

    by_path = np.bincount(path_id, minlength=len(paths))
    page_counts = np.stack([np.bincount(event, minlength=len(names)),
                            np.bincount(event[~ok], minlength=len(names))])  # fmt: skip
    used = np.zeros((len(reps), len(CRM_STEPS)), dtype=bool)
    used[s_rep[session], event] = True
    heat = np.zeros((7, 24), dtype=np.int64)
    np.add.at(heat, ((s_start // DAY + 3) % 7, s_start % DAY // 3600), 1)
    follow = (event == names.index("add_follow_up")) & (duration >= 10) & (duration <= DAY)
    task = np.array([int(duration[follow].sum()), int(follow.sum())], dtype=np.int64)
    world.dirt[f"{CRM_FILE}.duration_under_10s"] = n_short
    world.dirt[f"{CRM_FILE}.duration_over_24h"] = n_long
    active = weeks > 0
    usage = {"logins_per_week": n_s[active] / weeks[active], "used": used[active], "task": task}
    _record_crm(world, by_path, page_counts, heat, usage)
    return path


def _record_crm(
    world: DemoWorld,
    by_path: np.ndarray,
    page_counts: np.ndarray,
    heat: np.ndarray,
    usage: dict[str, np.ndarray],
) -> None:
    """Record the CRM usage effects from the counts accumulated while writing."""
    pages = [CRM_STEPS[e][0] for e in CRM_STEPS]
    label = [" > ".join(CRM_STEPS[e][0] for e in p) for _, p in CRM_PATHS]
    top = int(by_path.argmax())
    world.effects["crm_most_common_path"] = {
        "requirement": "A11",
        "description": "Reps' most common CRM path: home → customer list → customer detail → "
        "add a follow-up record.",
        "definition": "sessions of sales/crm_usage_log.csv grouped by their pages in time order, "
        "joined with ' > '; share of sessions",
        "expected": {"path": label[0], "share": 0.42},
        "realised": {"path": label[top], "share": _share(by_path[top], by_path.sum()),
                     "sessions": int(by_path.sum()),
                     "paths": dict(zip(label, _share(by_path, by_path.sum()), strict=True))},
        "tolerance": 0.05,
    }  # fmt: skip
    fail = page_counts[1] / np.maximum(page_counts[0], 1)
    export = list(CRM_STEPS).index("export_report")
    # failures per event expected from the base path mix (rep adoption shifts it a little)
    expected_fail = sum(w * sum(CRM_STEPS[e][2] for e in p) for w, p in CRM_PATHS) / sum(
        w * len(p) for w, p in CRM_PATHS
    )
    world.effects["crm_failure_rate"] = {
        "requirement": "M6",
        "description": "CRM operation failures; report export fails most (timeouts).",
        "definition": "events with success = false / events, overall and per page",
        "expected": {"overall": round(expected_fail, 4), "worst_page": "report_export",
                     "report_export": CRM_STEPS["export_report"][2]},
        "realised": {"overall": _share(page_counts[1].sum(), page_counts[0].sum()),
                     "worst_page": pages[int(fail.argmax())],
                     "report_export": _share(page_counts[1][export], page_counts[0][export])},
        "tolerance": 0.02,
    }  # fmt: skip
    per_week = usage["logins_per_week"]
    task = usage["task"]
    world.effects["crm_usage"] = {
        "requirement": "M6",
        "description": "CRM logins per rep per week, feature usage rate and follow-up task time.",
        "definition": "sessions per rep / weeks from max(hired_date, period start) to period end; "
        "feature usage = share of reps with at least one event on the page; task time = mean "
        "duration_seconds of add_follow_up events between 10 s and 24 h",
        "expected": {"logins_per_week_mean": 5.7, "follow_up_seconds": 230,
                     "feature_usage": {"report_export": 0.7, "lead_stage": 0.8, "tags": 0.55}},
        "realised": {"logins_per_week_mean": round(float(per_week.mean()), 3),
                     "logins_per_week_min": round(float(per_week.min()), 3),
                     "logins_per_week_max": round(float(per_week.max()), 3),
                     "feature_usage": dict(zip(pages, _share(usage["used"].sum(axis=0),
                                                             len(per_week)), strict=True)),
                     "follow_up_seconds": round(float(task[0] / max(task[1], 1)), 2)},
        "tolerance": {"logins_per_week_mean": 1.0, "follow_up_seconds": 20, "feature_usage": 0.2},
    }  # fmt: skip
    world.effects["crm_active_hours"] = {
        "requirement": "M6",
        "description": "Reps use the CRM on weekdays in office hours, peaking 9-11 and 14-16 h.",
        "definition": "sessions by weekday x hour of their login; office share = Monday-Friday "
        "08:00-18:59",
        "expected": {"office_share": 0.9, "peak_hour": 10},
        "realised": {"office_share": _share(heat[:5, 8:19].sum(), heat.sum()),
                     "peak_hour": int(heat.sum(axis=0).argmax()), "by_weekday_hour": heat.tolist()},
        "tolerance": 0.05,
    }  # fmt: skip
