"""Benchmark of the liquidation model: vectorized transforms vs a plain per-bar reference.

Times ``liquidation_levels`` + ``heatmap`` + ``predicted_liquidations`` on 30 and 365 days of seeded
synthetic 1-minute bars (random-walk price with volatility clustering, OI sampled every 5 minutes)
and a per-bar reference implementation (a loop over bars, numpy over the open levels inside each
bar). Prints figures only; checks that both implementations agree on a small case first.

    .venv/bin/python benchmarks/bench_model.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from transforms.backtest import predicted_from_core
from transforms.bars import model_input
from transforms.heatmap import heatmap
from transforms.levels import (
    EXPIRY_FRACTION,
    compute_core,
    levels_frame,
    liquidatable_fraction,
    log_survival,
    turnover_share,
)
from transforms.leverage import (
    bin_weights,
    leverage_quantiles,
    liquidation_prices,
    rotation_offsets,
)
from transforms.params import ModelParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.transforms.model_reference import path_points

START = datetime(2025, 1, 1, tzinfo=UTC)
TIME_STEP = "1h"


def synthetic_bars(days: int, seed: int = 7) -> pl.DataFrame:
    """Seeded 1m bars: GBM with GARCH-like volatility, mean-reverting OI sampled every 5 min."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    shocks = rng.standard_normal(n)
    var = np.empty(n)
    v = 1e-7
    for i in range(n):  # the generator's loop is not timed
        var[i] = v
        v = 2e-9 + 0.05 * v * shocks[i] ** 2 + 0.93 * v
    ret = np.sqrt(var) * shocks
    close = 60_000.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[60_000.0, close[:-1]]
    wick = np.abs(rng.standard_normal((2, n))) * np.sqrt(var) * 0.5
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    log_oi = np.empty(n // 5 + 1)
    x = 0.0
    e = rng.standard_normal(log_oi.shape[0]) * 0.002
    for k in range(log_oi.shape[0]):
        log_oi[k] = x
        x = 0.995 * x + e[k]
    oi = np.full(n, np.nan)
    oi[::5] = 50_000.0 * np.exp(log_oi[: oi[::5].shape[0]]) * open_[::5]
    volume = rng.gamma(2.0, 5.0, n)
    ts = pl.datetime_range(START, START + pl.duration(minutes=n - 1), "1m", eager=True)
    return pl.DataFrame(
        {
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "oi_usd": pl.Series(oi).fill_nan(None),
            "volume": volume,
        }
    )


def fast(bars: pl.DataFrame, params: ModelParams, step: float) -> dict[str, pl.DataFrame]:
    """The vectorized path (what ``run_model`` does for these three outputs)."""
    norm = model_input(bars)
    core = compute_core(norm, params)
    levels = levels_frame(core)
    return {
        "levels": levels,
        "heatmap": heatmap(levels, norm, step, TIME_STEP, params=params),
        "predicted": predicted_from_core(core),
    }


def reference(bars: pl.DataFrame, params: ModelParams, step: float) -> dict[str, object]:
    """Plain per-bar loop: close, cross, liquidate, open, accumulate the heatmap, bar by bar.

    numpy over the open levels inside each bar; the entry points of a bar come from the plain
    path walk of ``tests/transforms/model_reference.py``. Levels below the display cut-off
    (`EXPIRY_FRACTION` of their notional) are dropped from the book, as the heatmap does.
    """
    norm = model_input(bars)
    n = norm.height
    log_d = log_survival(norm, params)
    factor = np.exp(np.diff(np.r_[0.0, log_d]))
    tau = turnover_share(norm, params)
    base, obs = norm["oi_base"].to_numpy(), norm["oi_observed"].to_numpy()
    op, hi, lo, cl = (norm[c].to_numpy() for c in ("open", "high", "low", "close"))
    vol = np.nan_to_num(norm["volume"].to_numpy().astype(float))
    mark_low, mark_high = norm["mark_low"].to_numpy(), norm["mark_high"].to_numpy()
    ts_us = norm["ts"].dt.epoch("us").to_numpy()
    contracts = np.where(np.isfinite(base), tau * np.nan_to_num(base), 0.0)
    samples = np.flatnonzero(obs)
    for s0, s1 in itertools.pairwise(samples):
        d = base[s1] - base[s0]
        if d > 0:
            w = vol[s0:s1]
            w = w / w.sum() if w.sum() > 0 else np.full(s1 - s0, 1.0 / (s1 - s0))
            contracts[s0:s1] += d * w
    wts = [bin_weights(params, 0), bin_weights(params, 1)]
    book_share = liquidatable_fraction(params)
    bucket = norm["ts"].dt.truncate(TIME_STEP).dt.epoch("us").to_numpy()
    pb = np.zeros(0, np.int64)
    side = np.zeros(0, np.int8)
    price = np.zeros(0)
    rem = np.zeros(0)
    floor = np.zeros(0)
    pred = np.zeros((n, 2))
    cells: dict[tuple[int, int, int], float] = {}
    acc: dict[tuple[int, int], float] = {}
    count = 0
    for i in range(n):
        rem *= factor[i]
        crossed = np.where(side == 0, mark_low[i] <= price, mark_high[i] >= price)
        keep = ~crossed & (rem >= floor)
        if crossed.any():
            pred[i, 0] = rem[crossed & (side == 0)].sum()
            pred[i, 1] = rem[crossed & (side == 1)].sum()
        if not keep.all():
            pb, side, price, rem, floor = pb[keep], side[keep], price[keep], rem[keep], floor[keep]
        if contracts[i] > 0:
            points = path_points(op[i], hi[i], lo[i], cl[i], mark_high[i], mark_low[i], params)
            entry = np.array([p[0] for p in points])
            offsets = rotation_offsets(np.full(len(points), ts_us[i]), np.arange(len(points)))
            for s_ in (0, 1):
                usd = contracts[i] / len(points) * book_share * entry[:, None] * wts[s_][None, :]
                lev = leverage_quantiles(params, offsets, s_)
                new_p = liquidation_prices(entry[:, None], lev, params, s_)
                reach = (
                    np.array([p[1] for p in points])[:, None] <= new_p
                    if s_ == 0
                    else (np.array([p[2] for p in points])[:, None] >= new_p)
                )
                if params.intrabar:
                    pred[i, s_] += usd[reach].sum()
                    live = ~reach
                else:
                    live = np.ones_like(reach)
                price = np.r_[price, new_p[live]]
                side = np.r_[side, np.full(int(live.sum()), s_, np.int8)]
                rem = np.r_[rem, usd[live]]
                floor = np.r_[floor, usd[live] * EXPIRY_FRACTION]
                pb = np.r_[pb, np.floor(new_p[live] / step).astype(np.int64)]
        # heatmap: accumulate this bar's alive notional per (side, price bucket)
        key = pb * 2 + side
        uniq, inv = np.unique(key, return_inverse=True)
        sums = np.bincount(inv, weights=rem)
        for k, s in zip(uniq.tolist(), sums.tolist(), strict=True):
            acc[(k % 2, k // 2)] = acc.get((k % 2, k // 2), 0.0) + s
        count += 1
        if i == n - 1 or bucket[i + 1] != bucket[i]:
            for (s_, b_), total in acc.items():
                cells[(int(bucket[i]), s_, b_)] = total / count
            acc, count = {}, 0
    return {"predicted": pred, "cells": cells}


def check_agreement(params: ModelParams) -> None:
    bars = synthetic_bars(2, seed=11)
    step = params.resolve_price_step(bars)
    f = fast(bars, params, step)
    r = reference(bars, params, step)
    pred_f = f["predicted"].select("long_usd", "short_usd").to_numpy()
    pred_r = r["predicted"]
    assert isinstance(pred_r, np.ndarray)
    np.testing.assert_allclose(pred_f, pred_r, rtol=1e-6, atol=1e-3)
    cells = r["cells"]
    assert isinstance(cells, dict)
    hm = f["heatmap"]
    total_r = sum(cells.values())
    total_f = float(hm["long_usd"].sum() + hm["short_usd"].sum())
    assert abs(total_f - total_r) <= 1e-6 * total_r, (total_f, total_r)
    got = {
        (int(t), 0, round(p / step)): lu
        for t, p, lu in zip(hm["ts"].dt.epoch("us"), hm["price"], hm["long_usd"], strict=True)
    }
    for (t, s_, b_), v in cells.items():
        if s_ == 0 and v > 1e-6:
            assert abs(got.get((t, 0, b_), 0.0) - v) <= 1e-5 * max(1.0, v), (t, b_)
    print(
        f"agreement: OK on 2 days ({bars.height} bars): predicted per bar and "
        f"{len(cells)} heatmap cells match the per-bar reference"
    )


def timed(fn: object, *args: object) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0, out


def model_only(bars: pl.DataFrame, params: ModelParams) -> object:
    """Levels and predicted liquidations (what `predicted_liquidations` costs)."""
    return predicted_from_core(compute_core(model_input(bars), params))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 and 60 days instead of 30, 365")
    parser.add_argument(
        "--ref-days", type=int, default=7, help="days the per-bar reference is timed on"
    )
    args = parser.parse_args()
    small, large = (7, 60) if args.quick else (30, 365)
    params = ModelParams()
    check_agreement(params)

    bars_s = synthetic_bars(small)
    step = params.resolve_price_step(bars_s)
    fast(bars_s.head(2000), params, step)  # warm-up (imports, numba cache, polars threads)
    t_model_s, _ = timed(model_only, bars_s, params)
    t_fast_s, out_s = timed(fast, bars_s, params, step)
    assert isinstance(out_s, dict)
    print(
        f"{small:>4} days ({bars_s.height:,} 1m bars, {out_s['levels'].height:,} levels, "
        f"{out_s['heatmap'].height:,} heatmap cells at {TIME_STEP}): model (levels + predicted) "
        f"{t_model_s:.2f} s; with the levels frame and heatmap {t_fast_s:.2f} s"
    )
    bars_r = synthetic_bars(args.ref_days)
    t_fast_r, _ = timed(fast, bars_r, params, step)
    t_ref_r, _ = timed(reference, bars_r, params, step)
    print(
        f"{args.ref_days:>4} days ({bars_r.height:,} bars): fast {t_fast_r:.2f} s vs per-bar "
        f"reference {t_ref_r:.1f} s: {t_ref_r / t_fast_r:.0f}x (the reference's cost per bar "
        f"grows with the open book, so the ratio only grows with more days)"
    )

    bars_l = synthetic_bars(large)
    t_model_l, _ = timed(model_only, bars_l, params)
    t_fast_l, out_l = timed(fast, bars_l, params, step)
    assert isinstance(out_l, dict)
    cells_s, cells_l = out_s["heatmap"].height, out_l["heatmap"].height
    print(
        f"{large:>4} days ({bars_l.height:,} 1m bars, {out_l['levels'].height:,} levels, "
        f"{cells_l:,} heatmap cells): model {t_model_l:.2f} s; with heatmap {t_fast_l:.2f} s"
    )
    print(
        f"scaling {small}->{large} days: bars x{bars_l.height / bars_s.height:.1f}, "
        f"model time x{t_model_l / t_model_s:.1f} (budget <= 15x), with heatmap "
        f"x{t_fast_l / t_fast_s:.1f}; heatmap cells x{cells_l / cells_s:.1f}"
    )
    del out_l
    gc.collect()
    tracemalloc.start()
    fast(bars_l, params, step)  # again, traced (tracemalloc slows it down, so not timed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory ({large} days): {peak / 2**20:.0f} MiB traced by tracemalloc (numpy and "
        f"Python objects), process max RSS {rss:.0f} MiB (includes polars' native buffers)"
    )


if __name__ == "__main__":
    main()
