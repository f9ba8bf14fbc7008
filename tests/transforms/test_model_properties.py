"""Hypothesis properties of the vectorized model, checked against a plain per-bar simulation."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transforms.heatmap as heatmap_module
from transforms.backtest import predicted_liquidations
from transforms.bars import model_input
from transforms.heatmap import heatmap
from transforms.levels import EXPIRY_FRACTION, liquidation_levels
from transforms.params import ModelParams

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass
class Ref:
    """Result of the per-bar reference simulation."""

    levels: list[dict[str, float]] = field(default_factory=list)
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    alive_per_bar: list[dict[tuple[int, int], float]] = field(default_factory=list)
    closed_usd: float = 0.0


def reference(bars: pl.DataFrame, p: ModelParams, step: float) -> Ref:
    """Plain per-bar loop over all open levels (the definition, written the obvious way)."""
    b = model_input(bars)
    n = b.height
    ts = [t.timestamp() for t in b["ts"]]
    hi, lo, cl = b["high"].to_list(), b["low"].to_list(), b["close"].to_list()
    mh, ml = b["mark_high"].to_list(), b["mark_low"].to_list()
    vol = [v if v is not None and v > 0 else 0.0 for v in b["volume"].to_list()]
    buy = b["taker_buy_volume"].to_list()
    base, obs = b["oi_base"].to_list(), b["oi_observed"].to_list()
    samples = [i for i in range(n) if obs[i]]
    opens_at: dict[int, list[tuple[float, float, float]]] = {}  # bar -> (entry, contracts, share)
    close_at: dict[int, float] = {}
    for s0, s1 in itertools.pairwise(samples):
        d = base[s1] - base[s0]
        bars_k = list(range(s0, s1))
        vs = sum(vol[i] for i in bars_k)
        w = [vol[i] / vs if vs > 0 else 1 / len(bars_k) for i in bars_k]
        ok = [i for i in bars_k if buy[i] is not None and vol[i] > 0]
        bv = sum(vol[i] for i in ok)
        share = sum(buy[i] for i in ok) / bv if bv > 0 else 0.5
        share = min(max(share, 0.0), 1.0)
        typ = [(hi[i] + lo[i] + cl[i]) / 3 for i in bars_k]
        if d > 0 and p.entry == "bars":
            for i, wi, ti in zip(bars_k, w, typ, strict=True):
                if d * wi > 0:
                    opens_at.setdefault(i, []).append((ti, d * wi, share))
        elif d > 0:
            vw = sum(wi * ti for wi, ti in zip(w, typ, strict=True))
            opens_at.setdefault(s1 - 1, []).append((vw, d, share))
        elif d < 0 and p.oi_decrease == "proportional":
            close_at[s1] = base[s1] / base[s0]
    lev = list(p.leverages)
    order = sorted(range(len(lev)), key=lambda t: lev[t])
    z = [0.0] * len(lev)
    for r, t in enumerate(order):
        z[t] = 2 * r / (len(lev) - 1) - 1 if len(lev) > 1 else 0.0
    out = Ref(predicted={"long": np.zeros(n), "short": np.zeros(n)})
    live: list[dict[str, float]] = []
    for i in range(n):
        factor = close_at.get(i, 1.0)
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
        for entry, contracts, share in opens_at.get(i, []):
            a = p.tilt_strength * (2 * share - 1) if p.side_tilt == "taker" else 0.0
            for side in (0, 1):
                ws = [
                    wt * math.exp((a if side == 0 else -a) * z[t]) for t, wt in enumerate(p.weights)
                ]
                for t, L in enumerate(lev):
                    price = (
                        entry * (1 - 1 / L) / (1 - p.mmr)
                        if side == 0
                        else entry * (1 + 1 / L) / (1 + p.mmr)
                    )
                    usd = contracts * entry * ws[t] / sum(ws)
                    lv = {"j": i, "side": side, "lev": L, "price": price, "notional": usd}
                    lv.update({"rem": usd, "m": n, "liq_usd": 0.0})
                    out.levels.append(lv)
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


@st.composite
def bars_and_params(draw: st.DrawFn) -> tuple[pl.DataFrame, ModelParams]:
    n = draw(st.integers(2, 30))
    minutes = draw(st.sampled_from([1, 5, 240]))
    rets = draw(st.lists(st.floats(-0.03, 0.03), min_size=n, max_size=n))
    close = 100 * np.exp(np.cumsum(rets))
    open_ = np.r_[100.0, close[:-1]]
    up = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    dn = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    high = np.maximum(open_, close) * (1 + up)
    low = np.minimum(open_, close) * (1 - dn)
    oi = np.array(draw(st.lists(st.floats(500, 2000), min_size=n, max_size=n)))
    every = draw(st.sampled_from([1, 1, 3]))
    oi_col = [float(v) if i % every == 0 else None for i, v in enumerate(oi)]
    cols: dict[str, object] = {
        "ts": [T0 + timedelta(minutes=minutes * i) for i in range(n)],
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "oi_usd": oi_col,
    }
    if draw(st.booleans()):
        vol = np.array(draw(st.lists(st.floats(0, 10), min_size=n, max_size=n)))
        cols["volume"] = vol
        cols["taker_buy_volume"] = vol * np.array(
            draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        )
    if draw(st.booleans()):
        cols["mark_high"] = high * 0.999
        cols["mark_low"] = low * 1.001
    tiers = draw(st.sampled_from([((10.0,), (1.0,)), ((5.0, 25.0, 100.0), (0.5, 0.3, 0.2))]))
    params = ModelParams(
        leverages=tiers[0],
        weights=tiers[1],
        entry=draw(st.sampled_from(["bars", "typical"])),
        side_tilt=draw(st.sampled_from(["none", "taker"])),
        oi_decrease=draw(st.sampled_from(["proportional", "ignore"])),
        decay_half_life_hours=draw(st.sampled_from([None, 2.0, 200.0])),
        price_step=0.5,
    )
    return pl.DataFrame(cols), params


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fast_sorted(lv: pl.DataFrame) -> pl.DataFrame:
    return lv.sort("created_at", "side", "leverage")


@SETTINGS
@given(bars_and_params())
def test_matches_per_bar_reference(case: tuple[pl.DataFrame, ModelParams]) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    lv = liquidation_levels(bars, p)
    norm = model_input(bars)
    ts = norm["ts"].to_list()
    assert lv.height == len(ref.levels)
    ref_sorted = sorted(ref.levels, key=lambda r: (r["j"], r["side"], r["lev"]))
    fast = _fast_sorted(lv).iter_rows(named=True)
    for r, f in zip(ref_sorted, fast, strict=True):
        assert f["created_at"] == ts[int(r["j"])]
        assert f["side"] == ("long" if r["side"] == 0 else "short")
        assert f["price"] == pytest.approx(r["price"], rel=1e-12)
        assert f["notional_usd"] == pytest.approx(r["notional"], rel=1e-9)
        expect_m = None if r["m"] == norm.height else ts[int(r["m"])]
        assert f["liquidated_at"] == expect_m
        assert f["liquidated_usd"] == pytest.approx(r["liq_usd"], rel=1e-9, abs=1e-9)
        assert f["alive_usd"] == pytest.approx(r.get("alive", 0.0), rel=1e-9, abs=1e-9)
    pred = predicted_liquidations(norm, p)
    np.testing.assert_allclose(
        pred["long_usd"].to_numpy(), ref.predicted["long"], rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        pred["short_usd"].to_numpy(), ref.predicted["short"], rtol=1e-9, atol=1e-9
    )


@SETTINGS
@given(bars_and_params())
def test_conservation_created_alive_liquidated_closed(
    case: tuple[pl.DataFrame, ModelParams],
) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    lv = liquidation_levels(bars, p)
    created = lv["notional_usd"].sum()
    liquidated = (
        predicted_liquidations(bars, p)
        .select(pl.col("long_usd") + pl.col("short_usd"))
        .sum()
        .item()
    )
    alive = lv["alive_usd"].sum()
    assert created == pytest.approx(alive + liquidated + ref.closed_usd, rel=1e-9, abs=1e-9)
    assert lv.filter(pl.col("liquidated_at").is_not_null())[
        "liquidated_usd"
    ].sum() == pytest.approx(liquidated, rel=1e-9, abs=1e-9)


@SETTINGS
@given(bars_and_params())
def test_no_liquidation_at_or_before_creation_and_only_on_crossing(
    case: tuple[pl.DataFrame, ModelParams],
) -> None:
    bars, p = case
    norm = model_input(bars)
    lv = liquidation_levels(norm, p)
    assert lv.filter(pl.col("liquidated_at") <= pl.col("created_at")).height == 0
    # a long level is never liquidated by a bar whose mark low stays above it (short symmetric):
    # every bar in (created_at, liquidated_at) leaves the level uncrossed, the liquidation bar
    # crosses it
    pairs = lv.with_row_index("id").join_where(
        norm.select("ts", "mark_low", "mark_high"),
        pl.col("ts") > pl.col("created_at"),
        (pl.col("ts") <= pl.col("liquidated_at")) | pl.col("liquidated_at").is_null(),
    )
    crossed = pl.when(pl.col("side") == "long").then(pl.col("mark_low") <= pl.col("price"))
    crossed = crossed.otherwise(pl.col("mark_high") >= pl.col("price"))
    pairs = pairs.with_columns(
        crossed.alias("crossed"), (pl.col("ts") == pl.col("liquidated_at")).alias("at_liq")
    )
    assert pairs.filter(pl.col("crossed") != pl.col("at_liq").fill_null(False)).height == 0


@SETTINGS
@given(bars_and_params(), st.randoms(use_true_random=False))
def test_invariant_to_row_order(case: tuple[pl.DataFrame, ModelParams], rnd: object) -> None:
    bars, p = case
    perm = list(range(bars.height))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    shuffled = bars[perm]
    a = _fast_sorted(liquidation_levels(bars, p))
    b = _fast_sorted(liquidation_levels(shuffled, p))
    assert a.equals(b)
    pa = predicted_liquidations(bars, p)
    pb = predicted_liquidations(shuffled, p)
    assert pb["ts"].to_list() == shuffled["ts"].to_list()  # one row per input row, same order
    assert pa.sort("ts").equals(pb.sort("ts"))


@SETTINGS
@given(
    bars_and_params(), st.sampled_from(["1m", "10m", "1h", "4h"]), st.sampled_from([300.0, 0.05])
)
def test_heatmap_equals_alive_notional_per_bucket(
    case: tuple[pl.DataFrame, ModelParams], time_step: str, chunk_range: float
) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    norm = model_input(bars)
    lv = liquidation_levels(norm, p)
    with pytest.MonkeyPatch.context() as mp:  # a tiny chunk range exercises the chunk splitting
        mp.setattr(heatmap_module, "_CHUNK_LOG_RANGE", chunk_range)
        hm = heatmap(lv, norm, 0.5, time_step, params=p)
    bucket = norm.select(pl.col("ts").dt.truncate(time_step))["ts"].to_list()
    expected: dict[tuple[datetime, int, int], float] = {}
    counts: dict[datetime, int] = {}
    for i, cells in enumerate(ref.alive_per_bar):
        counts[bucket[i]] = counts.get(bucket[i], 0) + 1
        for (side, pb), usd in cells.items():
            key = (bucket[i], side, pb)
            expected[key] = expected.get(key, 0.0) + usd
    got: dict[tuple[datetime, int, int], float] = {}
    for r in hm.iter_rows(named=True):
        pb = round(r["price"] / 0.5)
        got[(r["ts"], 0, pb)] = r["long_usd"]
        got[(r["ts"], 1, pb)] = r["short_usd"]
    for key, total in expected.items():
        assert got.get(key, 0.0) == pytest.approx(total / counts[key[0]], rel=1e-7, abs=1e-7), key
    for key, value in got.items():
        assert value == pytest.approx(expected.get(key, 0.0) / counts[key[0]], rel=1e-7, abs=1e-7)
    assert (hm["long_usd"] + hm["short_usd"]).min() is None or (
        hm["long_usd"] + hm["short_usd"]
    ).min() > 0
