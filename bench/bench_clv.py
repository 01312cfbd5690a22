"""Benchmark crmlens' BG/NBD + Gamma-Gamma against lifetimes on simulated customers.

    python bench/bench_clv.py --customers 1000000

Simulates customers from a BG/NBD purchase process and Gamma-Gamma spend with known parameters
(seeded; a year of history in whole days, like a summary built from a real transaction log), then
fits both models and predicts 30-day purchases, P(alive) and 12-month CLV for every customer with
crmlens and with lifetimes. lifetimes gets the same advantage crmlens uses internally: it is fitted
on the distinct rows with ``weights=`` (collapsed with a pandas groupby, timed as part of its fit);
its fit on one row per customer, as it is usually called, is timed once for context.
Prints seconds per step, the speed-up and the largest parameter and prediction differences, and
writes them to bench/results/clv.json. Timings are the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmlens.models import BetaGeoModel, GammaGammaModel

HERE = Path(__file__).resolve().parent
# CDNOW's published estimates, with alpha converted from weeks to days
TRUE_BG = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
HORIZON_DAYS = 30


def simulate(n: int, seed: int) -> pd.DataFrame:
    """``n`` customers' (x, t_x, T) in days and mean repeat spend m, from the true parameters."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE_BG["r"], 1 / TRUE_BG["alpha"], n)
    drop = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    T = rng.integers(1, 366, n).astype(float)  # first purchase some day in the last year
    arrivals = rng.poisson(rate * T)
    # alive for a geometric number of repeat purchases (drop-out after each with probability p)
    x = np.minimum(arrivals, rng.geometric(drop))
    # the x-th of `arrivals` uniform purchase times in [0, T] is T * Beta(x, arrivals - x + 1);
    # rounded up to whole days so a repeat purchase is at least a day after the first
    t_x = np.where(x > 0, np.ceil(T * rng.beta(np.maximum(x, 1), arrivals - x + 1)), 0.0)
    nu = rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], n)
    k = np.maximum(x, 1)
    m = np.where(x > 0, np.round(rng.gamma(TRUE_GG["p"] * k, 1 / (nu * k)), 2), 0.0)
    m = np.where((x > 0) & (m <= 0), 0.01, m)  # a cent at least, as a real till would record
    return pd.DataFrame({"x": x.astype(float), "t_x": t_x, "T": T, "m": m})


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall-clock seconds of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_crmlens(d: pd.DataFrame, repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    x, t_x, T, m = (d[c].to_numpy() for c in ("x", "t_x", "T", "m"))
    seconds: dict[str, float] = {}
    seconds["fit_bgnbd"], bg = timed(lambda: BetaGeoModel().fit(x, t_x, T), repeat)
    seconds["fit_gamma_gamma"], gg = timed(lambda: GammaGammaModel().fit(x, m), repeat)
    seconds["expected_purchases"], purchases = timed(
        lambda: bg.expected_purchases(HORIZON_DAYS, x, t_x, T), repeat
    )
    seconds["probability_alive"], alive = timed(lambda: bg.probability_alive(x, t_x, T), repeat)
    seconds["clv_12_months"], clv = timed(
        lambda: gg.customer_lifetime_value(bg, x, t_x, T, m, time_unit_days=1, days_per_month=30),
        repeat,
    )
    out = {
        "bg": bg.params_,
        "gg": gg.params_,
        "bg_se": bg.standard_errors_,
        "gg_se": gg.standard_errors_,
        "unique_rows": bg.n_unique_rows_,
        "gg_unique_rows": gg.n_unique_rows_,
        "purchases": purchases,
        "alive": alive,
        "clv": clv,
    }
    return seconds, out


def run_lifetimes(d: pd.DataFrame, repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pandas-3 deprecation warning at import
        from lifetimes import BetaGeoFitter, GammaGammaFitter

    def fit_bg() -> BetaGeoFitter:
        rows = d.groupby(["x", "t_x", "T"]).size().reset_index(name="n")
        return BetaGeoFitter().fit(rows["x"], rows["t_x"], rows["T"], weights=rows["n"])

    def fit_gg() -> GammaGammaFitter:
        buyers = d[d["x"] > 0]
        rows = buyers.groupby(["x", "m"]).size().reset_index(name="n")
        return GammaGammaFitter().fit(rows["x"], rows["m"], weights=rows["n"])

    x, t_x, T, m = d["x"], d["t_x"], d["T"], d["m"]
    seconds: dict[str, float] = {}
    seconds["fit_bgnbd"], bg = timed(fit_bg, repeat)
    seconds["fit_gamma_gamma"], gg = timed(fit_gg, repeat)
    seconds["expected_purchases"], purchases = timed(
        lambda: bg.conditional_expected_number_of_purchases_up_to_time(HORIZON_DAYS, x, t_x, T),
        repeat,
    )
    seconds["probability_alive"], alive = timed(
        lambda: bg.conditional_probability_alive(x, t_x, T), repeat
    )
    seconds["clv_12_months"], clv = timed(
        lambda: gg.customer_lifetime_value(bg, x, t_x, T, m, time=12, freq="D"), repeat
    )
    # for context: lifetimes as usually called, one row per customer (timed once, it is slow)
    start = time.perf_counter()
    BetaGeoFitter().fit(x, t_x, T)
    out = {
        "fit_bgnbd_one_row_per_customer": time.perf_counter() - start,
        "bg": bg.params_.to_dict(),
        "gg": gg.params_.to_dict(),
        "purchases": np.asarray(purchases),
        "alive": np.asarray(alive),
        "clv": np.asarray(clv),
    }
    return seconds, out


def max_rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; fastest kept")
    parser.add_argument("--no-lifetimes", action="store_true", help="time crmlens only")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "clv.json")
    args = parser.parse_args()

    start = time.perf_counter()
    data = simulate(args.customers, args.seed)
    print(f"simulated {args.customers:,} customers in {time.perf_counter() - start:.1f} s")
    ours_s, ours = run_crmlens(data, args.repeat)
    print(
        f"distinct histories: {ours['unique_rows']:,} (x, t_x, T) rows, "
        f"{ours['gg_unique_rows']:,} (x, m) rows"
    )
    result: dict[str, Any] = {
        "customers": args.customers,
        "seed": args.seed,
        "repeat": args.repeat,
        "machine": platform.platform(),
        "distinct_histories": ours["unique_rows"],
        "true_params": {**TRUE_BG, **TRUE_GG},
        "crmlens": {"seconds": ours_s, "params": {**ours["bg"], **ours["gg"]}},
        "crmlens_vs_truth_in_standard_errors": {
            k: (v - {**TRUE_BG, **TRUE_GG}[k]) / {**ours["bg_se"], **ours["gg_se"]}[k]
            for k, v in {**ours["bg"], **ours["gg"]}.items()
        },
    }
    rows = [(step, s, None) for step, s in ours_s.items()]
    if not args.no_lifetimes:
        theirs_s, theirs = run_lifetimes(data, args.repeat)
        ratios = {k: theirs_s[k] / ours_s[k] for k in ours_s}
        total_ours, total_theirs = sum(ours_s.values()), sum(theirs_s.values())
        ours_params, their_params = {**ours["bg"], **ours["gg"]}, {**theirs["bg"], **theirs["gg"]}
        param_diff = {k: max_rel(ours_params[k], their_params[k]) for k in ours_params}
        unweighted = theirs["fit_bgnbd_one_row_per_customer"]
        result["lifetimes"] = {
            "seconds": theirs_s,
            "seconds_fit_bgnbd_one_row_per_customer": unweighted,
            "params": their_params,
        }
        result["speedup"] = {**ratios, "total": total_theirs / total_ours}
        result["max_param_rel_diff"] = max(param_diff.values())
        result["param_rel_diff"] = param_diff
        result["max_prediction_rel_diff"] = {
            k: max_rel(ours[k], theirs[k]) for k in ("purchases", "alive", "clv")
        }
        rows = [(step, s, theirs_s[step]) for step, s in ours_s.items()]
        rows.append(("total", total_ours, total_theirs))

    print(f"\n{'step':<22}{'crmlens s':>12}{'lifetimes s':>14}{'speed-up':>10}")
    for step, s, other in rows:
        extra = "" if other is None else f"{other:>14.3f}{other / s:>9.1f}x"
        print(f"{step:<22}{s:>12.3f}{extra}")
    if "lifetimes" in result:
        unweighted = result["lifetimes"]["seconds_fit_bgnbd_one_row_per_customer"]
        print(
            f"(lifetimes BG/NBD fit on one row per customer, without weights: {unweighted:.3f} s, "
            f"{unweighted / ours_s['fit_bgnbd']:.0f}x crmlens)"
        )
    print("\nparameters (true / crmlens / lifetimes):")
    for k, v in result["crmlens"]["params"].items():
        other = result.get("lifetimes", {}).get("params", {}).get(k, float("nan"))
        print(f"  {k:<6}{result['true_params'][k]:>10.4f}{v:>14.6f}{other:>14.6f}")
    if "speedup" in result:
        print(
            f"\nspeed-up (total): {result['speedup']['total']:.1f}x (target >= 5x); "
            f"max parameter difference: {result['max_param_rel_diff']:.2e} (target <= 1e-4); "
            "max prediction difference: "
            + ", ".join(f"{k} {v:.1e}" for k, v in result["max_prediction_rel_diff"].items())
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
