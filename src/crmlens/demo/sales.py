"""Sales exports: reps, the corporate (企业, group purchase / 团购) lead pipeline and the reps'
activities.

Won leads are the corporate members of the world: each gets a lead created before the member
signed up, so ``leads.member_card_no`` links the pipeline to an existing 企业 customer whose
注册时间 follows the deal. Other leads are prospects that were lost or are still open. Counts are
set top-down (won -> opportunities -> leads), so the conversion rates are exact up to rounding.

Planted (``world.effects``): ``lead_conversion`` (lead → opportunity 40 %, opportunity → won 35 %),
``rep_visit_frequency``, ``record_timeliness`` (a few reps chronically late), ``tag_usage``.

Activities are generated per fixed block (:data:`~crmlens.demo.commerce.BLOCK` leads, then the
corporate members among each block of ``BLOCK`` customers), each block with its own random stream
derived from the seed and the block index, and ordered by time within the block; a chunk only
decides how many blocks are written at once, so the file does not depend on
``DemoConfig.chunk_customers``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from crmlens.demo import identity
from crmlens.demo.behaviour import sample_days
from crmlens.demo.commerce import BLOCK, blocks
from crmlens.demo.world import DemoWorld

NAME = "sales"
DAY, HOUR = 86_400, 3600
# activities of lead block b / of the corporate members in customer block b:
# default_rng([seed, LEAD_STREAM, b]) / default_rng([seed, MEMBER_STREAM, b])
LEAD_STREAM, MEMBER_STREAM = 43, 47
WON_SHARE = 0.6  # corporate members (signed up in the period) who came through a sales lead
LEAD_TO_OPP, OPP_TO_WON = 0.40, 0.35
LATE_REP_SHARE = 0.15
MIN_JUDGED = 20
ACTIVITY_TYPES = ("拜访", "电话", "微信", "邮件")
ACTIVITY_MINUTES = (60.0, 8.0, 5.0, 10.0)
# activities per lead by outcome: won, lost opportunity, open opportunity, lost lead, open lead
ACTIVITIES_PER_LEAD = (6.0, 4.0, 3.0, 1.5, 1.0)
MAINTENANCE_PER_YEAR = 2.0  # account visits/calls per corporate member per year
TAGS = ("高意向", "预算充足", "决策人已接触", "价格敏感", "竞品在谈", "节日团购", "员工福利",
        "食堂采购", "需要发票", "回款及时")  # fmt: skip
TOPICS = ("中秋团购方案", "春节员工福利", "端午礼盒", "会议茶歇采购", "食堂长期供货", "储值卡团购")
NOTE_VERBS = {"拜访": "上门拜访，介绍", "电话": "电话沟通", "微信": "微信发送", "邮件": "邮件发送"}
NOTE_TAILS = ("，客户有兴趣。", "，等待对方内部审批。", "，需再次报价。", "，客户暂无预算。", "。")
WEEKDAYS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.15, 0.05])
WORK_HOURS = np.array([0] * 8 + [3, 8, 9, 8, 3, 4, 8, 9, 8, 5, 2, 1] + [0] * 4, dtype=float)

Progress = Callable[[str, int, int], None] | None


def write(world: DemoWorld, out_dir: Path, progress: Progress = None) -> list[Path]:
    """Write the four sales files under ``out_dir/sales`` and record the planted effects."""
    rng = world.rng(NAME)
    folder = out_dir / "sales"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f for f in ("sales_reps.csv", "leads.csv", "lead_stage_history.csv",
                                  "sales_activities.csv")]  # fmt: skip
    reps = world.reps[["rep_id", "rep_name", "team", "region", "hired_date"]]
    reps.assign(hired_date=reps.hired_date.dt.strftime("%Y-%m-%d")).to_csv(
        paths[0], index=False, lineterminator="\n"
    )
    leads = _leads(world, rng)
    stamp = "%Y-%m-%d %H:%M:%S"
    out = leads.drop(columns=["outcome", "opp_at", "rep"])
    out.to_csv(paths[1], index=False, lineterminator="\n", date_format=stamp, float_format="%.2f")
    history = _history(leads)
    history.to_csv(paths[2], index=False, lineterminator="\n", date_format=stamp)
    traits = _rep_traits(world, rng)
    tally = _write_activities(world, rng, leads, traits, paths[3], progress)
    _record(world, leads, history, traits, tally)
    return paths


def _secs(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _period(world: DemoWorld) -> tuple[int, int]:
    start = int(pd.Timestamp(world.config.start).value // 10**9)
    return start, int(pd.Timestamp(world.config.end).value // 10**9) + DAY - 1


def _stamp(secs: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    out = secs.astype("datetime64[s]")
    if keep is not None:
        out[~keep] = np.datetime64("NaT")
    return out


def _assign_reps(
    world: DemoWorld, rng: np.random.Generator, city: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """A corporate-team rep per lead: same city when possible, always hired before ``at``."""
    reps = world.reps
    b2b = _b2b(world)
    hired = _secs(reps.hired_date)
    out = np.full(len(at), -1)
    for pool_city in [*np.unique(city), None]:
        rows = np.flatnonzero(out < 0) if pool_city is None else np.flatnonzero(city == pool_city)
        pool = np.flatnonzero(b2b & ((reps.region == pool_city).to_numpy() | (pool_city is None)))
        if not len(pool) or not len(rows):
            continue
        pool = pool[np.argsort(hired[pool], kind="stable")]
        eligible = np.searchsorted(hired[pool], at[rows], side="right")
        ok = eligible > 0
        out[rows[ok]] = pool[(rng.random(ok.sum()) * eligible[ok]).astype(np.int64)]
    out[out < 0] = int(np.argmin(hired))  # nobody hired yet: the longest-serving rep
    return out


def _work_time(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds after midnight in office hours."""
    return rng.choice(24, n, p=WORK_HOURS / WORK_HOURS.sum()) * HOUR + rng.integers(0, HOUR, n)


def _leads(world: DemoWorld, rng: np.random.Generator) -> pd.DataFrame:
    """Leads with outcome (0 won, 1 lost opp, 2 open opp, 3 lost lead, 4 open lead) and times."""
    c = world.customers
    start, end = _period(world)
    signup = _secs(c.signup_time)
    corporate = np.flatnonzero(
        (c.customer_type == "企业").to_numpy() & (signup >= start + 60 * DAY)
    )
    won = np.sort(rng.choice(corporate, round(WON_SHARE * len(corporate)), replace=False))
    n_won = len(won)
    n_opp = round(n_won / OPP_TO_WON)
    n_lead = round(n_opp / LEAD_TO_OPP)
    created = np.empty(n_lead, dtype=np.int64)
    opp_at = np.full(n_lead, -1, dtype=np.int64)
    closed = np.empty(n_lead, dtype=np.int64)
    # won: the deal closes hours to days before the company's member signup
    closed[:n_won] = signup[won] - rng.integers(HOUR, 3 * DAY, n_won)
    cycle = rng.uniform(0.25, 1.0, n_won) * np.minimum(150 * DAY, closed[:n_won] - start - DAY)
    created[:n_won] = (closed[:n_won] - cycle.astype(np.int64)) // DAY * DAY + _work_time(
        rng, n_won
    )
    span = closed[:n_won] - created[:n_won]
    opp_at[:n_won] = created[:n_won] + (rng.uniform(0.1, 0.6, n_won) * span).astype(np.int64)
    # lost or still open opportunities, then leads that never became one
    rest = np.arange(n_won, n_lead)
    created[rest] = sample_days(rng, np.full(len(rest), start), np.full(len(rest), end - 20 * DAY),
                                WEEKDAYS) + _work_time(rng, len(rest))  # fmt: skip
    opp = rest[: n_opp - n_won]
    opp_at[opp] = created[opp] + rng.integers(3, 20, len(opp)) * DAY
    closed[opp] = opp_at[opp] + rng.integers(10, 120, len(opp)) * DAY
    never = rest[n_opp - n_won :]
    closed[never] = created[never] + rng.integers(7, 60, len(never)) * DAY
    is_open = closed > end
    outcome = np.select([np.arange(n_lead) < n_won, opp_at >= 0], [0, 1], 3) + is_open
    cities = c.city.to_numpy(object)[corporate] if len(corporate) else np.array(["烟台"], object)
    city = rng.choice(cities, n_lead)
    city[:n_won] = c.city.to_numpy(object)[won]
    name, _, _ = identity.companies(rng, n_lead, city.astype(str))
    name = name.astype(object)
    name[:n_won] = c.company_name.to_numpy(object)[won]
    phone = identity.unique_mobiles(rng, n_lead).astype(object)
    phone[:n_won] = c.phone.to_numpy(object)[won]
    channel = rng.choice(c.channel_id.to_numpy(object)[corporate] if len(corporate) else
                         world.channels.channel_id.to_numpy(object), n_lead)  # fmt: skip
    channel[:n_won] = c.channel_id.to_numpy(object)[won]
    rep = _assign_reps(world, rng, city, created)
    stage = np.array(["won", "lost", "opportunity", "lost", "lead"], dtype=object)[outcome]
    card = np.full(n_lead, "", dtype=object)
    card[:n_won] = c.member_card_no.to_numpy(object)[won]
    value = np.round(rng.lognormal(np.log(30_000), 0.8, n_lead), -2)
    order = np.argsort(created, kind="stable")
    leads = pd.DataFrame({
        "lead_id": "L" + pd.Series(np.arange(1, n_lead + 1)).astype(str).str.zfill(7),
        "company_name": name[order], "contact_phone": phone[order],
        "source_channel_id": channel[order],
        "rep_id": world.reps.rep_id.to_numpy(object)[rep][order],
        "created_at": _stamp(created[order]), "stage": stage[order], "expected_value": value,
        "closed_at": _stamp(closed[order], ~is_open[order]), "member_card_no": card[order],
        "outcome": outcome[order], "opp_at": opp_at[order], "rep": rep[order],
    })  # fmt: skip
    return leads


def _history(leads: pd.DataFrame) -> pd.DataFrame:
    """One row per stage entered: lead, opportunity (if reached), won/lost (if closed)."""
    opp = leads[leads.opp_at >= 0]
    closed = leads[leads.closed_at.notna()]
    rows = pd.concat([
        pd.DataFrame({"lead_id": leads.lead_id, "stage": "lead", "entered_at": leads.created_at}),
        pd.DataFrame({"lead_id": opp.lead_id, "stage": "opportunity",
                      "entered_at": _stamp(opp.opp_at.to_numpy())}),
        pd.DataFrame({"lead_id": closed.lead_id, "stage": closed.stage,
                      "entered_at": closed.closed_at}),
    ])  # fmt: skip
    return rows.sort_values(["entered_at", "lead_id"], kind="stable").reset_index(drop=True)


def _b2b(world: DemoWorld) -> np.ndarray:
    """Reps of the corporate teams (all reps if there is no such team)."""
    b2b = world.reps.team.str.startswith("企业").to_numpy()
    return b2b if b2b.any() else np.ones(len(b2b), dtype=bool)


def _rep_traits(world: DemoWorld, rng: np.random.Generator) -> pd.DataFrame:
    """Per rep: how often they visit, whether they log late (a few corporate reps), how often
    they tag."""
    n = len(world.reps)
    late = np.zeros(n, dtype=bool)
    # late reps are long-serving corporate reps, so their habit shows in plenty of records
    veteran = _b2b(world) & (world.reps.hired_date < pd.Timestamp(world.config.start)).to_numpy()
    pool = np.flatnonzero(veteran if veteran.sum() >= 2 else _b2b(world))
    late[rng.choice(pool, min(len(pool), max(2, round(LATE_REP_SHARE * len(pool)))), False)] = True
    return pd.DataFrame({
        "visit_share": rng.beta(2, 4, n) + 0.05,  # share of activities that are visits
        "late": late,
        "tag_p": rng.uniform(0.2, 0.9, n),
    })  # fmt: skip


def _write_activities(
    world: DemoWorld,
    rng: np.random.Generator,
    leads: pd.DataFrame,
    traits: pd.DataFrame,
    path: Path,
    progress: Progress,
) -> dict[str, np.ndarray]:
    """Lead activities, then account upkeep for corporate members, appended in chunks.

    Each fixed block (``BLOCK`` leads, or the corporate members among ``BLOCK`` customers) draws
    from its own stream and is ordered by time on its own; ``chunk_customers`` only groups blocks
    into writes. ``rng`` (the writer's stream) assigns the members' reps, before any block.
    """
    start, end = _period(world)
    c = world.customers
    seed = world.config.seed
    n_reps = len(world.reps)
    tally = {k: np.zeros(n_reps, np.int64) for k in ("visits", "acts", "on_time", "tagged")}
    columns = ["activity_id", "rep_id", "lead_id", "member_card_no", "activity_type",
               "activity_time", "logged_at", "duration_minutes", "tags", "notes"]  # fmt: skip
    path.write_text(",".join(columns) + "\n", encoding="utf-8")
    corp = np.flatnonzero((c.customer_type == "企业").to_numpy())
    lo_c = np.maximum(_secs(c.signup_time)[corp], start)
    reps_c = _assign_reps(world, rng, c.city.to_numpy(object)[corp], lo_c)
    card_c = c.member_card_no.to_numpy(object)[corp]
    outcome = leads.outcome.to_numpy()
    lead_lo = _secs(leads.created_at)
    lead_hi = np.where(leads.closed_at.notna(), _secs(leads.closed_at.fillna(pd.Timestamp(0))), end)
    lead_rep, lead_ids = leads.rep.to_numpy(), leads.lead_id.to_numpy(object)
    # corporate members per customer block: corp[member_bounds[b]:member_bounds[b + 1]]
    member_bounds = np.searchsorted(corp, np.arange(len(blocks(len(c))) + 1) * BLOCK)

    def lead_block(b: int) -> pd.DataFrame:
        block_rng = np.random.default_rng([seed, LEAD_STREAM, b])
        rows = slice(b * BLOCK, min((b + 1) * BLOCK, len(leads)))
        n = block_rng.poisson(np.array(ACTIVITIES_PER_LEAD)[outcome[rows]])
        return _activities(block_rng, traits, np.repeat(lead_lo[rows], n),
                           np.repeat(lead_hi[rows], n), np.repeat(lead_rep[rows], n),
                           np.repeat(lead_ids[rows], n), None)  # fmt: skip

    def member_block(b: int) -> pd.DataFrame:
        block_rng = np.random.default_rng([seed, MEMBER_STREAM, b])
        rows = slice(member_bounds[b], member_bounds[b + 1])
        lo, hi = lo_c[rows], np.full(rows.stop - rows.start, end)
        n = block_rng.poisson(MAINTENANCE_PER_YEAR * np.maximum(hi - lo, 0) / (365 * DAY))
        return _activities(block_rng, traits, np.repeat(lo, n), np.repeat(hi, n),
                           np.repeat(reps_c[rows], n), None, np.repeat(card_c[rows], n))  # fmt: skip

    per_chunk = max(1, -(-world.config.chunk_customers // BLOCK))
    lead_blocks = range(-(-len(leads) // BLOCK))
    member_blocks = [b for b in blocks(len(c)) if member_bounds[b + 1] > member_bounds[b]]
    jobs = [(lead_block, lead_blocks[i : i + per_chunk])
            for i in range(0, len(lead_blocks), per_chunk)]  # fmt: skip
    jobs += [(member_block, member_blocks[i : i + per_chunk])
             for i in range(0, len(member_blocks), per_chunk)]  # fmt: skip
    next_id = 1
    for k, (make, group) in enumerate(jobs):
        frame = pd.concat([make(b) for b in group], ignore_index=True)
        numbers = pd.Series(np.arange(next_id, next_id + len(frame))).astype(str)
        frame.insert(0, "activity_id", "A" + numbers.str.zfill(8))
        r = frame.pop("rep").to_numpy()
        frame.insert(1, "rep_id", world.reps.rep_id.to_numpy(object)[r])
        tally["acts"] += np.bincount(r, minlength=n_reps)
        tally["visits"] += np.bincount(r[frame.activity_type == "拜访"], minlength=n_reps)
        delay = (frame.logged_at - frame.activity_time).dt.total_seconds().to_numpy()
        tally["on_time"] += np.bincount(r[delay <= DAY], minlength=n_reps)
        tally["tagged"] += np.bincount(r[frame.tags != ""], minlength=n_reps)
        frame[columns].to_csv(path, mode="a", header=False, index=False, lineterminator="\n",
                              date_format="%Y-%m-%d %H:%M:%S")  # fmt: skip
        next_id += len(frame)
        if progress:
            progress(f"sales/{path.name}", k + 1, len(jobs))
    return tally


def _activities(
    rng: np.random.Generator,
    traits: pd.DataFrame,
    lo: np.ndarray,
    hi: np.ndarray,
    rep: np.ndarray,
    lead_id: np.ndarray | None,
    card: np.ndarray | None,
) -> pd.DataFrame:
    """Activities in working hours within [lo, hi], typed, timed and logged per rep habits."""
    n = len(lo)
    day = sample_days(rng, lo, np.maximum(hi, lo), WEEKDAYS)
    at = np.clip(day + _work_time(rng, n), lo, np.maximum(hi, lo))
    visit = rng.random(n) < traits.visit_share.to_numpy()[rep]
    other = rng.choice([1, 2, 3], n, p=[0.5, 0.4, 0.1])
    kind = np.where(visit, 0, other)
    late = traits.late.to_numpy()[rep]
    # most reps log within hours; late reps typically a day or two after the activity
    delay = rng.lognormal(np.where(late, np.log(40 * HOUR), np.log(3 * HOUR)),
                          np.where(late, 0.9, 1.2)).astype(np.int64)  # fmt: skip
    minutes = np.maximum(1, np.round(rng.lognormal(np.log(np.array(ACTIVITY_MINUTES)[kind]), 0.5)))
    tagged = rng.random(n) < traits.tag_p.to_numpy()[rep]
    pick = np.argsort(rng.random((n, len(TAGS))), axis=1)[:, :3]
    names = np.array(TAGS, dtype=object)[pick]
    k = rng.integers(1, 4, n)
    tags = np.where(k >= 2, names[:, 0] + ";" + names[:, 1], names[:, 0])
    tags = np.where(k == 3, tags + ";" + names[:, 2], tags)
    type_name = np.array(ACTIVITY_TYPES, dtype=object)[kind]
    verb = np.array([NOTE_VERBS[t] for t in ACTIVITY_TYPES], dtype=object)[kind]
    notes = verb + np.array(TOPICS, dtype=object)[rng.integers(0, len(TOPICS), n)]
    notes = notes + np.array(NOTE_TAILS, dtype=object)[rng.integers(0, len(NOTE_TAILS), n)]
    frame = pd.DataFrame({
        "lead_id": lead_id if lead_id is not None else "",
        "member_card_no": card if card is not None else "",
        "activity_type": type_name, "activity_time": _stamp(at), "logged_at": _stamp(at + delay),
        "duration_minutes": minutes.astype(np.int64), "tags": np.where(tagged, tags, ""),
        "notes": notes, "rep": rep,
    })  # fmt: skip
    return frame.sort_values("activity_time", kind="stable").reset_index(drop=True)


def _record(
    world: DemoWorld,
    leads: pd.DataFrame,
    history: pd.DataFrame,
    traits: pd.DataFrame,
    tally: dict[str, np.ndarray],
) -> None:
    """Record the pipeline and sales-efficiency effects on what was written."""
    reached = history.groupby("stage").lead_id.nunique()
    n_lead, n_opp, n_won = (int(reached.get(s, 0)) for s in ("lead", "opportunity", "won"))
    world.effects["lead_conversion"] = {
        "requirement": "M7/A11",
        "description": "Corporate pipeline: lead → opportunity about 40 %, opportunity → won "
        "about 35 %; every won lead names the 企业 member it became.",
        "definition": "lead_stage_history: leads with an 'opportunity' row / all leads; leads with "
        "a 'won' row / leads with an 'opportunity' row",
        "expected": {"lead_to_opportunity": LEAD_TO_OPP, "opportunity_to_won": OPP_TO_WON},
        "realised": {"lead_to_opportunity": round(n_opp / max(n_lead, 1), 4),
                     "opportunity_to_won": round(n_won / max(n_opp, 1), 4),
                     "leads": n_lead, "opportunities": n_opp, "won": n_won,
                     "won_with_member": int((leads.member_card_no != "").sum())},
        "tolerance": 0.005,
    }  # fmt: skip
    start, end = _period(world)
    hired = np.maximum(_secs(world.reps.hired_date), start)
    months = np.maximum((end - hired) / (DAY * 365.25 / 12), 1e-9)
    active = tally["acts"] > 0  # reps outside the corporate teams have no pipeline
    per_month = (tally["visits"] / months)[active]
    ids = world.reps.rep_id[active].tolist()
    world.effects["rep_visit_frequency"] = {
        "requirement": "M7",
        "description": "Visits (拜访) per rep per month differ widely between reps.",
        "definition": "sales_activities with activity_type 拜访 per rep_id / months from "
        "max(hired_date, 2019-01-01) to 2021-12-31",
        "expected": {"max_over_min": 3.0},
        "realised": {"by_rep": dict(zip(ids, np.round(per_month, 3).tolist(), strict=True)),
                     "mean": round(float(per_month.mean()), 3),
                     "max_over_min": round(float(per_month.max() / max(per_month.min(), 1e-9)), 2)},
        "tolerance": 0.001,
    }  # fmt: skip
    total = max(int(tally["acts"].sum()), 1)
    on_time = (tally["on_time"] / np.maximum(tally["acts"], 1))[active]
    late = traits.late.to_numpy()[active]
    judged = tally["acts"][active] >= MIN_JUDGED  # too few records say nothing about a habit
    tagged = (tally["tagged"] / np.maximum(tally["acts"], 1))[active]
    world.effects["record_timeliness"] = {
        "requirement": "M7",
        "description": "Most activities are logged within a day; a few reps are chronically late.",
        "definition": "share of sales_activities with logged_at - activity_time <= 24 h, overall "
        f"and per rep_id; late reps: share < 0.5 among reps with >= {MIN_JUDGED} activities",
        "expected": {"overall": 0.85, "late_reps": [i for i, x in zip(ids, late, strict=True) if x],
                     "late_rep_share_max": 0.4},
        "realised": {"overall": round(float(tally["on_time"].sum() / total), 4),
                     "late_reps": [i for i, s, j in zip(ids, on_time, judged, strict=True)
                                   if s < 0.5 and j],
                     "by_rep": dict(zip(ids, np.round(on_time, 4).tolist(), strict=True))},
        "tolerance": 0.05,
    }  # fmt: skip
    world.effects["tag_usage"] = {
        "requirement": "M7",
        "description": "Share of activities with at least one tag, by rep.",
        "definition": "sales_activities with non-empty tags / activities, overall and per rep_id",
        "expected": {"overall": 0.5},
        "realised": {"overall": round(float(tally["tagged"].sum() / total), 4),
                     "by_rep": dict(zip(ids, np.round(tagged, 4).tolist(), strict=True))},
        "tolerance": 0.1,
    }  # fmt: skip
