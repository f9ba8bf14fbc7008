"""The model written the obvious way: a plain per-bar loop over every open level.

The definition the vectorized `transforms.levels` is checked against (hypothesis properties) and
the per-bar reference of ``benchmarks/bench_model.py``. It reuses only the documented formulas of
`transforms.leverage` (quantiles, liquidation price) and `transforms.levels.turnover_share`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from transforms.bars import model_input
from transforms.levels import EXPIRY_FRACTION, liquidatable_fraction, turnover_share
from transforms.leverage import (
    bin_weights,
    leverage_quantiles,
    liquidation_prices,
    rotation_offsets,
)
from transforms.params import ModelParams


@dataclass
class Ref:
    """Result of the per-bar reference simulation."""

    levels: list[dict[str, float]] = field(default_factory=list)
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    alive_per_bar: list[dict[tuple[int, int], float]] = field(default_factory=list)
    closed_usd: float = 0.0


def path_points(o: float, h: float, lo: float, c: float, mh: float, ml: float,
                p: ModelParams) -> list[tuple[float, float, float]]:  # fmt: skip
    """(entry price, lowest and highest mark price of the rest of the path) per entry point."""
    s = min(max(math.ceil((h - lo) / c / p.entry_resolution), 1), p.entry_points)
    up = c >= o
    verts = [o, lo, h, c] if up else [o, h, lo, c]
    marks = [o, ml, mh, c] if up else [o, mh, ml, c]
    segs = [abs(verts[k + 1] - verts[k]) for k in range(3)]
    total = sum(segs)
    out = []
    for q in range(s):
        f = (q + 0.5) / s * total
        acc, k = 0.0, 0
        while k < 2 and f >= acc + segs[k]:
            acc += segs[k]
            k += 1
        if total <= 0:
            price = o
        else:
            frac = (f - acc) / segs[k] if segs[k] > 0 else 0.0
            price = verts[k] + (verts[k + 1] - verts[k]) * frac
        rest = marks[k + 1 :]
        # never beyond the bar's mark extremes (liquidations trigger on mark price)
        out.append((price, max(min([price, *rest]), ml), min(max([price, *rest]), mh)))
    return out


def reference(bars: pl.DataFrame, p: ModelParams, step: float) -> Ref:
    """Plain per-bar loop over all open levels (the definition, written the obvious way)."""
    b = model_input(bars)
    n = b.height
    ts = [t.timestamp() for t in b["ts"]]
    ts_us = b["ts"].dt.epoch("us").to_numpy()
    op, hi, lo, cl = (b[c].to_list() for c in ("open", "high", "low", "close"))
    mh, ml = b["mark_high"].to_list(), b["mark_low"].to_list()
    vol = [v if v is not None and v > 0 else 0.0 for v in b["volume"].to_list()]
    base, obs = b["oi_base"].to_list(), b["oi_observed"].to_list()
    tau = turnover_share(b, p)
    opened = [tau[i] * base[i] if base[i] is not None else 0.0 for i in range(n)]
    samples = [i for i in range(n) if obs[i]]
    close_at: dict[int, float] = {}
    for s0, s1 in itertools.pairwise(samples):
        d = base[s1] - base[s0]
        bars_k = list(range(s0, s1))
        vs = sum(vol[i] for i in bars_k)
        for i in bars_k:
            if d > 0:
                opened[i] += d * (vol[i] / vs if vs > 0 else 1 / len(bars_k))
        if d < 0 and p.oi_decrease == "proportional":
            close_at[s1] = base[s1] / base[s0]
    w = [bin_weights(p, 0), bin_weights(p, 1)]
    keep = liquidatable_fraction(p)
    out = Ref(predicted={"long": np.zeros(n), "short": np.zeros(n)})
    live: list[dict[str, float]] = []
    for i in range(n):
        factor = close_at.get(i, 1.0)
        if i > 0:
            factor *= 1.0 - tau[i]
        if p.decay_half_life_hours is not None and i > 0:
            factor *= 0.5 ** ((ts[i] - ts[i - 1]) / 3600 / p.decay_half_life_hours)
        for lv in live:
            out.closed_usd += lv["rem"] * (1 - factor)
            lv["rem"] *= factor
        still = []
        for lv in live:
            crossed = ml[i] <= lv["price"] if lv["side"] == 0 else mh[i] >= lv["price"]
            if crossed:
                lv["m"] = i
                lv["liq_usd"] = lv["rem"]
                out.predicted["long" if lv["side"] == 0 else "short"][i] += lv["rem"]
            else:
                still.append(lv)
        live = still
        if opened[i] > 0:
            points = path_points(op[i], hi[i], lo[i], cl[i], mh[i], ml[i], p)
            for q, (entry, low_after, high_after) in enumerate(points):
                off = rotation_offsets(np.array([ts_us[i]]), np.array([q]))
                usd = opened[i] / len(points) * entry * keep
                for side in (0, 1):
                    levs = leverage_quantiles(p, off, side)[0]
                    for t, lev in enumerate(levs):
                        price = float(
                            liquidation_prices(np.array([entry]), np.array([lev]), p, side)[0]
                        )
                        notional = usd * w[side][t]
                        lv = {"j": i, "side": side, "lev": float(lev), "price": price,
                              "entry": entry, "notional": notional, "rem": notional,
                              "m": n, "liq_usd": 0.0}  # fmt: skip
                        out.levels.append(lv)
                        reach = price >= low_after if side == 0 else price <= high_after
                        if p.intrabar and reach:
                            lv["m"] = i
                            lv["liq_usd"] = notional
                            out.predicted["long" if side == 0 else "short"][i] += notional
                        else:
                            live.append(lv)
        cells: dict[tuple[int, int], float] = {}
        for lv in live:
            if lv["rem"] < EXPIRY_FRACTION * lv["notional"]:
                continue  # the heatmap's documented display cut-off
            key = (int(lv["side"]), math.floor(lv["price"] / step))
            cells[key] = cells.get(key, 0.0) + lv["rem"]
        out.alive_per_bar.append(cells)
    for lv in live:
        lv["alive"] = lv["rem"]
    return out
